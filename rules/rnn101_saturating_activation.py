from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid


class SaturatingActivationOnRecurrentOutput(GraphRule):
    """A tanh or sigmoid stacked on the output of an RNN, LSTM or GRU.

    **What it catches.** ``tanh``, ``sigmoid``, ``hardtanh`` or ``softsign`` --
    as a module (``self.act = nn.Tanh()``) or a function (``torch.tanh``,
    ``F.sigmoid``, ``x.tanh()``) -- applied to a recurrent module's output
    sequence or final hidden state, directly or through indexing,
    ``view``/``reshape``/``permute``, ``cat``, dropout and other operations that
    only move values around. Found on the model's traced graph
    (``torch.fx``, or ``torch.export`` when the forward loops over time steps),
    so it sees through helper methods and submodules defined in other files.

    **Why it matters.** An LSTM or GRU output is already squashed into
    (-1, 1) by its own tanh. A second squashing function compresses it into a
    narrower band (tanh: (-0.76, 0.76); sigmoid: (0.27, 0.73)) and multiplies
    every gradient flowing back into the recurrence by its derivative, which
    is far below 1 near the band's edges: training slows and the hidden units
    saturate. A ``Linear`` layer between the two is what was usually meant.

    **Example.**

        out, _ = self.lstm(x)
        return self.act(out[:, -1])     # self.act = nn.Tanh()  -> RNN101

    **Fix safety.** No automatic fix: remove the activation, or put a
    ``Linear`` (or attention) layer between the recurrent output and it.
    """

    code = "RNN101"
    name = "saturating-activation-on-recurrent-output"

    def measure(self, run) -> None:
        import operator

        from rnnlint.graph.measure import describe

        graph = run.graph
        if graph is None:
            return
        infos = {node: run.classify(node) for node in graph.nodes}
        for node, info in infos.items():
            if info.kind != "recurrent" or info.module is None:
                continue
            rnn = run.modules.get(info.module)
            cell = type(rnn).__name__.endswith("Cell")
            todo = [(user, "hidden state" if cell else None) for user in node.users]
            seen = set()
            while todo:
                user, what = todo.pop()
                if user in seen:
                    continue
                seen.add(user)
                kind = infos[user]
                if what is None and user.target is operator.getitem:
                    what = "output sequence" if user.args[1] == 0 else "final hidden state"
                if kind.kind == "shape":
                    todo.extend((u, what) for u in user.users)
                elif kind.kind == "saturating":
                    label = kind.label
                    message = (
                        f"{label} is applied to the {what or 'output'} of `{info.module}` ({describe(rnn)}), which "
                        f"is already bounded by the recurrent cell's own tanh: a second squashing function narrows "
                        f"it and shrinks every gradient flowing back into the recurrence. Remove it, or put a Linear "
                        f"layer between the recurrent output and the {label}."
                    )
                    if kind.module is not None:
                        run.report(self.code, message, kind.module)
                    else:
                        file, line = run.user_frame(user)
                        if file is not None:
                            run.report(self.code, message, node=user)
                        else:
                            run.report(self.code, message, info.module)


SaturatingActivationOnRecurrentOutput.VALID = [
    # a Linear layer between the LSTM and the tanh: the usual, correct head
    """
    import torch
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)
            self.proj = nn.Linear(16, 4)

        def forward(self, x):
            out, _ = self.lstm(x)
            return torch.tanh(self.proj(out))
    """,
    # not recurrent at all: an MLP with tanh is none of our business
    """
    import torch.nn as nn

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
            self.rnn = nn.GRU(8, 8)

        def forward(self, x):
            return self.net(x)
    """,
]
SaturatingActivationOnRecurrentOutput.INVALID = [
    Invalid("""
    import torch.nn as tnn

    class Encoder(tnn.Module):
        def __init__(self, hidden=16):
            super().__init__()
            self.lstm = tnn.LSTM(8, hidden, batch_first=True)
            self.act = tnn.Tanh()
            self.drop = tnn.Dropout(0.1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.act(self.drop(out[:, -1]))
    """, lines=[7]),
    # functional, on the final hidden state, through view
    Invalid("""
    import torch
    import torch.nn as nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8)
            self.gru = nn.GRU(8, 16, batch_first=True)
            self.fc = nn.Linear(16, 2)

        def forward(self, tokens):
            _, h = self.gru(self.emb(tokens))
            z = torch.sigmoid(h.view(-1, 16))
            return self.fc(z)
    """, lines=[13]),
    # a decoder looping over time steps: symbolic tracing fails, torch.export sees it
    Invalid("""
    import torch
    import torch.nn as nn

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell = nn.LSTMCell(4, 8)

        def forward(self, x):
            h = torch.zeros(x.size(0), 8)
            c = torch.zeros(x.size(0), 8)
            outs = []
            for t in range(x.size(1)):
                h, c = self.cell(x[:, t], (h, c))
                outs.append(h.tanh())
            return torch.stack(outs, 1)
    """, lines=[15]),
]
