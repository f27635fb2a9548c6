"""The observers behind every front of ``rnnlint watch``: one implementation.

:class:`Watcher` watches a training run from the inside and records *observed*
findings, with the codes of the static rules, at the user's source lines:

- **RNN010** a forward pre-hook on each recurrent module looks at the plain
  tensor it receives: rows (sequences) that end in a run of time steps equal
  to one padding vector (zeros, or the padding embedding), of different
  lengths across the batch, never packed;
- **RNN011** ``pack_padded_sequence`` called with ``lengths`` off the CPU;
- **RNN013** ``cross_entropy`` / ``nll_loss`` (and so ``nn.CrossEntropyLoss`` /
  ``nn.NLLLoss``) whose targets end in a pad value that is not ``ignore_index``;
- **RNN030** a hidden state entering the recurrence whose autograd graph
  reaches a recurrent call made before the last optimizer step (every
  recurrent output is tagged with the step count in its ``grad_fn.metadata``);
- **RNN001 / RNN020** optimizer step hooks: the gradient norm (before
  clipping, when the script clips), its spikes, non-finite gradients and the
  first parameters they appear in, the loss and its divergence; clipping is
  seen by wrapping ``clip_grad_norm_`` / ``clip_grad_value_``;
- **RNN106** saturated gates: sampled recomputation of the gates from the
  layer's own weights (``rnnlint/graph/measure.py``) on a slice of the batch.

Checks on tensors are sampled: every call for the first ``warm`` calls of a
module, then one call in ``every``; each finding is reported once per place.
The cheap checks (a ``grad_fn`` test, one tag per recurrent output, the
gradient norm per step) run on every call. A check that fails on an input it
did not foresee turns itself off: the user's run never fails because of rnnlint.

This module imports only the standard library at import time (torch when a
:class:`Watcher` is built): the child process of ``rnnlint watch`` loads it by
path, as the verifier's bootstrap loads ``rnnlint/sandbox.py``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import sysconfig
import traceback
import warnings
import weakref
from collections import deque

SPIKE_FACTOR = 10.0  # a gradient norm this many times the median of the previous steps is a spike
SPIKE_FLOOR = 1.0  # ... and above this (clipping at 1.0 is the usual remedy)
DIVERGE_FACTOR = 10.0  # a loss this many times its minimum so far diverges
MIN_HISTORY = 5  # steps of history before spikes and divergence are judged
SATURATION_SHARE = 0.25  # RNN106's max-share
SATURATION_EVERY = 100  # one sampled gate recomputation per this many calls of a module (after the first)
SATURATION_BATCH = 8  # sequences of the batch the recomputation looks at
SATURATION_STEPS = 32  # time steps it looks at
GRAPH_WALK = 256  # autograd nodes looked at from one hidden state
STEP_TAG = "rnnlint_step"

# the static rules' names, and their fix messages as templates (the tests check them against the rule pack)
NAMES = {
    "RNN001": "missing-grad-clip", "RNN010": "padded-not-packed", "RNN011": "pack-lengths-on-device",
    "RNN013": "padded-loss-without-ignore-index", "RNN020": "high-learning-rate", "RNN030": "hidden-not-detached",
    "RNN106": "saturated-at-init",
}
FIXES = {
    "RNN001": "Insert clip_grad_norm_(..., max_norm={max_norm}) before step()",
    "RNN010": "Pack the input and unpack the output",
    "RNN011": "Append .cpu() to the lengths",
    "RNN013": "Pass ignore_index={pad}",
    "RNN020": "Set the learning rate to {lr}",
    "RNN030": "Detach {state} at the top of the loop body",
    "RNN106": "Keep PyTorch's default init or use xavier_uniform_ for weight_ih and orthogonal_ for weight_hh, "
              "and normalise the inputs",
}
FIX_DEFAULTS = {"max_norm": "1.0", "pad": "<the pad value>", "lr": "the family's fix value", "state": "the state"}
# RNN020's ceilings and the learning rates its fix writes (its options' defaults): class -> (family, ceiling, fix)
LR_CEILINGS = {
    "Adam": ("Adam", 3e-3, 1e-3), "AdamW": ("Adam", 3e-3, 1e-3), "Adamax": ("Adam", 3e-3, 1e-3),
    "NAdam": ("Adam", 3e-3, 1e-3), "RAdam": ("Adam", 3e-3, 1e-3), "RMSprop": ("RMSprop", 1e-2, 1e-3),
    "SGD": ("SGD", 1.0, 0.1),
}


def fix_text(code: str, **values) -> str:
    """The static rule's fix message for ``code``, filled with what was observed."""
    return FIXES[code].format(**{**FIX_DEFAULTS, **{k: str(v) for k, v in values.items()}})




