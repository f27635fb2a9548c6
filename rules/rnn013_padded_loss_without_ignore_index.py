from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from rnnlint.flow.resolve import flow_of, number
from rnnlint.diagnostics import Applicability, Related
from rnnlint.names import ImportMap, dotted
from rnnlint.nodes import Visitor, find_all, keyword_arg, param_names
from rnnlint.flow.padding import (
    PAD_SEQUENCE,
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
)
from rnnlint.rule import Invalid, Rule, Valid, add_arg, replace
from rnnlint.flow.training import training_code, recurrent_context

LOSS_MODULES = frozenset({"torch.nn.CrossEntropyLoss", "torch.nn.NLLLoss"})
LOSS_FUNCTIONS = frozenset({"torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss"})
#: positional index of ``ignore_index``: module constructors, functions
_IGNORE_POSITION = {"module": 2, "function": 4}
#: tensor methods after which padded targets are still the same padded targets
_RESHAPES = frozenset({"view", "reshape", "flatten", "view_as", "reshape_as", "squeeze", "unsqueeze", "contiguous",
                       "long", "to", "cuda", "cpu", "transpose", "permute", "t"})
#: methods of a loss tensor (or calls around it) that mask it
_MASKING = frozenset({"masked_select", "masked_fill", "masked_fill_", "where", "mul", "mul_"})
_CROSS_ENTROPY_DEFAULT_IGNORE = -100.0


