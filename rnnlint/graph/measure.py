"""What the graph rules measure on a built model (child process only: imports torch).

:class:`ModelRun` wraps one built model and computes, lazily and once, what the
rules ask for:

* ``graph``: a ``torch.fx`` graph, from ``symbolic_trace`` with recurrent
  modules as leaves, or when Python control flow defeats that (decoders
  looping over time steps, teacher forcing), from ``torch.export`` (non-strict)
  on the probe inputs;
* ``probe``: one eval-mode forward pass on a small synthetic batch, with hooks on
  every recurrent module recording its actual inputs and initial states (for
  gate saturation) and its final states (to see where a hidden state goes).

Rules report module paths (``encoder.rnn``); the parent process maps those to
source lines. Functional ops (``torch.tanh(...)``) are reported at the line of
the call, taken from the graph node's stack trace.
"""

from __future__ import annotations

import inspect
import operator
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

RECURRENT = (nn.RNNBase, nn.RNNCellBase)
BATCH, STEPS = 3, 7

SATURATING_MODULES = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softsign)
SATURATING_FUNCTIONS = {
    torch.tanh: "tanh", torch.sigmoid: "sigmoid", F.tanh: "tanh", F.sigmoid: "sigmoid",
    F.hardtanh: "hardtanh", F.softsign: "softsign", torch.special.expit: "sigmoid",
}
SATURATING_NAMES = {"tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
                    "hardtanh": "hardtanh", "hardtanh_": "hardtanh", "softsign": "softsign"}
SHAPE_MODULES = (nn.Dropout, nn.Dropout1d, nn.AlphaDropout, nn.Identity, nn.Flatten, nn.Unflatten)
NORM_MODULES = tuple(getattr(nn, n) for n in ("LayerNorm", "BatchNorm1d", "GroupNorm", "InstanceNorm1d", "RMSNorm")
                     if hasattr(nn, n))
SHAPE_FUNCTIONS = {
    operator.getitem, torch.reshape, torch.flatten, torch.transpose, torch.squeeze, torch.unsqueeze,
    torch.cat, torch.concat, torch.stack, torch.permute, torch.chunk, torch.split, torch.unbind,
    torch.flip, torch.narrow, torch.select, torch.index_select, torch.movedim, F.dropout, torch.dropout,
    nn.utils.rnn.pad_packed_sequence, nn.utils.rnn.pack_padded_sequence,
}
# tensor methods (fx call_method) and aten op names (torch.export) that only move values around
SHAPE_NAMES = {
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "squeeze", "unsqueeze", "contiguous",
    "flatten", "expand", "narrow", "select", "slice", "clone", "to", "_to_copy", "float", "detach", "alias",
    "chunk", "split", "split_with_sizes", "unbind", "flip", "index_select", "cat", "stack", "movedim",
    "dropout", "native_dropout", "getitem", "__getitem__", "repeat", "expand_as", "view_as", "reshape_as",
    "lift_fresh_copy", "unsafe_split", "squeeze_", "unsqueeze_", "type_as",
}
NORM_NAMES = {"layer_norm", "native_layer_norm", "batch_norm", "group_norm", "rms_norm", "_native_batch_norm_legit_no_training"}
RESIDUAL_NAMES = {"add", "add_", "__add__", "__iadd__", "sub"}
ATEN_RECURRENT = {"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"}
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def kind_name(module: nn.Module) -> str:
    return type(module).__name__


def layers_of(module: nn.Module) -> int:
    return getattr(module, "num_layers", 1)


def directions(module: nn.Module) -> int:
    return 2 if getattr(module, "bidirectional", False) else 1


def describe(module: nn.Module) -> str:
    """``LSTM(32 -> 64, 2 layers, bidirectional)``: enough to recognise the layer."""
    parts = [f"{getattr(module, 'input_size', '?')} -> {getattr(module, 'hidden_size', '?')}"]
    if isinstance(module, nn.RNNBase):
        parts.append(f"{module.num_layers} layer{'s' if module.num_layers != 1 else ''}")
        if module.bidirectional:
            parts.append("bidirectional")
    return f"{kind_name(module)}({', '.join(parts)})"


