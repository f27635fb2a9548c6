from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid, Option


class RecurrentInitOutOfRange(GraphRule):
    """Recurrent weights initialised so that activations explode or die at step 0.

    **What it catches.** After the model's own ``__init__`` has run (including
    any ``init_weights`` / ``reset_parameters`` it calls), the spectral radius
    (largest eigenvalue magnitude) of each recurrent weight matrix -- per gate
    block for LSTM and GRU -- above ``max-radius`` (1.5), or, for tanh
    ``nn.RNN``/``RNNCell``, below ``min-radius`` (0.3). The message gives the
    measured radius.

    **Why it matters.** The recurrent matrix is applied once per time step:
    over T steps the state and the gradient scale roughly like radius^T. At
    2.0 that is a factor of a million after 20 steps (saturated units,
    exploding gradients); at 0.2 nothing from 10 steps back survives. A
    ``normal_(std=1)`` or ``eye * 2`` init written for a feed-forward layer
    is the usual cause. PyTorch's default init gives about 0.6; orthogonal
    init gives exactly 1.

    **Example.**

        nn.init.normal_(self.lstm.weight_hh_l0, std=1.0)   # radius ~ sqrt(hidden)  -> RNN103

    **Fix safety.** No automatic fix: initialise each gate block of
    ``weight_hh`` with ``nn.init.orthogonal_`` (or leave PyTorch's default).

    **Options.** ``max-radius`` and ``min-radius``: the accepted band.
    """

    code = "RNN103"
    name = "recurrent-init-out-of-range"
    options = {
        "max-radius": Option(1.5, "report recurrent weight blocks with a larger spectral radius",
                             minimum=0, exclusive_minimum=True, maximum=1e6),
        "min-radius": Option(0.3, "report tanh RNN weight matrices with a smaller spectral radius",
                             minimum=0, maximum=1e6),
    }

    def measure(self, run) -> None:
        import torch.nn as nn

        from rnnlint.graph.measure import describe, recurrent_blocks, spectral_radius, spectral_radius_at_most

        for path, module in run.recurrent:
            high, low = [], []
            vanilla_tanh = isinstance(module, (nn.RNN, nn.RNNCell)) and module.nonlinearity == "tanh"
            for param, gate, block in recurrent_blocks(module):
                if not vanilla_tanh and spectral_radius_at_most(block, self.settings["max-radius"]):
                    continue  # nothing to report: the low band is a tanh RNN's, and the high one is ruled out
                radius = spectral_radius(block)
                label = f"{param}" + ("" if gate == "hidden" else f" ({gate} gate)")
                if radius > self.settings["max-radius"]:
                    high.append(f"{label}: {radius:.2f}")
                elif vanilla_tanh and radius < self.settings["min-radius"]:
                    low.append(f"{label}: {radius:.2f}")
            name = f"`{run.label(path)}`"
            if high:
                run.report(
                    self.code,
                    f"{name} ({describe(module)}) has recurrent weights with spectral radius above "
                    f"{self.settings['max-radius']:g} after initialisation ({', '.join(high[:4])}"
                    f"{', ...' if len(high) > 4 else ''}): the state grows at every time step, so units saturate "
                    "and gradients explode. Initialise weight_hh orthogonally (nn.init.orthogonal_ on each gate "
                    "block) or keep PyTorch's default.",
                    path,
                )
            elif low:
                run.report(
                    self.code,
                    f"{name} ({describe(module)}) has recurrent weights with spectral radius below "
                    f"{self.settings['min-radius']:g} after initialisation ({', '.join(low[:4])}): the state, and the "
                    "gradient through it, shrinks at every step and vanishes over long sequences. Initialise "
                    "weight_hh orthogonally (nn.init.orthogonal_) or with the identity (IRNN).",
                    path,
                )


_MODEL = """
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 32)
            self.init_weights()

        def init_weights(self):
            for name, p in self.lstm.named_parameters():
                if "weight_hh" in name:
                    {init}
    """

RecurrentInitOutOfRange.VALID = [
    _MODEL.replace("{init}", "nn.init.orthogonal_(p)"),
    _MODEL.replace("{init}", "pass"),
    """
    import torch
    import torch.nn as nn

    class IRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(4, 16, nonlinearity="relu")
            with torch.no_grad():
                self.rnn.weight_hh_l0.copy_(torch.eye(16))
    """,
]
RecurrentInitOutOfRange.INVALID = [
    Invalid(_MODEL.replace("{init}", "nn.init.normal_(p, std=1.0)"), lines=[6]),
    Invalid("""
    import torch.nn as nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(4, 32)
            nn.init.normal_(self.rnn.weight_hh_l0, std=0.01)
    """, lines=[6]),
    Invalid(_MODEL.replace("{init}", "nn.init.normal_(p, std=1.0)"), options={"max-radius": 3.0}, lines=[6]),
]