class ObservedFinding(UserWarning):
    """The warning an in-process watcher issues for each finding (``warnings`` filters apply)."""


def _load_by_path(name: str, path: str):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _library_dirs() -> tuple[str, ...]:
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(os.path.realpath(sysconfig.get_path(key)))
        except (KeyError, TypeError):
            continue
    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # rnnlint itself
    dirs.add(here)
    return tuple(os.path.join(d, "") for d in dirs)


class Sampler:
    """Calls ``1..warm`` and then every ``every``-th call are due."""

    def __init__(self, warm: int, every: int) -> None:
        self.warm = warm
        self.every = max(1, every)
        self.count = 0

    def due(self) -> bool:
        self.count += 1
        return self.count <= self.warm or self.count % self.every == 0


class Watcher:
    """Observe a training run; one instance per run.

    ``model`` and ``optimizers`` (one optimizer or a list) limit the hooks to
    them; without a model every recurrent module built after :meth:`attach`
    is watched (the child process of ``rnnlint watch`` works so, and records
    where each module is built), and without an optimizer the first one that
    steps is. ``roots`` are the folders of the user's own files (call sites are
    the first frame in them); by default every file outside the standard
    library, site-packages and rnnlint. ``on_finding`` is called with each new
    finding (a dict); ``warn`` also issues an :class:`ObservedFinding` warning.
    """

    def __init__(self, model=None, optimizers=None, *, roots=None, warm: int = 20, every: int = 10,
                 on_finding=None, warn: bool = True, torch=None) -> None:
        if torch is None:
            import torch
        self.torch = torch
        self.model = model
        if optimizers is not None and not isinstance(optimizers, (list, tuple)):
            optimizers = [optimizers]
        self.optimizers = list(optimizers) if optimizers is not None else None
        self.roots = tuple(os.path.join(os.path.realpath(r), "") for r in roots) if roots else None
        self._libraries = _library_dirs()
        self._user_files: dict[str, bool] = {}  # code filename -> in the user's files
        self.warm, self.every = warm, every
        self.on_finding = on_finding
        self.warn = warn
        self.findings: list[dict] = []
        self._reported: set = set()
        self._disabled: set[str] = set()  # checks that failed on an unforeseen input
        self._handles: list = []
        self._patched: list = []
        self._modules: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # module -> its state
        self._roots: list = []  # the models whose forward ran a watched module (see _note_root)
        self._origins: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # module/optimizer -> (file, line)
        self._loss_sampler = Sampler(warm, every)
        self._measure = None
        self.attached = False
        # per-step measurements
        self.primary = None
        self._deferred = False
        self._scaled = None  # (id of the loss GradScaler.scale returned, the unscaled loss)
        self.steps = 0
        self.clip_seen = False
        self._preclip = None
        self._loss = None
        self.norms: deque = deque(maxlen=50)
        self.losses: list[float] = []  # sampled: the first ``warm`` steps, then every ``every``-th
        self.loss_min = None
        self.grad_norm_max = None
        self.grad_norm_max_step = None
        self.first_nonfinite = None  # {"step", "what", "parameters": [...], "module": ...}
        self.saturation_max = None

    # -- attaching -----------------------------------------------------------------

    def attach(self) -> "Watcher":
        if self.attached:
            return self
        torch = self.torch
        nn = torch.nn
        if self.optimizers:
            for optimizer in self.optimizers:
                self._handles.append(optimizer.register_step_pre_hook(self._pre_step))
                self._handles.append(optimizer.register_step_post_hook(self._post_step))
        else:
            from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

            self._handles.append(register_optimizer_step_pre_hook(self._pre_step))
            self._handles.append(register_optimizer_step_post_hook(self._post_step))
            self._patch_init(torch.optim.Optimizer, self._origins)
        if self.model is not None:
            for name, module in self.model.named_modules():
                if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
                    self._watch_module(module, name)
        else:
            for cls in (nn.RNNBase, nn.RNNCellBase):
                self._patch_init(cls, self._origins, watch=True)
        self._patch_functions()
        self.attached = True
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self._patched.clear()
        for state in self._modules.values():
            state["hooked"] = False
        self.attached = False

    close = detach

    def __enter__(self) -> "Watcher":
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _patch(self, owner, name: str, value) -> None:
        self._patched.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _patch_init(self, cls, origins, watch: bool = False) -> None:
        """Record where each instance is built (first frame in the user's files); watch new recurrent modules."""
        original = cls.__init__
        watcher = self

        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            try:
                if self not in origins:
                    origins[self] = watcher.user_frame()
                if watch:
                    watcher._watch_module(self, None)
            except Exception:  # never fail the user's constructor
                pass

        self._patch(cls, "__init__", __init__)

    def _patch_functions(self) -> None:
        torch = self.torch
        functional = torch.nn.functional
        watcher = self

        for name, index in (("cross_entropy", 4), ("nll_loss", 4)):
            original = getattr(functional, name)

            def loss(input, target, *args, _original=original, _name=name, _index=index, **kwargs):
                if watcher._loss_sampler.due() and "RNN013" not in watcher._disabled:
                    ignore = kwargs.get("ignore_index", args[_index - 2] if len(args) > _index - 2 else -100)
                    reduction = kwargs.get("reduction", args[_index] if len(args) > _index else "mean")
                    watcher._guarded("RNN013", watcher._check_loss, _name, target, ignore, reduction)
                return _original(input, target, *args, **kwargs)

            self._patch(functional, name, loss)

        rnn_utils = torch.nn.utils.rnn
        original_pack = rnn_utils.pack_padded_sequence

        def pack_padded_sequence(input, lengths, *args, **kwargs):
            if "RNN011" not in watcher._disabled:
                watcher._guarded("RNN011", watcher._check_lengths, lengths)
            return original_pack(input, lengths, *args, **kwargs)

        self._patch(rnn_utils, "pack_padded_sequence", pack_padded_sequence)

        clip = torch.nn.utils.clip_grad
        original_norm, original_value = clip.clip_grad_norm_, clip.clip_grad_value_

        def clip_grad_norm_(parameters, *args, **kwargs):
            watcher.clip_seen = True
            total = original_norm(parameters, *args, **kwargs)
            try:
                norm = float(total)
                watcher._preclip = norm if watcher._preclip is None else math.hypot(watcher._preclip, norm)
            except (TypeError, ValueError, RuntimeError):
                pass
            return total

        def clip_grad_value_(parameters, *args, **kwargs):
            watcher.clip_seen = True
            return original_value(parameters, *args, **kwargs)

        for owner in (clip, torch.nn.utils):
            self._patch(owner, "clip_grad_norm_", clip_grad_norm_)
            self._patch(owner, "clip_grad_value_", clip_grad_value_)
        if hasattr(clip, "_clip_grads_with_norm_"):  # a clip_grad_norm_ imported before attach() still calls it
            original_inner = clip._clip_grads_with_norm_

            def _clip_grads_with_norm_(*args, **kwargs):
                watcher.clip_seen = True
                return original_inner(*args, **kwargs)

            self._patch(clip, "_clip_grads_with_norm_", _clip_grads_with_norm_)

        original_backward = torch.autograd.backward

        def backward(tensors, *args, **kwargs):
            first = tensors[0] if isinstance(tensors, (list, tuple)) and len(tensors) == 1 else tensors
            if isinstance(first, torch.Tensor) and first.numel() == 1:
                scaled = watcher._scaled
                watcher._loss = scaled[1] if scaled is not None and scaled[0] == id(first) else first.detach()
            return original_backward(tensors, *args, **kwargs)

        self._patch(torch.autograd, "backward", backward)

        scalers = {getattr(getattr(torch, "amp", None), "GradScaler", None),
                   getattr(getattr(torch.cuda, "amp", None), "GradScaler", None)}
        for cls in scalers:
            if cls is None or "scale" not in cls.__dict__:
                continue

            def scale(self, outputs, _original=cls.__dict__["scale"]):
                scaled = _original(self, outputs)  # under AMP the loss is judged unscaled
                if isinstance(outputs, torch.Tensor) and isinstance(scaled, torch.Tensor):
                    watcher._scaled = (id(scaled), outputs.detach())
                return scaled

            self._patch(cls, "scale", scale)

    def _watch_module(self, module, name: str | None) -> None:
        state = self._modules.get(module)
        if state is None:  # kept across detach() and attach(): the samplers go on counting
            state = self._modules[module] = {"name": name, "sampler": Sampler(self.warm, self.every),
                                             "saturation": Sampler(3, SATURATION_EVERY)}
        elif state["hooked"]:
            return
        state["hooked"] = True
        self._handles.append(module.register_forward_pre_hook(self._rnn_pre, with_kwargs=True))
        self._handles.append(module.register_forward_hook(self._rnn_post, with_kwargs=True))

    # -- where ---------------------------------------------------------------------

    def is_user_file(self, filename: str) -> bool:
        known = self._user_files.get(filename)
        if known is not None:
            return known
        if not filename or filename.startswith("<"):
            mine = False
        else:
            path = os.path.realpath(filename)
            mine = not path.startswith(self._libraries) and (self.roots is None or path.startswith(self.roots))
        self._user_files[filename] = mine
        return mine

    def user_frame(self) -> dict | None:
        """The innermost frame of the current stack in the user's files: ``{"file", "line", "function"}``."""
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if self.is_user_file(code.co_filename):
                return {"file": os.path.realpath(code.co_filename), "line": frame.f_lineno,
                        "function": code.co_name}
            frame = frame.f_back
        return None

    def module_info(self, module) -> dict:
        state = self._modules.get(module) or {}
        if state and state.get("name") is None:
            state["name"] = self._module_name(module)
        info = {"class": type(module).__name__, "name": state.get("name"), "describe": _describe(module)}
        origin = self._origins.get(module) or _construction_line(self.model, module, state.get("name"))
        if origin:
            info["file"], info["line"] = origin["file"], origin["line"]
        return info

    # -- reporting -------------------------------------------------------------------

    def _report(self, code: str, key, message: str, *, module=None, site=None, fix: dict | None = None,
                **details) -> None:
        if (code, key) in self._reported:
            return
        self._reported.add((code, key))
        finding = {"code": code, "name": NAMES[code], "step": self.steps + 1, "message": message,
                   "fix": fix_text(code, **(fix or {})), "observed": True, "site": site or self.user_frame()}
        if module is not None:
            finding["module"] = self.module_info(module)
        if details:
            finding["details"] = details
        self.findings.append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)
        if self.warn:
            where = finding["site"] or finding.get("module") or {}
            place = f"{where['file']}:{where['line']}: " if where.get("file") else ""
            warnings.warn(f"{place}{code} (observed at step {finding['step']}) {message}", ObservedFinding,
                          stacklevel=2)

    def _guarded(self, check: str, function, *args) -> None:
        """Run one check; one that raises on an input it did not foresee is turned off, never the run."""
        try:
            function(*args)
        except Exception:
            self._disabled.add(check)
            if os.environ.get("RNNLINT_WATCH_DEBUG"):
                traceback.print_exc()

    # -- recurrent modules -----------------------------------------------------------------

    def _rnn_pre(self, module, args, kwargs):
        state = self._modules.get(module)
        if state is None:
            return None
        if not state.get("rooted"):
            state["rooted"] = True
            self._note_root(module)
        x = args[0] if args else kwargs.get("input")
        hx = args[1] if len(args) > 1 else kwargs.get("hx")
        if hx is not None and "RNN030" not in self._disabled:
            self._guarded("RNN030", self._check_carried, module, hx)
        if state["sampler"].due() and "RNN010" not in self._disabled:
            self._guarded("RNN010", self._check_padding, module, x)
        return None

    def _rnn_post(self, module, args, kwargs, output):
        torch = self.torch
        tensors = output if isinstance(output, tuple) else (output,)
        for value in tensors:
            for tensor in (value if isinstance(value, tuple) else (value,)):
                grad_fn = getattr(tensor, "grad_fn", None)
                if grad_fn is not None:
                    grad_fn.metadata[STEP_TAG] = self.steps
        state = self._modules.get(module)
        if (state is not None and torch.is_grad_enabled() and module.training and "RNN106" not in self._disabled
                and state["saturation"].due()):
            x = args[0] if args else kwargs.get("input")
            hx = args[1] if len(args) > 1 else kwargs.get("hx")
            self._guarded("RNN106", self._check_saturation, module, x, hx)
        return None

    def _check_carried(self, module, hx) -> None:
        """RNN030: does the state's graph reach a recurrent call made before the last optimizer step?"""
        tensors = hx if isinstance(hx, (tuple, list)) else (hx,)
        roots = [t.grad_fn for t in tensors if getattr(t, "grad_fn", None) is not None]
        if not roots or self.steps == 0:
            return
        seen, queue, found = set(), deque(roots), None
        while queue and len(seen) < GRAPH_WALK:
            node = queue.popleft()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            tag = node.metadata.get(STEP_TAG) if _has_metadata(node) else None
            if tag is not None:
                if tag < self.steps:
                    found = tag
                    break
                continue  # this batch's own recurrence (a decoder stepping in time): fine
            queue.extend(next_node for next_node, _ in node.next_functions)
        if found is None:
            return
        self._report(
            "RNN030", id(module),
            f"the hidden state entering {_describe(module)} at step {self.steps + 1} is still attached to the "
            f"autograd graph of an earlier batch (its grad_fn leads back into the recurrence run before optimizer "
            f"step {found + 1}): backward() reaches into the previous batches' graph, which fails with "
            f"'Trying to backward through the graph a second time' or makes memory and step time grow with every "
            f"batch; detach the state at the top of the loop (truncated BPTT)",
            module=module, state_from_step=found + 1)

    def _check_padding(self, module, x) -> None:
        """RNN010: a plain tensor whose sequences end in padding of different lengths."""
        torch = self.torch
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or not x.is_floating_point():
            return  # a PackedSequence, an unbatched input, or something else
        batch_first = getattr(module, "batch_first", False) if isinstance(module, torch.nn.RNNBase) else False
        with torch.no_grad():
            seq = x if batch_first else x.transpose(0, 1)  # (batch, time, features)
            found = _trailing_padding(torch, seq, vectors=True)
        if found is None:
            return
        pads, lengths, zero = found
        pad = "all-zero time steps" if zero else "a repeated padding vector (the padding embedding)"
        lo, hi = min(lengths), max(lengths)
        self._report(
            "RNN010", id(module),
            f"{_describe(module)} received a padded batch as a plain tensor: {pads} of its {len(lengths)} sequences "
            f"end in {pad}, real lengths {lo} to {hi} of {seq.shape[1]} time steps; the padded steps run through "
            f"the recurrence and corrupt the final hidden state; pack it with pack_padded_sequence(x, "
            f"lengths.cpu(), batch_first={batch_first}, enforce_sorted=False)",
            module=module, lengths=[lo, hi], time_steps=int(seq.shape[1]), padded_sequences=pads,
            padding="zeros" if zero else "vector")

    def _check_saturation(self, module, x, hx) -> None:
        """RNN106: share of saturated gate activations, recomputed on a slice of the batch."""
        torch = self.torch
        if self._measure is None:
            path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "graph", "measure.py")
            self._measure = _load_by_path("_rnnlint_measure", path)
        nn = torch.nn
        if isinstance(x, nn.utils.rnn.PackedSequence):
            x, _ = nn.utils.rnn.pad_packed_sequence(x, batch_first=getattr(module, "batch_first", False))
        if not isinstance(x, torch.Tensor):
            return
        if isinstance(module, nn.RNNBase) and x.dim() == 3:
            batch_dim = 0 if module.batch_first else 1
            x = x.narrow(batch_dim, 0, min(SATURATION_BATCH, x.shape[batch_dim]))
            x = x.narrow(1 - batch_dim, 0, min(SATURATION_STEPS, x.shape[1 - batch_dim]))
            if hx is not None:
                hx = tuple(h[:, :SATURATION_BATCH] for h in hx) if isinstance(hx, tuple) else hx[:, :SATURATION_BATCH]
        elif x.dim() == 2:
            x = x[:SATURATION_BATCH]
            if hx is not None:
                hx = tuple(h[:SATURATION_BATCH] for h in hx) if isinstance(hx, tuple) else hx[:SATURATION_BATCH]
        measured = self._measure.saturation(module, x, hx)
        if measured is None:
            return
        if self.saturation_max is None or measured.share > self.saturation_max:
            self.saturation_max = measured.share
        if measured.share <= SATURATION_SHARE or self.steps == 0:
            return  # at step 0 it is the graph stage's RNN106 (at init); here: during training
        parts = ", ".join(f"{gate} {share:.0%}" for gate, share in measured.parts.items())
        self._report(
            "RNN106", id(module),
            f"{_describe(module)}: {measured.share:.0%} of its gate activations are saturated during training "
            f"(sampled at step {self.steps + 1}: {parts}); saturated gates pass almost no gradient, so these "
            f"units barely learn. Keep PyTorch's default init or use xavier_uniform_ for weight_ih and "
            f"orthogonal_ for weight_hh, and normalise the inputs",
            module=module, share=round(measured.share, 4),
            gates={gate: round(share, 4) for gate, share in measured.parts.items()})

    # -- losses and packing ------------------------------------------------------------------

    def _check_loss(self, name: str, target, ignore_index, reduction) -> None:
        """RNN013: integer targets that end in a pad value the loss does not ignore."""
        torch = self.torch
        if reduction == "none" or not isinstance(target, torch.Tensor) or target.is_floating_point():
            return  # reduction="none": the script masks the loss itself
        if target.dim() == 1:
            base = target._base
            if base is None or base.dim() != 2 or base.numel() != target.numel() or base.is_floating_point():
                return
            target = base  # targets.view(-1) of a (batch, time) tensor
        if target.dim() != 2:
            return
        with torch.no_grad():
            found = _trailing_padding(torch, target, vectors=False)
        if found is None:
            return
        pads, lengths, pad_value = found
        if pad_value == ignore_index:
            return
        lo, hi = min(lengths), max(lengths)
        ignored = f"ignore_index={ignore_index}" + (" (the default)" if ignore_index == -100 else "")
        self._report(
            "RNN013", ("loss", self._site_key()),
            f"{name}(...) is computed over targets padded with {pad_value} ({pads} of {len(lengths)} sequences end "
            f"in it, real lengths {lo} to {hi} of {target.shape[1]}) and has {ignored}: every padding position is "
            f"trained as a target of class {pad_value}, so the model learns to predict padding and the loss is "
            f"dominated by it; pass ignore_index={pad_value} (or mask the loss)",
            fix={"pad": pad_value}, pad=pad_value, ignore_index=ignore_index, lengths=[lo, hi])

    def _site_key(self):
        site = self.user_frame()
        return (site["file"], site["line"]) if site else None

    def _check_lengths(self, lengths) -> None:
        """RNN011: ``pack_padded_sequence`` needs its lengths on the CPU."""
        torch = self.torch
        if not isinstance(lengths, torch.Tensor) or lengths.device.type == "cpu":
            return
        self._report(
            "RNN011", ("pack", self._site_key()),
            f"the lengths passed to pack_padded_sequence are on {lengths.device} ({lengths.dtype}): it needs a 1-D "
            f"CPU int64 tensor and raises RuntimeError; pass lengths.cpu()",
            device=str(lengths.device))

    # -- optimizer steps -----------------------------------------------------------------

    def _pre_step(self, optimizer, args, kwargs) -> None:
        if self.primary is None:
            self.primary = optimizer
        if optimizer is not self.primary:
            return
        if any(callable(a) for a in args) or callable(kwargs.get("closure")):  # args[0] is the optimizer
            self._deferred = True  # step(closure) (Lightning): forward and backward run inside the step
            return
        self._judge_guarded(optimizer)

    def _post_step(self, optimizer, args, kwargs) -> None:
        if optimizer is not self.primary:
            return
        if self._deferred:
            self._deferred = False
            self._judge_guarded(optimizer)
        self.steps += 1

    def _judge_guarded(self, optimizer) -> None:
        try:
            self._judge_step(optimizer)
        except Exception:
            self._disabled.add("steps")
            if os.environ.get("RNNLINT_WATCH_DEBUG"):
                traceback.print_exc()
        finally:
            self._preclip = None
            self._loss = None

    def _judge_step(self, optimizer) -> None:
        if "steps" in self._disabled:
            return
        step = self.steps + 1
        norm = self._preclip if self._preclip is not None else self._grad_norm(optimizer)
        loss = float(self._loss) if self._loss is not None else None
        if loss is not None and (step <= self.warm or step % self.every == 0):
            self.losses.append(loss)
        if norm is not None and math.isfinite(norm) and (self.grad_norm_max is None or norm > self.grad_norm_max):
            self.grad_norm_max, self.grad_norm_max_step = norm, step
        nonfinite_grad = norm is not None and not math.isfinite(norm)
        nonfinite_loss = loss is not None and not math.isfinite(loss)
        if (nonfinite_grad or nonfinite_loss) and self.first_nonfinite is None:
            parameters = self._nonfinite_parameters(optimizer) if nonfinite_grad else []
            what = "loss" if nonfinite_loss and not parameters else "gradient"
            if nonfinite_grad and not parameters:
                what = "gradient norm (every gradient is finite, their norm overflowed)"
            self.first_nonfinite = {"step": step, "what": what, "parameters": parameters}
        spike = None
        if norm is not None and math.isfinite(norm) and len(self.norms) >= MIN_HISTORY:
            median = sorted(self.norms)[len(self.norms) // 2]
            if norm > max(SPIKE_FACTOR * median, SPIKE_FLOOR):
                spike = (norm, median)
        diverged = None
        if loss is not None and math.isfinite(loss) and self.loss_min is not None and len(self.norms) >= MIN_HISTORY:
            if loss > DIVERGE_FACTOR * max(self.loss_min, 1e-8) and loss > self.losses[0]:
                diverged = (loss, self.loss_min)
        if norm is not None and math.isfinite(norm):
            self.norms.append(norm)
        if loss is not None and math.isfinite(loss):
            self.loss_min = loss if self.loss_min is None else min(self.loss_min, loss)
        if not (spike or nonfinite_grad or nonfinite_loss or diverged):
            return
        site = self.user_frame()
        if (spike or nonfinite_grad) and not self.clip_seen:
            if nonfinite_grad:
                first = self.first_nonfinite.get("parameters") or []
                where = f" (first in {', '.join(first[:3])})" if first else ""
                what = (f"the gradients became non-finite (NaN/Inf) at step {step}{where}" if first else
                        f"the gradient norm became non-finite at step {step}")
            else:
                what = (f"the gradient norm jumped to {spike[0]:.3g} at step {step} (median of the previous steps "
                        f"{spike[1]:.3g})")
            self._report(
                "RNN001", ("step", id(optimizer)),
                f"{what} and no gradient clipping ran before optimizer.step(): gradients of a recurrent network can "
                f"explode through time (one large step turns the loss into NaN); insert "
                f"clip_grad_norm_(..., max_norm=1.0) between backward() and step()",
                site=site, grad_norm=norm if norm is None or math.isfinite(norm) else str(norm),
                **({"median_before": spike[1]} if spike else {}))
        if diverged or nonfinite_loss or nonfinite_grad or spike:
            self._judge_lr(optimizer, step, site, diverged, nonfinite_loss or nonfinite_grad, spike)

    def _judge_lr(self, optimizer, step, site, diverged, nonfinite, spike) -> None:
        cls = type(optimizer).__name__
        if cls not in LR_CEILINGS or not optimizer.param_groups:
            return
        family, ceiling, recommended = LR_CEILINGS[cls]
        lr = optimizer.param_groups[0].get("lr")
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            return
        if lr <= ceiling:
            return
        if nonfinite:
            what = f"the loss or gradients became non-finite at step {step}"
        elif diverged:
            what = f"the loss diverged to {diverged[0]:.4g} at step {step} (its minimum so far {diverged[1]:.4g})"
        else:
            what = f"the gradient norm jumped to {spike[0]:.3g} at step {step}"
        origin = self._origins.get(optimizer)
        self._report(
            "RNN020", ("lr", id(optimizer)),
            f"{cls} runs with lr={lr:g}, above {ceiling:g}, the ceiling for {family} optimizers on recurrent "
            f"models, and {what}: updates are amplified through every time step and the loss diverges; use "
            f"lr={recommended:g} or lower",
            site=origin or site, fix={"lr": f"{recommended:g}"}, lr=lr, ceiling=ceiling, optimizer=cls)

    def _grad_norm(self, optimizer) -> float | None:
        torch = self.torch
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        grads = [g for g in grads if not g.is_sparse]
        if not grads:
            return None
        with torch.no_grad():
            if all(g.dtype == grads[0].dtype and g.device == grads[0].device for g in grads) and \
                    grads[0].dtype in (torch.float32, torch.float64):
                norms = torch._foreach_norm(grads)
            else:
                norms = [torch.linalg.vector_norm(g, dtype=torch.float32).to(grads[0].device) for g in grads]
            return float(torch.linalg.vector_norm(torch.stack(norms)))

    def _nonfinite_parameters(self, optimizer) -> list[str]:
        torch = self.torch
        names = self._parameter_names()
        found = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    found.append(names.get(id(p), f"a parameter of shape {tuple(p.shape)}"))
        return found

    def _note_root(self, module) -> None:
        """Remember the outermost module on the stack that called this recurrent module: the model.

        Read from the frames (``self`` of each ``forward`` up the stack) the first time the module runs,
        so that findings can name ``Model.encoder.rnn`` without a search of every object (``gc``, which
        the child's guard refuses: it would reach the guard itself).
        """
        frame = sys._getframe(1)
        outer = None
        while frame is not None:
            owner = frame.f_locals.get("self") if frame.f_code.co_name in ("forward", "_call_impl") else None
            if isinstance(owner, self.torch.nn.Module):
                outer = owner
            frame = frame.f_back
        if outer is not None and all(outer is not r for r in self._roots):
            self._roots.append(outer)

    def _module_name(self, module) -> str | None:
        """``Model.encoder.rnn`` for a module built without a model handed over (once per finding)."""
        for root in _root_modules(self.torch, list(self._roots)):
            for name, child in root.named_modules():
                if child is module and name:
                    return f"{type(root).__name__}.{name}"
        return None

    def _parameter_names(self) -> dict[int, str]:
        """id(parameter) -> a readable name: ``Model.rnn.weight_hh_l0`` (the model's, or every module's found)."""
        torch = self.torch
        if self.model is not None:
            label = type(self.model).__name__
            return {id(p): f"{label}.{n}" for n, p in self.model.named_parameters()}
        names: dict[int, str] = {}  # the child's run: the model was never handed over; once, on the first NaN
        for root in _root_modules(torch, list(self._roots)):
            label = type(root).__name__
            for n, p in root.named_parameters():
                names.setdefault(id(p), f"{label}.{n}")
        return names

    # -- summary ---------------------------------------------------------------------------

    def measured(self) -> dict:
        return {
            "steps": self.steps,
            "grad_norm_max": self.grad_norm_max,
            "grad_norm_max_step": self.grad_norm_max_step,
            "loss_first": self.losses[0] if self.losses else None,
            "loss_last": self.losses[-1] if self.losses else None,
            "loss_min": self.loss_min,
            "first_nonfinite": self.first_nonfinite,
            "clipping_seen": self.clip_seen,
            "saturation_max": self.saturation_max,
            "checks_disabled": sorted(self._disabled),
        }


def _root_modules(torch, objects) -> list:
    """The modules of ``objects`` that are no other module's child: the models."""
    modules = [o for o in objects if isinstance(o, torch.nn.Module)]
    children = {id(c) for m in modules for c in m.children()}
    return [m for m in modules if id(m) not in children]


def _has_metadata(node) -> bool:
    return hasattr(node, "metadata")


def _describe(module) -> str:
    cls = type(module).__name__
    size = getattr(module, "hidden_size", None)
    layers = getattr(module, "num_layers", 1)
    parts = [f"{getattr(module, 'input_size', '?')} -> {size}"] if size is not None else []
    if layers and layers > 1:
        parts.append(f"{layers} layers")
    if getattr(module, "batch_first", False):
        parts.append("batch_first")
    return f"{cls}({', '.join(parts)})" if parts else cls


def _construction_line(model, module, name: str | None) -> dict | None:
    """Where ``module`` is assigned in its parent's ``__init__`` (``self.<attr> = ...``), found in the source."""
    if model is None or not name:
        return None
    import inspect
    import re

    parent_name, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name) if parent_name else model
        lines, start = inspect.getsourcelines(type(parent).__init__)
        filename = inspect.getsourcefile(type(parent).__init__)
    except (OSError, TypeError, AttributeError):
        return None
    pattern = re.compile(rf"\bself\.{re.escape(attr)}\s*(:[^=]*)?=(?!=)")
    for offset, text in enumerate(lines):
        if pattern.search(text):
            return {"file": os.path.realpath(filename), "line": start + offset}
    return None