class PaddedLossWithoutIgnoreIndex(Rule):
    """A cross-entropy or NLL loss counts the padding positions of padded targets.

    **What it catches.** ``nn.CrossEntropyLoss`` / ``nn.NLLLoss`` (the module,
    including one built as ``self.criterion`` or behind an alias) or
    ``F.cross_entropy`` / ``F.nll_loss`` applied to targets that are padded
    (``pad_sequence(...)``, batches of a ``DataLoader`` whose ``collate_fn``
    pads, in this file or another file of the project; followed through
    unpacking, slicing like ``trg[:, 1:]`` and ``view(-1)``/``reshape(-1)``)
    with no ``ignore_index`` equal to the padding value, and no mask applied
    to the loss (``loss * mask``, ``loss[mask]``, ``masked_select``, or
    masking the targets themselves). The padding value is the
    ``padding_value=`` of ``pad_sequence`` (0 by default); when it cannot be
    seen, a single pad id the file knows (a ``PAD_IDX``-like constant, an
    ``Embedding(padding_idx=...)``) is used. An ``ignore_index`` that differs
    from the padding value is reported too. Padding with -100 (the default
    ``ignore_index``) is fine. Only files that train a recurrent model are
    checked.

    **Why it matters.** Padded positions are real entries of the target
    tensor: without ``ignore_index`` the loss trains the model to predict the
    pad token after every short sequence. In a translation or tagging batch
    padding is often most of the tokens, so the loss falls quickly while the
    model only learns to emit padding, and the gradient of the real tokens is
    diluted. Reported loss and perplexity are meaningless too.

    **Example.**

        trg = pad_sequence(targets, batch_first=True, padding_value=PAD_IDX)
        criterion = nn.CrossEntropyLoss()                     # RNN013
        loss = criterion(logits.view(-1, vocab), trg.view(-1))
        # fixed:
        criterion = nn.CrossEntropyLoss(ignore_index=PAD_IDX)

    **Fix safety.** Unsafe: the fix adds ``ignore_index=<pad>`` (or corrects
    it), written as the file writes the padding value (the constant's name,
    or the number when the name is not visible where the loss is built). It
    changes the loss value and what the model learns; it is offered only
    when the padding value is known.
    """

    code = "RNN013"
    name = "padded-loss-without-ignore-index"
    fix_applicability = Applicability.UNSAFE
    triggers = ("CrossEntropyLoss", "NLLLoss", "cross_entropy", "nll_loss",
                # a loss class of the project, built here or called in a training loop of this file
                "Loss(", ("for ", ".backward("))

    def finish(self) -> None:
        criteria = _criteria(self.ctx)
        resolver = _LossResolver(self.ctx, criteria)
        reported: set[int] = set()
        recurrent: bool | None = None  # asked only once a padded loss is found: it may follow imports
        for run in file_runs(self.ctx, _LossFlow, resolver):
            for loss in getattr(run.result, "losses", []):
                if not isinstance(loss.target, Padded):
                    continue
                if loss.wrapper is not None:  # a loss class of the project: judged by its own body
                    if id(loss.call) not in reported and self._check_wrapper(loss, loss.call, self.ctx):
                        reported.add(id(loss.call))
                    continue
                site = loss.constructor if loss.constructor is not None else loss.call
                if id(site) in reported or _masked(run.node, loss):
                    continue
                if recurrent is None:
                    f = training_code(self.ctx)
                    recurrent = f.mentions_recurrent or any(self.ctx.is_recurrent(c) for c in f.classes) or any(
                        recurrent_context(self.ctx, o.scope, o) for o in f.all_optimizers)
                if not recurrent:
                    return
                if self._check(loss, site):
                    reported.add(id(site))
        self._report_wrapper_constructions(reported)
        self._report_wrapper_definitions()

    # -- loss classes of the project -------------------------------------------------------------

    def _check_wrapper(self, loss: "_Loss", site: cst.CSTNode, where_pad, where: str = "") -> bool:
        """``where_pad``: the context of the file that padded-target flow ran in (it names the pad)."""
        wrapper = loss.wrapper
        pad = _pad_of(where_pad, loss.target)
        if not _counts_pads(wrapper, pad):
            return False
        padded = f"padded with {pad.text}" if pad.text else "padded with a pad this file cannot name"
        mask = (" Its mask multiplies the loss after the mean reduction, which leaves the mean unchanged: "
                "the pads still count." if wrapper.masks else "")
        used = f"{where} computes it" if where else "it is computed"
        self.report(
            site,
            f"{wrapper.name} wraps {wrapper.loss} ({wrapper.display}:{wrapper.line}) with no ignore_index, and "
            f"{used} over targets {padded} ({loss.target.origin}): every padding position is trained as a "
            f"target, so the model learns to predict padding.{mask} Pass ignore_index=<the pad id> to the "
            f"{wrapper.loss} in {wrapper.display}:{wrapper.line} (or reduction='none' and mask it)",
            related=(Related(wrapper.display, wrapper.line, f"{wrapper.loss} without ignore_index"),),
        )
        return True

    def _report_wrapper_definitions(self) -> None:
        """A loss class of this file, computed over padded targets somewhere in the project: reported at
        its own CrossEntropyLoss, where ignore_index belongs."""
        here = self.ctx.path.resolve()
        flow = self.ctx.index.flow()
        for cls in self.ctx.module.body:
            if not isinstance(cls, cst.ClassDef):
                continue
            wrapper = _wrapper_of(self.ctx, here, cls.name.value)
            if wrapper is None or wrapper.ignores or wrapper.site is None:
                continue
            for other, words in flow.project_files().items():
                if other == here or cls.name.value not in words:
                    continue
                context = padding_context(self.ctx, other)
                if context is None:
                    continue
                used = self._padded_wrapper_use(context, here, cls.name.value)
                if used is None:
                    continue
                loss, where, pad_context = used
                pad = _pad_of(pad_context, loss.target)
                if not _counts_pads(wrapper, pad):
                    continue
                pad_number = _number_text(pad.value) if pad.value is not None else None
                padded = f"padded with {pad.text}" if pad.text else "padded with a pad that file cannot name"
                mask = (" (its mask multiplies the loss after the mean reduction, which leaves the mean "
                        "unchanged)" if wrapper.masks else "")
                self.report(
                    wrapper.site,
                    f"{wrapper.loss} has no ignore_index, and {where} computes "
                    f"{cls.name.value} over targets {padded} ({loss.target.origin}): every padding position is "
                    f"trained as a target{mask}; pass ignore_index={pad_number or '<the pad id>'}",
                    fix=f"Pass ignore_index={pad_number}" if pad_number else None,
                    edits=[add_arg(wrapper.site, f"ignore_index={pad_number}")] if pad_number else [],
                )
                break

    @staticmethod
    def _padded_wrapper_use(context, path, class_name: str) -> tuple["_Loss", str, object] | None:
        """Where the file ``context`` computes the loss class over padded targets, itself or through a
        training function of another file it hands the loss to: ``(loss, "loop.py:10", the context of
        the file whose flow found the targets)``."""
        resolver = _LossResolver(context, _criteria(context))
        home = (path, class_name)
        flow = context.index.flow()
        for run in file_runs(context, _LossFlow, resolver):
            for loss in getattr(run.result, "losses", []):
                if loss.wrapper is not None and loss.wrapper.home == home and isinstance(loss.target, Padded):
                    return (loss, f"{flow.display(context.path.resolve())}:{flow.line(context.path, loss.call) or 1}",
                            context)
        for run in file_runs(context):
            for use in run.result.uses:
                for key, value, _ in use.args if isinstance(use.callee, str) else ():
                    if isinstance(value, Instance) and locate(context.index, context.path, value) == home:
                        found = _padded_use_elsewhere(context, use, key, home)
                        if found is not None:
                            return found
        return None

    def _report_wrapper_constructions(self, reported: set[int]) -> None:
        """``criterion = MyLoss()`` here, handed to a training loop of another file that computes it over
        padded targets: reported where the loss is built, as for a library loss."""
        for run in file_runs(self.ctx):
            for use in run.result.uses:
                if not isinstance(use.callee, str):
                    continue
                for key, value, arg in use.args:
                    if not isinstance(value, Instance) or not isinstance(arg.value, cst.Name):
                        continue
                    built = use.names.get(arg.value.value)
                    if not isinstance(built, cst.Call) or id(built) in reported:
                        continue
                    found = _padded_use_elsewhere(self.ctx, use, key, locate(self.ctx.index, self.ctx.path, value))
                    if found is not None and self._check_wrapper(found[0], built, found[2], found[1]):
                        reported.add(id(built))

    def _check(self, loss: "_Loss", site: cst.Call) -> bool:
        pad = _pad_of(self.ctx, loss.target)
        if pad is None:
            return False
        kind = "module" if loss.constructor is not None else "function"
        ignore = keyword_arg(site, "ignore_index")
        if ignore is None and len([a for a in site.args if a.keyword is None]) > _IGNORE_POSITION[kind]:
            return False  # passed by position: too unusual to judge
        name = self.ctx.code(site.func) + "(...)"
        origin = loss.target.origin
        pad_desc = pad.text if pad.value is None or pad.text == _number_text(pad.value) else \
            f"{pad.text} = {_number_text(pad.value)}"
        pad_class = _number_text(pad.value) if pad.value is not None else pad.text
        if not pad.text:  # padded by hand with a pad this file cannot name (a token mapped to an id later)
            if ignore is not None:
                return False
            self.report(
                site,
                f"{name} is computed over targets {origin}, with a pad this file cannot name, and has no "
                f"ignore_index: "
                f"every padding position is trained as a target, so the model learns to predict padding and the "
                f"loss is dominated by it; pass ignore_index=<the pad id> (or mask the loss)",
            )
            return True
        fix_text = _usable(self.ctx, pad, site)
        if ignore is None:
            if pad.value == _CROSS_ENTROPY_DEFAULT_IGNORE:
                return False
            message = (
                f"{name} is computed over targets padded with {pad_desc} ({origin}) and has no ignore_index: every "
                f"padding position is trained as a target of class {pad_class}, so the model learns to predict "
                f"padding and the loss is dominated by it; pass ignore_index={fix_text or pad.text} "
                f"(or mask the loss)"
            )
            edits = [add_arg(site, f"ignore_index={fix_text}")] if fix_text else []
        else:
            if self.ctx.code(ignore.value) == pad.text:
                return False
            ignored = number(self.ctx, ignore.value)
            if ignored is None or pad.value is None or ignored == pad.value:
                return False
            message = (
                f"{name} has ignore_index={self.ctx.code(ignore.value)} but its targets are padded with {pad_desc} "
                f"({origin}): the padding positions still count in the loss; set ignore_index="
                f"{fix_text or pad.text}"
            )
            edits = [replace(ignore.value, fix_text)] if fix_text else []
        self.report(site, message, fix=f"Pass ignore_index={fix_text}", edits=edits)
        return True


