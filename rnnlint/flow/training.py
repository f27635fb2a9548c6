"""What the training code of a file does: facts that several rules share.

Rules ask questions like "which optimizer does this ``step()`` belong to, what
parameters does it own, is the model behind them recurrent, was there a
``backward()`` before it?". :func:`training_code` answers them for one file, computed
once per file (memoised on the :class:`~rnnlint.rule.FileContext`) from the
already-parsed tree.

Statements are linearised per function (``Scope``): the body of a function in
source order, descending into ``for``/``while``/``if``/``with``/``try`` but
not into nested functions or classes. A training step is then a pattern in
that sequence: backward ... step. A call of a function that clips (defined
anywhere in the file, or in another project file) becomes a ``clip`` event
too; that is decided after the walk, so definition order does not matter.
:func:`neighbours` and :func:`clip_placement` say where a clip stands
relative to the backward and step around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import libcst as cst

from rnnlint.flow.library import CLIP_FUNCTIONS, OPTIMIZERS
from rnnlint.flow.resolve import values
from rnnlint.flow.values import LIBRARY_CLASS
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, body_of, find_all
from rnnlint.rule import FileContext

_RECURRENT_SHORT = frozenset({"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"})
CLIP_METHOD_NAMES = frozenset(
    {"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_gradients", "clip_grad_value"}
)
BACKWARD_METHODS = frozenset({"backward", "manual_backward"})
SCALER_CLASSES = frozenset({"torch.amp.GradScaler", "torch.cuda.amp.GradScaler"})
SCHEDULER_PREFIX = "torch.optim.lr_scheduler."
_CONTAINERS = frozenset({"torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict"})


@dataclass
class Optimizer:
    """``name = SomeOptimizer(params, lr=...)`` somewhere in the file."""

    name: str  # the assigned target as written: "optimizer", "self.opt"
    qualname: str
    family: str
    call: cst.Call
    params: cst.BaseExpression | None
    lr: cst.BaseExpression | None
    scope: "Scope | None"


@dataclass
class Event:
    """A statement-level event of a training loop, in source order."""

    kind: str  # "backward" | "step" | "clip" | "unscale" | "zero_grad"
    call: cst.Call
    #: the line it stands in; a ``SimpleStatementSuite`` for ``if args.clip: clip_grad_norm_(...)``,
    #: where nothing can be inserted before the event itself
    statement: cst.SimpleStatementLine | cst.SimpleStatementSuite
    target: str | None = None  # the optimizer a step/unscale/zero_grad is for
    via: str | None = None  # "scaler": scaler.step(opt); "accelerator" / "fabric": accelerator.backward(loss)
    loop: cst.CSTNode | None = None  # innermost enclosing for/while, if any

    @property
    def own_line(self) -> bool:
        """Is the event alone on a line of its own, where a statement can be inserted before it or moved?"""
        return isinstance(self.statement, cst.SimpleStatementLine) and len(self.statement.body) == 1


@dataclass
class Scope:
    node: cst.CSTNode  # FunctionDef or Module
    cls: cst.ClassDef | None
    events: list[Event] = field(default_factory=list)
    params: set[str] = field(default_factory=set)
    assigned: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)


@dataclass
class TrainingCode:
    scopes: list[Scope]
    optimizers: dict[str, Optimizer]
    scalers: set[str]
    schedulers: set[str]
    models: dict[str, list[str]]  # variable -> dotted callees assigned to it
    callees: set[str]  # every dotted callee of the file
    clip_helpers: set[str]  # functions/methods of this file that clip gradients
    classes: dict[str, cst.ClassDef]
    all_optimizers: list[Optimizer] = field(default_factory=list)  # every construction, in order

    is_recurrent: Callable[[str], bool] = field(default=lambda name: False, repr=False)
    _mentions: bool | None = field(default=None, repr=False)

    @property
    def mentions_recurrent(self) -> bool:
        """Does the file build a recurrent module anywhere (directly or via the project)?

        Computed on first use, cheapest names first: a name that resolves to
        ``torch.nn.LSTM`` through the imports needs no project lookup.
        """
        if self._mentions is None:
            ordered = sorted(self.callees, key=lambda c: not c.rsplit(".", 1)[-1] in _RECURRENT_SHORT)
            self._mentions = any(self.is_recurrent(c) for c in ordered)
        return self._mentions


def training_code(ctx: FileContext) -> TrainingCode:
    return ctx.memo("training.code", lambda: _Collector(ctx).run())


def is_recurrent_expr(ctx: FileContext, expr: cst.BaseExpression | None, scope: Scope | None) -> bool | None:
    """Is ``expr`` (a params expression, a model variable) tied to a recurrent model?

    True or False when the expression leads to a known model, None when nothing
    is known (a function parameter, say): callers then fall back on the file.
    """
    if expr is None:
        return None
    f = training_code(ctx)
    verdicts: list[bool] = []
    submodules: list[bool] = []  # ``model.fc``: the model's verdict, when the flow cannot tell the part's
    for base in _bases(expr):
        if base in ("self", "cls") or base.startswith("self."):
            owner = scope.cls if scope else None
            if base.startswith("self.") and base in f.models:
                verdicts.append(any(ctx.is_recurrent(c) for c in f.models[base]))
            elif owner is not None:
                verdicts.append(ctx.is_recurrent(owner.name.value))
            continue
        if base in f.models:
            verdicts.append(any(ctx.is_recurrent(c) for c in f.models[base]))
            continue
        head = base.split(".")[0]
        if head in f.models:
            submodules.append(any(ctx.is_recurrent(c) for c in f.models[head]))
    if any(verdicts):
        return True
    # what the file alone cannot tell: parameters (every caller's argument), injected submodules, which
    # part of a model an attribute is
    found = _flow_verdict(ctx, _receivers(expr))
    if found is None and submodules:
        return any(submodules)
    return found if found is not None or not verdicts else False


def _receivers(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The nodes ``_bases`` names: receivers of ``.parameters()``-like calls, bare names and attributes."""
    found: list[cst.BaseExpression] = []

    class Finder(Visitor):
        def visit_Call(self, node: cst.Call) -> bool:
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "parameters", "named_parameters", "children", "modules",
            ):
                found.append(node.func.value)
                return False
            return True

        def visit_Name(self, node: cst.Name) -> None:
            found.append(node)

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            if dotted(node):
                found.append(node)
                return False
            return True

    Finder().walk(expr)
    return found


