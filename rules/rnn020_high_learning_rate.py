import dataclasses
import re

import libcst as cst

from rnnlint.flow.resolve import chain, origin, values
from rnnlint.diagnostics import Applicability
from rnnlint.rule import Invalid, Option, Rule, Valid, replace
from rnnlint.flow.loops import unreachable
from rnnlint.flow.training import training_code, recurrent_context

# optimizer family -> (threshold option, recommended value option)
_FAMILIES = {"adam": ("adam", "adam-fix"), "rmsprop": ("rmsprop", "rmsprop-fix"), "sgd": ("sgd", "sgd-fix")}
_PRETTY = {"adam": "Adam-family", "rmsprop": "RMSprop", "sgd": "SGD"}
_RATE = {"minimum": 0, "exclusive_minimum": True, "maximum": 1e3}  # a learning rate: finite, above 0


class HighLearningRate(Rule):
    """A learning rate too high for a recurrent network.

    **What it catches.** An optimizer for a model that contains an RNN, LSTM or
    GRU whose learning rate is above the family's ceiling: Adam, AdamW, Adamax,
    NAdam, RAdam above 3e-3; RMSprop above 1e-2; SGD above 1.0. The value is
    followed from the call to where it is written by the project's value flow:
    literals and constant arithmetic, module constants, dict and
    hyper-parameter holders, ``self`` attributes, function defaults and every
    call site, ``argparse``/``click`` defaults, imports from other files. The
    message says where the value came from. When ``lr`` is omitted the
    optimizer's own default is used (it is never above the ceiling). A
    parameter group with its own ``lr`` is judged over its own parameters
    (a higher rate for a linear head alone is not reported), and an
    optimizer class picked by a key (``getattr(torch.optim, args.optim)``)
    is the class the key's values name. Adagrad, Adadelta and LBFGS are not covered. An optimizer in a branch
    that the same values never take is not judged by them: with
    ``if args.adam: Adam(lr=args.lr)`` and ``--adam`` off by default, the
    default ``--lr`` (an Adadelta rate of 1.0, say) never reaches Adam.

    **Why it matters.** Recurrent networks apply the same weights at every
    time step, so an update that is harmless for a CNN is amplified through
    the sequence: ``lr=0.01`` with Adam, copied from an image recipe, is the
    classic cause of an LSTM whose loss jumps and then turns NaN. Recurrent
    models are usually trained with Adam at 1e-3 or below.

    **Example.**

        model = nn.LSTM(64, 128)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)   # RNN020

    **Fix safety.** Unsafe: the fix sets the learning rate to the
    recommended value for the family (Adam 1e-3, RMSprop 1e-3, SGD 0.1) only
    where it reaches this optimizer: at the number's definition when that is a
    name of the same file read nowhere else, otherwise in the optimizer's own
    ``lr`` argument (``lr=args.lr`` becomes ``lr=0.001``), never in a
    command-line default or a config value that a scheduler, a manual update
    or another optimizer may also read. It changes how the model trains:
    review it, and consider a warm-up or a scheduler instead. SGD with
    gradient clipping in the same file (the word-language-model recipe, lr
    20-30) is not reported.

    **Options.** ``adam``, ``rmsprop``, ``sgd``: the ceilings;
    ``adam-fix``, ``rmsprop-fix``, ``sgd-fix``: the values the fix writes.
    """

    code = "RNN020"
    name = "high-learning-rate"
    fix_applicability = Applicability.UNSAFE
    triggers = ("optim", "Adam", "SGD", "RMSprop")
    options = {
        "adam": Option(3e-3, "ceiling for Adam, AdamW, Adamax, NAdam, RAdam", **_RATE),
        "rmsprop": Option(1e-2, "ceiling for RMSprop", **_RATE),
        "sgd": Option(1.0, "ceiling for SGD", **_RATE),
        "adam-fix": Option(1e-3, "learning rate the fix writes for the Adam family", **_RATE),
        "rmsprop-fix": Option(1e-3, "learning rate the fix writes for RMSprop", **_RATE),
        "sgd-fix": Option(0.1, "learning rate the fix writes for SGD", **_RATE),
    }

    def finish(self) -> None:
        clips = any(e.kind == "clip" for scope in training_code(self.ctx).scopes for e in scope.events)
        for optimizer in training_code(self.ctx).all_optimizers:
            if optimizer.family == "sgd" and clips:
                continue  # plain SGD at lr 20-30 with clipping is the word-language-model recipe
            for group in (optimizer, *_param_groups(optimizer)):
                self._check(group)

    def _check(self, optimizer) -> None:
        """One learning rate: the optimizer's, or a parameter group's over its own parameters."""
        keys = _FAMILIES.get(optimizer.family)
        if keys is None or optimizer.lr is None:
            return
        ceiling = self.settings[keys[0]]
        if isinstance(optimizer.lr, (cst.Integer, cst.Float)) and float(optimizer.lr.evaluated_value) <= ceiling:
            return  # a number written in place, below the ceiling: no need to build the file's flow
        above = [v for v in values(self.ctx, optimizer.lr) if v.number is not None and v.number > ceiling]
        if not above:
            return
        if not recurrent_context(self.ctx, optimizer.scope, optimizer):
            return
        if optimizer.scope is not None and unreachable(self.ctx, optimizer.scope, optimizer.call):
            return  # ``if opt.adam:`` with --adam off by default: the default lr never reaches it
        found = max(above, key=lambda v: v.number)
        recommended = self.settings[keys[1]]
        short = optimizer.qualname.rsplit(".", 1)[-1]
        where = origin(self.ctx, found, optimizer.lr)
        where = f" ({where})" if where else ""
        others = len({v.number for v in above}) - 1
        also = f" (and {others} other value{'s' * (others > 1)} above it)" if others else ""
        self.report(
            optimizer.lr,
            f"{short} lr={found.number:g}{where}{also} is above {ceiling:g}, the ceiling for "
            f"{_PRETTY[optimizer.family]} optimizers on recurrent models: updates are amplified through "
            f"every time step and the loss diverges; use lr={recommended:g} or lower",
            fix=f"Set the learning rate to {recommended:g}",
            edits=[replace(self._where_to_edit(optimizer, found), f"{recommended:g}")],
            related=chain(self.ctx, found),
        )

    def _where_to_edit(self, optimizer, found):
        """The lr changes only where it reaches this optimizer: at its definition when that is a name of
        this file bound to the literal and read nowhere else, otherwise in the optimizer's own argument
        (a command-line default or a config value may also drive a scheduler, a manual update, another
        optimizer)."""
        if found.node is optimizer.lr or found.path != self.ctx.path.resolve() or found.node is None:
            return optimizer.lr
        if len(found.steps) == 1 and found.steps[0].text.isidentifier():
            name = found.steps[0].text
            if len(re.findall(rf"\b{re.escape(name)}\b", self.ctx.text)) == 2:  # its binding and this use
                return found.node
        return optimizer.lr


