import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.flow.resolve import flow_of, related
from rnnlint.flow.tensors import lengths_of, packs_on_device
from rnnlint.flow.padding import forward_params
from rnnlint.rule import Invalid, Rule, Valid, replace


class PackLengthsOnDevice(Rule):
    """``pack_padded_sequence`` given lengths that were moved to the GPU.

    **What it catches.** The ``lengths`` argument of ``pack_padded_sequence``
    written as ``lengths.cuda()``, ``lengths.to(device)``, ``lengths.to("cuda")``
    or ``torch.tensor(..., device=device)``, directly in the call or in the
    variable's last assignment before the call in the same function
    (``x, lengths = x.to(device), lengths.to(device)`` included). A device is
    a ``"cuda..."`` string, ``torch.device(...)`` other than ``"cpu"``, or a
    name like ``device``/``self.device``/``x.device``; ``.to(torch.long)`` is a
    dtype and not reported. Across functions and files, the flow model joins a
    caller that moves a tensor to the GPU (``model(x.cuda(), lengths.to(device))``)
    to the ``forward`` that packs with it, through submodules: the lengths
    themselves, or lengths counted from the moved batch on its device
    (``(x != pad).long().sum(1)``, also after a project helper that returns a
    part of the batch). A caller's move counts only where it can come before
    the call: earlier in the source, or later in a loop around both whose
    ``for`` does not take fresh lengths on every pass (a smoke test on CPU
    lengths before the GPU run is not reported).

    **Why it matters.** ``pack_padded_sequence`` needs the lengths as a 1-D
    CPU int64 tensor (it uses them on the host to build the batch sizes); a
    CUDA tensor raises ``RuntimeError: 'lengths' argument should be a 1D CPU
    int64 tensor``. Moving "the whole batch" to the GPU, lengths included, is
    the usual way to get there.

    **Example.**

        text, lengths = text.to(device), lengths.to(device)
        packed = pack_padded_sequence(emb, lengths, batch_first=True)  # RNN011
        # fixed:
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True)

    **Fix safety.** Safe: ``.cpu()`` is appended to the lengths argument, or
    the ``.to(device)`` / ``.cuda()`` written inside the call is dropped. Other
    uses of the moved lengths (masks on the GPU) are left as they are.
    """

    code = "RNN011"
    name = "pack-lengths-on-device"
    # what can matter: the code that packs, and whatever builds, calls or feeds it (see rnnlint.static.projectmap)
    relevant_words = ("pack_padded_sequence",)
    fix_applicability = Applicability.SAFE
    # the caller's file need not mention pack_padded_sequence: it moves lengths and calls a model
    triggers = ("pack_padded_sequence", "cuda", "device")

    def finish(self) -> None:
        if "pack_padded_sequence" in self.ctx.text:
            for _, lengths, how in packs_on_device(flow_of(self.ctx)[1]):
                self._report_local(lengths, how)
        self._report_across()

    def _report_local(self, value: cst.BaseExpression, how: str) -> None:
        """Lengths moved to the GPU in the function that packs them."""
        inline = isinstance(value, cst.Call) and self.ctx.code(value) == how
        written = self.ctx.code(value)
        where = "" if inline else f" ({how})"
        message = (
            f"the lengths passed to pack_padded_sequence are on the GPU{where}: it needs a 1-D CPU int64 "
            f"tensor and raises RuntimeError; pass {_cpu(written, value)}"
        )
        if inline and isinstance(value.func, cst.Attribute) and value.func.attr.value in ("to", "cuda"):
            receiver = value.func.value
            self.report(value, message.replace(_cpu(written, value), self.ctx.code(receiver)),
                        fix=f"Keep the lengths on the CPU: drop .{value.func.attr.value}(...)",
                        edits=[replace(value, receiver)])
        else:
            self.report(value, message, fix="Append .cpu() to the lengths",
                        edits=[replace(value, _cpu(written, value))])

    # -- across functions and files: the value-flow model joins the move and the pack --------

    def _report_across(self) -> None:
        lengths = lengths_of(self.ctx.index.flow())
        packs_here = "pack_padded_sequence" in self.ctx.text and "def forward" in self.ctx.text
        if not packs_here and not lengths.project_packs():
            return  # nothing in the project packs: no lengths can reach a pack from here
        flow, facts = flow_of(self.ctx)
        lengths = lengths_of(flow)  # adding this file's facts started a new generation of the memos
        here = self.ctx.path.resolve()
        reported: set[int] = set()
        within = self.ctx.index.relevant_to(self.relevant_words)  # a caller is a file this rule can report in
        # the module side: a forward argument packed as it came, and a caller that moved it to the GPU (a
        # pack of this file: a file that names no pack has none, whatever its forwards call)
        for cls, methods in facts.methods.items() if "pack_padded_sequence" in self.ctx.text else ():
            forward = methods.get("forward")
            if forward is None:
                continue
            for param in forward_params(forward) + [p.name.value for p in forward.params.kwonly_params]:
                for sink in lengths.param_sinks(facts, forward, param):
                    if sink.path != here or id(sink.lengths) in reported:
                        continue
                    callers = lengths.callers(sink, within)
                    if not callers:
                        continue
                    reported.add(id(sink.lengths))
                    hit = callers[0]
                    where = f"{flow.display(hit.move_path)}:{flow.line(hit.move_path, hit.move)}"
                    written = self.ctx.code(sink.lengths)
                    self.report(
                        sink.lengths,
                        f"the lengths passed to pack_padded_sequence arrive on the GPU: {cls.name.value}.forward "
                        f"{'computes them from a tensor it receives' if sink.derived else 'receives them'} from "
                        f"{where} ({_code(flow, hit)}); pack_padded_sequence needs a 1-D CPU "
                        f"int64 tensor and raises RuntimeError there; pass {_cpu(written, sink.lengths)}",
                        fix="Append .cpu() to the lengths",
                        edits=[replace(sink.lengths, _cpu(written, sink.lengths))],
                        related=related(flow, hit.move_path, hit.move, f"{_code(flow, hit)} puts the lengths on the GPU")
                        + related(flow, hit.path, hit.call, "hands them on to be packed"),
                    )
        # the caller side: this file moves lengths to the GPU and hands them to a module that packs them
        for hit in lengths.scan(facts):
            sink = hit.sinks[0]
            if sink.path == here and id(sink.lengths) in reported:
                continue
            where = f"{flow.display(sink.path)}:{flow.line(sink.path, sink.call)}"
            call = self.ctx.code(hit.call)
            if len(call) > 60:
                call = self.ctx.code(hit.call.func) + "(...)"
            moved_at = f"line {flow.line(hit.move_path, hit.move)}" if hit.move_path == hit.path else \
                f"{flow.display(hit.move_path)}:{flow.line(hit.move_path, hit.move)}"
            elsewhere = hit.move_path != hit.path  # a torchtext iterator's device, set in another file
            self.report(
                hit.call,
                (f"{call} hands a tensor that {_code(flow, hit)} put on the GPU ({moved_at}) to {sink.owner}.forward, "
                 f"which computes from it, on the GPU, the lengths it packs ({where}): pack_padded_sequence needs "
                 f"a 1-D CPU int64 tensor and raises RuntimeError; " if sink.derived else
                 f"{call} hands lengths that {_code(flow, hit)} put on the GPU ({moved_at}) to pack_padded_sequence "
                 f"in {sink.owner}.forward ({where}), which needs a 1-D CPU int64 tensor and raises RuntimeError; ")
                + "keep the lengths on the CPU, or pass lengths.cpu() where they are packed",
                related=(related(flow, hit.move_path, hit.move, f"{_code(flow, hit)} puts the lengths on the GPU")
                         if elsewhere else ()) + related(flow, sink.path, sink.call,
                                                         "pack_padded_sequence receives them here"),
            )


