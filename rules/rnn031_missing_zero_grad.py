import re

import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.flow.models import forward_calls
from rnnlint.flow.resolve import flow_of, values
from rnnlint.flow.loops import LOOPS, Placed, calls_inside, contains, definition, placed
from rnnlint.names import assigned_names, dotted
from rnnlint.nodes import Visitor
from rnnlint.rule import Invalid, Rule, Valid, insert_before
from rnnlint.flow.training import Event, Scope, _looks_like_optimizer, training_code, optimizer_at, recurrent_context

_GRAD = re.compile(r"\.grad\b")


class MissingZeroGrad(Rule):
    """An optimizer step in a loop that never clears the gradients.

    **What it catches.** ``optimizer.step()`` (or ``scaler.step(optimizer)``)
    inside a training loop of a recurrent model, where nothing in that loop
    clears the gradients: no ``optimizer.zero_grad()`` (any arguments), no
    ``model.zero_grad()``, no ``p.grad = None`` / ``p.grad.zero_()`` over the
    parameters, no helper of the project that does one of these, no model
    called in the loop whose ``forward`` calls ``self.zero_grad()``. A
    ``zero_grad()`` before the loop does not count: it runs once. With two
    optimizers, each needs its own (or the model's). Steps guarded by an
    accumulation counter (``if (i + 1) % accum_steps == 0:``) are deliberate
    accumulation and are left alone, as are ``step(closure)`` calls (LBFGS) and
    trainers that step for you (Lightning, Hugging Face).

    **Why it matters.** ``backward()`` adds to ``.grad``; it never replaces
    it. Without a reset, every update applies the sum of all gradients since
    the start: the effective learning rate grows with every batch. A recurrent
    network, whose gradients are already large, diverges to NaN within a few
    hundred steps, and the loss curve looks like a learning-rate problem.

    **Example.**

        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()          # RNN031: gradients accumulate forever

    **Fix safety.** Safe: inserts ``<optimizer>.zero_grad()`` on its own line
    before the statement of the loop that calls ``backward()``, the reset
    every PyTorch training loop performs. No fix is offered when the step's
    optimizer cannot be named or the loop has no ``backward()`` of its own.
    """

    code = "RNN031"
    name = "missing-zero-grad"
    fix_applicability = Applicability.SAFE
    triggers = (".step(",)

    def finish(self) -> None:
        f = training_code(self.ctx)
        for scope in f.scopes:
            for event in scope.events:
                if event.kind == "step" and event.loop is not None:
                    self._check(scope, event)

    def _check(self, scope: Scope, step: Event) -> None:
        loop = self._update_loop(scope, step)
        if loop is None:
            return
        if step.via != "scaler" and step.call.args:
            return  # step(closure): the closure does its own zero_grad (LBFGS)
        if self._clears_gradients(scope, loop, step.target):
            return
        where = next((p for p in placed(self.ctx, scope) if p.statement is step.statement), None)
        if where is not None and self._accumulates(scope, loop, where):
            return
        if not recurrent_context(self.ctx, scope, optimizer_at(self.ctx, scope, step.target)):
            return
        target = step.target
        call = f"{target}.step()" if step.via != "scaler" else f"scaler.step({target or '...'})"
        before = ""
        if target and any(e.kind == "zero_grad" and e.target == target and not contains(self.ctx, loop, e.call)
                          for e in scope.events):
            before = f" (the {target}.zero_grad() outside the loop runs only once)"
        name = target or "the optimizer"
        message = (
            f"{call} runs in a loop that never clears the gradients{before}: backward() adds to .grad, so "
            f"every update applies the sum of all gradients so far and a recurrent model diverges; call "
            f"{name}.zero_grad() in each iteration before backward() (or guard the step with an accumulation "
            f"counter if accumulating is intended)"
        )
        # ``opt`` of ``for opt in optimizers`` has no meaning before backward(): no fix to write there
        anchor = self._anchor(scope, loop, step) if target and loop is step.loop else None
        if anchor is None:
            self.report(step.call, message)
            return
        self.report(
            step.call,
            message,
            fix=f"Insert {target}.zero_grad() before backward()",
            edits=[insert_before(anchor, f"{target}.zero_grad()")],
        )

    def _update_loop(self, scope: Scope, step: Event) -> cst.CSTNode | None:
        """The loop that repeats the update: the step's innermost loop, unless that loop only walks the
        optimizers (``for opt in optimizers: opt.step()``, beside ``for opt in optimizers:
        opt.zero_grad()``): then the loop around it."""
        where = next((p for p in placed(self.ctx, scope) if p.statement is step.statement), None)
        loops = [node for node, _ in where.path if isinstance(node, LOOPS)] if where is not None else [step.loop]
        while loops and isinstance(loops[-1], cst.For) and step.target is not None \
                and dotted(loops[-1].target) == step.target:
            loops.pop()
        return loops[-1] if loops else None

    # -- what clears gradients ------------------------------------------------

    def _clears_gradients(self, scope: Scope, loop: cst.CSTNode, target: str | None) -> bool:
        f = training_code(self.ctx)
        for call in calls_inside(self.ctx, loop):
            func = call.func
            if isinstance(func, cst.Attribute):
                method = func.attr.value
                receiver = dotted(func.value)
                if method == "zero_grad":
                    other_optimizer = (
                        receiver is not None and target is not None and receiver != target
                        and _looks_like_optimizer(receiver, f.optimizers, f.schedulers)
                    )
                    if not other_optimizer:  # this optimizer, the model, self (Lightning), unknown
                        return True
                    continue
                if method == "zero_" and _GRAD.search(self.ctx.code(func.value)):
                    return True  # p.grad.zero_(), p.grad.data.zero_()
            name = dotted(func)
            if name and self._zeroing_helper(scope, name):
                return True
            if name and any(forward_calls(flow_of(self.ctx)[0], v, "zero_grad")
                            for v in values(self.ctx, func, call, models=True)):
                return True  # model(x) whose forward clears the gradients itself
        return any(
            name.endswith(".grad") or name == "grad"
            for p in placed(self.ctx, scope)
            if any(node is loop for node, _ in p.path)
            for small in p.statement.body
            if isinstance(small, cst.Assign)
            for t in small.targets
            for name in assigned_names(t.target)
        )

    def _zeroing_helper(self, scope: Scope, name: str) -> bool:
        """A function of the project whose body calls ``zero_grad`` (``reset_grads(model)``)."""
        f = training_code(self.ctx)
        if name.startswith("self.") and name.count(".") == 1:
            return any(
                isinstance(s.node, cst.FunctionDef) and s.node.name.value == name[5:] and s.cls is scope.cls
                and any(e.kind == "zero_grad" for e in s.events)
                for s in f.scopes
            )
        found = definition(self.ctx, name)
        return (
            found is not None and found.kind == "function"
            and any(c.rsplit(".", 1)[-1] == "zero_grad" for c in found.calls)
        )

    def _accumulates(self, scope: Scope, loop: cst.CSTNode, where: Placed) -> bool:
        """Is the step guarded by an accumulation counter (deliberate accumulation)?"""
        if any(_accumulation_test(c.test) for c in where.conditions_inside(loop)):
            return True
        # ``if (i + 1) % accum != 0: continue`` earlier in the loop body
        for p in placed(self.ctx, scope):
            if p.statement is where.statement:
                break
            if any(isinstance(s, cst.Continue) for s in p.statement.body) and any(
                _accumulation_test(c.test) for c in p.conditions_inside(loop)
            ):
                return True
        return False

    def _anchor(self, scope: Scope, loop: cst.CSTNode, step: Event) -> cst.CSTNode | None:
        """The statement of the loop body that calls backward() for this step."""
        # The first backward() of the last run of backward() calls before this step:
        # ``loss.backward(); enc.step(); dec.step()`` share one; in
        # ``d_loss.backward(); d_opt.step(); g_loss.backward(); g_opt.step()`` each has its own.
        earlier = [e for e in scope.events[: scope.events.index(step)] if contains(self.ctx, loop, e.call)]
        backward = None
        for event in reversed(earlier):
            if event.kind == "backward":
                backward = event
            elif event.kind == "step" and backward is not None:
                break
        if backward is None:
            return None
        for p in placed(self.ctx, scope):
            if p.statement is backward.statement:
                for node, child in p.path:
                    if node is loop:
                        return child if not isinstance(child, cst.SimpleStatementSuite) else None
        return None


