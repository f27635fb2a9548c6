from rnnlint.graph.rule import GraphRule
from rnnlint.rule import Invalid, Option


class LstmForgetBias(GraphRule):
    """An LSTM whose forget-gate bias is not set positive (off by default).

    **What it catches.** ``nn.LSTM`` / ``nn.LSTMCell`` layers whose forget-gate
    bias -- the second quarter of ``bias_ih`` plus the second quarter of
    ``bias_hh`` -- averages below ``min-bias`` (0.5) after the model's own
    init, including ``bias=False`` (a forget bias fixed at 0). Off by default:
    select ``RNN104`` to turn it on.

    **Why it matters.** With a bias around 0 the forget gate starts half
    closed: the cell state decays by about half per step and long-range
    information and gradients are lost before training can open the gate.
    Jozefowicz et al. (2015) found a forget bias of 1 to help LSTMs on almost
    every task; it is Keras's default (``unit_forget_bias=True``), not PyTorch's.

    **Example.**

        self.lstm = nn.LSTM(32, 64)                  # forget bias ~ 0  -> RNN104
        for name, b in self.lstm.named_parameters():
            if "bias_ih" in name:
                b.data[64:128].fill_(1.0)           # the fix

    **Fix safety.** No automatic fix: fill ``bias_ih_l{k}[H:2H]`` with 1.0 for
    every layer (and direction) in ``__init__``.

    **Options.** ``min-bias``: the smallest accepted mean forget-gate bias.
    """

    code = "RNN104"
    name = "lstm-forget-bias"
    default_enabled = False
    options = {"min-bias": Option(0.5, "smallest accepted mean forget-gate bias (bias_ih + bias_hh)",
                                 minimum=-1e3, maximum=1e3)}

    def measure(self, run) -> None:
        import torch
        import torch.nn as nn

        for path, module in run.recurrent:
            if not isinstance(module, (nn.LSTM, nn.LSTMCell)):
                continue
            hidden = module.hidden_size
            low = []
            names = [n for n, _ in module.named_parameters(recurse=False) if n.startswith("weight_ih")]
            for weight_name in names:
                suffix = weight_name[len("weight_ih"):]
                total = torch.zeros(hidden)
                for kind in ("bias_ih", "bias_hh"):
                    bias = getattr(module, kind + suffix, None)
                    if bias is not None:
                        total = total + bias.detach()[hidden:2 * hidden].float()
                mean = float(total.mean())
                if mean < self.settings["min-bias"]:
                    low.append(f"{'layer' + suffix if suffix else 'cell'}: {mean:.2f}")
            if low:
                what = "has no biases, so the forget gate's bias is 0" if not module.bias else \
                    f"has a mean forget-gate bias below {self.settings['min-bias']:g} ({', '.join(low[:4])})"
                run.report(
                    self.code,
                    f"`{run.label(path)}` {what}: the forget gate starts half closed and the cell "
                    "state forgets about half of itself per step. Fill the forget quarter of bias_ih "
                    f"([{hidden}:{2 * hidden}]) with 1.0 in __init__.",
                    path,
                )


LstmForgetBias.VALID = [
    """
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self, hidden=16):
            super().__init__()
            self.lstm = nn.LSTM(8, hidden, num_layers=2)
            for name, bias in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    bias.data[hidden:2 * hidden].fill_(1.0)
    """,
]
LstmForgetBias.INVALID = [
    Invalid("""
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16)
    """, lines=[6]),
]
