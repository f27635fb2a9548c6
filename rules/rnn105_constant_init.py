from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid


class ConstantInit(GraphRule):
    """A weight matrix initialised to one value (zeros, usually).

    **What it catches.** After the model's own ``__init__``, a weight matrix
    of a recurrent layer (``weight_ih``/``weight_hh``) or of a ``Linear``
    layer whose entries are all equal: ``nn.init.zeros_``, ``constant_``,
    ``fill_(0.5)``. An all-zero ``Linear`` is accepted when it is the model's
    last ``Linear`` (a zero-initialised output head is a known, harmless
    recipe).

    **Why it matters.** Units that start with identical weights receive
    identical gradients and stay identical: the layer behaves like a single
    unit, whatever its width. A zero recurrent matrix also cuts the recurrence
    at step 0 (no gradient flows through time until it moves).

    **Example.**

        nn.init.zeros_(self.lstm.weight_hh_l0)      # RNN105

    **Fix safety.** No automatic fix: use a random init (PyTorch's default,
    ``xavier_uniform_`` for input weights, ``orthogonal_`` for recurrent ones);
    zeros are fine for biases.
    """

    code = "RNN105"
    name = "constant-init"

    def measure(self, run) -> None:
        import torch.nn as nn

        from rnnlint.graph.measure import RECURRENT, describe

        linears = [p for p, m in run.modules.items() if isinstance(m, nn.Linear)]
        for path, module in run.modules.items():
            if not isinstance(module, (*RECURRENT, nn.Linear)):
                continue
            constant = []
            for name, param in module.named_parameters(recurse=False):
                if not name.startswith("weight") or param.dim() < 2 or param.numel() < 2:
                    continue
                if param.device.type == "meta" or type(param).__name__ == "UninitializedParameter":
                    continue
                first = param.detach().flatten()[0]
                if bool((param.detach() == first).all()):
                    value = float(first)
                    if value == 0 and isinstance(module, nn.Linear) and linears and path == linears[-1]:
                        continue  # zero-initialised output head
                    constant.append(f"{name} = {value:g}")
            if constant:
                label = describe(module) if isinstance(module, RECURRENT) else f"Linear({module.in_features} -> {module.out_features})"
                run.report(
                    self.code,
                    f"`{run.label(path)}` ({label}) starts with every entry of "
                    f"{', '.join(constant)}: its units get identical gradients and never become different. "
                    "Use a random init (PyTorch's default, xavier_uniform_, or orthogonal_ for weight_hh); keep "
                    "constant init for biases.",
                    path,
                )


ConstantInit.VALID = [
    """
    import torch.nn as nn

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 16)
            self.head = nn.Linear(16, 1)
            nn.init.zeros_(self.head.weight)   # zero-initialised output head
            for name, p in self.gru.named_parameters():
                if "bias" in name:
                    nn.init.zeros_(p)
    """,
]
ConstantInit.INVALID = [
    Invalid("""
    import torch.nn as nn

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 16)
            self.head = nn.Linear(16, 1)
            for name, p in self.gru.named_parameters():
                nn.init.constant_(p, 0.1)
    """, lines=[6]),
]
