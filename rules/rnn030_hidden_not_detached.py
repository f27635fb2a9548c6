import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.flow.loops import block
from rnnlint.flow.padding import file_context
from rnnlint.flow.state import CarriedState, Carry, assigns, carrying_calls, stateful
from rnnlint.flow.training import Scope, training_code
from rnnlint.names import dotted
from rnnlint.rule import Invalid, Rule, Valid, insert_before


class HiddenNotDetached(Rule):
    """A hidden state carried across training iterations without being detached.

    **What it catches.** A recurrent model's hidden state that is returned
    and fed back in on the next iteration of a loop that calls
    ``backward()`` (truncated backpropagation through time, stateful language
    models): ``output, hidden = model(x, hidden)``, ``out, (h, c) =
    lstm(x, (h, c))``, ``out, self.hidden = self.model(x, self.hidden)``,
    with nothing in that loop cutting the graph: no ``hidden.detach()``, no
    ``hidden.detach_()``, no ``.data``, no repackage helper of the project
    (a function that detaches, such as the classic ``repackage_hidden``,
    defined in the file or imported). A state re-created in each iteration
    (``hidden = model.init_hidden(bs)``, ``hidden = None``) is not carried and
    is not reported, nor is a state carried through the time steps of one
    sequence (a decoder loop) and re-created for the next batch. The finding
    is at the call that feeds the state back in.

    **Why it matters.** The returned state is still attached to the graph of
    the batch that produced it. The next ``backward()`` walks into the
    previous batch's freed graph and fails with "Trying to backward through
    the graph a second time"; silencing that with
    ``backward(retain_graph=True)`` makes every step backpropagate through the
    whole history: memory and step time grow with each batch and gradients
    through hundreds of steps explode or vanish. Truncated BPTT means
    detaching at the batch boundary.

    **Example.**

        hidden = model.init_hidden(batch_size)
        for x, y in batches:
            output, hidden = model(x, hidden)       # RNN030
            loss = criterion(output, y)
            loss.backward()

    **Fix safety.** Safe: inserts a detach at the top of the loop body (or
    just before the statement that feeds the state in, when the loop assigns
    the state earlier): ``hidden = hidden.detach()`` for a GRU/RNN tensor,
    ``hidden = tuple(h.detach() for h in hidden)`` for an LSTM's ``(h, c)``,
    a form that handles both when the type cannot be told, guarded by
    ``if hidden is not None:`` when the state may be ``None`` (it starts as
    ``None``, or comes from a caller). The values
    are unchanged; only the graph to earlier batches is cut. A
    ``retain_graph=True`` that only served to silence the error is left for
    you to remove.
    """

    code = "RNN030"
    name = "hidden-not-detached"
    fix_applicability = Applicability.SAFE
    triggers = ("backward",
                # a model that keeps its state on self between calls
                ("def forward", "LSTM"), ("def forward", "GRU"), ("def forward", "RNN"))

    def finish(self) -> None:
        f = training_code(self.ctx)
        self.state = CarriedState(self.ctx)
        helpers = self.state.backward_helpers
        seen: set[tuple[int, tuple[str, ...]]] = set()
        for scope in f.scopes:
            if not helpers and not any(e.kind == "backward" for e in scope.events):
                continue
            for carry in self.state.carries(scope):
                self._check(scope, carry, seen)
        self._check_stateful_models()

    # -- a model that keeps its state on ``self`` ----------------------------------

    def _check_stateful_models(self) -> None:
        """``out, self.hidden = self.lstm(x, self.hidden)`` in a model's forward keeps the state on the
        model between calls. A training loop (here or in another file) that calls the model across
        ``backward()`` calls without resetting or detaching that state each iteration carries it: reported
        at the loop's call and at the forward's recurrent call, where the fix detaches it."""
        here = self.ctx.path.resolve()
        flow = self.ctx.index.flow()
        for carried in carrying_calls(self.ctx):
            call, home, attr, _ = carried
            self.report(
                call,
                f"{dotted(call.func) or 'the model'}(...) runs {home[1]}, which keeps its recurrent state in "
                f"self.{attr} ({flow.display(home[0])}), across backward() calls: nothing in this loop resets or "
                f"detaches it, so backward() reaches into the previous batches' graph ('Trying to backward "
                f"through the graph a second time', or memory and step time growing with every batch); detach "
                f"self.{attr} in {home[1]}.forward (truncated BPTT) or reset it every iteration",
            )
        for cls in self.ctx.module.body:
            state = stateful(cls) if isinstance(cls, cst.ClassDef) else None
            if state is None:
                continue
            attr, statement, call = state
            loops = []
            for other, words in flow.project_files().items():
                if cls.name.value in words and "backward" in words:
                    context = self.ctx if other == here else file_context(self.ctx, other)
                    loops += [c for c in (carrying_calls(context) if context is not None else [])
                              if c[1] == (here, cls.name.value)]
            if not loops:
                continue
            _, _, _, where = loops[0]
            detach = (f"if self.{attr} is not None:\n"
                      f"    self.{attr} = tuple(h.detach() for h in self.{attr}) if isinstance(self.{attr}, tuple) "
                      f"else self.{attr}.detach()")
            self.report(
                call,
                f"self.{attr} is fed back into {dotted(call.func)}() on every call and never detached, and "
                f"{where} trains the model across backward() calls without resetting it: backward() reaches "
                f"into the previous batches' graph; detach it here (truncated BPTT)",
                fix=f"Detach self.{attr} before the recurrent call",
                edits=[insert_before(statement, detach)],
            )

    # -- finding the carried state -------------------------------------------



    def _check(self, scope: Scope, carry: Carry, seen: set) -> None:
        found = self.state.crossing(scope, carry)
        if found is None:
            return
        loop, child = found
        key = (id(loop), carry.names)
        if key not in seen:
            seen.add(key)
            self._report(scope, carry, loop, child)

    def _report(self, scope: Scope, carry: Carry, loop: cst.CSTNode, child: cst.CSTNode) -> None:
        shown = carry.names[0] if len(carry.names) == 1 else f"({', '.join(carry.names)})"
        callee = dotted(carry.call.func) or "the model"
        retained = self.state.retains_graph(scope, loop)
        message = (
            f"hidden state {shown} returned by {callee}() is fed back in on the next iteration without "
            f".detach(): backward() reaches into the previous batches' graph, which fails with 'Trying to "
            f"backward through the graph a second time' or makes memory and step time grow with every batch"
        )
        if retained:
            message += "; backward(retain_graph=True) here only silences that error while the graph keeps growing"
        message += "; detach the state at the top of the loop (truncated BPTT)"
        if retained:
            message += " and drop retain_graph=True"
        anchor = self._anchor(loop, child, carry.names)
        if anchor is None:
            self.report(carry.call, message)
            return
        self.report(
            carry.call,
            message,
            fix=f"Detach {shown} at the top of the loop body",
            edits=[insert_before(anchor, self._detach_code(scope, carry))],
        )

    # -- loop facts -------------------------------------------------------------








    # -- the model -----------------------------------------------------------------




    # -- the fix ----------------------------------------------------------------------

    def _anchor(self, loop: cst.CSTNode, child: cst.CSTNode, names: tuple[str, ...]) -> cst.CSTNode | None:
        """Top of the loop body, or just before ``child`` when the loop assigns the state before it."""
        statements = block(loop)
        if isinstance(statements[0], cst.SimpleStatementSuite):
            return None  # ``for x in xs: out, h = m(x, h)`` on one line: not ours to split
        for stmt in statements:
            if stmt is child:
                break
            if any(assigns(stmt, n) for n in names):
                return child
        return statements[0]

    def _detach_code(self, scope: Scope, carry: Carry) -> str:
        names = carry.names
        if len(names) > 1:
            return f"{', '.join(names)} = {', '.join(n + '.detach()' for n in names)}"
        name = names[0]
        kind, maybe_none = self.state.state_kind(scope, carry)
        var = "h" if name != "h" else "s"
        line = {
            "tensor": f"{name} = {name}.detach()",
            "tuple": f"{name} = tuple({var}.detach() for {var} in {name})",
            "either": f"{name} = tuple({var}.detach() for {var} in {name}) if isinstance({name}, tuple) "
                      f"else {name}.detach()",
        }[kind]
        if maybe_none:
            return f"if {name} is not None:\n{self.ctx.module.default_indent}{line}"
        return line



















