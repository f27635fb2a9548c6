import libcst as cst

from rnnlint.diagnostics import Applicability, Severity
from rnnlint.rule import Invalid, Rule, Valid, remove_arg, replace
from rnnlint.signatures import Signature, bind, signatures

# Keras (and paper) vocabulary that has no PyTorch keyword, and what to do instead.
_ADVICE = {
    "return_sequences": "a PyTorch recurrent module always returns the whole output sequence "
                        "and the final state; take `output[:, -1]` (batch_first) if you want the last step only",
    "return_state": "the final state is always returned: `output, h_n = rnn(x)` "
                    "(`output, (h_n, c_n)` for an LSTM)",
    "recurrent_dropout": "PyTorch has no dropout on the recurrent connections; use `dropout=` "
                         "between stacked layers (num_layers > 1) or write a custom cell",
    "recurrent_activation": "the gate activations are fixed (sigmoid)",
    "peephole": "PyTorch's LSTM has no peephole connections; write a custom cell if you need them",
    "peepholes": "PyTorch's LSTM has no peephole connections; write a custom cell if you need them",
    "use_peepholes": "PyTorch's LSTM has no peephole connections; write a custom cell if you need them",
    "go_backwards": "reverse the sequence yourself (`torch.flip`) or use `bidirectional=True`",
    "stateful": "pass the previous (detached) hidden state as the second argument of the forward call",
    "time_major": "use `batch_first=` instead (time-major is PyTorch's default, batch_first=False)",
    "kernel_initializer": "initialise the weights after construction, e.g. `nn.init.xavier_uniform_` on `weight_ih_l0`",
    "recurrent_initializer": "initialise the weights after construction, e.g. `nn.init.orthogonal_` on `weight_hh_l0`",
    "bias_initializer": "initialise the biases after construction, e.g. `nn.init.zeros_` on `bias_ih_l0`",
    "input_shape": "pass the number of input features as `input_size`; the sequence length is never declared",
    "unroll": "PyTorch does not unroll recurrent modules; remove it",
}
# Keras names with an exact PyTorch equivalent: the fix renames them.
_RENAMES = {
    "units": "hidden_size", "num_units": "hidden_size", "hidden_dim": "hidden_size", "hidden_units": "hidden_size",
    "input_dim": "input_size", "use_bias": "bias", "layers": "num_layers", "dropout_rate": "dropout",
}
_ACTIVATION_NAMES = ("activation", "nonlinearity")
_CELL_ONLY_STEP = ("num_layers", "batch_first", "bidirectional", "dropout", "proj_size")


