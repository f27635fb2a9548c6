from __future__ import annotations

import libcst as cst

from rnnlint.diagnostics import Applicability, Related
from rnnlint.flow.library import CROSS_ENTROPY_DEFAULT_IGNORE
from rnnlint.flow.losses import (
    LossCall,
    LossClass,
    Pad,
    loss_class,
    loss_runs,
    masked,
    pad_of,
    padded_loss_elsewhere,
)
from rnnlint.flow.padding import Instance, Padded, file_context as padding_context, file_runs, locate
from rnnlint.flow.resolve import number
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, keyword_arg
from rnnlint.rule import Invalid, Rule, Valid, add_arg, replace
from rnnlint.flow.training import training_code, recurrent_context

#: positional index of ``ignore_index``: module constructors, functions
_IGNORE_POSITION = {"module": 2, "function": 4}


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
        reported: set[int] = set()
        recurrent: bool | None = None  # asked only once a padded loss is found: it may follow imports
        for run in loss_runs(self.ctx):
            for loss in getattr(run.result, "losses", []):
                if not isinstance(loss.target, Padded):
                    continue
                if loss.wrapper is not None:  # a loss class of the project: judged by its own body
                    if id(loss.call) not in reported and self._check_wrapper(loss, loss.call, self.ctx):
                        reported.add(id(loss.call))
                    continue
                site = loss.constructor if loss.constructor is not None else loss.call
                if id(site) in reported or masked(run.node, loss):
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

    def _check_wrapper(self, loss: "LossCall", site: cst.CSTNode, where_pad, where: str = "") -> bool:
        """``where_pad``: the context of the file that padded-target flow ran in (it names the pad)."""
        wrapper = loss.wrapper
        pad = pad_of(where_pad, loss.target)
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
            wrapper = loss_class(self.ctx, here, cls.name.value)
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
                pad = pad_of(pad_context, loss.target)
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
    def _padded_wrapper_use(context, path, class_name: str) -> tuple["LossCall", str, object] | None:
        """Where the file ``context`` computes the loss class over padded targets, itself or through a
        training function of another file it hands the loss to: ``(loss, "loop.py:10", the context of
        the file whose flow found the targets)``."""
        home = (path, class_name)
        flow = context.index.flow()
        for run in loss_runs(context):
            for loss in getattr(run.result, "losses", []):
                if loss.wrapper is not None and loss.wrapper.home == home and isinstance(loss.target, Padded):
                    return (loss, f"{flow.display(context.path.resolve())}:{flow.line(context.path, loss.call) or 1}",
                            context)
        for run in file_runs(context):
            for use in run.result.uses:
                for key, value, _ in use.args if isinstance(use.callee, str) else ():
                    if isinstance(value, Instance) and locate(context.index, context.path, value) == home:
                        found = padded_loss_elsewhere(context, use, key, home)
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
                    found = padded_loss_elsewhere(self.ctx, use, key, locate(self.ctx.index, self.ctx.path, value))
                    if found is not None and self._check_wrapper(found[0], built, found[2], found[1]):
                        reported.add(id(built))

    def _check(self, loss: "LossCall", site: cst.Call) -> bool:
        pad = pad_of(self.ctx, loss.target)
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
            if pad.value == CROSS_ENTROPY_DEFAULT_IGNORE:
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














def _counts_pads(wrapper: LossClass, pad: "Pad | None") -> bool:
    """Does the loss class train on the pad positions: no ignore_index, a pad that is not the default
    ignore index (-100), and no mask on a per-element loss?"""
    if wrapper.ignores or pad is None or pad.value == CROSS_ENTROPY_DEFAULT_IGNORE:
        return False
    return not (wrapper.masks and wrapper.elementwise is not False)




















def _usable(ctx, pad: Pad, site: cst.Call) -> str | None:
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