# -- following targets --------------------------------------------------------------


@dataclass(frozen=True)
class _PadWith(Padded):
    """A padded tensor whose padding value is known: as written (``PAD_IDX``) and, when it folds, its value."""

    text: str = "0"
    value: float | None = 0.0
    local: bool = True  # written in the file being checked


@dataclass(frozen=True)
class _Wrapper:
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
class _Loss:
    call: cst.Call
    constructor: cst.Call | None  # ``nn.CrossEntropyLoss(...)`` for the module form
    target: Value
    target_expr: cst.BaseExpression
    result_name: str | None  # ``loss`` in ``loss = criterion(...)``
    wrapper: _Wrapper | None = None


@dataclass
class _LossResult(Result):
    losses: list[_Loss] = field(default_factory=list)


class _LossResolver(ProjectResolver):
    """Follows padding functions (collates) into their bodies, in this file or another, to see the pad value."""

    def __init__(self, ctx, criteria: dict[str, cst.Call]) -> None:
        super().__init__(ctx)
        self.criteria = criteria
        self._returns: dict[tuple[str, str], Value] = {}

    def call(self, name: str) -> Value:
        value = super().call(name)
        if not _padded(value):
            return value
        hit = self.ctx.index.lookup(self.ctx.path, name)
        if hit is None:
            return value
        key = (str(hit[0]), hit[1])
        if key not in self._returns:
            self._returns[key] = None  # recursion guard
            self._returns[key] = self._follow(hit[0], hit[1]) or value
        return self._returns[key]

    def wrapper(self, instance: Instance) -> _Wrapper | None:
        home = locate(self.ctx.index, self.ctx.path, instance)
        if home is None:
            return None
        cache = self.ctx.index.flow().scratch.setdefault("rnn013.wrappers", {})
        if home not in cache:
            cache[home] = _wrapper_of(self.ctx, *home)
        return cache[home]

    def _follow(self, path: Path, function_name: str) -> Value:
        local = path == self.ctx.path.resolve()
        context = self.ctx if local else padding_context(self.ctx, path)  # parsed once per run, by the index
        if context is None:
            return None
        function = module_functions(context.module).get(function_name)
        if function is None:
            return None
        flow = _LossFlow(context.imports, self if local else Resolver())
        flow.fold = lambda expr: number(context, expr)  # the flow model folds the pad in its own file
        flow.local = local
        returns = [v for v in flow.run_function(function).returns if _padded(v)]
        return returns[0] if returns else None