class InvalidRecurrentArgument(Rule):
    """An argument that a PyTorch recurrent module does not accept.

    **What it catches.** A call to ``nn.RNN``, ``nn.LSTM``, ``nn.GRU``,
    ``nn.RNNCell``, ``nn.LSTMCell`` or ``nn.GRUCell`` (through any import
    alias) with a keyword the class does not take (``peephole=True``,
    ``activation=``, ``recurrent_dropout=``, ``return_sequences=``, ``units=``,
    ``nonlinearity=`` on an LSTM or GRU, ``proj_size=`` on a GRU), a keyword
    that repeats a positional argument, more positional arguments than the
    class takes, or a missing ``input_size`` / ``hidden_size``. The accepted
    names and the positional order are recorded from the pinned torch's own
    constructors (``rnnlint/data/recurrent_signatures.json``); torch is never
    imported. Calls that pass ``*args`` or ``**kwargs`` are only checked for
    the arguments that can be seen.

    **Why it matters.** Each of these raises ``TypeError`` (``ValueError`` for
    ``proj_size`` on a GRU or RNN) when the model is built: the script dies
    before training starts, often after minutes of data loading. They usually
    come from Keras habits or from blog code that never ran. The message names
    the nearest valid argument, or says what PyTorch does instead.

    **Example.**

        self.lstm = nn.LSTM(64, 128, peephole=True)        # RNN040
        self.gru = nn.GRU(64, units=128)                   # RNN040: hidden_size

    **Fix safety.** Unsafe: the fix renames the keyword when there is an
    exact equivalent that is not already given (``units`` -> ``hidden_size``,
    a misspelling such as ``hiden_size``), and otherwise removes the argument.
    Either way the code that crashed now builds a module whose behaviour the
    author must check (a removed ``recurrent_dropout`` means less
    regularisation). Extra positional arguments and missing ones are not fixed.
    """

    code = "RNN040"
    name = "invalid-recurrent-argument"
    severity = Severity.ERROR
    fix_applicability = Applicability.UNSAFE
    triggers = ("RNN", "LSTM", "GRU")

    def visit_Call(self, node: cst.Call) -> None:
        signature = signatures().get(self.ctx.qualname(node.func) or "")
        if signature is None:
            return
        binding = bind(signature, node)
        for arg in binding.unknown:
            self._unknown(node, arg, signature, binding.arguments)
        for arg in binding.duplicates:
            name = arg.keyword.value
            place = signature.positional.index(name) + 1
            self.report(
                arg,
                f"`{name}` is given twice to {signature.display}: as positional argument {place} and as a "
                f"keyword; building it raises TypeError. Keep one of them",
                fix=f"Remove the keyword `{name}=`",
                edits=[remove_arg(node, arg)],
            )
        if binding.extra:
            accepted = ", ".join(signature.positional)
            given = len(signature.positional) + len(binding.extra)
            self.report(
                binding.extra[0],
                f"{signature.display} takes at most {len(signature.positional)} positional arguments "
                f"({accepted}), {given} are given: building it raises TypeError. "
                f"Pass the optional ones by keyword",
            )
        missing = binding.missing(signature)
        if missing and not binding.unknown:
            self.report(
                node,
                f"{signature.display} needs {' and '.join(f'`{m}`' for m in missing)}: building it raises "
                f"TypeError (missing required argument)",
            )

    def _unknown(self, call: cst.Call, arg: cst.Arg, signature: Signature, given: dict) -> None:
        name = arg.keyword.value
        rejected = signature.rejected.get(name)
        failure = f"{rejected.split(': ', 1)[0]} ({rejected.split(': ', 1)[-1]})" if rejected else \
            "TypeError (unexpected keyword argument)"
        nearest = _nearest(name, signature)
        advice = "" if rejected else _advice(name, signature)
        if not advice and nearest:
            advice = f"did you mean `{nearest}`?"
            if nearest in given:
                advice += " That one is already given"
        message = f"{signature.display} does not accept `{name}=`: building it raises {failure}"
        if advice:
            message += f"; {advice}"
        if nearest and nearest not in given:
            self.report(arg, message, fix=f"Rename `{name}` to `{nearest}`", edits=[replace(arg.keyword, nearest)])
        else:
            self.report(arg, message, fix=f"Remove `{name}=`", edits=[remove_arg(call, arg)])


def _nearest(name: str, signature: Signature) -> str | None:
    """The accepted keyword ``name`` was meant to be: a Keras equivalent or a misspelling."""
    if name in _ADVICE or name in _ACTIVATION_NAMES:
        return None  # no equivalent argument: renaming would be a guess
    target = _RENAMES.get(name)
    if target is None:
        import difflib  # rarely needed; every run loads this rule file

        close = difflib.get_close_matches(name, sorted(signature.keywords), n=1, cutoff=0.7)
        target = close[0] if close else None
    return target if target in signature.keywords else None


def _advice(name: str, signature: Signature) -> str:
    is_cell = signature.qualname.endswith("Cell")
    takes_nonlinearity = "nonlinearity" in signature.keywords
    if name in _ACTIVATION_NAMES:
        if takes_nonlinearity:
            return "use `nonlinearity='tanh'` or `nonlinearity='relu'`"
        return ("LSTM and GRU activations are fixed (tanh and sigmoid); only nn.RNN and nn.RNNCell take "
                "`nonlinearity`")
    if name in _RENAMES:
        return f"the PyTorch name is `{_RENAMES[name]}`"
    if name in _ADVICE:
        return _ADVICE[name]
    if is_cell and name in _CELL_ONLY_STEP:
        if name == "dropout":
            return "a cell has no dropout; apply `nn.Dropout` to its input or hidden state"
        return f"a cell computes one time step of one layer; use {signature.display[:-4]} for `{name}`"
    return ""


_MODEL = """
    import torch
    import torch.nn as nn

    class Encoder(nn.Module):
        def __init__(self, vocab, emb=64, hidden=128):
            super().__init__()
            self.embed = nn.Embedding(vocab, emb)
    """

