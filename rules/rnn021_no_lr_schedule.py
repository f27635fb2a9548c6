from __future__ import annotations

import libcst as cst

from rnnlint.flow.library import OPTIMIZERS
from rnnlint.names import dotted
from rnnlint.nodes import Visitor, find_all
from rnnlint.rule import Invalid, Rule, Valid
from rnnlint.flow.training import training_code, recurrent_context

#: words in a helper's name that, next to "lr" / "learning_rate", say it changes the learning rate
_LR_VERBS = ("adjust", "set", "update", "decay", "anneal", "warmup", "reduce", "step")
_LR_KEYS = ("lr", "learning_rate")


class NoLrSchedule(Rule):
    """Recurrent training with a constant learning rate: no scheduler, no decay.

    **What it catches.** A file that builds an optimizer for a model with an
    RNN, LSTM or GRU and trains it (``backward()`` and ``step()`` in the file,
    or a Lightning ``configure_optimizers``), with no learning-rate schedule
    anywhere in the file: no ``torch.optim.lr_scheduler`` class (including
    ``ReduceLROnPlateau`` and one returned by ``configure_optimizers``), no
    ``transformers`` ``get_*_schedule*`` helper, no call of anything named
    like a scheduler (``scheduler.step()`` on a scheduler passed in, a
    project ``build_scheduler``), no manual decay
    (``for g in optimizer.param_groups: g["lr"] *= 0.5``) and no helper named
    like ``adjust_learning_rate`` / ``set_lr``. Off by default: many short
    experiments train well at a constant rate; enable it with
    ``extend-select = ["RNN021"]``.

    **Why it matters.** A recurrent network's loss surface has sharp cliffs
    (exploding gradients) next to flat plateaus. A learning rate small enough
    to stay stable through the late epochs is too slow early on, and one fast
    enough early makes the late loss oscillate or spike. Lowering the rate
    when the validation loss stops improving, or warming up then decaying,
    is part of the standard recipe for LSTMs and GRUs.

    **Example.**

        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)   # RNN021
        # add:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
        ...
        scheduler.step(val_loss)   # once per epoch

    **Fix safety.** No fix: where to step a scheduler (per batch, per epoch,
    on which metric) depends on the training loop.
    """

    code = "RNN021"
    name = "no-lr-schedule"
    default_enabled = False
    triggers = ("optim",)

    def finish(self) -> None:
        f = training_code(self.ctx)
        if _schedules(self.ctx):
            return
        trains = any(e.kind == "backward" for s in f.scopes for e in s.events) and any(
            e.kind == "step" for s in f.scopes for e in s.events)
        reported: set[int] = set()
        if trains:
            for optimizer in f.all_optimizers:
                if id(optimizer.call) in reported:
                    continue
                if recurrent_context(self.ctx, optimizer.scope, optimizer):
                    reported.add(id(optimizer.call))
                    self._report(optimizer.call)
        for scope in f.scopes:  # Lightning: the Trainer runs the loop
            node = scope.node
            if not (isinstance(node, cst.FunctionDef) and node.name.value == "configure_optimizers"):
                continue
            if scope.cls is None or not self.ctx.is_recurrent(scope.cls.name.value):
                continue
            for call in find_all(node, cst.Call):
                if self.ctx.qualname(call.func) in OPTIMIZERS and id(call) not in reported:
                    reported.add(id(call))
                    self._report(call)

    def _report(self, call: cst.Call) -> None:
        short = (self.ctx.qualname(call.func) or "optimizer").rsplit(".", 1)[-1]
        self.report(
            call,
            f"{short} trains a recurrent model at a constant learning rate: no scheduler and no learning-rate "
            f"decay in this file; one rate for the whole run is either too slow early or makes the late loss "
            f"oscillate and spike: add torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2) "
            f"stepped on the validation loss, or a warm-up + decay schedule",
        )