def _flow_verdict(ctx: FileContext, nodes: list[cst.BaseExpression]) -> bool | None:
    """Ask the value-flow model what these expressions are (parameters: what every caller passes)."""
    from rnnlint.flow.models import recurrent
    from rnnlint.flow.resolve import flow_of, site_of

    flow, _ = flow_of(ctx)
    verdicts = [recurrent(flow, flow.values(node, site_of(ctx, node), models=True)) for node in nodes[:8]]
    known = [v for v in verdicts if v is not None]
    return any(known) if known else None


def _called_models(ctx: FileContext, scope: Scope) -> bool | None:
    """Does the function call a recurrent model (``model(x)``, ``self.net(x)``) that arrived from elsewhere?"""
    if not isinstance(scope.node, cst.FunctionDef):
        return None
    receivers: list[cst.BaseExpression] = []
    seen: set[str] = set()
    for call in find_all(scope.node.body, cst.Call, skip=(cst.FunctionDef, cst.ClassDef, cst.Lambda)):
        name = dotted(call.func)
        if name is None or name in seen:
            continue
        head = name.split(".")[0]
        if head in scope.params or name in scope.assigned or (head == "self" and name.count(".") == 1):
            seen.add(name)
            receivers.append(call.func)
    return _flow_verdict(ctx, receivers) if receivers else None


def _bases(expr: cst.BaseExpression) -> list[str]:
    """Dotted receivers of ``.parameters()``-like calls and bare names in ``expr``."""
    return [name for name in map(dotted, _receivers(expr)) if name]

