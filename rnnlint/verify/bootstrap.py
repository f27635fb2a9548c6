"""Run one training script under measurement, in a child process.

    python -m rnnlint.verify.bootstrap CONFIG.json      (or: python path/to/bootstrap.py CONFIG.json)

The parent (:mod:`rnnlint.verify.trial`) writes the config: the script, its
arguments, the seed, the number of optimizer steps, the device and the time
limit, and where to write events. This module imports nothing from rnnlint, so
the child stays small and a copy of rnnlint inside the user's project cannot
shadow it; it loads ``rnnlint/sandbox.py`` by path for the guard that refuses
writes into the user's project while the script runs.

Nothing in the user's code is edited. Measurement comes from global hooks:

- optimizer step pre/post hooks: total gradient norm, non-finite gradients,
  parameter norm, and the step count that ends the trial;
- ``torch.autograd.backward`` (which ``Tensor.backward`` calls): the loss value,
  unscaled when it went through ``GradScaler.scale``;
- ``clip_grad_norm_`` / ``clip_grad_value_``: each parameter's gradient norm
  *before the first clip that touches it* in this step, so a clipped run
  reports the gradients the model really produced, and two clip calls over
  the same parameters do not count them twice;
- a training loop with no optimizer object (``p.data.add_(p.grad, alpha=-lr)``
  by hand): a step is a change of the weights between one ``backward()`` and
  the next; the weights that received gradients are compared with a copy
  taken right after the backward, and the size of the update is recorded.
- a global module forward hook: the share of saturated units in the outputs of
  recurrent modules and of ``Tanh`` / ``Sigmoid`` / ``Hardtanh`` layers.

The trial ends with :class:`TrialStop`, a ``BaseException``: the script's own
``except Exception`` cannot swallow it. Events are written as JSON lines, one
per optimizer step, flushed, so the parent can show progress and still has the
steps done when it has to kill a hung child.
"""

from __future__ import annotations

import gc
import json
import math
import os
import random
import resource
import signal
import sys
import time
import traceback
import warnings

SATURATION_THRESHOLD = 0.99  # |tanh| above, or sigmoid within 0.01 of 0 or 1
MAX_LOSSES_PER_STEP = 256  # gradient accumulation: average at most this many backward losses