def _accumulation_test(test: cst.BaseExpression) -> bool:
    """``(i + 1) % accum_steps == 0``, ``step % args.grad_accum == 0``, ``accelerator.sync_gradients``."""
    found = False

    class Finder(Visitor):
        def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
            nonlocal found
            if isinstance(node.operator, cst.Modulo):
                found = True

        def visit_Name(self, node: cst.Name) -> None:
            nonlocal found
            if "accum" in node.value.lower() or node.value == "sync_gradients":
                found = True

    Finder().walk(test)
    return found


_MODEL = """
    import torch
    import torch.nn as nn

    class SentimentLSTM(nn.Module):
        def __init__(self, vocab, classes=2):
            super().__init__()
            self.embed = nn.Embedding(vocab, 64)
            self.lstm = nn.LSTM(64, 128, batch_first=True)
            self.head = nn.Linear(128, classes)

        def forward(self, x):
            out, _ = self.lstm(self.embed(x))
            return self.head(out[:, -1])

    """

_OPTIMIZER_WALKS = _MODEL + """
    def train(model, loader):
        optimizers = [torch.optim.Adam(model.lstm.parameters()), torch.optim.SGD(model.head.parameters(), lr=0.1)]
        for x, y in loader:
{clear}            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            for opt in optimizers:
                opt.step()

    train(SentimentLSTM(5000), [])
    """