@dataclass
class Finding:
    code: str
    message: str
    module: str | None = None  # dotted path of the module involved, "" for the model itself
    file: str | None = None  # or an explicit source location (functional calls)
    line: int | None = None
    severity: str | None = None


@dataclass
class GraphNodeInfo:
    """A node of either graph flavour, classified for the rules."""

    kind: str  # "recurrent" | "saturating" | "shape" | "norm" | "residual" | "other"
    module: str | None  # module path the node belongs to, when known
    label: str  # "tanh", "LSTM", ...


@dataclass
class Probe:
    ok: bool
    error: str | None = None
    # module path -> (module, input tensor, initial state) of its first call
    calls: dict[str, tuple[nn.Module, Any, Any]] = field(default_factory=dict)
    handoffs: list[Finding] = field(default_factory=list)


class ModelRun:
    """One built model and the lazily computed facts the graph rules share."""

    def __init__(self, model: nn.Module, project_files: set[str], inputs: list | None = None,
                 name: str = "model") -> None:
        self.model = model
        self.name = name
        self.project_files = project_files
        self.configured_inputs = inputs
        self.findings: list[Finding] = []
        self.notes: list[str] = []  # why parts of the analysis could not run (-> RNN901)
        self.modules = dict(model.named_modules())
        self.recurrent = [(p, m) for p, m in self.modules.items() if isinstance(m, RECURRENT)]
        self.trace_error: str | None = None
        self.graph_kind: str | None = None

    def label(self, path: str) -> str:
        """How messages name a module: its path, or the model's own name for the model itself."""
        return path or self.name

    def report(self, code: str, message: str, module: str | None = None, *, node: torch.fx.Node | None = None,
               severity: str | None = None) -> None:
        file, line = self.user_frame(node) if node is not None else (None, None)
        self.findings.append(Finding(code, message, module, file, line, severity))

    def user_frame(self, node: torch.fx.Node) -> tuple[str | None, int | None]:
        """The innermost frame of the user's own code in a node's stack trace."""
        if "user_frame" in node.meta:
            return node.meta["user_frame"]
        frames = _FRAME.findall(node.meta.get("stack_trace") or "")
        for file, line in reversed(frames):
            if file in self.project_files:
                return file, int(line)
        return None, None

    # -- inputs -----------------------------------------------------------

    def input_candidates(self) -> list[tuple]:
        """Example inputs to try, best guess first (configured inputs alone when given)."""
        if self.configured_inputs is not None:
            return [tuple(_configured_tensor(spec) for spec in self.configured_inputs)]
        first = self.first_layer()
        rnn = next((m for m in self.model.modules() if isinstance(m, nn.RNNBase)), None)
        batch_first = bool(getattr(rnn, "batch_first", False))
        vocab = min((m.num_embeddings for m in self.model.modules() if isinstance(m, nn.Embedding)), default=2)
        candidates = []
        if isinstance(first, nn.RNNCellBase):  # a cell model loops over time steps itself, or takes one step
            return [self._arguments(torch.randn(*shape, first.input_size))
                    for shape in ((BATCH, STEPS), (STEPS, BATCH), (BATCH,))]
        for layout_batch_first in (batch_first, not batch_first):
            shape = (BATCH, STEPS) if layout_batch_first else (STEPS, BATCH)
            if isinstance(first, (nn.Embedding, nn.EmbeddingBag)):
                primary = torch.randint(1 if vocab > 1 else 0, max(vocab, 1), shape)
            elif isinstance(first, nn.RNNBase):
                primary = torch.randn(*shape, first.input_size)
            elif isinstance(first, nn.Linear):
                primary = torch.randn(*shape, first.in_features)
            elif isinstance(first, nn.Conv1d):
                primary = torch.randn(BATCH, first.in_channels, STEPS)
            else:
                return []
            candidates.append(self._arguments(primary))
            if isinstance(first, nn.Conv1d):
                break
        return candidates

    def first_layer(self) -> nn.Module | None:
        """The first layer that tells what the model takes (token ids, or features of a size)."""
        return next((m for m in self.model.modules()
                     if isinstance(m, (nn.Embedding, nn.EmbeddingBag, *RECURRENT, nn.Linear, nn.Conv1d))), None)

    def input_template(self) -> dict | None:
        """The input the probe guessed first, as a ``[tool.rnnlint.models]`` entry the user can correct.

        It follows the first layer: an Embedding takes token ids (int64, below its
        vocabulary size), a recurrent, Linear or Conv1d layer takes float features of
        its input size, so the template never suggests ids for a model that takes floats.
        """
        candidates = self.input_candidates()
        layer = self.first_layer()
        if not candidates or layer is None or not isinstance(candidates[0][0], torch.Tensor):
            return None
        primary = candidates[0][0]
        ids = not primary.is_floating_point()
        template = {"shape": list(primary.shape), "dtype": "int64" if ids else "float32",
                    "layer": describe(layer) if isinstance(layer, RECURRENT) else repr(layer)}
        if ids:
            template["high"] = int(layer.num_embeddings)
        return template

    def _arguments(self, primary: torch.Tensor) -> tuple:
        """Fill the other required parameters of ``forward`` by what their names suggest."""
        args: list[Any] = [primary]
        params = [p for p in inspect.signature(self.model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
        for param in params[1:]:
            name = param.name.lower()
            if "len" in name:
                args.append(torch.full((BATCH,), STEPS, dtype=torch.int64))
            elif "mask" in name:
                args.append(torch.ones(primary.shape[:2], dtype=torch.bool))
            elif "hid" in name or "state" in name or name in ("h", "h0", "hx", "hc"):
                args.append(None)
            else:  # a second sequence (seq2seq target): same kind as the first
                args.append(primary.clone())
        return tuple(args)

    # -- probe ------------------------------------------------------------

    @cached_property
    def probe(self) -> Probe:
        candidates = self.input_candidates()
        if not candidates:
            return Probe(False, "no Embedding, recurrent, Linear or Conv1d layer to synthesise inputs from")
        error = None
        for inputs in candidates:
            probe = Probe(False)
            handles = self._hooks(probe)
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    self.model(*inputs)
                probe.ok = True
                self.probe_inputs = inputs
                return probe
            except Exception as exc:  # the model's own forward failed on our guess
                error = f"{type(exc).__name__}: {_first_line(exc)}"
                probe.error = error
                if probe.handoffs:  # the failure is the hand-off mismatch itself
                    return probe
            finally:
                for handle in handles:
                    handle.remove()
                self.model.train(was_training)
        return Probe(False, error, handoffs=[])

    def _hooks(self, probe: Probe) -> list:
        finals: dict[int, tuple[str, nn.Module, tuple]] = {}  # storage pointer -> producer
        handles = []

        def pre(path: str, module: nn.Module):
            def hook(mod, args, kwargs):
                x = args[0] if args else kwargs.get("input")
                hx = args[1] if len(args) > 1 else kwargs.get("hx")
                if path not in probe.calls:
                    probe.calls[path] = (mod, _detach(x), _detach(hx))
                if hx is not None:
                    _check_handoff(path, mod, x, hx, finals, probe)
            return hook

        def post(path: str):
            def hook(mod, args, output):
                if isinstance(mod, nn.RNNBase) and isinstance(output, tuple) and len(output) == 2:
                    states = output[1] if isinstance(output[1], tuple) else (output[1],)
                    for state in states:
                        if isinstance(state, torch.Tensor):
                            finals[_storage(state)] = (path, mod, tuple(state.shape))
            return hook

        for path, module in self.recurrent:
            handles.append(module.register_forward_pre_hook(pre(path, module), with_kwargs=True))
            handles.append(module.register_forward_hook(post(path)))
        return handles

    # -- graph ------------------------------------------------------------

    @cached_property
    def graph(self) -> torch.fx.Graph | None:
        errors = []
        try:
            graph = _symbolic(self.model, self.project_files)
            self.graph_kind = "fx"
            return graph
        except Exception as exc:
            errors.append(f"symbolic_trace: {type(exc).__name__}: {_first_line(exc)}")
        probe = self.probe
        if not probe.ok:
            errors.append(f"torch.export needs example inputs and the probe batch failed ({probe.error})")
            self.trace_error = "; ".join(errors)
            return None
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exported = torch.export.export(self.model, self.probe_inputs, strict=False)
            self.graph_kind = "export"
            self._export_modules = exported
            return exported.graph
        except Exception as exc:
            errors.append(f"torch.export: {type(exc).__name__}: {_first_line(exc)}")
        self.trace_error = "; ".join(errors)
        return None

    def classify(self, node: torch.fx.Node) -> GraphNodeInfo:
        if node.op == "call_module":
            module = self.modules.get(str(node.target))
            path = str(node.target)
            if isinstance(module, RECURRENT):
                return GraphNodeInfo("recurrent", path, kind_name(module))
            if isinstance(module, SATURATING_MODULES):
                return GraphNodeInfo("saturating", path, kind_name(module))
            if isinstance(module, SHAPE_MODULES):
                return GraphNodeInfo("shape", path, kind_name(module))
            if isinstance(module, NORM_MODULES):
                return GraphNodeInfo("norm", path, kind_name(module))
            return GraphNodeInfo("other", path, kind_name(module) if module is not None else "?")
        if node.op == "call_method":
            name = str(node.target)
            return GraphNodeInfo(_name_kind(name), None, name)
        if node.op != "call_function":
            return GraphNodeInfo("other", None, node.op)
        target = node.target
        if self.graph_kind == "export":  # aten ops, attributed to modules by nn_module_stack
            name = target.__name__ if target is operator.getitem else str(target).split(".")[1] if "." in str(target) else str(target)
            stack = node.meta.get("nn_module_stack") or {}
            owner = list(stack.values())[-1][0] if stack else ""
            owner_module = self.modules.get(owner)
            if name in ATEN_RECURRENT:
                return GraphNodeInfo("recurrent", owner, kind_name(owner_module) if owner_module is not None else name)
            kind = _name_kind(name)
            if kind == "saturating" and isinstance(owner_module, SATURATING_MODULES):
                return GraphNodeInfo(kind, owner, kind_name(owner_module))
            return GraphNodeInfo(kind, None, SATURATING_NAMES.get(name, name))
        if target in SATURATING_FUNCTIONS:
            return GraphNodeInfo("saturating", None, SATURATING_FUNCTIONS[target])
        if target in SHAPE_FUNCTIONS:
            return GraphNodeInfo("shape", None, getattr(target, "__name__", "op"))
        if target in (operator.add, operator.iadd, torch.add):
            return GraphNodeInfo("residual", None, "add")
        if target in (F.layer_norm, F.batch_norm, F.group_norm):
            return GraphNodeInfo("norm", None, target.__name__)
        return GraphNodeInfo("other", None, getattr(target, "__name__", str(target)))


def _name_kind(name: str) -> str:
    if name in SATURATING_NAMES:
        return "saturating"
    if name in SHAPE_NAMES:
        return "shape"
    if name in NORM_NAMES:
        return "norm"
    if name in RESIDUAL_NAMES:
        return "residual"
    return "other"


class _LeafTracer(torch.fx.Tracer):
    """fx tracer that keeps recurrent modules whole (their internals are not ours to judge).

    It records the innermost frame of the user's code for each node itself:
    fx's own ``record_stack_traces`` imports torch._dynamo, sympy and networkx
    (seconds) to do the same.
    """

    def __init__(self, project_files: set[str]) -> None:
        # packing needs concrete lengths: record the calls as graph nodes instead of tracing into them
        super().__init__(autowrap_functions=(nn.utils.rnn.pack_padded_sequence, nn.utils.rnn.pad_packed_sequence))
        self.project_files = project_files

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, RECURRENT) or super().is_leaf_module(m, qualname)

    def create_node(self, *args, **kwargs) -> torch.fx.Node:
        node = super().create_node(*args, **kwargs)
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename in self.project_files:
                node.meta["user_frame"] = (frame.f_code.co_filename, frame.f_lineno)
                break
            frame = frame.f_back
        return node


_PACKING = ("pack_padded_sequence", "pad_packed_sequence")


def _recorded(function):
    """``function`` as one graph node when called on proxies (``nn.utils.rnn.pack_padded_sequence(...)``)."""
    def wrapper(*args, **kwargs):
        proxy = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.fx.Proxy)), None)
        if proxy is not None:
            return proxy.tracer.create_proxy("call_function", function, args, kwargs)
        return function(*args, **kwargs)
    return wrapper