def recurrent_context(ctx: FileContext, scope: Scope | None, optimizer: Optimizer | None) -> bool:
    """Does a training step in ``scope`` (for ``optimizer``) train a recurrent model?"""
    if optimizer is not None:
        verdict = is_recurrent_expr(ctx, optimizer.params, optimizer.scope)
        if verdict is not None:
            return verdict
    if scope is not None and scope.cls is not None and ctx.is_recurrent(scope.cls.name.value):
        return True
    if training_code(ctx).mentions_recurrent:
        return True
    return bool(scope is not None and _called_models(ctx, scope))


def optimizer_for(ctx: FileContext, name: str | None) -> Optimizer | None:
    if not name:
        return None
    return training_code(ctx).optimizers.get(name)


def optimizer_at(ctx: FileContext, scope: Scope, name: str | None) -> Optimizer | None:
    """The optimizer ``name`` means inside ``scope``.

    Several functions of a file may each build their own ``optimizer``: prefer
    the one built in ``scope`` itself, then one of the same class
    (``self.opt`` built in ``__init__``), then a module-level one, then any.
    """
    if not name:
        return None
    candidates = [o for o in training_code(ctx).all_optimizers if o.name == name]
    for wanted in (
        lambda o: o.scope is scope,
        lambda o: scope.cls is not None and o.scope is not None and o.scope.cls is scope.cls,
        lambda o: o.scope is not None and isinstance(o.scope.node, cst.Module),
    ):
        for optimizer in reversed(candidates):
            if wanted(optimizer):
                return optimizer
    return optimizer_for(ctx, name)


def parameter_owners(expr: cst.BaseExpression) -> set[str]:
    """Receivers of ``.parameters()`` / ``.named_parameters()`` calls in ``expr``."""
    owners: set[str] = set()
    for call in _calls_outside_lambdas(expr):
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters"):
            name = dotted(func.value)
            if name:
                owners.add(name)
    return owners


def clip_covers(ctx: FileContext, clip: Event, optimizer: Optimizer | None) -> bool:
    """Does ``clip`` act on the parameters ``optimizer`` updates?

    Only a clear mismatch says no (``clip_grad_norm_(encoder.parameters())``
    before ``decoder_optimizer.step()``); anything unknown (a helper, a list
    of tensors, ``opt.param_groups``) counts as covering.
    """
    if optimizer is None or optimizer.params is None or not clip.call.args:
        return True
    scope = _scope_of(ctx, clip)
    head = optimizer.name.split(".")[0]
    if scope is not None and optimizer.scope is not scope and head in scope.params and head not in ("self", "cls"):
        # the optimizer was built in another function and arrived here as a parameter: the names of
        # its model there (``voc_model``) say nothing about the names here (``model``)
        return True
    if ctx.qualname(clip.call.func) not in CLIP_FUNCTIONS:
        return True  # accelerator.clip_grad_norm_, helpers: trust them
    clipped = parameter_owners(clip.call.args[0].value)
    owned = parameter_owners(optimizer.params)
    if not clipped or not owned:
        return True
    return any(a == b or a.startswith(b + ".") or b.startswith(a + ".") for a in clipped for b in owned)


def _scope_of(ctx: FileContext, event: Event) -> Scope | None:
    return next((s for s in training_code(ctx).scopes if any(e is event for e in s.events)), None)


def neighbours(scope: Scope, event: Event) -> tuple[Event | None, Event | None]:
    """The nearest ``backward`` / ``step`` events before and after ``event`` in its loop."""
    events = [e for e in scope.events if e.loop is event.loop and (e is event or e.kind in ("backward", "step"))]
    at = next(i for i, e in enumerate(events) if e is event)
    before = events[at - 1] if at > 0 else None
    after = events[at + 1] if at + 1 < len(events) else None
    return before, after