class TrialStop(BaseException):
    """Ends the trial; not an Exception, so ``except Exception`` in the script lets it through."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Recorder:
    def __init__(self, torch, config: dict) -> None:
        self.torch = torch
        self.max_steps = int(config["steps"])
        self.out = open(config["events"], "a", encoding="utf-8", buffering=1)
        self.steps = 0
        self.primary = None  # the first optimizer that steps: its steps are counted
        self.pending_losses: list = []
        self.scaled: tuple[int, object] | None = None  # (id of scaled loss, unscaled loss)
        self.preclip: dict[int, float] = {}  # id(parameter) -> squared grad norm before its first clip since backward
        self.seen: dict[int, object] = {}  # parameters of modules that ran forward (for a loop with no optimizer)
        self.snapshot: list | None = None  # (parameter, copy) right after the last backward, no optimizer yet
        self.snapshot_grad_sq = 0.0
        self.extra_sq = 0.0  # squared gradient norms of other optimizers since the last step
        self.extra_nonfinite = False
        self.saturated: list = []  # (count tensor, numel) since the last step
        self.device: str | None = None
        self.grad_norm = 0.0
        self._kinds: dict[type, str | None] = {}
        self.guard = None  # rnnlint.sandbox.Guard, once installed

    # -- writing -------------------------------------------------------------

    def emit(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")

    # -- loss ----------------------------------------------------------------

    def note_loss(self, tensor) -> None:
        torch = self.torch
        if not isinstance(tensor, torch.Tensor) or tensor.numel() != 1:
            return
        if self.scaled is not None and self.scaled[0] == id(tensor):
            tensor = self.scaled[1]
        if len(self.pending_losses) < MAX_LOSSES_PER_STEP:
            self.pending_losses.append(tensor.detach())

    # -- gradient norms ------------------------------------------------------

    def norms(self, tensors):
        """One 2-norm per tensor (a tensor on the first one's device), in float32 or wider (fp16 would overflow)."""
        torch = self.torch
        tensors = [t.coalesce()._values() if t.is_sparse else t for t in tensors]
        first = tensors[0]
        with torch.no_grad():
            if first.dtype in (torch.float32, torch.float64) and all(
                t.device == first.device and t.dtype == first.dtype for t in tensors
            ):
                return torch.stack(torch._foreach_norm(tensors))  # one fused kernel per device
            return torch.stack([torch.linalg.vector_norm(t, dtype=torch.float32).to(first.device) for t in tensors])

    def total_norm(self, tensors) -> float:
        """The 2-norm of all ``tensors`` together."""
        tensors = list(tensors)
        if not tensors:
            return 0.0
        return float(self.torch.linalg.vector_norm(self.norms(tensors)))

    def measure(self, parameters, into: dict) -> None:
        """Each parameter's squared gradient norm, for those not yet in ``into``."""
        fresh = [p for p in parameters if p.grad is not None and id(p) not in into]
        if fresh:
            for p, norm in zip(fresh, self.norms([p.grad for p in fresh]).tolist()):
                into[id(p)] = norm * norm

    def note_preclip(self, parameters) -> None:
        """Before a clip: the gradient norm of each parameter that no clip has touched since the backward."""
        self.measure(parameters, self.preclip)

    def grad_sq(self, parameters) -> float:
        """Squared total gradient norm of ``parameters``, each measured before it was first clipped.

        Summed per parameter in their order whether or not a clip measured it, so a
        clip that changes nothing leaves the number unchanged to the last bit.
        """
        measured = dict(self.preclip)
        self.measure(parameters, measured)
        return sum(measured[id(p)] for p in parameters if id(p) in measured)

    @staticmethod
    def parameters(optimizer) -> list:
        return [p for group in optimizer.param_groups for p in group["params"]]

    def pre_step(self, optimizer, args, kwargs) -> None:
        if self.primary is None:
            self.primary = optimizer
            self.snapshot, self.seen = None, {}  # an optimizer steps: its steps are counted, not weight changes
        sq = self.grad_sq(self.parameters(optimizer))
        if optimizer is not self.primary:
            self.extra_sq += sq
            self.extra_nonfinite = self.extra_nonfinite or not math.isfinite(sq)
            return
        self.grad_norm = math.sqrt(sq)
        if self.device is None:
            params = self.parameters(optimizer)
            self.device = str(params[0].device) if params else None

    def post_step(self, optimizer, args, kwargs) -> None:
        if optimizer is not self.primary:
            return
        self.record(self.grad_norm, self.total_norm(self.parameters(optimizer)))

    # -- a loop without an optimizer: weight changes between backward() calls ------------

    def before_backward(self) -> None:
        """A new backward: if the weights changed since the last one, that was a (hand-written) update."""
        self.preclip.clear()  # new gradients: the next clip measures them afresh
        if self.primary is not None or self.snapshot is None:
            return
        torch = self.torch
        with torch.no_grad():
            params = [p for p, _ in self.snapshot]
            update = self.total_norm([p - copy for p, copy in self.snapshot])
        self.snapshot = None
        if update == 0.0:
            return  # gradient accumulation, or a backward for evaluation: no update yet
        self.record(math.sqrt(self.snapshot_grad_sq), self.total_norm(params), update=update)

    def after_backward(self) -> None:
        if self.primary is not None or not self.seen:
            return
        params = [p for p in self.seen.values() if p.grad is not None]
        if not params:
            return
        self.snapshot_grad_sq = self.grad_sq(params)
        self.snapshot = [(p, p.detach().clone()) for p in params]
        if self.device is None:
            self.device = str(params[0].device)

    # -- one step ------------------------------------------------------------------

    def record(self, grad_norm: float, param_norm: float, update: float | None = None, last: bool = False) -> None:
        """Emit one step's record; stop the trial at the step limit (``last``: the script has ended anyway)."""
        self.steps += 1
        now = time.perf_counter()
        losses = [float(t) for t in self.pending_losses]
        loss = sum(losses) / len(losses) if losses else None
        grad_norm = math.sqrt(grad_norm**2 + self.extra_sq) if self.extra_sq else grad_norm
        saturation = None
        if self.saturated:
            total = sum(n for _, n in self.saturated)
            saturation = sum(float(c) for c, _ in self.saturated) / total if total else None
        nonfinite = (
            (loss is not None and not math.isfinite(loss))
            or not math.isfinite(grad_norm)
            or not math.isfinite(param_norm)
            or self.extra_nonfinite
        )
        self.emit({
            "step": self.steps, "loss": loss, "grad_norm": grad_norm, "param_norm": param_norm,
            "update_norm": update, "saturation": saturation, "nonfinite": nonfinite, "time": now,
        })
        self.pending_losses.clear()
        self.saturated.clear()
        self.extra_sq = 0.0
        self.extra_nonfinite = False
        if last:
            return
        if not math.isfinite(param_norm):
            # every later step is NaN too: nothing more to learn from this run
            raise TrialStop("nonfinite")
        if self.steps >= self.max_steps:
            raise TrialStop("steps")

    # -- saturation ----------------------------------------------------------

    def kind(self, module) -> str | None:
        """'tanh', 'sigmoid' or None (not measured) for a module's output."""
        cls = type(module)
        kind = self._kinds.get(cls, "?")
        if kind != "per-instance" and kind != "?":
            return kind
        nn = self.torch.nn
        if isinstance(module, (nn.RNN, nn.RNNCell)):  # tanh or relu, per instance
            self._kinds[cls] = "per-instance"
            return "tanh" if getattr(module, "nonlinearity", "tanh") == "tanh" else None
        if isinstance(module, nn.Hardtanh):  # bounds per instance
            self._kinds[cls] = "per-instance"
            return "tanh" if (module.min_val, module.max_val) == (-1.0, 1.0) else None
        if isinstance(module, (nn.RNNBase, nn.RNNCellBase, nn.Tanh)):
            kind = "tanh"
        elif isinstance(module, nn.Sigmoid):
            kind = "sigmoid"
        else:
            kind = None
        self._kinds[cls] = kind
        return kind

    def forward_hook(self, module, inputs, output) -> None:
        if self.primary is None:  # no optimizer has stepped (yet): remember the weights in use
            for p in module._parameters.values():
                if p is not None and p.requires_grad:
                    self.seen.setdefault(id(p), p)
        kind = self.kind(module)
        if kind is None:
            return
        torch = self.torch
        if isinstance(module, torch.nn.RNNBase):
            output = output[0]  # the output sequence (the hidden states are in it)
        elif isinstance(output, tuple):  # LSTMCell: (h, c)
            output = output[0]
        data = getattr(output, "data", output)  # PackedSequence
        if not isinstance(data, torch.Tensor) or not data.is_floating_point() or data.numel() == 0:
            return
        data = data.detach()
        if kind == "tanh":
            count = torch.count_nonzero(data.abs() >= SATURATION_THRESHOLD)
        else:
            count = torch.count_nonzero((data - 0.5).abs() >= SATURATION_THRESHOLD - 0.5)
        self.saturated.append((count, data.numel()))

    # -- summary -------------------------------------------------------------

    def finish_manual_step(self) -> None:
        """The script ended after a hand-written update: count it."""
        try:
            with self.torch.no_grad():
                params = [p for p, _ in self.snapshot]
                update = self.total_norm([p - copy for p, copy in self.snapshot])
            if update:
                self.record(math.sqrt(self.snapshot_grad_sq), self.total_norm(params), update=update, last=True)
        except Exception:  # noqa: BLE001 - a half-torn-down script: the steps already written stand
            pass
        self.snapshot = None

    def finish(self, stopped: str, error: str | None = None, exit_code: int | None = None) -> None:
        torch = self.torch
        if self.snapshot is not None and stopped != "steps":
            self.finish_manual_step()
        peak, kind = None, None
        if self.device and self.device.startswith("cuda") and torch.cuda.is_available():
            peak, kind = int(torch.cuda.max_memory_allocated()), "cuda"
        else:
            peak, kind = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "rss"
        self.emit({
            "end": stopped, "steps": self.steps, "device": self.device,
            "updates": "optimizer" if self.primary is not None else ("weights" if self.steps else None),
            "peak_memory_bytes": peak, "peak_memory_kind": kind, "error": error, "exit_code": exit_code,
            "blocked": self.guard.blocked if self.guard else [],
        })
        self.out.close()


def deterministic(torch) -> None:
    """What ``torch.use_deterministic_algorithms(True, warn_only=True)`` sets, without importing Inductor.

    That call imports ``torch._inductor.config`` (and with it TorchDynamo) only to set its
    ``deterministic`` flag: 0.9 s of a trial's 2.2 s on a 2-core machine, paid whether or not the
    script ever compiles. Inductor reads the same flag from ``TORCHINDUCTOR_DETERMINISTIC`` when it
    is first imported, so the variable says it to a script that compiles (and to its workers), and
    the kernel-level flag is set directly. A torch without the private setter gets the public call.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(True, warn_only=True)
        return
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:  # already imported (not by ``import torch`` today): set it as the call would
        inductor.deterministic = True
    setter(True, warn_only=True)


def seed_everything(torch, seed: int) -> None:
    random.seed(seed)
    try:
        import numpy

        numpy.random.seed(seed)
    except ImportError:
        pass
    torch.manual_seed(seed)  # seeds every CUDA device too
    deterministic(torch)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def install_hooks(torch, recorder: Recorder):
    """Install every hook and patch; returns a function that takes them all out again."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    handles = [
        register_optimizer_step_pre_hook(recorder.pre_step),
        register_optimizer_step_post_hook(recorder.post_step),
        torch.nn.modules.module.register_module_forward_hook(recorder.forward_hook),
    ]
    patched: list[tuple[object, str, object]] = []  # (owner, attribute, original)

    def patch(owner, name, value) -> None:
        patched.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    original_backward = torch.autograd.backward

    def backward(tensors, *args, **kwargs):
        first = tensors if isinstance(tensors, torch.Tensor) else None
        if first is None and isinstance(tensors, (list, tuple)) and len(tensors) == 1:
            first = tensors[0]
        recorder.before_backward()
        if first is not None:
            recorder.note_loss(first)
        result = original_backward(tensors, *args, **kwargs)
        recorder.after_backward()
        return result

    patch(torch.autograd, "backward", backward)

    scaler_classes = [getattr(getattr(torch, "amp", None), "GradScaler", None)]
    scaler_classes.append(getattr(torch.cuda.amp, "GradScaler", None))
    for cls in {c for c in scaler_classes if c is not None}:
        if "scale" not in cls.__dict__:
            continue
        original_scale = cls.__dict__["scale"]

        def scale(self, outputs, _original=original_scale):
            scaled = _original(self, outputs)
            if isinstance(outputs, torch.Tensor) and isinstance(scaled, torch.Tensor):
                recorder.scaled = (id(scaled), outputs.detach())
            return scaled

        patch(cls, "scale", scale)

    clip = torch.nn.utils.clip_grad
    original_norm = clip.clip_grad_norm_
    original_value = clip.clip_grad_value_

    def as_list(parameters):
        return [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)

    def clip_grad_norm_(parameters, *args, **kwargs):
        parameters = as_list(parameters)
        recorder.note_preclip(parameters)
        return original_norm(parameters, *args, **kwargs)

    def clip_grad_value_(parameters, *args, **kwargs):
        parameters = as_list(parameters)
        recorder.note_preclip(parameters)
        return original_value(parameters, *args, **kwargs)

    for module in (clip, torch.nn.utils):
        patch(module, "clip_grad_norm_", clip_grad_norm_)
        patch(module, "clip_grad_value_", clip_grad_value_)

    def uninstall() -> None:
        for handle in handles:
            handle.remove()
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)

    return uninstall


