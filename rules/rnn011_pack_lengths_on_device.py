import libcst as cst

from rnnlint.diagnostics import Applicability
from rnnlint.flow.resolve import flow_of, related
from rnnlint.flow.tensors import lengths_of
from rnnlint.names import dotted
from rnnlint.nodes import keyword_arg
from rnnlint.flow.padding import PACK_PADDED, forward_params
from rnnlint.rule import Invalid, Rule, Valid, replace

# methods that keep a tensor on the device it is on
_SAME_DEVICE = frozenset({"long", "int", "int64", "type", "view", "reshape", "squeeze", "flatten", "detach",
                          "clone", "contiguous", "sort"})
_TENSOR_FACTORIES = frozenset({"torch.tensor", "torch.as_tensor", "torch.full", "torch.arange", "torch.ones",
                               "torch.zeros", "torch.sum"})


class PackLengthsOnDevice(Rule):
    """``pack_padded_sequence`` given lengths that were moved to the GPU.

    **What it catches.** The ``lengths`` argument of ``pack_padded_sequence``
    written as ``lengths.cuda()``, ``lengths.to(device)``, ``lengths.to("cuda")``
    or ``torch.tensor(..., device=device)``, directly in the call or in the
    variable's last assignment before the call in the same function
    (``x, lengths = x.to(device), lengths.to(device)`` included). A device is
    a ``"cuda..."`` string, ``torch.device(...)`` other than ``"cpu"``, or a
    name like ``device``/``self.device``/``x.device``; ``.to(torch.long)`` is a
    dtype and not reported. Limits: lengths that arrive as a parameter (moved
    by the caller, in another function) are not followed.

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

    def __init__(self, *args) -> None:
        super().__init__(*args)
        # per scope: name -> how it was moved to the device ("" is a known CPU / unknown value)
        self._scopes: list[dict[str, str]] = [{}]

    # -- scopes and assignments, in source order ---------------------------------

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        params = (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params)
        self._scopes.append({p.name.value: "" for p in params})

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()

    def leave_Assign(self, original_node: cst.Assign) -> None:
        for target in original_node.targets:
            self._bind(target.target, original_node.value)

    def leave_AnnAssign(self, original_node: cst.AnnAssign) -> None:
        if original_node.value is not None:
            self._bind(original_node.target, original_node.value)

    def leave_AugAssign(self, original_node: cst.AugAssign) -> None:
        self._bind(original_node.target, None)

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target, None)

    def _bind(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            parts = None
            if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(target.elements):
                parts = [e.value for e in value.elements]
            for position, element in enumerate(target.elements):
                self._bind(element.value, parts[position] if parts else None)
            return
        name = dotted(target)
        if name is not None:
            self._scopes[-1][name] = self._moved(value) if value is not None else ""

    def _lookup(self, name: str) -> str:
        for scope in (self._scopes[-1], self._scopes[0]):
            if name in scope:
                return scope[name]
        return ""

    # -- device moves --------------------------------------------------------

    def _moved(self, expr: cst.BaseExpression, depth: int = 0) -> str:
        """How ``expr`` ends up on a GPU ("lengths.to(device)"), or "" when it does not (or we cannot tell)."""
        if depth > 8:
            return ""
        if isinstance(expr, (cst.Name, cst.Attribute)) and dotted(expr):
            return self._lookup(dotted(expr))  # type: ignore[arg-type]
        if not isinstance(expr, cst.Call):
            return ""
        func = expr.func
        if self.ctx.qualname(func) in _TENSOR_FACTORIES:
            arg = keyword_arg(expr, "device")
            return self.ctx.code(expr) if arg is not None and _is_device(arg.value) else ""
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "cuda":
                return self.ctx.code(expr)
            if method == "to":
                device = self._to_device(expr)
                if device is True:
                    return self.ctx.code(expr)
                if device is False:
                    return ""
                return self._moved(func.value, depth + 1)  # .to(torch.long): same device
            if method in _SAME_DEVICE:
                return self._moved(func.value, depth + 1)
        return ""

    def _to_device(self, call: cst.Call) -> bool | None:
        """True: ``.to`` moves to a GPU; False: to the CPU; None: a dtype or nothing."""
        arg = keyword_arg(call, "device")
        if arg is None:
            positional = [a for a in call.args if a.keyword is None]
            arg = positional[0] if positional else None
        if arg is None:
            return None
        if _is_cpu(arg.value):
            return False
        return True if _is_device(arg.value) else None

    # -- the finding -----------------------------------------------------------

    # -- across functions and files: the value-flow model joins the move and the pack --------

    def finish(self) -> None:
        lengths = lengths_of(self.ctx.index.flow())
        packs_here = "pack_padded_sequence" in self.ctx.text and "def forward" in self.ctx.text
        if not packs_here and not lengths.project_packs():
            return  # nothing in the project packs: no lengths can reach a pack from here
        flow, facts = flow_of(self.ctx)
        lengths = lengths_of(flow)  # adding this file's facts started a new generation of the memos
        here = self.ctx.path.resolve()
        reported: set[int] = set()
        # the module side: a forward argument packed as it came, and a caller that moved it to the GPU
        for cls, methods in facts.methods.items():
            forward = methods.get("forward")
            if forward is None:
                continue
            for param in forward_params(forward) + [p.name.value for p in forward.params.kwonly_params]:
                for sink in lengths.param_sinks(facts, forward, param):
                    if sink.path != here or id(sink.lengths) in reported:
                        continue
                    callers = lengths.callers(sink)
                    if not callers:
                        continue
                    reported.add(id(sink.lengths))
                    hit = callers[0]
                    where = f"{flow.display(hit.path)}:{flow.line(hit.path, hit.move)}"
                    written = self.ctx.code(sink.lengths)
                    self.report(
                        sink.lengths,
                        f"the lengths passed to pack_padded_sequence arrive on the GPU: {cls.name.value}.forward "
                        f"receives them from {where} ({_code(flow, hit)}); pack_padded_sequence needs a 1-D CPU "
                        f"int64 tensor and raises RuntimeError there; pass {_cpu(written, sink.lengths)}",
                        fix="Append .cpu() to the lengths",
                        edits=[replace(sink.lengths, _cpu(written, sink.lengths))],
                        related=related(flow, hit.path, hit.move, f"{_code(flow, hit)} puts the lengths on the GPU")
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
            self.report(
                hit.call,
                f"{call} hands lengths that {self.ctx.code(hit.move)} put on the GPU (line "
                f"{flow.line(hit.path, hit.move)}) to pack_padded_sequence in {sink.owner}.forward ({where}), which "
                f"needs a 1-D CPU int64 tensor and raises RuntimeError; keep the lengths on the CPU, or pass "
                f"lengths.cpu() where they are packed",
                related=related(flow, sink.path, sink.call, "pack_padded_sequence receives them here"),
            )

    def visit_Call(self, node: cst.Call) -> None:
        if self.ctx.qualname(node.func) != PACK_PADDED:
            return
        arg = keyword_arg(node, "lengths")
        if arg is None:
            positional = [a for a in node.args if a.keyword is None and not a.star]
            arg = positional[1] if len(positional) > 1 else None
        if arg is None:
            return
        how = self._moved(arg.value)
        if not how:
            return
        value = arg.value
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


def _code(flow, hit) -> str:
    facts = flow.file(hit.path)
    return facts.module.code_for_node(hit.move) if facts is not None else "lengths moved to the GPU"


def _cpu(text: str, expr: cst.BaseExpression) -> str:
    if isinstance(expr, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
        return f"{text}.cpu()"
    return f"({text}).cpu()"


def _string(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _is_cpu(expr: cst.BaseExpression) -> bool:
    text = _string(expr)
    if text is None and isinstance(expr, cst.Call) and dotted(expr.func) in ("torch.device", "device") and expr.args:
        text = _string(expr.args[0].value)
    return text is not None and text.startswith("cpu")


def _is_device(expr: cst.BaseExpression) -> bool:
    text = _string(expr)
    if text is not None:
        return text.startswith("cuda")
    if isinstance(expr, cst.Call) and dotted(expr.func) in ("torch.device", "device"):
        return not _is_cpu(expr)
    name = dotted(expr)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1].lower()
    return "device" in last or last in ("dev", "gpu", "cuda")


_HEAD = """
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence
    """

PackLengthsOnDevice.VALID = [
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