def clip_placement(scope: Scope, clip: Event) -> str | None:
    """Where a clip stands in the training step: None when right (after
    ``backward()``, before ``step()``), "after-step" when it follows the
    step (too late: the update already used unclipped gradients) and
    "before-backward" when it precedes the backward (it clips the previous,
    already zeroed or stale, gradients)."""
    before, after = neighbours(scope, clip)
    loop_events = [e for e in scope.events if e.loop is clip.loop]
    at = loop_events.index(clip)
    if before is not None and before.kind == "step" and (after is None or after.kind == "backward"):
        if any(e.kind == "backward" for e in loop_events[:at]):
            return "after-step"
    if after is not None and after.kind == "backward" and before is None:
        if any(e.kind == "step" for e in loop_events[at:]):
            return "before-backward"
    return None


def is_clip_call(ctx: FileContext, call: cst.Call, scope: Scope | None = None) -> bool:
    qualname = ctx.qualname(call.func)
    if qualname in CLIP_FUNCTIONS:
        return True
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in CLIP_METHOD_NAMES:
        return True  # accelerator.clip_grad_norm_, fabric.clip_gradients, self.clip_gradients
    name = dotted(call.func)
    if name is None:
        return False
    f = training_code(ctx)
    if name in f.clip_helpers or (name.startswith("self.") and name[5:] in f.clip_helpers):
        return True
    if not name.startswith("self."):
        return ctx.index.reaches(ctx.path, name, CLIP_FUNCTIONS)
    return False