def _symbolic(model: nn.Module, project_files: set[str]) -> torch.fx.Graph:
    tracer = _LeafTracer(project_files)
    params = list(inspect.signature(model.forward).parameters.values())
    concrete = {p.name: p.default for p in params
                if p.default is not p.empty and not isinstance(p.default, torch.Tensor)}
    originals = {name: getattr(nn.utils.rnn, name) for name in _PACKING}
    try:  # autowrap covers `from torch.nn.utils.rnn import ...`; this covers `nn.utils.rnn.<name>(...)`
        for name, function in originals.items():
            setattr(nn.utils.rnn, name, _recorded(function))
        return tracer.trace(model, concrete_args=concrete or None)
    finally:
        for name, function in originals.items():
            setattr(nn.utils.rnn, name, function)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:300]


def _detach(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, nn.utils.rnn.PackedSequence):
        return value
    if isinstance(value, tuple):
        return tuple(_detach(v) for v in value)
    return value


def _storage(tensor: torch.Tensor) -> int:
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return id(tensor)


# -- hand-off of final states (RNN107) ---------------------------------------


def _expected_state(module: nn.Module, x) -> tuple[int, ...] | None:
    if isinstance(module, nn.RNNCellBase):
        if isinstance(x, torch.Tensor) and x.dim() == 2:
            return (x.shape[0], module.hidden_size)
        return None
    if isinstance(x, nn.utils.rnn.PackedSequence):
        batch = int(x.batch_sizes[0])
    elif isinstance(x, torch.Tensor) and x.dim() == 3:
        batch = x.shape[0] if module.batch_first else x.shape[1]
    else:
        return None
    return (module.num_layers * directions(module), batch, module.proj_size or module.hidden_size)


