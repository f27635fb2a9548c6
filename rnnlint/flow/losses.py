"""Which losses score which targets, and what the targets are padded with.

The padding flow (:mod:`rnnlint.flow.padding`) knows which batches are
padded; a loss over padded targets also needs the pad itself and the loss
call that scores them. :class:`LossFlow` is that flow plus three facts:

* the pad of a padded tensor (``pad_sequence(..., padding_value=PAD_IDX)``,
  folded to its number by the flow model in the file that wrote it);
* targets that stay the same padded targets through reshapes (``trg.view(-1)``,
  ``trg[:, 1:]``, a row ``trg[i]``) and stop being so when rewritten in place
  (``trg[trg == PAD] = -100``);
* the loss calls (``nn.CrossEntropyLoss``/``NLLLoss`` objects, the functional
  forms, and loss classes of the project whose ``forward`` computes one),
  with the target each receives, and whether the loss is masked afterwards.

Rules ask :func:`loss_runs` for the losses of a file and judge them; which
calls are losses, reshapes or masks is data in :mod:`rnnlint.flow.library`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from rnnlint.flow.library import LOSS_FUNCTIONS, LOSS_MASKING, LOSS_MODULES, TARGET_RESHAPES
from rnnlint.flow.padding import (
    PAD_SEQUENCE,
    BodyRun,
    Flow,
    Instance,
    Items,
    Padded,
    PaddedRows,
    ProjectResolver,
    Resolver,
    Result,
    Value,
    file_context as padding_context,
    file_runs,
    forward_params,
    locate,
    methods,
    module_functions,
    now,
)
from rnnlint.flow.resolve import flow_of, number
from rnnlint.flow.training import training_code
from rnnlint.names import ImportMap, dotted
from rnnlint.nodes import Visitor, find_all, keyword_arg, param_names


def loss_runs(ctx) -> list[BodyRun]:
    """Every body of the file, followed by :class:`LossFlow`: each run's ``result.losses``."""
    return file_runs(ctx, LossFlow, LossResolver(ctx, loss_objects(ctx)))


@dataclass(frozen=True)
class PadWith(Padded):
    """A padded tensor whose padding value is known: as written (``PAD_IDX``) and, when it folds, its value."""

    text: str = "0"
    value: float | None = 0.0
    local: bool = True  # written in the file being checked


@dataclass(frozen=True)
class LossClass:
    """A loss class of the project whose ``forward`` computes a cross-entropy/NLL loss of its argument."""

    name: str
    position: int  # of the targets among forward's arguments
    loss: str  # "nn.CrossEntropyLoss()" as written
    display: str  # its file and line
    line: int
    ignores: bool  # ignore_index given
    masks: bool  # forward multiplies / indexes the loss by a mask
    elementwise: bool | None  # reduction='none' (None: not a literal)
    site: cst.Call | None = field(default=None, compare=False)  # the loss's constructor (or call) in its file
    home: tuple | None = field(default=None, compare=False)  # (file, class name)


@dataclass
class LossCall:
    call: cst.Call
    constructor: cst.Call | None  # ``nn.CrossEntropyLoss(...)`` for the module form
    target: Value
    target_expr: cst.BaseExpression
    result_name: str | None  # ``loss`` in ``loss = criterion(...)``
    wrapper: LossClass | None = None


@dataclass
class LossResult(Result):
    losses: list[LossCall] = field(default_factory=list)


class LossResolver(ProjectResolver):
    """Follows padding functions (collates) into their bodies, in this file or another, to see the pad value."""

    def __init__(self, ctx, criteria: dict[str, cst.Call]) -> None:
        super().__init__(ctx)
        self.criteria = criteria
        self._returns: dict[tuple[str, str], Value] = {}

    def call(self, name: str) -> Value:
        value = super().call(name)
        if not is_padded(value):
            return value
        hit = self.ctx.index.lookup(self.ctx.path, name)
        if hit is None:
            return value
        key = (str(hit[0]), hit[1])
        if key not in self._returns:
            self._returns[key] = None  # recursion guard
            self._returns[key] = self._follow(hit[0], hit[1]) or value
        return self._returns[key]

    def wrapper(self, instance: Instance) -> LossClass | None:
        home = locate(self.ctx.index, self.ctx.path, instance)
        if home is None:
            return None
        cache = self.ctx.index.flow().scratch.setdefault("losses.classes", {})
        if home not in cache:
            cache[home] = loss_class(self.ctx, *home)
        return cache[home]

    def _follow(self, path: Path, function_name: str) -> Value:
        local = path == self.ctx.path.resolve()
        context = self.ctx if local else padding_context(self.ctx, path)  # parsed once per run, by the index
        if context is None:
            return None
        function = module_functions(context.module).get(function_name)
        if function is None:
            return None
        flow = LossFlow(context.imports, self if local else Resolver())
        flow.fold = lambda expr: number(context, expr)  # the flow model folds the pad in its own file
        flow.local = local
        returns = [v for v in flow.run_function(function).returns if is_padded(v)]
        return returns[0] if returns else None