class _Collector:
    """One pass over the module collecting the facts above."""

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.optimizers: dict[str, Optimizer] = {}
        self.scalers: set[str] = set()
        self.schedulers: set[str] = set()
        self.models: dict[str, list[str]] = {}
        self.scopes: list[Scope] = []
        self.callees: set[str] = set()
        self.clip_helpers: set[str] = set()
        self.classes: dict[str, cst.ClassDef] = {}
        self.all_optimizers: list[Optimizer] = []
        # calls that may be clipping helpers: (scope, position in its events, event, callee)
        self.pending: list[tuple[Scope, int, Event, str]] = []

    def run(self) -> TrainingCode:
        module = self.ctx.module
        self._scope(module, module.body, None)
        self._resolve_helpers()
        return TrainingCode(
            scopes=self.scopes,
            optimizers=self.optimizers,
            scalers=self.scalers,
            schedulers=self.schedulers,
            models=self.models,
            callees=self.callees,
            is_recurrent=self.ctx.is_recurrent,
            clip_helpers=self.clip_helpers,
            classes=self.classes,
            all_optimizers=self.all_optimizers,
        )

    # -- scopes ------------------------------------------------------------

    def _scope(self, node: cst.CSTNode, body, cls: cst.ClassDef | None) -> Scope:
        scope = Scope(node=node, cls=cls)
        if isinstance(node, cst.FunctionDef):
            for param in (*node.params.params, *node.params.posonly_params, *node.params.kwonly_params):
                scope.params.add(param.name.value)
        self.scopes.append(scope)
        self._statements(body, scope, cls, loop=None)
        if isinstance(node, cst.FunctionDef) and any(e.kind == "clip" for e in scope.events):
            self.clip_helpers.add(node.name.value)
        return scope

    def _statements(self, body, scope: Scope, cls, loop) -> None:
        for stmt in body:
            self._statement(stmt, scope, cls, loop)

    def _block(self, owner: cst.CSTNode, scope: Scope, cls, loop) -> None:
        """The body of a compound statement: indented, or small statements after its colon."""
        if isinstance(owner.body, cst.SimpleStatementSuite):  # if args.clip: clip_grad_norm_(...)
            for small in owner.body.body:
                self._small(small, owner.body, scope, loop)
            return
        self._statements(body_of(owner), scope, cls, loop)

    def _statement(self, stmt: cst.CSTNode, scope: Scope, cls, loop) -> None:
        if isinstance(stmt, cst.FunctionDef):
            self._scope(stmt, body_of(stmt), cls)
            self._calls(stmt.decorators, scope)
            return
        if isinstance(stmt, cst.ClassDef):
            self.classes[stmt.name.value] = stmt
            self._scope(stmt, body_of(stmt), stmt)
            return
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self._small(small, stmt, scope, loop)
            return
        if isinstance(stmt, (cst.For, cst.While)):
            header = stmt.iter if isinstance(stmt, cst.For) else stmt.test
            self._calls(header, scope)
            self._block(stmt, scope, cls, stmt)
            if stmt.orelse is not None:
                self._block(stmt.orelse, scope, cls, loop)
            return
        if isinstance(stmt, cst.If):
            self._calls(stmt.test, scope)
            self._block(stmt, scope, cls, loop)
            if stmt.orelse is not None:
                self._statement(stmt.orelse, scope, cls, loop)
            return
        if isinstance(stmt, cst.Else):
            self._block(stmt, scope, cls, loop)
            return
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                self._calls(item.item, scope)
            self._block(stmt, scope, cls, loop)
            return
        if isinstance(stmt, cst.Try):
            self._block(stmt, scope, cls, loop)
            for handler in stmt.handlers:
                self._block(handler, scope, cls, loop)
            for extra in (stmt.orelse, stmt.finalbody):
                if extra is not None:
                    self._block(extra, scope, cls, loop)
            return
        # anything else (match, async constructs): still record the calls
        self._calls(stmt, scope)

    def _small(self, small: cst.BaseSmallStatement, stmt: cst.SimpleStatementLine, scope: Scope, loop) -> None:
        if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                name = dotted(target)
                if name:
                    scope.assigned.setdefault(name, []).append(small.value)
                    self._assignment(name, small.value, scope)
        for call in _calls_outside_lambdas(small):
            self._call(call, stmt, scope, loop)

    def _assignment(self, name: str, value: cst.BaseExpression, scope: Scope) -> None:
        call = _unwrap_call(value)
        if call is None:
            return
        callee = dotted(call.func)
        picked = _picked_optimizer(self.ctx, call) if callee is None else None
        if callee is None and picked is None:
            return
        qualname = picked[0] if picked else self.ctx.qualname(call.func) or callee
        if qualname in OPTIMIZERS:
            params = _arg(call, 0, "params")
            lr = _arg(call, 1, "lr")
            family = picked[1] if picked else OPTIMIZERS[qualname]
            self.optimizers[name] = Optimizer(name, qualname, family, call, params, lr, scope)
            self.all_optimizers.append(self.optimizers[name])
        elif qualname in SCALER_CLASSES:
            self.scalers.add(name)
        elif qualname.startswith(SCHEDULER_PREFIX):
            self.schedulers.add(name)
        else:
            self.models.setdefault(name, []).append(callee)
            if qualname in _CONTAINERS:  # nn.Sequential(nn.LSTM(...), ...): its parts count
                parts = (dotted(c.func) for c in _calls_outside_lambdas(call) if c is not call)
                self.models[name].extend(p for p in parts if p)

    def _calls(self, node, scope: Scope) -> None:
        if node is None:
            return
        nodes = node if isinstance(node, (list, tuple)) else [node]
        for item in nodes:
            for call in _calls_outside_lambdas(item):
                name = dotted(call.func)
                if name:
                    self.callees.add(name)

    def _call(self, call: cst.Call, stmt: cst.SimpleStatementLine, scope: Scope, loop) -> None:
        name = dotted(call.func)
        if name:
            self.callees.add(name)
            qualname = self.ctx.qualname(call.func)
            if qualname in OPTIMIZERS and not any(o.call is call for o in self.all_optimizers):
                # built without a name: ``return AdamW(self.parameters(), lr=self.lr)``, ``Trainer(optim=SGD(...))``
                self.all_optimizers.append(Optimizer(
                    "", qualname, OPTIMIZERS[qualname], call, _arg(call, 0, "params"), _arg(call, 1, "lr"), scope))
        func = call.func
        if not isinstance(func, cst.Attribute):
            if self.ctx.qualname(func) in CLIP_FUNCTIONS:
                scope.events.append(Event("clip", call, stmt, loop=loop))
            elif name:
                self._maybe_helper(name, call, stmt, scope, loop)
            return
        method = func.attr.value
        receiver = dotted(func.value)
        if method in BACKWARD_METHODS:
            scope.events.append(Event("backward", call, stmt, via=self._backward_via(call), loop=loop))
        elif method == "step" and receiver is not None:
            if receiver in self.scalers or (call.args and "scaler" in receiver.lower()):
                target = dotted(call.args[0].value) if call.args else None
                scope.events.append(Event("step", call, stmt, target=target, via="scaler", loop=loop))
            elif _looks_like_optimizer(receiver, self.optimizers, self.schedulers):
                scope.events.append(Event("step", call, stmt, target=receiver, loop=loop))
        elif method == "unscale_":
            target = dotted(call.args[0].value) if call.args else None
            scope.events.append(Event("unscale", call, stmt, target=target, loop=loop))
        elif method == "zero_grad":
            scope.events.append(Event("zero_grad", call, stmt, target=receiver, loop=loop))
        elif self.ctx.qualname(func) in CLIP_FUNCTIONS or method in CLIP_METHOD_NAMES:
            scope.events.append(Event("clip", call, stmt, loop=loop))
        elif name:
            self._maybe_helper(name, call, stmt, scope, loop)

    def _maybe_helper(self, name: str, call: cst.Call, stmt, scope: Scope, loop) -> None:
        """Remember a call that may be a clipping helper; decided once the file is read."""
        head = name.split(".")[0]
        if (head == "self" and name.count(".") == 1) or "." not in name or head in self.ctx.imports.names \
                or name.count(".") == 1:  # ``net.tidy_gradients()``: a method of a project model, maybe
            self.pending.append((scope, len(scope.events), Event("clip", call, stmt, loop=loop), name))

    def _backward_via(self, call: cst.Call) -> str | None:
        """``accelerator.backward(loss)`` / ``fabric.backward(loss)``, not ``loss.backward(grad)``."""
        func = call.func
        if not isinstance(func, cst.Attribute) or func.attr.value != "backward" or not call.args:
            return None
        receiver = dotted(func.value) or ""
        callees = [self.ctx.imports.resolve_dotted(c) for c in self.models.get(receiver, [])]
        text = " ".join([receiver, *callees]).lower()
        if "accelerat" in text:
            return "accelerator"
        if "fabric" in text:
            return "fabric"
        return None

    def _resolve_helpers(self) -> None:
        """Turn calls of functions that clip (defined in this file, in any order, or in
        another project file) into ``clip`` events at their place in the sequence."""
        resolved: set[int] = set()
        changed = True
        while changed:  # helpers calling helpers in this file
            changed = False
            for i, (scope, _, _, name) in enumerate(self.pending):
                local = name[5:] if name.startswith("self.") else name
                if i not in resolved and local in self.clip_helpers:
                    resolved.add(i)
                    if isinstance(scope.node, cst.FunctionDef) and scope.node.name.value not in self.clip_helpers:
                        self.clip_helpers.add(scope.node.name.value)
                        changed = True
        training = {id(s) for s in self.scopes if any(e.kind in ("backward", "step") for e in s.events)}
        for i, (scope, position, event, name) in enumerate(self.pending):
            if i in resolved or id(scope) not in training:
                continue
            where_a_clip_goes = _between_backward_and_step(scope, position, event)
            if name.startswith("self."):
                found = where_a_clip_goes and self._local_helper(name, scope)
            else:
                found = self._imported_helper(name) or where_a_clip_goes and (
                    self._method_helper(event.call) or self._local_helper(name, scope))
            if found:
                resolved.add(i)
        for i in sorted(resolved, key=lambda i: self.pending[i][1], reverse=True):
            scope, position, event, _ = self.pending[i]
            scope.events.insert(position, event)

    def _imported_helper(self, name: str) -> bool:
        """A project function (found through the index) whose body reaches a clip function or rewrites
        ``.grad`` in place."""
        from rnnlint.flow.models import changes_gradients

        index, path = self.ctx.index, self.ctx.path
        hit = index.lookup(path, name)
        if hit is None or hit[0] == path.resolve():
            return False  # not project code, or defined here (already decided above)
        summary = index.summary(hit[0])
        definition = summary.definitions.get(hit[1]) if summary else None
        if definition is None or definition.kind not in ("function", "assign"):
            return False
        if definition.kind == "function" and index.reaches(path, name, CLIP_FUNCTIONS):
            return True
        flow = index.flow()
        facts = flow.file(hit[0])
        if facts is None:
            return False
        function = facts.function_named(hit[1])  # ``bound = Helpers.bound``: a static method too
        return function is not None and changes_gradients(flow, facts, function)

    def _local_helper(self, name: str, scope: "Scope | None" = None) -> bool:
        """A function of this file (or, for ``self.x``, a method of the class around ``scope``) that
        rewrites ``.grad`` in place: ``for p in model.parameters(): p.grad.data.clamp_(-c, c)``."""
        from rnnlint.flow.models import changes_gradients
        from rnnlint.flow.resolve import flow_of

        flow, facts = flow_of(self.ctx)
        if name.startswith("self."):
            owner = facts.owner.get(scope.node) if scope is not None else None
            cls = owner[1] if owner is not None else None
            function = facts.methods.get(cls, {}).get(name[5:]) if cls is not None else None
        else:
            function = facts.functions.get(name)
        return function is not None and changes_gradients(flow, facts, function)

    def _method_helper(self, call: cst.Call) -> bool:
        """``net.tidy_gradients(max_norm=1.0)``: a method of the project's model that clips."""
        if not isinstance(call.func, cst.Attribute) or not isinstance(call.func.value, cst.Name):
            return False
        from rnnlint.flow.models import method_changes_gradients
        from rnnlint.flow.resolve import flow_of, site_of

        flow, _ = flow_of(self.ctx)
        return method_changes_gradients(flow, call, site_of(self.ctx, call))