def _param_groups(optimizer):
    """``Adam([{"params": model.rnn.parameters(), "lr": 5e-2}, {"params": ...}], lr=1e-3)``: each group
    with its own ``lr``, as an optimizer over that group's parameters (groups without one use the
    optimizer's, which the optimizer itself stands for)."""
    if not isinstance(optimizer.params, (cst.List, cst.Tuple)):
        return []
    groups = []
    for element in optimizer.params.elements:
        group = element.value
        if not isinstance(group, cst.Dict):
            continue
        entries = {e.key.evaluated_value: e.value for e in group.elements
                   if isinstance(e, cst.DictElement) and isinstance(e.key, cst.SimpleString)}
        if "lr" in entries and "params" in entries:
            groups.append(dataclasses.replace(optimizer, params=entries["params"], lr=entries["lr"]))
    return groups


_MODEL = """
    import torch
    import torch.nn as nn

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(32, 64, batch_first=True)
            self.out = nn.Linear(64, 10)
    """

HighLearningRate.VALID = [
    # a higher lr only for the linear head's parameter group
    Valid(_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam([{"params": model.lstm.parameters()},
                                  {"params": model.out.parameters(), "lr": 0.02}], lr=1e-3)
    """),
    Valid(_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """),
    Valid(_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters())  # default 1e-3
    """),
    # A CNN may use a high learning rate: not recurrent, not ours.
    Valid("""
    import torch
    from torch import nn, optim
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    opt2 = optim.Adam(net.parameters(), lr=0.01)
    """),
    Valid(_MODEL + """
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    """, options={"adam": 0.02}),
    # the default lr (1.0, Adadelta's) never reaches Adam: the Adam branch runs only with --adam, off by
    # default, and the flow model sees the defaults of one command line together
    Valid(_MODEL + """
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--adam", action="store_true")
    parser.add_argument("--optim", default="adadelta")
    opt = parser.parse_args()
    model = Tagger()
    if opt.adam:
        optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    elif opt.optim.lower() in ("adam", "adamw"):
        optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr)
    else:
        optimizer = torch.optim.Adadelta(model.parameters(), lr=opt.lr)
    """),
]
_CHOSEN = _MODEL + """
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--optim", default="Adam")
    opt = parser.parse_args()
    model = Tagger()
    if opt.optim.lower() in ("adam", "adamw"):
        optimizer = torch.optim.Adam(model.parameters(), lr={lr})
    else:
        optimizer = torch.optim.Adadelta(model.parameters(), lr=opt.lr)
    """
HighLearningRate.INVALID = [
    # a parameter group of the recurrent layer with its own lr
    Invalid(_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam([{"params": model.lstm.parameters(), "lr": 0.02},
                                  {"params": model.out.parameters()}], lr=1e-3)
    """, lines=[11], fixed=_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam([{"params": model.lstm.parameters(), "lr": 0.001},
                                  {"params": model.out.parameters()}], lr=1e-3)
    """),
    # the twin: Adam is the default choice, so the default lr reaches it
    Invalid(_CHOSEN.format(lr="opt.lr"), lines=[17], fixed=_CHOSEN.format(lr="0.001")),
    Invalid(_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    """, lines=[11], fixed=_MODEL + """
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
    """),
    # followed through an argparse default and an alias import; the fix changes this optimizer's own
    # argument, not the command line's default (a scheduler or a manual update may read it too)
    Invalid("""
    import argparse
    from torch import optim
    from torch.nn import GRU

    parser = argparse.ArgumentParser()
    parser.add_argument("--learning-rate", type=float, default=5e-2)
    args = parser.parse_args()
    rnn = GRU(16, 32)
    opt = optim.RMSprop(rnn.parameters(), args.learning_rate)
    """, lines=[9], fixed="""\
import argparse
from torch import optim
from torch.nn import GRU

parser = argparse.ArgumentParser()
parser.add_argument("--learning-rate", type=float, default=5e-2)
args = parser.parse_args()
rnn = GRU(16, 32)
opt = optim.RMSprop(rnn.parameters(), 0.001)
"""),
    # the model lives in another file of the project; lr is a module constant
    Invalid("""
    import torch
    from models.seq2seq import Seq2Seq

    LR = 0.01

    def main():
        model = Seq2Seq(vocab=100)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    """, lines=[8], fixed="""
    import torch
    from models.seq2seq import Seq2Seq

    LR = 0.001

    def main():
        model = Seq2Seq(vocab=100)
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    """, files={
        "models/__init__.py": "",
        "models/seq2seq.py": """
            import torch.nn as tnn
            class Encoder(tnn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.rnn = tnn.GRU(vocab, 32)
            class Seq2Seq(tnn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.encoder = Encoder(vocab)
            """,
    }),
]