def traceback_tail(exc: BaseException, project: str, limit: int = 12) -> str:
    """The script's traceback: the project's own frames and the one that raised.

    Frames of the bootstrap and runpy are dropped; library frames between the
    project's code and the raise are summarised in one line.
    """
    here = os.path.abspath(__file__)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename) != here and "runpy" not in os.path.basename(f.filename)]
    project = os.path.join(os.path.abspath(project), "")
    kept, skipped = [], 0
    for number, frame in enumerate(frames):
        if os.path.abspath(frame.filename).startswith(project) or number == len(frames) - 1:
            if skipped:
                kept.append(f"  ... {skipped} frame{'s' if skipped > 1 else ''} in libraries\n")
                skipped = 0
            kept.append(traceback.format_list([frame])[0])
        else:
            skipped += 1
    kept = kept[-limit:]
    return ("Traceback (most recent call last):\n" + "".join(kept)
            + "".join(traceback.format_exception_only(type(exc), exc))).rstrip()


def load_by_path(name: str, path: str):
    """Load one of rnnlint's own files by path (never ``import rnnlint``: the user's project could shadow it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _guard(config: dict):
    """Refuse writes into the user's own project (the trial runs in a copy of it); see rnnlint/sandbox.py."""
    if not config.get("protect"):
        return None
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sandbox.py")
    sandbox = load_by_path("_rnnlint_sandbox", path)
    network = bool(config.get("network"))
    # no signals out (Linux 6.12+); no TCP unless the user allowed the network (Linux 6.7+)
    sandbox.confine(filesystem=False, network=not network, signals=True, unix=False)
    why = config.get("why") or "verify runs your script on a copy of the project and never changes your files"
    if not network:
        why += "; pass --allow-network if the script needs the network"
    return sandbox.Guard(protected=[config["protect"]], writable=[config["copy"]], network=network,
                         why=why).install()


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        config = json.load(handle)
    script = config["script"]
    with open(config["events"], "w", encoding="utf-8"):
        pass
    try:
        import torch
    except ImportError as exc:
        with open(config["events"], "a", encoding="utf-8") as out:
            out.write(json.dumps({"end": "error", "steps": 0, "error": f"cannot import torch: {exc}"}) + "\n")
        return 0
    recorder = Recorder(torch, config)
    seed_everything(torch, int(config["seed"]))
    if config["device"] == "cuda":
        if not torch.cuda.is_available():
            recorder.finish("error", "--device cuda: CUDA is not available on this machine")
            return 0
        torch.set_default_device("cuda")
    install_hooks(torch, recorder)
    for number, path in enumerate(config.get("extensions") or ()):  # more observers (rnnlint watch), by path
        load_by_path(f"_rnnlint_extension{number}", path).install(torch, recorder, config)

    def on_alarm(signum, frame):
        raise TrialStop("time")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(config["time_limit"]))

    recorder.guard = _guard(config)
    # What exists now lives as long as the run: torch (with TorchDynamo where the seed's server imported it),
    # the hooks, the guard; in a forked run, all that the server made. Frozen, it is left out of the full
    # collections the script's allocations set off and of the one at its end (0.17 s each over torch's and
    # TorchDynamo's 280,000 objects), and a forked run no longer writes to the server's pages to collect them.
    gc.freeze()
    recorder.emit({"start": time.time()})  # torch is imported: the parent's clock for the time limit starts
    sys.argv = [script, *config["args"]]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    stopped, error, exit_code = "finished", None, None
    try:
        import runpy

        runpy.run_path(script, run_name="__main__")
    except TrialStop as stop:
        stopped = stop.reason
    except SystemExit as exc:
        code = exc.code
        if code not in (None, 0):
            stopped, exit_code = "exit", code if isinstance(code, int) else 1
            if not isinstance(code, int):
                error = str(code)
    except BaseException as exc:  # the script's own failure: reported, not ours
        stopped, error = "error", traceback_tail(exc, config.get("project", os.path.dirname(script)))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    recorder.finish(stopped, error, exit_code)
    return 0


