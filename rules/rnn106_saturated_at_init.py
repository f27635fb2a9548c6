from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid, Option


class SaturatedAtInit(GraphRule):
    """Gates and hidden units already saturated on the first batch.

    **What it catches.** The graph stage runs a small probe batch (unit-scale
    random features, or random token ids through the model's embeddings)
    through the freshly built model. For every recurrent layer it takes the
    input the layer actually received and recomputes its gates from the
    layer's own weights (fused ``nn.LSTM``/``nn.GRU`` kernels do not expose
    them), then measures the share of saturated activations: sigmoid gates
    below 0.01 or above 0.99, tanh values beyond +-0.99. A layer above
    ``max-share`` (25%) is reported with the measured shares per gate.

    **Why it matters.** A saturated gate has a derivative near 0: almost no
    gradient reaches the weights behind it, so those units barely learn and
    the loss plateaus from the first step. Oversized initial weights
    (``normal_(std=1)`` on a wide layer) or inputs on a large scale (an
    embedding initialised with large values) are the usual causes.

    **Example.**

        self.lstm = nn.LSTM(300, 64)
        nn.init.normal_(self.lstm.weight_ih_l0, std=1.0)   # pre-activations ~ N(0, 300)  -> RNN106

    **Fix safety.** No automatic fix: keep PyTorch's default init (or
    ``xavier_uniform_`` for ``weight_ih``), normalise the input features, and
    check embedding scales.

    **Options.** ``max-share``: the largest accepted share of saturated
    activations in one layer.
    """

    code = "RNN106"
    name = "saturated-at-init"
    options = {"max-share": Option(0.25, "largest accepted share of saturated gate activations in a layer",
                                  minimum=0, maximum=1)}

    def measure(self, run) -> None:
        from rnnlint.graph.measure import describe, saturation

        for path, (module, x, hx) in run.probe.calls.items():
            try:
                measured = saturation(module, x, hx)
            except (ValueError, RuntimeError, IndexError):  # a state that does not fit the layer: RNN107's finding
                continue
            if measured is None or measured.share <= self.settings["max-share"]:
                continue
            parts = ", ".join(f"{gate} {share:.0%}" for gate, share in measured.parts.items())
            run.report(
                self.code,
                f"`{run.label(path)}` ({describe(module)}): {measured.share:.0%} of its gate "
                f"activations are saturated on a unit-scale probe batch at initialisation ({parts}); saturated "
                "gates pass almost no gradient, so these units barely learn. Keep PyTorch's default init or use "
                "xavier_uniform_ for weight_ih and orthogonal_ for weight_hh, and normalise the inputs.",
                path,
            )


SaturatedAtInit.VALID = [
    """
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 32)
            self.lstm = nn.LSTM(32, 64, batch_first=True)
            self.out = nn.Linear(64, 5)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.out(out)
    """,
]
SaturatedAtInit.INVALID = [
    Invalid("""
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(100, 128)
            self.lstm = nn.LSTM(128, 64, batch_first=True)
            nn.init.normal_(self.lstm.weight_ih_l0, std=1.0)
            self.out = nn.Linear(64, 5)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.out(out)
    """, lines=[7]),
]
