from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid


class VanillaRnn(GraphRule):
    """A vanilla ``nn.RNN`` / ``nn.RNNCell`` where an LSTM or GRU would learn.

    **What it catches.** A model that contains ``nn.RNN`` or ``nn.RNNCell``.
    The finding is an error (rather than a warning) when two of these hold:
    ``nonlinearity="relu"``, two or more stacked layers, and no gradient
    clipping anywhere in the checked training code.

    **Why it matters.** A vanilla RNN multiplies the gradient by the same
    recurrent matrix at every time step, so over a few dozen steps it either
    vanishes (long-range dependencies are never learned) or explodes (NaN
    losses). LSTM and GRU gates were designed to keep that gradient alive.
    ``relu`` removes the bound on activations and makes explosion likelier;
    depth compounds both; clipping is the usual guard against explosion.

    **Example.**

        self.rnn = nn.RNN(64, 128, num_layers=2, nonlinearity="relu")   # RNN102

    **Fix safety.** No automatic fix: replace it by ``nn.GRU`` or ``nn.LSTM``
    (same arguments, an LSTM returns ``(h, c)`` as its state), or keep it
    deliberately with clipping and orthogonal or identity init (IRNN).
    """

    code = "RNN102"
    name = "vanilla-rnn"

    def measure(self, run) -> None:
        import torch.nn as nn

        from rnnlint.graph.measure import describe

        for path, module in run.recurrent:
            if not isinstance(module, (nn.RNN, nn.RNNCell)):
                continue
            reasons = []
            if module.nonlinearity == "relu":
                reasons.append("relu activations are unbounded, so states and gradients can explode")
            if getattr(module, "num_layers", 1) >= 2:
                reasons.append(f"{module.num_layers} stacked layers compound it")
            if not getattr(run, "project_clips", False):
                reasons.append("the checked training code never clips gradients")
            severity = "error" if len(reasons) >= 2 else None
            why = f" Here {'; '.join(reasons)}." if reasons else ""
            run.report(
                self.code,
                f"`{run.label(path)}` is a vanilla {describe(module)}: its gradient vanishes or "
                f"explodes over long sequences.{why} Use nn.GRU or nn.LSTM, or clip gradients and initialise "
                "weight_hh orthogonally.",
                path,
                severity=severity,
            )


VanillaRnn.VALID = [
    """
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(8, 16, num_layers=2)
            self.out = nn.Linear(16, 3)
    """,
]
VanillaRnn.INVALID = [
    Invalid("""
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, hidden=16):
            super().__init__()
            self.rnn = nn.RNN(8, hidden, num_layers=2, nonlinearity="relu")
            self.out = nn.Linear(hidden, 3)
    """, lines=[6]),
    # built at module level in a training script
    Invalid("""
    import torch
    from torch import nn

    rnn = nn.RNN(10, 20)
    opt = torch.optim.Adam(rnn.parameters(), lr=1e-3)
    """, lines=[4]),
]