class _LossFlow(Flow):
    """The padding flow, plus pad values, reshaped targets and the loss calls."""

    def __init__(self, imports, resolver=None, extra_rnns=frozenset()):
        super().__init__(imports, resolver, extra_rnns)
        self.result = _LossResult()
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
        if isinstance(func, cst.Attribute) and func.attr.value in _RESHAPES:
            receiver = self.value(func.value)
            for arg in call.args:
                self.value(arg.value)
            if isinstance(receiver, Padded):
                return receiver
            return super().call(call) if receiver is not None else None
        callee = self.env.get(name) if name else None
        if isinstance(callee, Instance) and isinstance(self.resolver, _LossResolver):
            wrapper = self.resolver.wrapper(callee)
            if wrapper is not None:
                values = {self._key(call, arg): (self.value(arg.value), arg.value) for arg in call.args}
                target, expr = values.get(wrapper.position) or (None, None)
                if expr is not None:
                    self.result.losses.append(_Loss(call, None, target, expr, None, wrapper))
                return None
        constructor = self._loss_constructor(call, name, qualname)
        if constructor is not None or qualname in LOSS_FUNCTIONS:
            values = {self._key(call, arg): (self.value(arg.value), arg.value) for arg in call.args}
            target, expr = values.get(1) or values.get("target") or (None, None)
            if expr is not None:
                self.result.losses.append(_Loss(call, constructor, target, expr, self._result_name(call)))
            return None
        return super().call(call)

    def _padded(self, call: cst.Call) -> _PadWith:
        pad = keyword_arg(call, "padding_value")
        positional = [a for a in call.args if a.keyword is None]
        if pad is None and len(positional) > 2:
            pad = positional[2]
        origin = "pad_sequence(...) output"
        if pad is None:
            return _PadWith(origin, text="0", value=0.0, local=self.local)
        text = cst.Module(body=[]).code_for_node(pad.value)
        value = self.fold(pad.value)
        return _PadWith(origin, text=text, value=value, local=self.local)

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