class LossFlow(Flow):
    """The padding flow, plus pad values, reshaped targets and the loss calls."""

    def __init__(self, imports, resolver=None, extra_rnns=frozenset()):
        super().__init__(imports, resolver, extra_rnns)
        self.result = LossResult()
        self.fold = _literal_number  # the pad's number; for another file's pad, the flow model's answer there
        self.local = True

    def small(self, small: cst.BaseSmallStatement) -> None:
        super().small(small)
        if isinstance(small, (cst.Assign, cst.AugAssign)):  # trg[trg == PAD] = -100: rewritten in place
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            for target in targets:
                if isinstance(target, cst.Subscript):
                    base = dotted(target.value)
                    if base and not isinstance(self.env.get(base), PaddedRows):  # rows padded one by one stay
                        self.env.pop(base, None)

    def value(self, expr):
        # a row (or a time step) of padded targets still holds pad values: targets[i] is scored too
        if isinstance(expr, cst.Subscript):
            base = super().value(expr.value)
            if isinstance(base, Padded) and not isinstance(base, PaddedRows):
                for element in expr.slice:
                    if isinstance(element.slice, cst.Index):
                        self.value(element.slice.value)
                return base
        return super().value(expr)

    def call(self, call: cst.Call) -> Value:
        func = call.func
        name = dotted(func)
        qualname = self.imports.resolve_dotted(name) if name else None
        if qualname == PAD_SEQUENCE:
            for arg in call.args:
                self.value(arg.value)
            return self._padded(call)
        if isinstance(func, cst.Attribute) and func.attr.value in TARGET_RESHAPES:
            receiver = self.value(func.value)
            for arg in call.args:
                self.value(arg.value)
            if isinstance(receiver, Padded):
                return receiver
            return super().call(call) if receiver is not None else None
        callee = now(self.env.get(name)) if name else None
        if isinstance(callee, Instance) and isinstance(self.resolver, LossResolver):
            wrapper = self.resolver.wrapper(callee)
            if wrapper is not None:
                values = {self._key(call, arg): (self.value(arg.value), arg.value) for arg in call.args}
                target, expr = values.get(wrapper.position) or (None, None)
                if expr is not None:
                    self.result.losses.append(LossCall(call, None, target, expr, None, wrapper))
                return None
        constructor = self._loss_constructor(call, name, qualname)
        if constructor is not None or qualname in LOSS_FUNCTIONS:
            values = {self._key(call, arg): (self.value(arg.value), arg.value) for arg in call.args}
            target, expr = values.get(1) or values.get("target") or (None, None)
            if expr is not None:
                self.result.losses.append(LossCall(call, constructor, target, expr, self._result_name(call)))
            return None
        return super().call(call)

    def _padded(self, call: cst.Call) -> PadWith:
        pad = keyword_arg(call, "padding_value")
        positional = [a for a in call.args if a.keyword is None]
        if pad is None and len(positional) > 2:
            pad = positional[2]
        origin = "pad_sequence(...) output"
        if pad is None:
            return PadWith(origin, text="0", value=0.0, local=self.local)
        text = cst.Module(body=[]).code_for_node(pad.value)
        value = self.fold(pad.value)
        return PadWith(origin, text=text, value=value, local=self.local)

    def _loss_constructor(self, call: cst.Call, name: str | None, qualname: str | None) -> cst.Call | None:
        if isinstance(call.func, cst.Call) and self.imports.resolve(call.func.func) in LOSS_MODULES:
            return call.func  # nn.CrossEntropyLoss()(logits, targets)
        criteria = getattr(self.resolver, "criteria", {})
        if name is not None and name in criteria:
            return criteria[name]
        return None

    def _result_name(self, call: cst.Call) -> str | None:
        statement = self._statement
        if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
            small = statement.body[0]
            if isinstance(small, cst.Assign) and small.value is call and len(small.targets) == 1:
                return dotted(small.targets[0].target)
        return None