def _code(flow, hit) -> str:
    facts = flow.file(hit.move_path)
    if facts is None:
        return "lengths moved to the GPU"
    code = facts.module.code_for_node(hit.move)
    return code if len(code) <= 60 else facts.module.code_for_node(hit.move.func) + "(...)"


def _cpu(text: str, expr: cst.BaseExpression) -> str:
    if isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        return f"{text}.cpu()"
    return f"({text}).cpu()"


_HEAD = """
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence
    """

_COUNTING_ENCODER = {"encoder.py": """
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence

    def trim(tokens, pad=0):
        longest = int((tokens != pad).sum(1).max())
        return tokens[:, :longest]

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(100, 16, padding_idx=0)
            self.gru = nn.GRU(16, 32, batch_first=True)

        def forward(self, tokens):
            tokens = trim(tokens)
            lengths = (tokens != 0).long().sum(dim=1)
            packed = pack_padded_sequence(self.embed(tokens), lengths{cpu}, batch_first=True, enforce_sorted=False)
            return self.gru(packed)[1]
    """}

_MOVES_TOKENS = """
    from encoder import Encoder

    model = Encoder().cuda()
    for tokens in loader:
        tokens = tokens.cuda()
        hidden = model(tokens)
    """

_PACKING_ENCODER = {"encoder.py": """
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)

        def forward(self, frames, lengths):
            return self.lstm(pack_padded_sequence(frames, lengths, batch_first=True, enforce_sorted=False))[1]
    """}