def _counts_pads(wrapper: _Wrapper, pad: "_Pad | None") -> bool:
    """Does the loss class train on the pad positions: no ignore_index, a pad that is not the default
    ignore index (-100), and no mask on a per-element loss?"""
    if wrapper.ignores or pad is None or pad.value == _CROSS_ENTROPY_DEFAULT_IGNORE:
        return False
    return not (wrapper.masks and wrapper.elementwise is not False)


def _wrapper_of(ctx, path: Path, class_name: str) -> _Wrapper | None:
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
        probe = _Loss(call, constructor, None, target, _assigned_name(forward, call))
        code = cst.Module(body=[]).code_for_node
        loss_text = code(site.func) + "()" if constructor is not None else code(call.func) + "(...)"
        return _Wrapper(
            name=class_name, position=params.index(target.value), loss=loss_text,
            display=ctx.index.flow().display(path), line=ctx.index.flow().line(path, site) or 1,
            ignores=keyword_arg(site, "ignore_index") is not None, masks=_masked(forward, probe),
            elementwise=elementwise, site=site, home=(path, class_name),
        )
    return None


def _assigned_name(function: cst.FunctionDef, call: cst.Call) -> str | None:
    for assign in find_all(function, cst.Assign):
        if assign.value is call and len(assign.targets) == 1:
            return dotted(assign.targets[0].target)
    return None


def _padded_use_elsewhere(ctx, use, key, home) -> tuple["_Loss", str, object] | None:
    """The loss class handed as argument ``key`` of ``use`` (a call of a function of another file): is it
    computed there over padded targets? ``(loss, "train.py:15")`` of the first such computation."""
    hit = ctx.index.lookup(ctx.path, use.callee)
    if hit is None or hit[0] == ctx.path.resolve():
        return None
    other = padding_context(ctx, hit[0])
    if other is None:
        return None
    resolver = _LossResolver(other, _criteria(other))
    for run in file_runs(other, _LossFlow, resolver):
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


def _padded(value: Value) -> bool:
    return isinstance(value, Padded) or (isinstance(value, Items) and any(isinstance(v, Padded) for v in value.items))


def _criteria(ctx) -> dict[str, cst.Call]:
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
class _Pad:
    text: str
    value: float | None
    local: bool


def _pad_of(ctx, target: Padded) -> _Pad | None:
    if not isinstance(target, _PadWith) and target.by_hand is not None:
        if not target.by_hand:
            return _Pad("", None, True)  # padded by hand with a value this file cannot write as an id
        return _Pad(target.by_hand, _constant(ctx, target.by_hand), True)
    if isinstance(target, _PadWith):
        value = target.value
        if value is None and target.local:  # PAD_IDX = 1 at the top of this file, or imported
            value = _constant(ctx, target.text)
        return _Pad(target.text, value, target.local)
    known = _known_pad_ids(ctx)
    if len(known) == 1:
        text = next(iter(known))
        return _Pad(text, _constant(ctx, text), True)
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


def _usable(ctx, pad: _Pad, site: cst.Call) -> str | None:
    """How to write the pad value where the loss is built: as written when that name is visible there,
    otherwise its number; None when neither is possible."""
    try:
        expr = cst.parse_expression(pad.text)
    except cst.ParserSyntaxError:
        return None
    if _literal(expr):
        return pad.text
    if pad.local:
        head = (dotted(expr) or "").split(".")[0] or _head(expr)
        scope = _scope_of(ctx, site)
        if head and (head in _module_names(ctx.module) or head in ctx.imports.names or
                     (scope is not None and (head in scope.assigned or head in scope.params))):
            return pad.text
    return _number_text(pad.value) if pad.value is not None else None


def _head(expr: cst.BaseExpression) -> str | None:
    """``vocab`` in ``vocab["<pad>"]``."""
    while isinstance(expr, (cst.Subscript, cst.Attribute, cst.Call)):
        expr = expr.value if not isinstance(expr, cst.Call) else expr.func
    return expr.value if isinstance(expr, cst.Name) else None


