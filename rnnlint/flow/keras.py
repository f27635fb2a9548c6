"""Keras training code: its optimizers, where their gradients are applied, and whether they are clipped.

A Keras model trains through an optimizer built in one of three ways: a class
(``tf.keras.optimizers.Adam(...)``), a string handed to ``model.compile``
(``optimizer="adam"``), or nothing (``compile()`` builds RMSprop). The
gradients reach it either inside ``fit()`` or through ``apply_gradients`` in
a ``GradientTape`` loop. :func:`keras_training` reads those facts from the
file's facts (:mod:`rnnlint.flow.scopes`, one walk per file, shared by every
analysis) and links each ``apply_gradients`` to the optimizers its receiver may
be through the value-flow model (:mod:`rnnlint.flow.resolve`: ``self.opt``
set in ``__init__``, an optimizer returned by a helper or passed as a
parameter). What Keras and TensorFlow call what is data in
:mod:`rnnlint.flow.library`.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from rnnlint.names import dotted
from rnnlint.nodes import find_all, keyword_arg
from rnnlint.flow import library
from rnnlint.flow.resolve import flow_of, site_of
from rnnlint.flow.values import LIBRARY


@dataclass
class Apply:
    """``receiver.apply_gradients(...)``: one update of a tape loop."""

    call: cst.Call
    receiver: str | None  # as written: "optimizer", "self.optimizer"
    statement: cst.SimpleStatementLine | None  # the line it stands on, when it is a simple statement
    clipped: bool  # a clip runs before it in the same function
    optimizers: tuple[cst.Call, ...]  # the Keras optimizer constructors of this file its receiver may be
    built: bool  # the receiver holds an object built somewhere the model sees: judged where it is built

    @property
    def via_model(self) -> bool:
        """``self.optimizer`` / ``model.optimizer``: the optimizer ``compile()`` set."""
        return self.receiver is not None and self.receiver.endswith("." + library.KERAS_MODEL_OPTIMIZER)


@dataclass
class KerasTraining:
    recurrent: bool  # the file builds (or calls a project function that builds) a recurrent Keras layer
    optimizers: list[cst.Call]  # Keras optimizer constructors, in source order
    applies: list[Apply]
    compiles: list[cst.Call]  # ``model.compile(...)``
    loss_scaling: bool  # mixed precision: gradients may still be scaled before ``apply_gradients``


def is_optimizer(qualname: str | None) -> bool:
    if not qualname or "." not in qualname:
        return False
    module, _, name = qualname.rpartition(".")
    return module in library.KERAS_OPTIMIZER_MODULES and name.lower() in library.KERAS_OPTIMIZER_CLASSES


def clips(call: cst.Call) -> bool:
    """Is this optimizer built clipping (or with ``**kwargs`` that may say so)?"""
    return any(keyword_arg(call, k) for k in library.KERAS_CLIP_KEYWORDS) or any(a.star == "**" for a in call.args)


def compile_optimizer(call: cst.Call) -> cst.Arg | None:
    """The ``optimizer`` argument of ``model.compile(...)``."""
    found = keyword_arg(call, "optimizer")
    if found is not None:
        return found
    if call.args and call.args[0].keyword is None and not call.args[0].star:
        return call.args[0]
    return None


def keras_training(ctx) -> KerasTraining:
    """The Keras training facts of the file ``ctx`` analyses (computed once per file)."""
    return ctx.memo("flow.keras", lambda: _collect(ctx))


def _collect(ctx) -> KerasTraining:
    _, facts = flow_of(ctx)
    calls = [(call, function) for entries in facts.calls.values() for call, function, _ in entries]
    callees = {dotted(call.func) for call, _ in calls} - {None}
    optimizers = [call for call, _ in calls if is_optimizer(ctx.qualname(call.func))]
    compiles = [call for call, _ in calls if _is_model_compile(ctx, call)]
    applying = [(call, function) for call, function in calls
                if isinstance(call.func, cst.Attribute) and call.func.attr.value == library.KERAS_APPLY]
    helpers = {f.name.value for f in facts.owner if _clips_itself(ctx, f)} if applying else set()
    applies = [_apply(ctx, call, function, helpers, optimizers) for call, function in applying]
    recurrent = bool(optimizers or applies or compiles) and any(
        ctx.index.reaches(ctx.path, name, library.KERAS_RECURRENT) for name in sorted(callees))
    scaling = any(marker in name for name in callees for marker in library.KERAS_LOSS_SCALING)
    return KerasTraining(recurrent, optimizers, applies, compiles, scaling)


def _is_model_compile(ctx, call: cst.Call) -> bool:
    """``model.compile(...)``, not ``re.compile`` / ``torch.compile``."""
    if not (isinstance(call.func, cst.Attribute) and call.func.attr.value == "compile"):
        return False
    receiver = dotted(call.func.value)
    if receiver is None or receiver.split(".")[0] in ctx.imports.names:
        return False
    return any(a.keyword is not None and a.keyword.value in library.KERAS_COMPILE_KEYWORDS for a in call.args) \
        or compile_optimizer(call) is not None


def _own_calls(node: cst.CSTNode) -> list[cst.Call]:
    """The calls of one function body (or the module), not of the functions defined in it, in order."""
    body = node.body if isinstance(node, cst.FunctionDef) else node
    return find_all(body, cst.Call, skip=(cst.FunctionDef,))


def _clips_itself(ctx, function: cst.FunctionDef) -> bool:
    return any(ctx.qualname(c.func) in library.TF_CLIP for c in _own_calls(function))


def _apply(ctx, call: cst.Call, function: cst.FunctionDef | None, helpers: set[str],
           optimizers: list[cst.Call]) -> Apply:
    receiver_expr = call.func.value  # type: ignore[attr-defined]
    receiver = dotted(receiver_expr)
    scope = function if function is not None else ctx.module
    found = _optimizers_of(ctx, receiver_expr, call)
    mine = {id(o) for o in optimizers}
    return Apply(
        call=call,
        receiver=receiver,
        statement=_statement_of(scope, call),
        clipped=_clipped_before(ctx, scope, call, helpers),
        optimizers=tuple(o for o in found if id(o) in mine),
        built=bool(found) or _bound_to_call(ctx, receiver_expr, call),
    )


def _optimizers_of(ctx, receiver: cst.BaseExpression, call: cst.Call) -> list[cst.Call]:
    """The optimizer constructors the receiver may be (a loss-scaling wrapper stands for what it wraps)."""
    flow, _ = flow_of(ctx)
    return _constructors(flow, receiver, site_of(ctx, call), 0)


def _constructors(flow, expr: cst.BaseExpression, site, depth: int) -> list[cst.Call]:
    found = []
    for value in flow.values(expr, site, models=True):
        if value.kind != LIBRARY or value.call is None:
            continue
        if is_optimizer(value.value):
            found.append(value.call)
        elif value.value.endswith(library.KERAS_OPTIMIZER_WRAPPERS) and value.call.args and depth < 3:
            found.extend(_constructors(flow, value.call.args[0].value, value.call_site, depth + 1))
    return found


def _bound_to_call(ctx, receiver: cst.BaseExpression, at: cst.CSTNode) -> bool:
    """Is the receiver assigned the result of a call in this file (an object the model cannot see
    into, e.g. a helper of another library)? Its optimizer is unknown, and stays unknown."""
    _, facts = flow_of(ctx)
    name = dotted(receiver)
    if name is None:
        return False
    site = facts.site_of(at)
    scopes = [site.function] if site.function is not None else []
    scopes.append(facts.module)
    if site.cls is not None and name.startswith("self."):
        return any(isinstance(value, cst.Call) for value, _ in facts.self_assigns.get(site.cls, {}).get(name[5:], []))
    return any(isinstance(value, cst.Call) for scope in scopes for value in facts.assigned(scope, name))


def _statement_of(scope: cst.CSTNode, call: cst.Call) -> cst.SimpleStatementLine | None:
    for line in find_all(scope, cst.SimpleStatementLine):
        if any(c is call for c in find_all(line, cst.Call)):
            return line
    return None


def _clipped_before(ctx, scope: cst.CSTNode, apply: cst.Call, helpers: set[str]) -> bool:
    """Does a clip run before ``apply`` in its function: a TensorFlow clip, a function or method of
    this file that clips, or a project function that reaches one?"""
    for call in _own_calls(scope):
        if call is apply:
            break
        if ctx.qualname(call.func) in library.TF_CLIP:
            return True
        name = dotted(call.func)
        if name is None:
            continue
        short = name[5:] if name.startswith("self.") else name
        if short in helpers:
            return True
        if not name.startswith("self.") and ctx.index.reaches(ctx.path, name, library.TF_CLIP):
            return True
    return False