_LM = """
    import torch
    import torch.nn as nn

    class RNNModel(nn.Module):
        def __init__(self, ntoken, rnn_type="LSTM", nhid=200, nlayers=2):
            super().__init__()
            self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers
            self.encoder = nn.Embedding(ntoken, nhid)
            if rnn_type in ("LSTM", "GRU"):
                self.rnn = getattr(nn, rnn_type)(nhid, nhid, nlayers)
            else:
                self.rnn = nn.RNN(nhid, nhid, nlayers, nonlinearity="tanh")
            self.decoder = nn.Linear(nhid, ntoken)

        def forward(self, x, hidden):
            output, hidden = self.rnn(self.encoder(x), hidden)
            return self.decoder(output), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            if self.rnn_type == "LSTM":
                return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
            return weight.new_zeros(self.nlayers, bsz, self.nhid)

    """

_REPACKAGE = """
    def repackage_hidden(h):
        if isinstance(h, torch.Tensor):
            return h.detach()
        return tuple(repackage_hidden(v) for v in h)

    """

HiddenNotDetached.VALID = [
    # every batch brings its own initial state: the loop's target binds it anew each iteration
    Valid(_LM + """
    def train(model, batches, optimizer, criterion):
        for data, targets, hidden in batches:
            data, targets, hidden = data.cuda(), targets.cuda(), hidden.cuda()
            model.zero_grad()
            output, hidden = model(data, hidden)
            criterion(output.view(-1, output.size(-1)), targets).backward()
            optimizer.step()

    model = RNNModel(10000)
    """),
    # the classic word-level language model
    Valid(_LM + _REPACKAGE + """
    def train(model, batches, optimizer, criterion, bsz):
        model.train()
        hidden = model.init_hidden(bsz)
        for data, targets in batches:
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets)
            loss.backward()
            optimizer.step()

    model = RNNModel(10000)
    """),
    # the helper lives in another module of the project
    Valid(_LM + """
    from utils.state import detach_state as cut

    model = RNNModel(10000, rnn_type="GRU")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    hidden = model.init_hidden(32)
    for data, targets in []:
        hidden = cut(hidden)
        output, hidden = model(data, hidden)
        nn.functional.cross_entropy(output.flatten(0, 1), targets.flatten()).backward()
        opt.step()
        opt.zero_grad()
    """, files={
        "utils/__init__.py": "",
        "utils/state.py": """
            def detach_state(state):
                if isinstance(state, tuple):
                    return tuple(s.detach() for s in state)
                return state.detach()
            """,
    }),
    # GRU state detached in place, after the step
    Valid("""
    import torch
    from torch import nn

    gru = nn.GRU(16, 32, batch_first=True)
    head = nn.Linear(32, 16)
    opt = torch.optim.Adam([*gru.parameters(), *head.parameters()], lr=1e-3)
    hidden = torch.zeros(1, 8, 32)
    for chunk, target in []:
        out, hidden = gru(chunk, hidden)
        loss = nn.functional.mse_loss(head(out), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hidden.detach_()
    """),
    # a fresh state for every batch
    Valid(_LM + """
    model = RNNModel(10000)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for data, targets in []:
        hidden = model.init_hidden(data.size(1))
        output, hidden = model(data, hidden)
        nn.functional.cross_entropy(output.flatten(0, 1), targets.flatten()).backward()
        opt.step()
        opt.zero_grad()
    """),
    # the state flows through the time steps of one sequence, and restarts with each batch
    Valid("""
    import torch
    import torch.nn as nn

    cell = nn.GRUCell(8, 16)
    opt = torch.optim.SGD(cell.parameters(), lr=0.1)
    for sequence in []:
        h = torch.zeros(1, 16)
        for x_t in sequence:
            h = cell(x_t, h)
        loss = h.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    """),
    # sampling: no backward(), nothing to cut
    Valid(_LM + """
    model = RNNModel(10000)
    hidden = model.init_hidden(1)
    x = torch.zeros(1, 1, dtype=torch.long)
    with torch.no_grad():
        for _ in range(100):
            output, hidden = model(x, hidden)
            x = output.argmax(-1)
    """),
    # not recurrent: a transformer with memories is out of scope
    Valid("""
    import torch
    from torch import nn

    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(64, 4), 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    mems = None
    for x in []:
        out, mems = model(x, mems)
        out.sum().backward()
        opt.step()
    """),
]