MissingZeroGrad.VALID = [
    # zero_grad and step each walk the optimizers, in sibling loops of the batch loop
    Valid(_OPTIMIZER_WALKS.format(clear="            for opt in optimizers:\n                opt.zero_grad()\n")),
    # the usual loop
    Valid(_MODEL + """
    def train(model, loader, epochs):
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        criterion = nn.CrossEntropyLoss()
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad(set_to_none=True)
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()

    train(SentimentLSTM(5000), [], 3)
    """),
    # the model's own forward clears the gradients on every training call
    Valid("""
    import torch
    import torch.nn as nn

    class Scorer(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(16, 32, batch_first=True)

        def forward(self, x, y):
            self.zero_grad()
            out, _ = self.gru(x)
            return nn.functional.mse_loss(out[:, -1, :1], y)

    model = Scorer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in []:
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    """),
    # zero_grad at the end of the loop body clears for the next iteration
    Valid(_MODEL + """
    model = SentimentLSTM(5000)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in []:
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        model.zero_grad()
    """),
    # deliberate gradient accumulation
    Valid(_MODEL + """
    model = SentimentLSTM(5000)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    accum_steps = 4
    for i, (x, y) in enumerate([]):
        loss = nn.functional.cross_entropy(model(x), y) / accum_steps
        loss.backward()
        if (i + 1) % accum_steps == 0:
            optimizer.step()
    """),
    # gradients cleared by hand
    Valid(_MODEL + """
    model = SentimentLSTM(5000)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for x, y in []:
        for p in model.parameters():
            p.grad = None
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    """),
    # LBFGS: the closure clears the gradients
    Valid(_MODEL + """
    model = SentimentLSTM(5000)
    optimizer = torch.optim.LBFGS(model.parameters())
    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss
    for x, y in []:
        optimizer.step(closure)
    """),
    # not recurrent: a CNN loop is out of scope
    Valid("""
    import torch
    from torch import nn
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in []:
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    """),
]

MissingZeroGrad.INVALID = [
    # the optimizers are walked for the step only: no fix (``opt`` means nothing before backward())
    Invalid(_OPTIMIZER_WALKS.format(clear=""), lines=[22]),
    # zero_grad only before the loop
    Invalid(_MODEL + """
    model = SentimentLSTM(5000)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    for x, y in []:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
    """, lines=[23], fixed=_MODEL + """
    model = SentimentLSTM(5000)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    for x, y in []:
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    """),
    # class-based trainer, AMP, model from another file
    Invalid("""
    import torch
    from torch import optim
    from models.lm import WordLM

    class Trainer:
        def __init__(self, model, lr=1e-3):
            self.model = model
            self.optimizer = optim.AdamW(model.parameters(), lr=lr)
            self.scaler = torch.amp.GradScaler()

        def fit(self, batches):
            for x, y in batches:
                with torch.autocast("cuda"):
                    loss = self.model(x, y)
                    self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()

    Trainer(WordLM(10000)).fit([])
    """, lines=[16], files={
        "models/__init__.py": "",
        "models/lm.py": """
            from torch import nn
            class WordLM(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.rnn = nn.GRU(vocab, 256)
            """,
    }, fixed="""
    import torch
    from torch import optim
    from models.lm import WordLM

    class Trainer:
        def __init__(self, model, lr=1e-3):
            self.model = model
            self.optimizer = optim.AdamW(model.parameters(), lr=lr)
            self.scaler = torch.amp.GradScaler()

        def fit(self, batches):
            for x, y in batches:
                self.optimizer.zero_grad()
                with torch.autocast("cuda"):
                    loss = self.model(x, y)
                    self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()

    Trainer(WordLM(10000)).fit([])
    """),
    # seq2seq with two optimizers: the decoder's is never cleared
    Invalid("""
    import torch.nn as tnn
    from torch.optim import Adam

    encoder = tnn.GRU(32, 64)
    decoder = tnn.GRU(32, 64)
    enc_opt = Adam(encoder.parameters(), lr=1e-3)
    dec_opt = Adam(decoder.parameters(), lr=1e-3)
    for src, tgt in []:
        enc_opt.zero_grad()
        _, h = encoder(src)
        out, _ = decoder(tgt, h)
        loss = out.pow(2).mean()
        loss.backward()
        enc_opt.step()
        dec_opt.step()
    """, lines=[15], fixed="""
    import torch.nn as tnn
    from torch.optim import Adam

    encoder = tnn.GRU(32, 64)
    decoder = tnn.GRU(32, 64)
    enc_opt = Adam(encoder.parameters(), lr=1e-3)
    dec_opt = Adam(decoder.parameters(), lr=1e-3)
    for src, tgt in []:
        enc_opt.zero_grad()
        _, h = encoder(src)
        out, _ = decoder(tgt, h)
        loss = out.pow(2).mean()
        dec_opt.zero_grad()
        loss.backward()
        enc_opt.step()
        dec_opt.step()
    """),
]