def _layout(module: nn.Module) -> str:
    if isinstance(module, nn.RNNCellBase):
        return f"a {kind_name(module)} (one layer, one direction)"
    d = "bidirectional" if module.bidirectional else "one direction"
    return f"{module.num_layers} layer{'s' if module.num_layers != 1 else ''}, {d}"


def _check_handoff(path: str, module: nn.Module, x, hx, finals: dict, probe: Probe) -> None:
    states = hx if isinstance(hx, tuple) else (hx,)
    expected = _expected_state(module, x)
    for state in states:
        if not isinstance(state, torch.Tensor):
            continue
        source = finals.get(_storage(state))
        if source is not None and source[0] == path:
            continue  # a module fed its own state back (truncated BPTT): fine
        origin = ""
        if source is not None:
            origin = f" It is the final state of `{source[0]}` ({describe(source[1])}: {_layout(source[1])})."
        if expected is not None and tuple(state.shape) != expected:
            probe.handoffs.append(Finding(
                "RNN107",
                f"`{path}` ({describe(module)}: {_layout(module)}) receives an initial state of shape "
                f"{list(state.shape)} but needs {list(expected)}.{origin} Reshape or combine the encoder's "
                "final state (e.g. sum or concatenate the two directions and project) before handing it over, "
                "or give both the same num_layers, directions and hidden size.",
                path,
            ))
            return
        if source is not None and tuple(state.shape) == source[2]:
            producer = source[1]
            if (layers_of(producer), directions(producer)) != (layers_of(module), directions(module)):
                probe.handoffs.append(Finding(
                    "RNN107",
                    f"`{path}` ({_layout(module)}) is initialised with the final state of `{source[0]}` "
                    f"({_layout(producer)}) unchanged: the shapes agree, but the slices mean different things "
                    "(per layer and direction), so e.g. a backward-direction state initialises a decoder layer. "
                    "Combine the directions (sum, or concatenate and project) and select the layers the decoder "
                    "expects.",
                    path,
                ))
                return


