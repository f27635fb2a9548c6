import libcst as cst

from rnnlint.flow import library
from rnnlint.flow.resolve import chain, origin, values
from rnnlint.flow.values import together
from rnnlint.diagnostics import Applicability
from rnnlint.rule import Invalid, Rule, Valid, remove_arg, replace
from rnnlint.signatures import bind, signatures


class DropoutOnSingleLayer(Rule):
    """``dropout`` on a one-layer RNN, LSTM or GRU, where PyTorch ignores it.

    **What it catches.** ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU`` built with a
    dropout above zero and one layer: ``num_layers=1`` written out, a constant
    equal to 1, or no ``num_layers`` at all (the default is 1). Both arguments
    are read by keyword or by position (``nn.LSTM(10, 20, 1, True, True,
    0.5)``) and followed through the project's value flow: constants, dict and
    hyper-parameter holders, ``self`` attributes, constructor defaults and the
    arguments of every call site. A ``num_layers`` of one that is a default (of
    a constructor parameter, of a command-line option) is reported too: the
    default configuration ignores its dropout; a guarded
    ``dropout if num_layers > 1 else 0`` is not, nor a dropout and a single
    layer that come from two different calls (``Encoder(3, 0.3)`` and
    ``Encoder(1, 0.0)``).

    **Why it matters.** PyTorch applies this dropout only to the outputs of
    each layer except the last, so with one layer it does nothing at all and
    only prints a ``UserWarning``. The author believes the model is
    regularised when it is not; an LSTM that overfits is then tuned in the
    wrong places.

    **Example.**

        self.lstm = nn.LSTM(128, 256, batch_first=True, dropout=0.3)   # RNN041

    If dropout was wanted, apply ``nn.Dropout`` to the LSTM's output (or its
    input), or stack two layers.

    **Fix safety.** Safe, and offered only when the layer count is one on
    every path (not a default callers may override): the argument has no effect on a one-layer module,
    so removing it changes nothing but the warning. A positional dropout
    followed by other positional arguments is set to ``0.0`` instead, so that
    the arguments after it keep their places.
    """

    code = "RNN041"
    name = "dropout-on-single-layer"
    fix_applicability = Applicability.SAFE
    triggers = ("dropout", "RNN", "LSTM", "GRU")

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.ctx.qualname(node.func)
        if qualname not in library.STACKED_RNNS:
            return
        signature = signatures()[qualname]
        binding = bind(signature, node)
        dropout_arg = binding.arguments.get("dropout")
        if dropout_arg is None or binding.unknown or binding.extra:
            return  # RNN040 reports calls that do not even build
        layers_arg = binding.arguments.get("num_layers")
        if layers_arg is None and not binding.complete:
            return  # num_layers may be in **kwargs
        dropouts = [v for v in values(self.ctx, dropout_arg.value) if v.number is not None and v.number > 0]
        if layers_arg is None:
            layers_text = f"num_layers is not given (default {signature.defaults['num_layers']})"
            always_one = True
            layers_chain = ()
        else:
            known = [v for v in values(self.ctx, layers_arg.value) if v.number is not None]
            # one layer and a dropout that can reach one and the same call of the function around
            ones = [v for v in known if v.number == 1 and any(together(d, v) for d in dropouts)]
            if not ones:
                return
            dropouts = [d for d in dropouts if any(together(d, one) for one in ones)]
            # A default (of a parameter, of a command-line option) is one layer only until someone
            # passes more: reported, but the safe fix is kept for a count that is always one.
            always_one = all(v.number == 1 for v in known) and not any(_passed_in(v) for v in ones)
            where = origin(self.ctx, ones[0], layers_arg.value)
            layers_text = "num_layers=1" + (f" ({where})" if where else "")
            layers_chain = chain(self.ctx, ones[0])
        if not dropouts:
            return
        dropout = max(dropouts, key=lambda v: v.number)
        where = origin(self.ctx, dropout, dropout_arg.value)
        shown = f"dropout={dropout.number:g}" + (f" ({where})" if where else "")
        if always_one:
            edit = _removal(node, dropout_arg)
            self.report(
                dropout_arg,
                f"{shown} has no effect on {signature.display}: {layers_text}, and PyTorch applies this dropout "
                f"only between stacked layers (it just warns). Remove it; if you wanted dropout, apply "
                f"nn.Dropout to the output, or use num_layers >= 2",
                fix="Remove the dropout argument" if edit.node is node else "Set dropout to 0.0",
                edits=[edit],
                related=chain(self.ctx, dropout) + layers_chain,
            )
            return
        self.report(
            dropout_arg,
            f"{shown} has no effect on {signature.display} when {layers_text}: PyTorch applies this dropout "
            f"only between stacked layers (it just warns). Pass it only for a stack, e.g. "
            f"dropout=(dropout if num_layers > 1 else 0.0), and apply nn.Dropout to the output for one layer",
            related=chain(self.ctx, dropout) + layers_chain,
        )


def _passed_in(value) -> bool:
    """Did the value reach the call through a parameter or a command-line option (so callers may change it)?"""
    return any("default of" in step.text or step.text.startswith("argument ") for step in value.steps)