def _trailing_padding(torch, seq, *, vectors: bool):
    """Padding at the end of each row of ``seq`` (batch, time[, features]), or None.

    The padding is the value (or vector) that the row with the longest trailing
    run of one repeated value ends in; it counts as padding when it occurs only in
    trailing runs, at least two time steps long somewhere, in at least two rows
    (or one row, when it is all zeros), and the runs differ in length across the
    batch. Returns ``(padded rows, real lengths, zero or the pad value)``.
    """
    batch, time = seq.shape[0], seq.shape[1]
    if batch < 2 or time < 3:
        return None
    last = seq[:, -1]
    if vectors:
        same_as_last = (seq == last[:, None]).all(-1)
    else:
        same_as_last = seq == last[:, None]
    runs = same_as_last.flip(1).int().cumprod(1).sum(1)
    row = int(runs.argmax())
    if int(runs[row]) < 2:
        return None
    pad = last[row]
    is_pad = (seq == pad).all(-1) if vectors else seq == pad
    trailing = is_pad.flip(1).int().cumprod(1).sum(1)
    if not bool((is_pad.sum(1) == trailing).all()):
        return None  # the "padding" also occurs inside a sequence: real data
    counts = [int(k) for k in trailing.tolist()]
    padded = sum(1 for k in counts if k > 0)
    zero = bool((pad == 0).all()) if vectors else None
    if len(set(counts)) < 2:
        return None  # every sequence padded alike: nothing a pack would change
    if padded < 2 and not (vectors and zero):
        return None  # one sequence ending in a repeated value: as likely real data
    lengths = [time - k for k in counts]
    return padded, lengths, zero if vectors else pad.item()
