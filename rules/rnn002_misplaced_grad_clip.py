from __future__ import annotations

import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.flow.library import CLIP_FUNCTIONS
from rnnlint.nodes import Visitor
from rnnlint.rule import Invalid, Rule, Valid, delete_statement, insert_before
from rnnlint.flow.training import (
    Event,
    Scope,
    clip_covers,
    clip_placement,
    training_code,
    neighbours,
    optimizer_at,
    recurrent_context,
)


class MisplacedGradClip(Rule):
    """Gradient clipping in the wrong place of the training step.

    **What it catches.** In recurrent training, a clip (``clip_grad_norm_``,
    ``clip_grad_value_``, ``accelerator.clip_grad_norm_``, a clipping helper
    of the project) that

    * comes after ``optimizer.step()`` (between the step and the next
      ``backward()``),
    * comes before ``loss.backward()`` of the same iteration,
    * runs once where the optimizer is built, outside the training loop and
      before any ``backward()`` (its result handed to the loop clips nothing), or
    * runs under a ``GradScaler`` (``scaler.step(optimizer)``) without
      ``scaler.unscale_(optimizer)`` before it.

    **Why it matters.** Clipping only protects the update that uses the
    clipped gradients. After ``step()`` the weights have already moved with
    the raw, possibly exploded, gradients (and ``zero_grad()`` usually wipes
    them next); before ``backward()`` there is nothing to clip yet. Either way
    the recurrent network trains unclipped while the code looks safe. Under
    AMP the gradients are still multiplied by the loss scale (65536 at the
    start): the norm compared with ``max_norm`` is the scaled one, so the clip
    fires on every step and shrinks every update far below what was meant.

    **Example.**

        loss.backward()
        optimizer.step()
        clip_grad_norm_(model.parameters(), 1.0)   # RNN002: too late

    becomes

        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    **Fix safety.** Safe: the clip statement (or the ``if`` that only guards
    it) is moved, unchanged, to right before the step; under AMP
    ``scaler.unscale_(optimizer)`` is inserted before the clip (or an
    ``unscale_`` placed after the clip is moved before it). The clip then does
    what its author intended. A clip nested with other code is reported
    without a fix.
    """

    code = "RNN002"
    name = "misplaced-grad-clip"
    fix_applicability = Applicability.SAFE
    triggers = ("clip",)

    def finish(self) -> None:
        for scope in training_code(self.ctx).scopes:
            for clip in [e for e in scope.events if e.kind == "clip"]:
                placement = clip_placement(scope, clip)
                if placement is not None:
                    self._misplaced(scope, clip, placement)
                elif self._at_setup(scope, clip):
                    self._once(scope, clip)
                else:
                    self._unscaled(scope, clip)

    # -- once, at setup ------------------------------------------------------

    def _at_setup(self, scope: Scope, clip: Event) -> bool:
        """A library clip outside any loop, in the function that builds the optimizer, with no backward in it:
        it runs once, before training, when there are no gradients to clip."""
        if clip.loop is not None or not self._direct(clip) or any(e.kind == "backward" for e in scope.events):
            return False
        return any(o.scope is scope for o in training_code(self.ctx).all_optimizers)

    def _once(self, scope: Scope, clip: Event) -> None:
        optimizer = next(o for o in training_code(self.ctx).all_optimizers if o.scope is scope)
        if not recurrent_context(self.ctx, scope, optimizer):
            return
        self.report(
            clip.call,
            f"{_clip_name(clip)} runs once, where the optimizer is built and before any backward(): there are "
            f"no gradients yet, so it clips nothing and every training step runs unclipped; call it in the "
            f"training step, between loss.backward() and optimizer.step()",
        )

    # -- after step / before backward --------------------------------------

    def _misplaced(self, scope: Scope, clip: Event, placement: str) -> None:
        events = [e for e in scope.events if e.loop is clip.loop]
        at = events.index(clip)
        if placement == "after-step":
            last_backward = max(i for i in range(at) if events[i].kind == "backward")
            step = next(e for e in events[last_backward:at] if e.kind == "step")
            problem = (
                f"runs after {_step_text(self.ctx, step)}: the update already used the unclipped "
                "gradients, so a recurrent network whose gradients explode is not protected"
            )
        else:
            backward = events[at + 1]
            step = next(e for e in events[at + 1:] if e.kind == "step")
            last_backward = events.index(backward)
            problem = (
                "runs before backward(): it clips the gradients of the previous step (or zeros), "
                "not the ones this update uses"
            )
        optimizer = optimizer_at(self.ctx, scope, step.target)
        if not recurrent_context(self.ctx, scope, optimizer):
            return
        edits = []
        unit = self._movable(clip, step)
        if unit is not None and step.own_line:
            lines = []
            if step.via == "scaler" and self._direct(clip) and step.target and not any(
                e.kind == "unscale" and e.target == step.target for e in events[last_backward:at]
            ):
                lines.append(f"{self.ctx.code(step.call.func.value)}.unscale_({step.target})")  # type: ignore[attr-defined]
            lines.append(_code(self.ctx, unit))
            edits = [delete_statement(unit), insert_before(step.statement, "\n".join(lines))]
        self.report(
            clip.call,
            f"{_clip_name(clip)} {problem}; clip between backward() and step()",
            fix=f"Move the clip to right before {_step_text(self.ctx, step)}",
            edits=edits,
        )

    def _movable(self, clip: Event, step: Event) -> cst.CSTNode | None:
        """The statement to move before ``step``: the clip's own line, or an ``if`` that
        guards only it. None when moving it would take it out of a block it
        shares with other code (an ``if``/``else``, a ``with``, a ``try``)."""
        if not clip.own_line:
            return None
        parents = self.ctx.memo("rnn002.parents", lambda: _parents(self.ctx.module))
        unit: cst.CSTNode = clip.statement
        parent = parents.get(id(unit))
        if (
            isinstance(parent, cst.If)
            and parent.orelse is None
            and len(parent.body.body) == 1
            and getattr(parents.get(id(parent)), "orelse", None) is not parent  # not an elif
        ):
            unit, parent = parent, parents.get(id(parent))
        node: cst.CSTNode | None = step.statement
        while node is not None:  # the unit's block must enclose the step
            node = parents.get(id(node))
            if node is parent:
                return unit
        return None

    # -- AMP ---------------------------------------------------------------

    def _unscaled(self, scope: Scope, clip: Event) -> None:
        if not self._direct(clip):
            return  # accelerator / fabric / helpers unscale by themselves
        before, after = neighbours(scope, clip)
        if before is None or before.kind != "backward" or after is None or after.kind != "step":
            return
        if after.via != "scaler" or not after.target:
            return
        events = [e for e in scope.events if e.loop is clip.loop]
        at, backward_at, step_at = events.index(clip), events.index(before), events.index(after)
        target = after.target
        if any(e.kind == "unscale" and e.target == target for e in events[backward_at:at]):
            return
        optimizer = optimizer_at(self.ctx, scope, target)
        if not clip_covers(self.ctx, clip, optimizer) or not recurrent_context(self.ctx, scope, optimizer):
            return
        scaler = self.ctx.code(after.call.func.value)  # type: ignore[attr-defined]
        late = next((e for e in events[at:step_at] if e.kind == "unscale" and e.target == target), None)
        if late is not None and late.own_line:
            edits = [delete_statement(late.statement), insert_before(clip.statement, _code(self.ctx, late.statement))]
            where = f"{scaler}.unscale_({target}) comes after it"
        else:
            edits = [insert_before(clip.statement, f"{scaler}.unscale_({target})")] if clip.own_line else []
            where = f"there is no {scaler}.unscale_({target}) before it"
        self.report(
            clip.call,
            f"{_clip_name(clip)} runs under a GradScaler but {where}: it measures gradients still "
            f"multiplied by the loss scale, so it clips nearly every step and shrinks the real updates "
            f"far below max_norm; call "
            f"{scaler}.unscale_({target}) before clipping",
            fix=f"Call {scaler}.unscale_({target}) before the clip",
            edits=edits,
        )

    def _direct(self, clip: Event) -> bool:
        return self.ctx.qualname(clip.call.func) in CLIP_FUNCTIONS