def finish_exit() -> None:
    """Do now what the interpreter's exit does for the script, so that its own exit can skip the costly part.

    The script's threads are joined and its atexit handlers run (as at any exit), then one collection
    finalizes what it left in reference cycles (its namespace, the files it left open there: flushed), and
    every object left is frozen: the interpreter's exit still clears every module (files held there are
    flushed) but no longer collects over every object torch made, a second or more per run.
    """
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # what the exit calls first (the interpreter's own hook)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    atexit._clear()  # run once, as at any exit
    gc.collect()
    gc.freeze()


def serve(runs: int) -> int:
    """The runs of one seed, each forked from this process once it has imported torch (``--serve``).

    Every run used to start a new interpreter that imported torch (over a
    second) and, at its first optimizer, TorchDynamo (over a second more)
    before the script's first line: most of a short trial. This process pays
    that once; then, for each request, it forks a child that is the run. The
    child starts its own session and process group (the parent's time and
    memory limits and its kill act on that group, as on a run started anew),
    dies with this process, takes the run's folder, environment and output
    files, and then does what ``main`` does for a new interpreter: the guard,
    the hooks, the seed, the script. This process runs no user code. What a
    new interpreter reads only at start-up (``PYTHONHASHSEED``, the thread
    counts) is the same for every run of a seed: the parent starts one server
    per seed. ``runs``: how many runs it will serve at most.

    With more than one run to serve, this process imports TorchDynamo too (what
    every optimizer's constructor imports: another second), once for all of
    them. Where a core is idle it does so on a thread beside the first run,
    which imports it itself as a new interpreter would: a script that fails
    before its optimizer then reports a second sooner. Where every core is
    busy (a CI machine, a test suite) that thread would only compete with the
    run for the same second of CPU, so it is imported before the first fork
    and no run imports it (see :func:`_idle_core`).

    Requests and replies are JSON lines on stdin and stdout, read and written
    on the descriptors themselves, so that nothing is left in a buffer a child
    inherits: ``{"config", "cwd", "env", "stdout", "stderr"}`` in; ``{"pid"}``
    once the child is forked and ``{"exit"}`` when it has ended, out.
    """
    warming = None
    try:
        import torch

        # ``import torch`` leaves CUDA alone, and a child may use it after the fork; TorchDynamo is imported
        # here too only where no GPU can be in use (a child cannot use CUDA if its parent has touched it)
        if runs > 1 and (os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not (torch.version.cuda or torch.version.hip)):
            if _idle_core():
                import threading

                warming = threading.Thread(target=_import_dynamo, daemon=True)
            else:
                _import_dynamo()
    except Exception:  # noqa: BLE001 - each run imports torch again and reports why it cannot
        pass
    pending = b""
    forked = 0
    while True:
        while b"\n" not in pending:
            chunk = os.read(0, 65536)
            if not chunk:
                return 0  # the parent is done with this seed
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        if warming is not None and forked:
            warming.join()  # no thread may hold a lock across a fork
        with warnings.catch_warnings():  # Python 3.12+ warns of any thread (torch keeps one of its own)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            sys.exit(_forked_run(request))  # the run's own exit: the interpreter ends as after main()
        if warming is not None and not forked:
            warming.start()  # while the first run runs
        forked += 1
        os.write(1, (json.dumps({"pid": pid}) + "\n").encode())
        _, status = os.waitpid(pid, 0)
        os.write(1, (json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n").encode())


def _idle_core() -> bool:
    """Is a core free beside the first run? The load average over the last minute counts the processes
    that ran or waited to run, this one among them (it is importing torch)."""
    try:
        return os.getloadavg()[0] + 1 <= len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no load average, no affinity: as before, a thread
        return True


def _import_dynamo() -> None:
    try:
        import torch._dynamo  # noqa: F401  (what the first optimizer imports)
    except Exception:  # noqa: BLE001 - a run that needs it imports it and reports why it cannot
        pass


def _forked_run(request: dict) -> int:
    """In the child of :func:`serve`: become the run, as a new interpreter started for it would be."""
    parent = os.getppid()
    os.setsid()
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sandbox.py")
    load_by_path("_rnnlint_sandbox", path).die_with_parent(parent)
    for fd, name, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        opened = os.open(name, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    status = main(["bootstrap", request["config"]])
    finish_exit()
    return status


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(int(sys.argv[2])))
    status = main(sys.argv)
    finish_exit()
    sys.exit(status)