def _removal(call: cst.Call, arg: cst.Arg):
    """Remove the argument; a positional one with positionals after it becomes 0.0 instead."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if arg.keyword is None and positional[-1] is not arg:
        return replace(arg.value, "0.0")
    return remove_arg(call, arg)


_TWO_CALLS = """
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, layers, dropout):
            super().__init__()
            self.rnn = nn.LSTM(32, 64, layers, dropout=dropout)

    deep = Encoder(3, 0.3)
    shallow = Encoder(1, {dropout})
    """

_DEFAULTS = """
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, size, num_layers=1, dropout=0.0):
            super().__init__()
            self.rnn = nn.GRU(size, size, num_layers=num_layers, dropout=dropout)
    """
_CALLERS = """
    from train import Encoder

    stacked = Encoder(64, num_layers=2, dropout=0.1)
{more}    """

DropoutOnSingleLayer.VALID = [
    # defaults of one layer and no dropout; the only caller passes both, a stack with its dropout
    Valid(_DEFAULTS, files={"build.py": _CALLERS.format(more="")}),
    Valid("""
    import torch.nn as nn
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, num_layers=2, dropout=0.3, batch_first=True)
            self.gru = nn.GRU(32, 64)
            self.drop = nn.Dropout(0.3)
    """),
    # a guarded dropout, and a stack from every caller
    Valid("""
    from torch import nn

    class LM(nn.Module):
        def __init__(self, nhid, nlayers=1, dropout=0.5):
            super().__init__()
            self.rnn = nn.LSTM(nhid, nhid, nlayers, dropout=dropout if nlayers > 1 else 0.0)

    class Stack(nn.Module):
        def __init__(self, nhid, nlayers, dropout=0.5):
            super().__init__()
            self.rnn = nn.GRU(nhid, nhid, nlayers, dropout=dropout)

    model = Stack(32, nlayers=3)
    """),
    # two configurations built by two calls: the stack gets the dropout, the single layer none
    Valid(_TWO_CALLS.format(dropout="0.0")),
    # dropout=0 and positional forms with several layers
    Valid("""
    import torch
    a = torch.nn.LSTM(10, 20, 1, True, True, 0.0)
    b = torch.nn.LSTM(10, 20, 3, True, True, 0.5)
    c = torch.nn.RNN(10, 20, 2, "tanh", True, False, 0.5)
    d = torch.nn.GRU(10, 20, dropout=0.1, **{"num_layers": 2})
    """),
]

DropoutOnSingleLayer.INVALID = [
    # ... and a second caller that passes a dropout alone: the default single layer gets it
    Invalid(_DEFAULTS, lines=[6], files={"build.py": _CALLERS.format(more="    single = Encoder(64, dropout=0.5)\n")}),
    # one of the calls pairs a single layer with a dropout
    Invalid(_TWO_CALLS.format(dropout="0.3"), lines=[6]),
    # one layer by the constructor's default, dropout from a hyper-parameter: no safe fix,
    # a caller may pass more layers
    Invalid("""
    from torch import nn

    class LM(nn.Module):
        def __init__(self, nhid, nlayers=1, dropout=0.5):
            super().__init__()
            self.rnn = nn.LSTM(nhid, nhid, nlayers, dropout=dropout)
    """, lines=[6]),
    # the count and the dropout live on a hyper-parameter object
    Invalid("""
    from torch import nn

    class HParams:
        layers = 1
        dropout = 0.3

    hp = HParams()
    encoder = nn.GRU(16, 32, hp.layers, dropout=hp.dropout)
    """, lines=[8], fixed="""
    from torch import nn

    class HParams:
        layers = 1
        dropout = 0.3

    hp = HParams()
    encoder = nn.GRU(16, 32, hp.layers)
    """),
    Invalid("""
    import torch.nn as nn
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, batch_first=True, dropout=0.3)
    """, lines=[5], fixed="""
    import torch.nn as nn
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, batch_first=True)
    """),
    # explicit num_layers=1 through a module constant and an alias import
    Invalid("""
    from torch.nn import GRU as Recurrent
    LAYERS = 1
    DROPOUT = 0.2
    def build():
        return Recurrent(16, 32, num_layers=LAYERS, dropout=DROPOUT, bidirectional=True)
    """, lines=[5], fixed="""
    from torch.nn import GRU as Recurrent
    LAYERS = 1
    DROPOUT = 0.2
    def build():
        return Recurrent(16, 32, num_layers=LAYERS, bidirectional=True)
    """),
    # the dropout is a model parameter with a default, num_layers is fixed at 1
    Invalid("""
    import torch.nn as nn
    class Encoder(nn.Module):
        def __init__(self, vocab, hidden=256, dropout=0.1):
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.rnn = nn.GRU(hidden, hidden, 1, dropout=dropout, batch_first=True)
    """, lines=[6], fixed="""
    import torch.nn as nn
    class Encoder(nn.Module):
        def __init__(self, vocab, hidden=256, dropout=0.1):
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            self.rnn = nn.GRU(hidden, hidden, 1, batch_first=True)
    """),
    # positional dropout (LSTM: input, hidden, layers, bias, batch_first, dropout)
    Invalid("""
    import torch.nn as nn
    lstm = nn.LSTM(10, 20, 1, True, True, 0.5)
    """, lines=[2], fixed="""
    import torch.nn as nn
    lstm = nn.LSTM(10, 20, 1, True, True)
    """),
    # positional dropout with positionals after it (RNN takes nonlinearity 4th)
    Invalid("""
    import torch
    rnn = torch.nn.RNN(10, 20, 1, "relu", True, False, 0.25, True)
    """, lines=[2], fixed="""
    import torch
    rnn = torch.nn.RNN(10, 20, 1, "relu", True, False, 0.0, True)
    """),
]