# -- gate saturation (RNN106) -----------------------------------------------


@dataclass
class Saturation:
    share: float
    parts: dict[str, float]  # gate name -> share saturated


def _sat_sigmoid(values: torch.Tensor) -> torch.Tensor:
    return (values < 0.01) | (values > 0.99)


def _sat_tanh(values: torch.Tensor) -> torch.Tensor:
    return values.abs() > 0.99


def saturation(module: nn.Module, x, hx) -> Saturation | None:
    """Share of saturated gate activations when ``module`` runs on its actual input.

    The fused kernels of ``nn.LSTM``/``nn.GRU`` do not expose their gates, so
    the recurrence is recomputed here from the layer's own weights, layer by
    layer and direction by direction, on the input the probe batch gave it.
    """
    if getattr(module, "proj_size", 0) or (isinstance(module, (nn.RNN, nn.RNNCell)) and module.nonlinearity == "relu"):
        return None
    if isinstance(x, nn.utils.rnn.PackedSequence):
        x, _ = nn.utils.rnn.pad_packed_sequence(x, batch_first=False)
    elif isinstance(x, torch.Tensor) and isinstance(module, nn.RNNBase) and module.batch_first and x.dim() == 3:
        x = x.transpose(0, 1)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return None
    counts: dict[str, list[int]] = {}
    with torch.no_grad():
        if isinstance(module, nn.RNNCellBase):
            if x.dim() == 1:
                x = x.unsqueeze(0)
            weights = (module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh)
            state = hx if hx is not None else None
            _run_layer(module, x.unsqueeze(0).float(), weights, state, counts)
        else:
            if x.dim() == 2:
                x = x.unsqueeze(1)
            h0, c0 = (hx if isinstance(hx, tuple) else (hx, None)) if hx is not None else (None, None)
            layer_input = x.float()
            for layer in range(module.num_layers):
                outputs = []
                for direction in range(directions(module)):
                    suffix = f"_l{layer}" + ("_reverse" if direction else "")
                    weights = tuple(getattr(module, f"{n}{suffix}", None)
                                    for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                    index = layer * directions(module) + direction
                    state = None
                    if h0 is not None:
                        state = (h0[index], c0[index]) if c0 is not None else h0[index]
                    seq = layer_input.flip(0) if direction else layer_input
                    out = _run_layer(module, seq, weights, state, counts)
                    outputs.append(out.flip(0) if direction else out)
                layer_input = torch.cat(outputs, dim=-1)
    total = sum(c[1] for c in counts.values())
    if not total:
        return None
    return Saturation(sum(c[0] for c in counts.values()) / total, {k: c[0] / c[1] for k, c in counts.items()})


def _run_layer(module: nn.Module, seq: torch.Tensor, weights: tuple, state, counts: dict) -> torch.Tensor:
    w_ih, w_hh, b_ih, b_hh = (w.detach().float() if w is not None else None for w in weights)
    hidden = w_hh.shape[1]
    batch = seq.shape[1]
    lstm = isinstance(module, (nn.LSTM, nn.LSTMCell))
    gru = isinstance(module, (nn.GRU, nn.GRUCell))
    if lstm:
        h, c = state if isinstance(state, tuple) else (state, None)
        h = h.float() if h is not None else seq.new_zeros(batch, hidden)
        c = c.float() if c is not None else seq.new_zeros(batch, hidden)
    else:
        h = state.float() if isinstance(state, torch.Tensor) else seq.new_zeros(batch, hidden)
    if h.shape != (batch, hidden):
        raise ValueError("state shape does not fit the layer")

    def tally(name: str, flags: torch.Tensor) -> None:
        entry = counts.setdefault(name, [0, 0])
        entry[0] += int(flags.sum())
        entry[1] += flags.numel()

    outputs = []
    for x_t in seq:
        gi = F.linear(x_t, w_ih, b_ih)
        gh = F.linear(h, w_hh, b_hh)
        if lstm:
            i, f, g, o = (gi + gh).chunk(4, dim=-1)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            for name, gate, test in (("input", i, _sat_sigmoid), ("forget", f, _sat_sigmoid),
                                     ("cell", g, _sat_tanh), ("output", o, _sat_sigmoid)):
                tally(name, test(gate))
            c = f * c + i * g
            h = o * c.tanh()
        elif gru:
            ir, iz, in_ = gi.chunk(3, dim=-1)
            hr, hz, hn = gh.chunk(3, dim=-1)
            r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
            n = (in_ + r * hn).tanh()
            tally("reset", _sat_sigmoid(r))
            tally("update", _sat_sigmoid(z))
            tally("candidate", _sat_tanh(n))
            h = (1 - z) * n + z * h
        else:
            h = (gi + gh).tanh()
            tally("hidden", _sat_tanh(h))
        outputs.append(h)
    return torch.stack(outputs)


# -- recurrent weights (RNN103, RNN104, RNN105) --------------------------------


def recurrent_blocks(module: nn.Module):
    """``(parameter name, gate name, square block)`` for every recurrent weight matrix."""
    gates = {nn.LSTM: ("input", "forget", "cell", "output"), nn.LSTMCell: ("input", "forget", "cell", "output"),
             nn.GRU: ("reset", "update", "candidate"), nn.GRUCell: ("reset", "update", "candidate")}
    names = next((g for t, g in gates.items() if isinstance(module, t)), ("hidden",))
    for name, param in module.named_parameters(recurse=False):
        if not name.startswith("weight_hh"):
            continue
        rows = param.shape[0] // len(names)
        for index, gate in enumerate(names):
            yield name, gate, param.detach()[index * rows:(index + 1) * rows]


def spectral_radius(matrix: torch.Tensor) -> float:
    if matrix.shape[0] != matrix.shape[1]:  # projections (proj_size): use the largest singular value
        return float(torch.linalg.matrix_norm(matrix.double(), ord=2))
    return float(torch.linalg.eigvals(matrix.double()).abs().max())


#: the bound's margin over the rounding of its four products (relative, far above it)
_ROUNDING = 1e-6


def spectral_radius_at_most(matrix: torch.Tensor, limit: float) -> bool:
    """Is the spectral radius of the square ``matrix`` surely no more than ``limit``, without its eigenvalues?

    For every k, ρ(A) <= ||A^k||^(1/k) in any submultiplicative norm (Gelfand), here the Frobenius norm of
    A^16, four squarings: 20 ms for a 512-unit gate block, whose eigenvalues take a third of a second (and an
    LSTM has four per layer). The bound is 1.2 times the radius for an orthogonal block of 512 units, and
    PyTorch's default initialisation sits near 0.6 with the bound near 0.7: far below the 1.5 that RNN103
    reports above, so the eigenvalues are computed only where the answer can be yes. False (compute them)
    for a projection, or where the power overflows or holds NaN.
    """
    if matrix.shape[0] != matrix.shape[1]:
        return False
    power = matrix.double()
    for _ in range(4):
        power = power @ power
    bound = float(torch.linalg.matrix_norm(power)) ** (1 / 16)
    return bound * (1 + _ROUNDING) <= limit  # NaN and inf compare False


def _configured_tensor(spec: dict) -> torch.Tensor:
    shape = [int(s) for s in spec.get("shape", [BATCH, STEPS])]
    dtype = str(spec.get("dtype", "float32"))
    if dtype in ("int64", "long", "int"):
        return torch.randint(int(spec.get("low", 0)), int(spec.get("high", 2)), shape)
    if dtype == "bool":
        return torch.ones(shape, dtype=torch.bool)
    return torch.randn(shape)