def _schedules(ctx) -> bool:
    """Does the file change the learning rate anywhere (scheduler, manual decay, lr helper)?"""
    if training_code(ctx).schedulers:
        return True
    for call in find_all(ctx.module, cst.Call):
        name = dotted(call.func) or ""
        qualname = ctx.qualname(call.func) or name
        if "sched" in qualname.lower() or "sched" in name.lower() or qualname.startswith("torch.optim.swa_utils."):
            return True
        last = name.rsplit(".", 1)[-1].lower()
        words = last.split("_")
        if ("lr" in words or "learning" in words) and any(v in last for v in _LR_VERBS):
            return True
        if last == "update" and any(a.keyword is not None and a.keyword.value in _LR_KEYS for a in call.args):
            return True  # group.update(lr=...)
    return _writes_lr(ctx.module)


def _writes_lr(module: cst.Module) -> bool:
    """``g["lr"] = ...`` / ``g["lr"] *= ...`` / ``optimizer.param_groups[0]["lr"] = ...``."""
    found = False

    class Finder(Visitor):
        def _check(self, target: cst.BaseExpression) -> None:
            nonlocal found
            if isinstance(target, cst.Subscript) and len(target.slice) == 1:
                index = target.slice[0].slice
                if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString) and \
                        index.value.evaluated_value in _LR_KEYS:
                    found = True

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            self._check(node.target)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            self._check(node.target)

    Finder().walk(module)
    return found


_MODEL = """
    import torch
    import torch.nn as nn

    class CharRNN(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64)
            self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
            self.head = nn.Linear(256, vocab)

        def forward(self, x):
            out, _ = self.lstm(self.embed(x))
            return self.head(out)
    """

_LOOP = """
    def train(loader, epochs=10):
        model = CharRNN(100)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        criterion = nn.CrossEntropyLoss()
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x).transpose(1, 2), y)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
    """

NoLrSchedule.VALID = [
    # StepLR built next to the optimizer, stepped once per epoch
    Valid(_MODEL + _LOOP.replace(
        "criterion = nn.CrossEntropyLoss()",
        "criterion = nn.CrossEntropyLoss()\n        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 5, gamma=0.5)",
    ) + """
            scheduler.step()
    """),
    # manual decay through the parameter groups
    Valid(_MODEL + _LOOP + """
            for group in optimizer.param_groups:
                group["lr"] *= 0.95
    """),
    # ReduceLROnPlateau imported by name
    Valid(_MODEL.replace("import torch.nn as nn", "import torch.nn as nn\n    from torch.optim.lr_scheduler import "
                                                   "ReduceLROnPlateau") + _LOOP + """
        plateau = ReduceLROnPlateau(optimizer, patience=2)
    """),
    # Lightning: the scheduler comes back from configure_optimizers
    Valid("""
    import torch
    import lightning as L

    class Tagger(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(32, 64, batch_first=True)

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)}
    """),
    # a CNN at a constant rate is not ours to judge
    Valid("""
    import torch
    from torch import nn, optim

    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    opt = optim.SGD(net.parameters(), lr=0.01)
    for images, labels in []:
        opt.zero_grad()
        nn.functional.cross_entropy(net(images), labels).backward()
        opt.step()
    """),
]

NoLrSchedule.INVALID = [
    Invalid(_MODEL + _LOOP, lines=[17]),
    # Lightning module with an LSTM and a bare optimizer
    Invalid("""
    import torch
    import pytorch_lightning as pl

    class Forecaster(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(8, 32, batch_first=True)
            self.head = torch.nn.Linear(32, 1)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)
    """, lines=[11]),
    # the model lives in another file; optimizer imported by name
    Invalid("""
    from torch.optim import RMSprop
    from models.lm import WordLM

    def main(batches):
        model = WordLM(10000)
        opt = RMSprop(model.parameters(), lr=1e-3)
        for x, y in batches:
            opt.zero_grad()
            model.loss(x, y).backward()
            opt.step()
    """, lines=[6], files={
        "models/__init__.py": "",
        "models/lm.py": """
            import torch.nn as nn
            class WordLM(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.rnn = nn.GRU(vocab, 128)
            """,
    }),
]