_BLOCKS = (
    cst.If, cst.Else, cst.For, cst.While, cst.With, cst.Try, cst.TryStar, cst.ExceptHandler,
    cst.ExceptStarHandler, cst.Finally, cst.FunctionDef, cst.ClassDef, cst.Match, cst.MatchCase,
)


def _parents(module: cst.Module) -> dict[int, cst.CSTNode]:
    """Statement (or block) id -> the compound statement or block that holds it."""
    parents: dict[int, cst.CSTNode] = {}
    stack: list[cst.CSTNode] = [module]

    class Walker(Visitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, (*_BLOCKS, cst.SimpleStatementLine)):
                parents[id(node)] = stack[-1]
            if isinstance(node, _BLOCKS):
                stack.append(node)
            return not isinstance(node, cst.SimpleStatementLine)

        def on_leave(self, original_node: cst.CSTNode) -> None:
            if isinstance(original_node, _BLOCKS):
                stack.pop()

    Walker().walk(module)
    return parents


def _code(ctx, statement: cst.CSTNode) -> str:
    """A statement's own text (no comment lines above it, no final newline)."""
    if hasattr(statement, "leading_lines"):
        statement = statement.with_changes(leading_lines=())
    return ctx.module.code_for_node(statement).rstrip("\r\n")