PackLengthsOnDevice.VALID = [
    # the model packs CPU lengths: they go to the GPU only after the call (statement order counts), and a
    # loop whose ``for`` takes fresh lengths on every pass does not carry the move back to the call
    Valid("""
    import torch
    from encoder import Encoder

    model = Encoder()
    frames, lengths = torch.randn(2, 5, 8), torch.tensor([5, 3])
    hidden = model(frames, lengths)
    lengths = lengths.cuda()

    def evaluate(batches):
        for frames, lengths in batches:
            hidden = model(frames, lengths)
            lengths = lengths.cuda()
    """, files=_PACKING_ENCODER),
    # lengths counted from a batch on the GPU, then brought to the host where they are packed
    Valid(_MOVES_TOKENS, files={"encoder.py": _COUNTING_ENCODER["encoder.py"].format(cpu=".cpu()")}),
    Valid(_HEAD + """
    def encode(rnn, emb, lengths, device):
        emb = emb.to(device)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return rnn(packed)
    """),
    Valid(_HEAD + """
    def encode(rnn, emb, lengths):
        lengths = lengths.to(torch.int64)
        return rnn(pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False))
    """),
    # moved, then brought back
    Valid(_HEAD + """
    def step(rnn, emb, lengths, device):
        lengths = lengths.to(device)
        mask = torch.arange(emb.size(1), device=device)[None] < lengths[:, None]
        lengths = lengths.cpu()
        return rnn(pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)), mask
    """),
]

PackLengthsOnDevice.INVALID = [
    # moved after the call, inside a loop around it: the second pass hands the model GPU lengths
    Invalid("""
    import torch
    from encoder import Encoder

    model = Encoder()
    frames, lengths = torch.randn(2, 5, 8), torch.tensor([5, 3])
    for step in range(2):
        hidden = model(frames, lengths)
        lengths = lengths.cuda()
    """, lines=[7], files=_PACKING_ENCODER),
    # lengths counted in the model's forward from a batch the loop moved to the GPU (through a project helper
    # that trims it): the loop's call is reported here, the pack in encoder.py
    Invalid(_MOVES_TOKENS, lines=[6], files={"encoder.py": _COUNTING_ENCODER["encoder.py"].format(cpu="")}),
    # through a variable: the whole batch moved to the GPU
    Invalid(_HEAD + """
    def train_step(model, batch, device):
        text, lengths = batch
        text, lengths = text.to(device), lengths.to(device)
        emb = model.embedding(text)
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        return model.rnn(packed)
    """, lines=[9], fixed=_HEAD + """
    def train_step(model, batch, device):
        text, lengths = batch
        text, lengths = text.to(device), lengths.to(device)
        emb = model.embedding(text)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return model.rnn(packed)
    """),
    # inline, in a model's forward, through the nn alias
    Invalid("""
    import torch.nn as tnn

    class Encoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.gru = tnn.GRU(16, 32)

        def forward(self, x, src_len):
            packed = tnn.utils.rnn.pack_padded_sequence(x, src_len.cuda(), enforce_sorted=False)
            return self.gru(packed)
    """, lines=[9], fixed="""\
import torch.nn as tnn

class Encoder(tnn.Module):
    def __init__(self):
        super().__init__()
        self.gru = tnn.GRU(16, 32)

    def forward(self, x, src_len):
        packed = tnn.utils.rnn.pack_padded_sequence(x, src_len, enforce_sorted=False)
        return self.gru(packed)
"""),
    # created on the GPU, keyword argument, long() keeps the device
    Invalid("""
    import torch
    import torch.nn.utils.rnn as rnn_utils

    seqs = [torch.randn(4, 8), torch.randn(2, 8)]
    lens = torch.tensor([len(s) for s in seqs], device="cuda").long()
    out = rnn_utils.pack_padded_sequence(rnn_utils.pad_sequence(seqs), lengths=lens)
    """, lines=[6], fixed="""\
import torch
import torch.nn.utils.rnn as rnn_utils

seqs = [torch.randn(4, 8), torch.randn(2, 8)]
lens = torch.tensor([len(s) for s in seqs], device="cuda").long()
out = rnn_utils.pack_padded_sequence(rnn_utils.pad_sequence(seqs), lengths=lens.cpu())
"""),
]