def loss_class(ctx, path: Path, class_name: str) -> LossClass | None:
    """Is ``class_name`` (defined in ``path``) a loss class wrapping CrossEntropyLoss/NLLLoss over one of
    its forward's arguments? Read from its body: ``self.loss = nn.CrossEntropyLoss()`` then
    ``self.loss(output, target)`` (or ``F.cross_entropy(output, target)``) in ``forward``."""
    if path == ctx.path.resolve():
        flow_of(ctx)  # the flow model's lines of this file must be of this parse
    module = ctx.module if path == ctx.path.resolve() else ctx.index.tree(path)  # reports need this file's nodes
    if module is None:
        return None
    cls = next((s for s in module.body if isinstance(s, cst.ClassDef) and s.name.value == class_name), None)
    if cls is None:
        return None
    forward = methods(cls).get("forward")
    if forward is None:
        return None
    imports = ImportMap(module)
    built: dict[str, cst.Call] = {}
    for assign in find_all(cls, cst.Assign):
        value = assign.value
        while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and \
                value.func.attr.value in ("to", "cuda") and isinstance(value.func.value, cst.Call):
            value = value.func.value
        if isinstance(value, cst.Call) and imports.resolve(value.func) in LOSS_MODULES:
            for target in assign.targets:
                if dotted(target.target):
                    built[dotted(target.target)] = value
    params = forward_params(forward)
    for call in find_all(forward, cst.Call):
        name = dotted(call.func)
        constructor = built.get(name or "")
        if constructor is None and imports.resolve(call.func) not in LOSS_FUNCTIONS:
            continue
        target = call.args[1].value if len(call.args) > 1 and call.args[1].keyword is None else None
        target = target or next((a.value for a in call.args if a.keyword and a.keyword.value == "target"), None)
        while isinstance(target, cst.Call) and isinstance(target.func, cst.Attribute):  # y.view(-1), y.long()
            target = target.func.value
        if not isinstance(target, cst.Name) or target.value not in params:
            continue
        site = constructor if constructor is not None else call
        reduction = keyword_arg(site, "reduction")
        elementwise = None if reduction is not None and not isinstance(reduction.value, cst.SimpleString) else \
            (reduction is not None and reduction.value.evaluated_value == "none")
        probe = LossCall(call, constructor, None, target, _assigned_name(forward, call))
        code = cst.Module(body=[]).code_for_node
        loss_text = code(site.func) + "()" if constructor is not None else code(call.func) + "(...)"
        return LossClass(
            name=class_name, position=params.index(target.value), loss=loss_text,
            display=ctx.index.flow().display(path), line=ctx.index.flow().line(path, site) or 1,
            ignores=keyword_arg(site, "ignore_index") is not None, masks=masked(forward, probe),
            elementwise=elementwise, site=site, home=(path, class_name),
        )
    return None


def _assigned_name(function: cst.FunctionDef, call: cst.Call) -> str | None:
    for assign in find_all(function, cst.Assign):
        if assign.value is call and len(assign.targets) == 1:
            return dotted(assign.targets[0].target)
    return None


def padded_loss_elsewhere(ctx, use, key, home) -> tuple["LossCall", str, object] | None:
    """The loss class handed as argument ``key`` of ``use`` (a call of a function of another file): is it
    computed there over padded targets? ``(loss, "train.py:15")`` of the first such computation."""
    hit = ctx.index.lookup(ctx.path, use.callee)
    if hit is None or hit[0] == ctx.path.resolve():
        return None
    other = padding_context(ctx, hit[0])
    if other is None:
        return None
    for run in loss_runs(other):
        if not isinstance(run.node, cst.FunctionDef) or run.node.name.value != hit[1]:
            continue
        params = param_names(run.node)
        param = params[key] if isinstance(key, int) and key < len(params) else key
        for loss in getattr(run.result, "losses", []):
            if loss.wrapper is not None and isinstance(loss.target, Padded) and dotted(loss.call.func) == param \
                    and loss.wrapper.home == home:
                flow = ctx.index.flow()
                return loss, f"{flow.display(hit[0])}:{flow.line(hit[0], loss.call) or 1} ({hit[1]})", other
    return None


def is_padded(value: Value) -> bool:
    return isinstance(value, Padded) or (isinstance(value, Items) and any(isinstance(v, Padded) for v in value.items))