HiddenNotDetached.INVALID = [
    # the word-level language model without repackage_hidden
    Invalid(_LM + """
    def train(model, batches, optimizer, criterion, bsz):
        model.train()
        hidden = model.init_hidden(bsz)
        for data, targets in batches:
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets)
            loss.backward()
            optimizer.step()

    model = RNNModel(10000)
    """, lines=[31], fixed=_LM + """
    def train(model, batches, optimizer, criterion, bsz):
        model.train()
        hidden = model.init_hidden(bsz)
        for data, targets in batches:
            hidden = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, output.size(-1)), targets)
            loss.backward()
            optimizer.step()

    model = RNNModel(10000)
    """),
    # retain_graph=True used to silence the error; a GRU's state is one tensor
    Invalid("""
    import torch
    from torch import nn

    gru = nn.GRU(16, 32, batch_first=True)
    opt = torch.optim.Adam(gru.parameters(), lr=1e-3)
    hidden = torch.zeros(1, 8, 32)
    for chunk, target in []:
        opt.zero_grad()
        out, hidden = gru(chunk, hidden)
        loss = nn.functional.mse_loss(out, target)
        loss.backward(retain_graph=True)
        opt.step()
    """, lines=[9], fixed="""
    import torch
    from torch import nn

    gru = nn.GRU(16, 32, batch_first=True)
    opt = torch.optim.Adam(gru.parameters(), lr=1e-3)
    hidden = torch.zeros(1, 8, 32)
    for chunk, target in []:
        hidden = hidden.detach()
        opt.zero_grad()
        out, hidden = gru(chunk, hidden)
        loss = nn.functional.mse_loss(out, target)
        loss.backward(retain_graph=True)
        opt.step()
    """),
    # an LSTM called directly with its (h, c) pair
    Invalid("""
    import torch
    import torch.nn as tnn

    lstm = tnn.LSTM(10, 20)
    opt = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    h, c = torch.zeros(1, 4, 20), torch.zeros(1, 4, 20)
    for x in []:
        opt.zero_grad()
        out, (h, c) = lstm(x, (h, c))
        out.pow(2).mean().backward()
        opt.step()
    """, lines=[9], fixed="""
    import torch
    import torch.nn as tnn

    lstm = tnn.LSTM(10, 20)
    opt = torch.optim.Adam(lstm.parameters(), lr=1e-3)
    h, c = torch.zeros(1, 4, 20), torch.zeros(1, 4, 20)
    for x in []:
        h, c = h.detach(), c.detach()
        opt.zero_grad()
        out, (h, c) = lstm(x, (h, c))
        out.pow(2).mean().backward()
        opt.step()
    """),
    # class-based trainer, model from another file, state starting as None
    Invalid("""
    import torch
    from models.lm import StatefulLM

    class Trainer:
        def __init__(self, model):
            self.model = model
            self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            self.hidden = None

        def train_epoch(self, stream):
            for x, y in stream:
                self.optimizer.zero_grad()
                logits, self.hidden = self.model(x, self.hidden)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
                loss.backward()
                self.optimizer.step()

    Trainer(StatefulLM(5000)).train_epoch([])
    """, lines=[13], files={
        "models/__init__.py": "",
        "models/lm.py": """
            import torch.nn as nn
            class StatefulLM(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, 128)
                    self.rnn = nn.LSTM(128, 256, batch_first=True)
                    self.out = nn.Linear(256, vocab)
                def forward(self, x, state=None):
                    y, state = self.rnn(self.embed(x), state)
                    return self.out(y), state
            """,
    }, fixed="""
    import torch
    from models.lm import StatefulLM

    class Trainer:
        def __init__(self, model):
            self.model = model
            self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            self.hidden = None

        def train_epoch(self, stream):
            for x, y in stream:
                if self.hidden is not None:
                    self.hidden = tuple(h.detach() for h in self.hidden) if isinstance(self.hidden, tuple) else self.hidden.detach()
                self.optimizer.zero_grad()
                logits, self.hidden = self.model(x, self.hidden)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
                loss.backward()
                self.optimizer.step()

    Trainer(StatefulLM(5000)).train_epoch([])
    """),
]