InvalidRecurrentArgument.VALID = [
    Valid(_MODEL + """
            self.rnn = nn.LSTM(emb, hidden, num_layers=2, batch_first=True, dropout=0.2,
                               bidirectional=True, proj_size=64)
            self.cell = nn.GRUCell(emb, hidden, bias=False)
            self.vanilla = nn.RNN(emb, hidden, nonlinearity="relu")
    """),
    # positional forms up to the last accepted position, device/dtype keywords
    Valid("""
    from torch import nn
    import torch
    lstm = nn.LSTM(10, 20, 1, True, True, 0.0, False, 0, None, torch.float32)
    rnn = nn.RNN(10, 20, 2, "tanh", True, False, 0.1, True, 0, None, None)
    cell = nn.RNNCell(10, 20, True, "relu")
    """),
    # **kwargs and *args may hold anything: only what is visible is checked
    Valid("""
    import torch.nn as nn
    def make(cfg, *extra):
        return nn.GRU(cfg["in"], **cfg["rnn"]), nn.LSTM(*extra, batch_first=True)
    """),
    # Keras layers take Keras arguments: not ours
    Valid("""
    from tensorflow.keras import layers
    lstm = layers.LSTM(64, return_sequences=True, recurrent_dropout=0.2, activation="tanh")
    """),
    # a user class that happens to be called LSTM
    Valid("""
    class LSTM:
        def __init__(self, units, peephole=False):
            self.units = units
    layer = LSTM(32, peephole=True)
    """),
]

InvalidRecurrentArgument.INVALID = [
    Invalid(_MODEL + """
            self.rnn = nn.LSTM(emb, hidden, batch_first=True, peephole=True)
    """, lines=[9], fixed=_MODEL + """
            self.rnn = nn.LSTM(emb, hidden, batch_first=True)
    """),
    # Keras habits through an alias import: units is renamed, return_sequences removed
    Invalid("""
    import torch.nn as tnn
    gru = tnn.GRU(32, units=64, return_sequences=True)
    """, lines=[2, 2], fixed="""
    import torch.nn as tnn
    gru = tnn.GRU(32, hidden_size=64)
    """),
    Invalid("""
    from torch.nn import GRU as Recurrent
    layer = Recurrent(16, 32, num_layers=2, recurrent_dropout=0.25)
    """, lines=[2], fixed="""
    from torch.nn import GRU as Recurrent
    layer = Recurrent(16, 32, num_layers=2)
    """),
    # nonlinearity belongs to nn.RNN only
    Invalid("""
    import torch
    lstm = torch.nn.LSTM(8, 16, nonlinearity="relu")
    """, lines=[2], fixed="""
    import torch
    lstm = torch.nn.LSTM(8, 16)
    """),
    # a misspelling is renamed to the nearest valid argument
    Invalid("""
    from torch import nn
    def build(n_in):
        return nn.LSTM(n_in, 256, bidirection=True, batch_frist=True)
    """, lines=[3, 3], fixed="""
    from torch import nn
    def build(n_in):
        return nn.LSTM(n_in, 256, bidirectional=True, batch_first=True)
    """),
    # proj_size exists only on LSTM (torch raises ValueError for a GRU)
    Invalid("""
    import torch.nn
    gru = torch.nn.GRU(32, 64, proj_size=16)
    """, lines=[2], fixed="""
    import torch.nn
    gru = torch.nn.GRU(32, 64)
    """),
    # cells have no layers or dropout; activation on a cell, through the private module path
    Invalid("""
    from torch.nn.modules.rnn import LSTMCell
    cell = LSTMCell(32, 64, dropout=0.1)
    """, lines=[2], fixed="""
    from torch.nn.modules.rnn import LSTMCell
    cell = LSTMCell(32, 64)
    """),
    Invalid("""
    import torch.nn as nn
    rnn = nn.RNN(4, 8, activation="relu")
    """, lines=[2], fixed="""
    import torch.nn as nn
    rnn = nn.RNN(4, 8)
    """),
    # too many positional arguments (LSTM takes 10): reported, not fixed
    Invalid("""
    import torch.nn as nn
    lstm = nn.LSTM(10, 20, 1, True, True, 0.5, False, 0, None, None, "extra")
    """, lines=[2]),
    # a keyword repeating a positional argument
    Invalid("""
    import torch.nn as nn
    lstm = nn.LSTM(10, 20, 2, num_layers=2)
    """, lines=[2], fixed="""
    import torch.nn as nn
    lstm = nn.LSTM(10, 20, 2)
    """),
    Invalid("""
    import torch.nn as nn
    lstm = nn.LSTM(10)
    """, lines=[2]),
]