def _literal(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        expr = expr.expression
    return isinstance(expr, (cst.Integer, cst.Float))


def _literal_number(expr: cst.BaseExpression) -> float | None:
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        inner = _literal_number(expr.expression)
        return -inner if inner is not None else None
    return float(expr.evaluated_value) if isinstance(expr, (cst.Integer, cst.Float)) else None


def _module_names(module: cst.Module) -> set[str]:
    """Names bound by the module's own top-level assignments, definitions and imports."""
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else (
                    [small.target] if isinstance(small, cst.AnnAssign) else [])
                for target in targets:
                    parts = [e.value for e in target.elements] if isinstance(target, (cst.Tuple, cst.List)) else [target]
                    names.update(part.value for part in parts if isinstance(part, cst.Name))
    return names


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _scope_of(ctx, node: cst.CSTNode):
    """The training-facts scope whose function contains ``node`` (innermost)."""
    best = None
    for scope in training_code(ctx).scopes:
        if isinstance(scope.node, cst.FunctionDef) and _contains(scope.node, node):
            best = scope
    return best


def _contains(outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    found = False

    class Finder(Visitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            nonlocal found
            if node is inner:
                found = True
            return not found

    Finder().walk(outer)
    return found


def _masked(body: cst.CSTNode, loss: _Loss) -> bool:
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
        return parent.attr.value in _MASKING
    if isinstance(parent, cst.Arg) and len(stack) >= 2 and isinstance(stack[-2], cst.Call):
        return (dotted(stack[-2].func) or "").rsplit(".", 1)[-1] in _MASKING
    return False


_SEQ2SEQ_HEAD = """
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pad_sequence
    from torch.utils.data import DataLoader

    PAD_IDX = 1

    class Seq2Seq(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64, padding_idx=PAD_IDX)
            self.rnn = nn.GRU(64, 128, batch_first=True)
            self.out = nn.Linear(128, vocab)

        def forward(self, src):
            output, _ = self.rnn(self.embed(src))
            return self.out(output)

    def collate(batch):
        src = pad_sequence([s for s, _ in batch], batch_first=True, padding_value=PAD_IDX)
        trg = pad_sequence([t for _, t in batch], batch_first=True, padding_value=PAD_IDX)
        return src, trg
    """

_TRAIN = """
    def train(dataset, vocab):
        model = Seq2Seq(vocab)
        loader = DataLoader(dataset, batch_size=32, collate_fn=collate)
        criterion = nn.CrossEntropyLoss({args})
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for src, trg in loader:
            logits = model(src)
            loss = criterion(logits.view(-1, vocab), trg.view(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    """

PaddedLossWithoutIgnoreIndex.VALID = [
    Valid(_SEQ2SEQ_HEAD + _TRAIN.format(args="ignore_index=PAD_IDX")),
    # ignore_index as a literal equal to the padding value
    Valid(_SEQ2SEQ_HEAD + _TRAIN.format(args="ignore_index=1, label_smoothing=0.1")),
    # masked loss
    Valid(_SEQ2SEQ_HEAD + """
    def train(dataset, vocab):
        model = Seq2Seq(vocab)
        criterion = nn.CrossEntropyLoss(reduction="none")
        for src, trg in DataLoader(dataset, collate_fn=collate):
            loss = criterion(model(src).view(-1, vocab), trg.view(-1))
            mask = (trg.view(-1) != PAD_IDX).float()
            loss = (loss * mask).sum() / mask.sum()
            loss.backward()
    """),
    # padding targets with -100: the default ignore_index already skips them
    Valid("""
    import torch
    import torch.nn.functional as F
    from torch.nn.utils.rnn import pad_sequence

    lstm = torch.nn.LSTM(8, 16, batch_first=True)
    head = torch.nn.Linear(16, 5)

    def step(inputs, tags):
        x = pad_sequence(inputs, batch_first=True)
        y = pad_sequence(tags, batch_first=True, padding_value=-100)
        out, _ = lstm(x)
        loss = F.cross_entropy(head(out).reshape(-1, 5), y.reshape(-1))
        loss.backward()
    """),
    # a classifier over padded text: its labels are not padded
    Valid("""
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pad_sequence

    def collate(batch):
        text = pad_sequence([t for t, _ in batch], batch_first=True)
        return text, torch.tensor([y for _, y in batch])

    model = nn.GRU(16, 32, batch_first=True)
    criterion = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader([], collate_fn=collate)
    for text, labels in loader:
        _, h = model(text)
        criterion(h[-1], labels).backward()
    """),
    # not recurrent: a transformer is not ours to judge
    Valid("""
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pad_sequence

    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4), 2)
    criterion = nn.CrossEntropyLoss()

    def step(src, tgts):
        trg = pad_sequence(tgts, batch_first=True)
        loss = criterion(model(src).view(-1, 64), trg.view(-1))
        loss.backward()
    """),
]

PaddedLossWithoutIgnoreIndex.INVALID = [
    Invalid(_SEQ2SEQ_HEAD + _TRAIN.format(args=""), lines=[27],
            fixed=_SEQ2SEQ_HEAD + _TRAIN.format(args="ignore_index=PAD_IDX")),
    # ignore_index=0 while the targets are padded with 1
    Invalid(_SEQ2SEQ_HEAD + _TRAIN.format(args="ignore_index=0"), lines=[27],
            fixed=_SEQ2SEQ_HEAD + _TRAIN.format(args="ignore_index=PAD_IDX")),
    # functional form, targets padded in the loop with the default value 0, aliased imports
    Invalid("""
    import torch
    from torch.nn import functional as Fn
    import torch.nn.utils.rnn as rnn_utils

    def train_step(model, optimizer, inputs, tag_seqs):
        tags = rnn_utils.pad_sequence(tag_seqs, batch_first=True)
        scores = model(rnn_utils.pad_sequence(inputs, batch_first=True))
        loss = Fn.nll_loss(scores.flatten(0, 1), tags[:, :].flatten())
        loss.backward()
        optimizer.step()

    tagger = torch.nn.LSTM(32, 10, batch_first=True)
    """, lines=[8], fixed="""\
import torch
from torch.nn import functional as Fn
import torch.nn.utils.rnn as rnn_utils

def train_step(model, optimizer, inputs, tag_seqs):
    tags = rnn_utils.pad_sequence(tag_seqs, batch_first=True)
    scores = model(rnn_utils.pad_sequence(inputs, batch_first=True))
    loss = Fn.nll_loss(scores.flatten(0, 1), tags[:, :].flatten(), ignore_index=0)
    loss.backward()
    optimizer.step()

tagger = torch.nn.LSTM(32, 10, batch_first=True)
"""),
    # the collate and the model live in other files; the criterion is built in __init__
    Invalid("""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from data import pad_pairs
    from models import Translator

    class Trainer:
        def __init__(self):
            self.model = Translator()
            self.loss_fn = nn.CrossEntropyLoss(reduction="mean")

        def epoch(self, dataset):
            for src, trg in DataLoader(dataset, batch_size=64, collate_fn=pad_pairs):
                logits = self.model(src, trg[:, :-1])
                loss = self.loss_fn(logits.reshape(-1, logits.size(-1)), trg[:, 1:].reshape(-1))
                loss.backward()
    """, lines=[10], files={
        "data.py": """
            from torch.nn.utils.rnn import pad_sequence
            PAD = 3
            def pad_pairs(batch):
                src = pad_sequence([s for s, _ in batch], batch_first=True, padding_value=PAD)
                trg = pad_sequence([t for _, t in batch], batch_first=True, padding_value=PAD)
                return src, trg
            """,
        "models.py": """
            import torch.nn as nn
            class Translator(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = nn.LSTM(32, 64, batch_first=True)
            """,
    }, fixed="""\
import torch
from torch import nn
from torch.utils.data import DataLoader
from data import pad_pairs
from models import Translator

class Trainer:
    def __init__(self):
        self.model = Translator()
        self.loss_fn = nn.CrossEntropyLoss(reduction="mean", ignore_index=3)

    def epoch(self, dataset):
        for src, trg in DataLoader(dataset, batch_size=64, collate_fn=pad_pairs):
            logits = self.model(src, trg[:, :-1])
            loss = self.loss_fn(logits.reshape(-1, logits.size(-1)), trg[:, 1:].reshape(-1))
            loss.backward()
"""),
]