def _between_backward_and_step(scope: Scope, position: int, event: Event) -> bool:
    """Does a call at ``position`` of the scope's events stand where a clip belongs (in its loop)?

    Only such calls are worth asking the flow model about (``net.tidy_gradients()``): a method call
    anywhere else could not be the missing clip.
    """
    same = [e for e in scope.events if e.loop is event.loop]
    before = scope.events[:position]
    return any(e.kind == "backward" and e.loop is event.loop for e in before) and any(
        e.kind == "step" and e.loop is event.loop for e in scope.events[position:]) and bool(same)


def _looks_like_optimizer(receiver: str, optimizers: dict, schedulers: set) -> bool:
    if receiver in optimizers:
        return True
    if receiver in schedulers:
        return False
    last = receiver.rsplit(".", 1)[-1].lower()
    return "opt" in last and "sched" not in last


def _picked_optimizer(ctx: FileContext, call: cst.Call) -> tuple[str, str] | None:
    """``OPTIMIZERS[args.optim](params, lr=...)``, ``getattr(torch.optim, name)(...)``: an optimizer class
    picked by a key, as the flow model resolves it. ``(class, family)``, the family empty when the
    classes it may be differ in family (no threshold applies then), or None when it is no optimizer."""
    if not isinstance(call.func, (cst.Subscript, cst.Call)):
        return None
    classes = sorted({v.value for v in values(ctx, call.func, call, models=True)
                      if v.kind == LIBRARY_CLASS and v.value in OPTIMIZERS})
    if not classes:
        return None
    families = {OPTIMIZERS[c] for c in classes}
    return classes[0], families.pop() if len(families) == 1 else ""


def _unwrap_call(value: cst.BaseExpression) -> cst.Call | None:
    """``Model(...).to(device)`` -> ``Model(...)``; ``Model(...)`` -> itself."""
    while isinstance(value, cst.Call):
        func = value.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Call) and func.attr.value in (
            "to", "cuda", "cpu", "double", "float", "half", "train", "eval", "bfloat16",
        ):
            value = func.value
            continue
        return value
    return None


def _arg(call: cst.Call, position: int, keyword: str) -> cst.BaseExpression | None:
    positional = [a for a in call.args if a.keyword is None and a.star == ""]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if len(positional) > position:
        return positional[position].value
    return None


def _calls_outside_lambdas(node: cst.CSTNode) -> list[cst.Call]:
    return find_all(node, cst.Call, skip=(cst.Lambda,))