def _clip_name(clip: Event) -> str:
    func = clip.call.func
    name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "the clip")
    return f"{name}()"


def _step_text(ctx, step: Event) -> str:
    receiver = ctx.code(step.call.func.value)  # type: ignore[attr-defined]
    return f"{receiver}.step({step.target})" if step.via == "scaler" else f"{receiver}.step()"


# -- examples ------------------------------------------------------------------

_MODEL = """
    import torch
    from torch import nn

    class LanguageModel(nn.Module):
        def __init__(self, vocab=1000):
            super().__init__()
            self.embed = nn.Embedding(vocab, 128)
            self.rnn = nn.LSTM(128, 256, num_layers=2, batch_first=True)
            self.out = nn.Linear(256, vocab)

        def forward(self, x):
            h, _ = self.rnn(self.embed(x))
            return self.out(h)

    model = LanguageModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """

_PROJECT = {
    "nets/__init__.py": "",
    "nets/rnn.py": """
        import torch.nn as tnn

        class Seq2Seq(tnn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = tnn.GRU(32, 64)
                self.decoder = tnn.GRU(32, 64)
        """,
    "train_utils.py": """
        from torch.nn.utils import clip_grad_norm_

        def clip_gradients(model, max_norm=1.0):
            return clip_grad_norm_(model.parameters(), max_norm)
        """,
}

MisplacedGradClip.VALID = [
    # right place
    _MODEL + """
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
    """,
    # AMP, unscaled first
    _MODEL + """
    scaler = torch.amp.GradScaler()
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = model(x).logsumexp(-1).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    """,
    # two optimizers, each clipped before its own step
    Valid("""
    import torch
    from nets.rnn import Seq2Seq

    model = Seq2Seq()
    enc_opt = torch.optim.Adam(model.encoder.parameters())
    dec_opt = torch.optim.Adam(model.decoder.parameters())
    for batch in loader:
        model(batch).sum().backward()
        torch.nn.utils.clip_grad_norm_(model.encoder.parameters(), 1.0)
        enc_opt.step()
        torch.nn.utils.clip_grad_norm_(model.decoder.parameters(), 1.0)
        dec_opt.step()
    """, files=_PROJECT),
    # gradient accumulation: clip and step together, under a condition
    _MODEL + """
    for i, (x, y) in enumerate(loader):
        (model(x).mean() / 4).backward()
        if (i + 1) % 4 == 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    """,
    # Accelerate clips (and unscales) by itself
    _MODEL + """
    from accelerate import Accelerator
    accelerator = Accelerator(mixed_precision="fp16")
    for x, y in loader:
        accelerator.backward(model(x).mean())
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    """,
    # a CNN is not this rule's business
    """
    import torch
    from torch import nn
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.Flatten(), nn.LazyLinear(10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in loader:
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    """,
    # suppressed
    _MODEL + """
    for x, y in loader:
        model(x).mean().backward()
        optimizer.step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # noqa: RNN002
    """,
]

