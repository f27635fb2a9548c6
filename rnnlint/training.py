"""Facts about training code that several rules share.

Rules ask questions like "which optimizer does this ``step()`` belong to, what
parameters does it own, is the model behind them recurrent, was there a
``backward()`` before it?". :func:`facts` answers them for one file, computed
once per file (memoised on the :class:`~rnnlint.rule.FileContext`) from the
already-parsed tree.

Statements are linearised per function (``Scope``): the body of a function in
source order, descending into ``for``/``while``/``if``/``with``/``try`` but
not into nested functions or classes. A training step is then a pattern in
that sequence: backward ... step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from rnnlint.index import CLIP_FUNCTIONS, OPTIMIZERS
from rnnlint.names import dotted
from rnnlint.rule import FileContext

CLIP_METHOD_NAMES = frozenset(
    {"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm", "clip_gradients", "clip_grad_value"}
)
BACKWARD_METHODS = frozenset({"backward", "manual_backward"})
SCALER_CLASSES = frozenset({"torch.amp.GradScaler", "torch.cuda.amp.GradScaler"})
SCHEDULER_PREFIX = "torch.optim.lr_scheduler."


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
    statement: cst.SimpleStatementLine
    target: str | None = None  # the optimizer a step/unscale/zero_grad is for
    via: str | None = None  # "scaler" for scaler.step(opt), "accelerator" for accelerator.backward()
    loop: cst.CSTNode | None = None  # innermost enclosing for/while, if any


@dataclass
class Scope:
    node: cst.CSTNode  # FunctionDef or Module
    cls: cst.ClassDef | None
    events: list[Event] = field(default_factory=list)
    params: set[str] = field(default_factory=set)
    assigned: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)


@dataclass
class Facts:
    scopes: list[Scope]
    optimizers: dict[str, Optimizer]
    scalers: set[str]
    schedulers: set[str]
    models: dict[str, list[str]]  # variable -> dotted callees assigned to it
    recurrent_names: set[str]  # callees in this file that build recurrent modules
    clip_helpers: set[str]  # functions/methods of this file that clip gradients
    classes: dict[str, cst.ClassDef]

    @property
    def mentions_recurrent(self) -> bool:
        return bool(self.recurrent_names)


def facts(ctx: FileContext) -> Facts:
    return ctx.memo("training.facts", lambda: _Collector(ctx).run())


def is_recurrent_expr(ctx: FileContext, expr: cst.BaseExpression | None, scope: Scope | None) -> bool | None:
    """Is ``expr`` (a params expression, a model variable) tied to a recurrent model?

    True or False when the expression leads to a known model, None when nothing
    is known (a function parameter, say): callers then fall back on the file.
    """
    if expr is None:
        return None
    f = facts(ctx)
    verdicts: list[bool] = []
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
            verdicts.append(any(ctx.is_recurrent(c) for c in f.models[head]))
    if not verdicts:
        return None
    return any(verdicts)


def _bases(expr: cst.BaseExpression) -> list[str]:
    """Dotted receivers of ``.parameters()``-like calls and bare names in ``expr``."""
    found: list[str] = []

    class Finder(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> bool:
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "parameters", "named_parameters", "children", "modules",
            ):
                name = dotted(node.func.value)
                if name:
                    found.append(name)
                return False
            return True

        def visit_Name(self, node: cst.Name) -> None:
            found.append(node.value)

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            name = dotted(node)
            if name:
                found.append(name)
                return False
            return True

    expr.visit(Finder())
    return found


def recurrent_context(ctx: FileContext, scope: Scope | None, optimizer: Optimizer | None) -> bool:
    """Does a training step in ``scope`` (for ``optimizer``) train a recurrent model?"""
    if optimizer is not None:
        verdict = is_recurrent_expr(ctx, optimizer.params, optimizer.scope)
        if verdict is not None:
            return verdict
    if scope is not None and scope.cls is not None and ctx.is_recurrent(scope.cls.name.value):
        return True
    return facts(ctx).mentions_recurrent


def optimizer_for(ctx: FileContext, name: str | None) -> Optimizer | None:
    if not name:
        return None
    return facts(ctx).optimizers.get(name)


def is_clip_call(ctx: FileContext, call: cst.Call, scope: Scope | None = None) -> bool:
    qualname = ctx.qualname(call.func)
    if qualname in CLIP_FUNCTIONS:
        return True
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in CLIP_METHOD_NAMES:
        return True  # accelerator.clip_grad_norm_, fabric.clip_gradients, self.clip_gradients
    name = dotted(call.func)
    if name is None:
        return False
    f = facts(ctx)
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

    def run(self) -> Facts:
        module = self.ctx.module
        self._scope(module, module.body, None)
        recurrent = {c for c in self.callees if self.ctx.is_recurrent(c)}
        return Facts(
            scopes=self.scopes,
            optimizers=self.optimizers,
            scalers=self.scalers,
            schedulers=self.schedulers,
            models=self.models,
            recurrent_names=recurrent,
            clip_helpers=self.clip_helpers,
            classes=self.classes,
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

    def _statement(self, stmt: cst.CSTNode, scope: Scope, cls, loop) -> None:
        if isinstance(stmt, cst.FunctionDef):
            self._scope(stmt, _body(stmt), cls)
            self._calls(stmt.decorators, scope)
            return
        if isinstance(stmt, cst.ClassDef):
            self.classes[stmt.name.value] = stmt
            self._scope(stmt, _body(stmt), stmt)
            return
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                self._small(small, stmt, scope, loop)
            return
        if isinstance(stmt, (cst.For, cst.While)):
            header = stmt.iter if isinstance(stmt, cst.For) else stmt.test
            self._calls(header, scope)
            self._statements(_body(stmt), scope, cls, stmt)
            if stmt.orelse is not None:
                self._statements(_body(stmt.orelse), scope, cls, loop)
            return
        if isinstance(stmt, cst.If):
            self._calls(stmt.test, scope)
            self._statements(_body(stmt), scope, cls, loop)
            if stmt.orelse is not None:
                self._statement(stmt.orelse, scope, cls, loop)
            return
        if isinstance(stmt, cst.Else):
            self._statements(_body(stmt), scope, cls, loop)
            return
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                self._calls(item.item, scope)
            self._statements(_body(stmt), scope, cls, loop)
            return
        if isinstance(stmt, cst.Try):
            self._statements(_body(stmt), scope, cls, loop)
            for handler in stmt.handlers:
                self._statements(_body(handler), scope, cls, loop)
            for extra in (stmt.orelse, stmt.finalbody):
                if extra is not None:
                    self._statements(_body(extra), scope, cls, loop)
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
        for call in _calls_in(small):
            self._call(call, stmt, scope, loop)

    def _assignment(self, name: str, value: cst.BaseExpression, scope: Scope) -> None:
        call = _unwrap_call(value)
        if call is None:
            return
        callee = dotted(call.func)
        if callee is None:
            return
        qualname = self.ctx.qualname(call.func) or callee
        if qualname in OPTIMIZERS:
            params = _arg(call, 0, "params")
            lr = _arg(call, 1, "lr")
            self.optimizers[name] = Optimizer(name, qualname, OPTIMIZERS[qualname], call, params, lr, scope)
        elif qualname in SCALER_CLASSES:
            self.scalers.add(name)
        elif qualname.startswith(SCHEDULER_PREFIX):
            self.schedulers.add(name)
        else:
            self.models.setdefault(name, []).append(callee)

    def _calls(self, node, scope: Scope) -> None:
        if node is None:
            return
        nodes = node if isinstance(node, (list, tuple)) else [node]
        for item in nodes:
            for call in _calls_in(item):
                name = dotted(call.func)
                if name:
                    self.callees.add(name)

    def _call(self, call: cst.Call, stmt: cst.SimpleStatementLine, scope: Scope, loop) -> None:
        name = dotted(call.func)
        if name:
            self.callees.add(name)
        func = call.func
        if not isinstance(func, cst.Attribute):
            if self.ctx.qualname(func) in CLIP_FUNCTIONS:
                scope.events.append(Event("clip", call, stmt, loop=loop))
            return
        method = func.attr.value
        receiver = dotted(func.value)
        if method in BACKWARD_METHODS:
            via = "accelerator" if call.args and method == "backward" else None
            scope.events.append(Event("backward", call, stmt, via=via, loop=loop))
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
        elif name and (name in self.clip_helpers or (name.startswith("self.") and name[5:] in self.clip_helpers)):
            scope.events.append(Event("clip", call, stmt, loop=loop))


def _looks_like_optimizer(receiver: str, optimizers: dict, schedulers: set) -> bool:
    if receiver in optimizers:
        return True
    if receiver in schedulers:
        return False
    last = receiver.rsplit(".", 1)[-1].lower()
    return "opt" in last and "sched" not in last


def _body(node) -> list:
    body = node.body
    if isinstance(body, (cst.IndentedBlock, cst.SimpleStatementSuite)):
        return list(body.body)
    return list(body)


def _calls_in(node: cst.CSTNode) -> list[cst.Call]:
    calls: list[cst.Call] = []

    class Finder(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            calls.append(call)

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

    node.visit(Finder())
    return calls


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


def keyword_arg(call: cst.Call, keyword: str) -> cst.Arg | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg
    return None