def loss_objects(ctx) -> dict[str, cst.Call]:
    """``criterion`` / ``self.loss_fn`` -> the CrossEntropyLoss/NLLLoss constructor assigned to it."""
    found: dict[str, cst.Call] = {}

    class Finder(Visitor):
        def visit_Assign(self, node: cst.Assign) -> None:
            value = node.value
            while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and isinstance(
                    value.func.value, cst.Call) and value.func.attr.value in ("to", "cuda"):
                value = value.func.value
            if isinstance(value, cst.Call) and ctx.qualname(value.func) in LOSS_MODULES:
                for target in node.targets:
                    name = dotted(target.target)
                    if name:
                        found[name] = value

    Finder().walk(ctx.module)
    return found


@dataclass(frozen=True)
class Pad:
    text: str
    value: float | None
    local: bool


def pad_of(ctx, target: Padded) -> Pad | None:
    if not isinstance(target, PadWith) and target.by_hand is not None:
        if not target.by_hand:
            return Pad("", None, True)  # padded by hand with a value this file cannot write as an id
        return Pad(target.by_hand, _constant(ctx, target.by_hand), True)
    if isinstance(target, PadWith):
        value = target.value
        if value is None and target.local:  # PAD_IDX = 1 at the top of this file, or imported
            value = _constant(ctx, target.text)
        return Pad(target.text, value, target.local)
    known = _known_pad_ids(ctx)
    if len(known) == 1:
        text = next(iter(known))
        return Pad(text, _constant(ctx, text), True)
    return None


def _constant(ctx, text: str) -> float | None:
    """The number a module-level name or expression of this file stands for (followed across files)."""
    try:
        return number(ctx, cst.parse_expression(text))
    except cst.ParserSyntaxError:
        return None


def _known_pad_ids(ctx) -> set[str]:
    """Pad ids the file names: ``PAD_IDX``-like module constants, ``padding_idx=`` of embeddings."""
    found: set[str] = set()
    for name in list(training_code(ctx).scopes[0].assigned) + list(ctx.imports.names):
        if "." not in name and "PAD" in name.split("_") and name.isupper():
            found.add(name)
    if len(found) <= 1:
        for call in find_all(ctx.module, cst.Call):
            arg = keyword_arg(call, "padding_idx")
            if arg is not None and (isinstance(arg.value, cst.Integer) or
                                    (isinstance(arg.value, cst.Name) and arg.value.value.isupper())):
                found.add(ctx.code(arg.value))
    return found


def _literal_number(expr: cst.BaseExpression) -> float | None:
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = _literal_number(expr.expression)
        return -inner if inner is not None else None
    return float(expr.evaluated_value) if isinstance(expr, (cst.Integer, cst.Float)) else None


def masked(body: cst.CSTNode, loss: LossCall) -> bool:
    """Is the loss masked: ``criterion(...) * mask``, ``loss[mask]``, ``loss.masked_select(...)``, or a later
    ``loss = (loss * mask).sum() / mask.sum()`` on the name it is assigned to?"""
    watched = {loss.result_name} if loss.result_name else set()
    masked = False

    class Finder(Visitor):
        def __init__(self) -> None:
            self.stack: list[cst.CSTNode] = []

        def on_visit(self, node: cst.CSTNode) -> bool:
            nonlocal masked
            if node is loss.call or (isinstance(node, (cst.Name, cst.Attribute)) and dotted(node) in watched):
                masked = masked or _masking_context(node, self.stack)
                return False
            self.stack.append(node)
            return True

        def on_leave(self, original_node: cst.CSTNode) -> None:
            if self.stack and self.stack[-1] is original_node:
                self.stack.pop()

    Finder().walk(body)
    return masked


def _masking_context(node: cst.CSTNode, stack: list[cst.CSTNode]) -> bool:
    """Is ``node`` (the loss) directly multiplied, indexed, or masked by its parent expression?
    ``loss.item() * n`` is not: the product is not of the loss tensor itself."""
    if not stack:
        return False
    parent = stack[-1]
    if isinstance(parent, cst.BinaryOperation):
        return isinstance(parent.operator, cst.Multiply)
    if isinstance(parent, cst.Subscript) and parent.value is node:
        return any(isinstance(e.slice, cst.Index) for e in parent.slice)
    if isinstance(parent, cst.Attribute) and parent.value is node:
        return parent.attr.value in LOSS_MASKING
    if isinstance(parent, cst.Arg) and len(stack) >= 2 and isinstance(stack[-2], cst.Call):
        return (dotted(stack[-2].func) or "").rsplit(".", 1)[-1] in LOSS_MASKING
    return False