MisplacedGradClip.INVALID = [
    # clipped once where the optimizer is built: no gradients exist yet, the loop runs unclipped
    Invalid("""
    import torch
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(16, 32, batch_first=True)

    def main(run_epochs):
        model = Tagger()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        run_epochs(model, optimizer, norm)
    """, lines=[12]),
    # after the step, through an alias
    Invalid(_MODEL + """
    from torch.nn.utils import clip_grad_norm_ as clip

    for x, y in loader:
        optimizer.zero_grad()
        model(x).mean().backward()
        optimizer.step()
        clip(model.parameters(), 0.5)  # keep it small
    """, lines=[24], fixed=_MODEL + """
    from torch.nn.utils import clip_grad_norm_ as clip

    for x, y in loader:
        optimizer.zero_grad()
        model(x).mean().backward()
        clip(model.parameters(), 0.5)  # keep it small
        optimizer.step()
    """),
    # before the backward, in a method, guarded by an option
    Invalid(_MODEL + """
    class Runner:
        def __init__(self, model, clip):
            self.model = model
            self.opt = torch.optim.SGD(model.parameters(), lr=0.1)
            self.clip = clip

        def fit(self, loader):
            for x, y in loader:
                self.opt.zero_grad()
                loss = self.model(x).mean()
                if self.clip:
                    nn.utils.clip_grad_value_(self.model.parameters(), self.clip)
                loss.backward()
                self.opt.step()
    """, lines=[29], fixed=_MODEL + """
    class Runner:
        def __init__(self, model, clip):
            self.model = model
            self.opt = torch.optim.SGD(model.parameters(), lr=0.1)
            self.clip = clip

        def fit(self, loader):
            for x, y in loader:
                self.opt.zero_grad()
                loss = self.model(x).mean()
                loss.backward()
                if self.clip:
                    nn.utils.clip_grad_value_(self.model.parameters(), self.clip)
                self.opt.step()
    """),
    # AMP: clip without unscale_
    Invalid(_MODEL + """
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    """, lines=[23], fixed=_MODEL + """
    scaler = torch.cuda.amp.GradScaler()
    for x, y in loader:
        with torch.autocast("cuda"):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    """),
    # AMP: unscale_ after the clip is moved before it
    Invalid(_MODEL + """
    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        scaler.scale(model(x).mean()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.unscale_(optimizer)
        scaler.step(optimizer)
        scaler.update()
    """, lines=[21], fixed=_MODEL + """
    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        scaler.scale(model(x).mean()).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
    """),
    # AMP and after the step: moved, and unscaled
    Invalid(_MODEL + """
    def train(loader, scaler):
        for x, y in loader:
            scaler.scale(model(x).mean()).backward()
            scaler.step(optimizer)
            scaler.update()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    """, lines=[23], fixed=_MODEL + """
    def train(loader, scaler):
        for x, y in loader:
            scaler.scale(model(x).mean()).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    """),
    # model and clipping helper from other files of the project; two optimizers
    Invalid("""
    import torch
    from nets.rnn import Seq2Seq
    from train_utils import clip_gradients

    model = Seq2Seq()
    enc_opt = torch.optim.Adam(model.encoder.parameters())
    dec_opt = torch.optim.Adam(model.decoder.parameters())
    for epoch in range(10):
        for batch in loader:
            enc_opt.zero_grad()
            dec_opt.zero_grad()
            model(batch).sum().backward()
            enc_opt.step()
            dec_opt.step()
            clip_gradients(model)
    """, lines=[15], files=_PROJECT, fixed="""\
import torch
from nets.rnn import Seq2Seq
from train_utils import clip_gradients

model = Seq2Seq()
enc_opt = torch.optim.Adam(model.encoder.parameters())
dec_opt = torch.optim.Adam(model.decoder.parameters())
for epoch in range(10):
    for batch in loader:
        enc_opt.zero_grad()
        dec_opt.zero_grad()
        model(batch).sum().backward()
        clip_gradients(model)
        enc_opt.step()
        dec_opt.step()
"""),
]
