"""The graph stage's child process: the only place rnnlint imports torch.

``python -m rnnlint.graph.child`` reads one JSON request on stdin (the models
to build, the enabled graph rules and their options, the folders of the
project) and writes JSON lines on stdout: ``ready`` once torch is imported,
then ``start`` and ``result`` for each model. The parent enforces the time
limits (it kills this process and starts another for the models left) and
checks every line; this process contains everything else a model can do:

* it moves into a network namespace of its own before anything else
  (:func:`~rnnlint.sandbox.isolate_network`, Linux), and the parent gave it a
  minimal environment (no inherited secrets);
* it imports torch and rnnlint's rules once (and what ``torch.export`` needs,
  once two models needed it), then analyses each model in a forked copy of itself
  that has never run user code: a model cannot change how later models are
  analysed, and its report comes back over a pipe of its own (the stream to
  the parent stays out of its reach);
* in that copy, Landlock (Linux 5.13+) confines writes to a scratch folder,
  reads to Python, its libraries and the project, forbids ``execve``, TCP and
  signals outside the copy; a :class:`~rnnlint.sandbox.Guard` refuses the same
  at the Python level everywhere, and refusals are reported;
* user modules are imported as definitions-only views (:mod:`rnnlint.graph.view`),
  through an import hook limited to the project's own files, so no top-level
  training code runs and no ``.pyc`` is written into the user's tree;
* ``sys.exit`` and exceptions in ``__init__`` or ``forward`` are caught per model;
* address space is capped (``RLIMIT_AS``), so an absurd allocation fails with
  an error instead of taking the machine down;
* prints of the user's code go to stderr, never into the protocol stream.
"""

from __future__ import annotations

import gc
import glob
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import json
import os
import select
import sys
import time
import types
from pathlib import Path
from typing import Any

from rnnlint.graph.causes import import_failure
from rnnlint.graph.view import definitions_view
from rnnlint.sandbox import Guard, confine, isolate_network

_OWN_PACKAGE = Path(__file__).resolve().parents[1]  # rnnlint itself is never a view


class _ViewLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname: str):  # never reads or writes bytecode caches
        source = importlib.util.decode_source(self.get_data(self.path))
        return compile(definitions_view(source), self.path, "exec", dont_inherit=True)


class ViewFinder(importlib.abc.MetaPathFinder):
    """Imports files of the project as definitions-only views; leaves everything else alone."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = [Path(r).resolve() for r in roots]
        self.loaded: set[str] = set()
        self.names: set[str] = set()

    def owns(self, origin: Path) -> bool:
        if "site-packages" in origin.parts or "dist-packages" in origin.parts or _OWN_PACKAGE in origin.parents:
            return False
        return any(root == origin.parent or root in origin.parents for root in self.roots)

    def find_spec(self, fullname, path, target=None):
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            return None
        origin = Path(spec.origin).resolve()
        if not self.owns(origin):
            return None
        self.loaded.update((str(origin), spec.origin))
        self.names.add(fullname)
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_ViewLoader(fullname, spec.origin),
            submodule_search_locations=spec.submodule_search_locations,
        )


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _load_rule(entry: dict) -> Any:
    """Import one graph rule's file (only the graph rules: static rules are no business of this process)."""
    name = f"rnnlint._graph_rules.{Path(entry['file']).stem}"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, entry["file"])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return getattr(module, entry["class"])


_COUNT_WORDS = ("vocab", "word", "token", "char", "class", "tag", "label", "ntoken", "n_out", "num_out")
_SIZE_WORDS = ("dim", "size", "hidden", "feature", "embed", "unit", "channel", "input", "output", "ninp", "nhid",
               "d_model", "width", "n_in", "num_in")


def placeholder(name: str) -> int | None:
    """A small stand-in for a size the data decides (vocabulary size, feature count), by parameter name."""
    lowered = name.lower()
    if "layer" in lowered:
        return 1
    if "idx" in lowered or "index" in lowered or lowered.startswith("pad"):
        return 0
    if any(word in lowered for word in _COUNT_WORDS):
        return 20
    if any(word in lowered for word in _SIZE_WORDS):
        return 16
    return None


def _fill_arguments(target: Any, args: list, kwargs: dict, used: dict[str, int]) -> tuple[list, dict]:
    """Replace non-literal call-site arguments, and missing required ones, by placeholders where names allow."""
    unknown = {"$unknown": True}
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        params = []
    args, kwargs = list(args), dict(kwargs)
    by_name = {p.name: p for p in params}
    for index, value in enumerate(args):
        if value == unknown:
            param = params[index] if index < len(params) else None
            if param is not None and param.default is not param.empty:
                args[index] = param.default  # the constructor's own default stands in
            else:
                args[index] = _placeholder_or_fail(param.name if param else f"argument {index + 1}", used)
    for name, value in list(kwargs.items()):
        if value == unknown:
            if name in by_name and by_name[name].default is not by_name[name].empty:
                del kwargs[name]
            else:
                kwargs[name] = _placeholder_or_fail(name, used)
    for param in params[len(args):]:
        if param.default is param.empty and param.name not in kwargs:
            value = placeholder(param.name)
            if value is None:
                break  # the call fails with Python's own message, naming what is missing
            kwargs[param.name] = used[param.name] = value
    return args, kwargs


def _placeholder_or_fail(name: str, used: dict[str, int]) -> int:
    value = placeholder(name)
    if value is None:
        raise TypeError(f"argument {name!r} has no value rnnlint could resolve and no default (missing argument)")
    used[name] = value
    return value


def _missing_parameters(target: Any) -> list[str]:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    return [p.name for p in signature.parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


class Worker:
    """Builds and analyses models one after the other, in this process."""

    def __init__(self, request: dict) -> None:
        import torch

        import rnnlint.graph.measure  # noqa: F401 - loaded before the import hook exists

        torch.set_num_threads(1)
        self.request = request
        self.finder = ViewFinder(request["roots"])
        self._added_paths: list[str] = []  # only the folder of the model being built is on sys.path
        sys.meta_path.insert(0, self.finder)
        self._base: str | None = None
        self.rules = [_load_rule(entry).for_model(entry["options"]) for entry in request["rules"].values()]
        self.covered: set[tuple[str, str]] = set()  # (module, qualname) of project classes already analysed

    def close(self) -> None:
        """Undo the import hook and forget the project's modules (in-process use, tests)."""
        if self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._forget()

    def _forget(self) -> None:
        for name in list(sys.modules):
            if name in self.finder.names:
                del sys.modules[name]
        importlib.invalidate_caches()

    def _enter(self, base: str) -> None:
        """Import from ``base`` first; forget the modules of the previous folder (names may repeat)."""
        if base == self._base:
            return
        if self._base is not None:
            self._forget()
        for path in self._added_paths:
            if path in sys.path:
                sys.path.remove(path)
        self._added_paths = [base] if base and base not in sys.path else []
        sys.path[:0] = self._added_paths
        self._base = base

    def analyse(self, spec: dict) -> dict:
        import torch

        from rnnlint.graph.measure import ModelRun, describe

        self.placeholders: dict[str, int] = {}
        try:
            model = self._build(spec)
        except _Covered:
            return {"status": "covered"}
        except SystemExit as exc:
            return {"status": "error", "reason": f"its code called sys.exit({exc.code!r}) while building the model"}
        except MemoryError:
            return {"status": "error", "reason": "building it tried to allocate more memory than the graph stage allows"}
        except BaseException as exc:  # noqa: BLE001 - any failure of user code is a finding, not a crash
            return self._build_error(spec, exc)
        if not isinstance(model, torch.nn.Module):
            return {"status": "error", "reason": f"it returned a {type(model).__name__}, not an nn.Module"}
        covered = {_class_key(type(m)) for m in model.modules()
                   if getattr(sys.modules.get(type(m).__module__), "__file__", None) in self.finder.loaded}
        self.covered |= covered
        run = ModelRun(model, self.finder.loaded | {spec["file"]}, spec.get("inputs"), spec["qualname"])
        run.project_clips = self.request.get("project_clips", False)
        notes: list[str] = []
        for rule in self.rules:
            try:
                torch.manual_seed(0)
                rule.measure(run)
            except SystemExit as exc:
                notes.append(f"{rule.code}: the model's code called sys.exit({exc.code!r})")
            except Exception as exc:  # noqa: BLE001
                notes.append(f"{rule.code} could not measure it: {type(exc).__name__}: {str(exc)[:200]}")
        if "graph" in run.__dict__ and run.graph is None:
            notes.append(f"no graph could be traced ({run.trace_error}); RNN101 and RNN108 saw the parameters only")
        # example inputs would help only where the probe batch itself did not fit forward()
        guessed_wrong = "probe" in run.__dict__ and not run.probe.ok and not run.probe.handoffs
        if guessed_wrong:
            notes.append(f"the probe batch failed ({run.probe.error})")
        return {
            "status": "ok",
            "summary": describe(model) if run.recurrent and run.recurrent[0][1] is model else type(model).__name__,
            "graph": run.graph_kind,
            "notes": notes,
            "needs_inputs": guessed_wrong and spec.get("inputs") is None,
            "template": _template(run) if guessed_wrong and spec.get("inputs") is None else None,
            "findings": [self._locate(model, f) for f in run.findings],
            "placeholders": self.placeholders,
            "covered": sorted(list(key) for key in covered),
        }

    def _build(self, spec: dict) -> Any:
        import torch

        torch.manual_seed(0)
        self._enter(spec.get("base", ""))
        if spec.get("source") is not None:
            self._notebook(spec)
        if spec["kind"] == "instance":
            namespace = dict(vars(importlib.import_module(spec["module"])))
            return eval(compile(spec["expr"], spec["file"], "eval"), namespace)  # noqa: S307 - user's own code
        target = _resolve(spec["module"], spec["qualname"])
        if spec["component"] and _class_key(target) in self.covered:
            raise _Covered
        if spec.get("factory"):
            module, _, name = spec["factory"].partition(":")
            target = _resolve(module, name)
        return self._call(target, spec["args"], spec["kwargs"])

    def _call(self, target: Any, args: list, kwargs: dict) -> Any:
        """``target(*args, **kwargs)``, unknown arguments filled, submodules (``{"$build": ...}``) built first."""
        args, kwargs = _fill_arguments(target, args, kwargs, self.placeholders)
        return target(*[self._built(a) for a in args], **{k: self._built(v) for k, v in kwargs.items()})

    def _built(self, value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"$build"}:
            spec = value["$build"]
            return self._call(_resolve(spec["module"], spec["qualname"]), spec["args"], spec["kwargs"])
        if isinstance(value, list):
            return [self._built(v) for v in value]
        if isinstance(value, dict):
            return {k: self._built(v) for k, v in value.items()}
        return value

    def _notebook(self, spec: dict) -> None:
        """A notebook's code cells as a module, definitions only (its training cells never run)."""
        name = spec["module"]
        if name in sys.modules and getattr(sys.modules[name], "__file__", None) == spec["file"]:
            return
        module = types.ModuleType(name)
        module.__file__ = spec["file"]
        sys.modules[name] = module
        self.finder.names.add(name)  # forgotten with the folder's other modules
        self.finder.loaded.add(spec["file"])
        try:
            exec(compile(definitions_view(spec["source"]), spec["file"], "exec", dont_inherit=True),  # noqa: S102
                 module.__dict__)
        except BaseException:
            del sys.modules[name]  # a half-run module is no module (the next model tries again)
            raise

    def _build_error(self, spec: dict, exc: BaseException) -> dict:
        if isinstance(exc, ImportError):
            try:
                environment = import_failure(exc, self.request["roots"])
            except Exception:  # noqa: BLE001 - the model's code may have broken what telling needs
                environment = None
            if environment is not None:
                return {"status": "error", "reason": environment, "cause": "environment"}
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
        missing: list[str] = []
        if isinstance(exc, TypeError) and "argument" in str(exc):
            try:
                missing = _missing_parameters(_resolve(spec["module"], spec["qualname"]))
            except Exception:  # noqa: BLE001
                missing = []
        if isinstance(exc, RuntimeError) and "alloc" in str(exc).lower():
            reason = "building it tried to allocate more memory than the graph stage allows"
        return {"status": "error", "reason": reason, "missing": missing}

    def _locate(self, model: Any, finding: Any) -> dict:
        """A finding plus where its module sits: the project class that owns it and the attribute."""
        data = {"code": finding.code, "message": finding.message, "severity": finding.severity,
                "file": finding.file, "line": finding.line, "owner": [], "attr": None}
        if finding.module is None:
            return data
        try:
            data["kind"] = type(model.get_submodule(finding.module)).__name__
        except AttributeError:
            pass
        parts = finding.module.split(".") if finding.module else []
        for cut in range(len(parts), -1, -1):
            try:
                owner = model.get_submodule(".".join(parts[:cut]))
            except AttributeError:
                continue
            chain = [(inspect.getsourcefile(c) or "", c.__qualname__) for c in type(owner).__mro__
                     if getattr(sys.modules.get(c.__module__), "__file__", None) in self.finder.loaded]
            chain = [(str(Path(f).resolve()), q) for f, q in chain if f]
            if chain:
                data["owner"] = chain
                data["attr"] = parts[cut] if cut < len(parts) else None
                break
        return data


def _template(run: Any) -> dict | None:
    try:
        return run.input_template()
    except Exception:  # noqa: BLE001 - a forward() whose signature cannot be read: the note says so without one
        return None


def _class_key(cls: Any) -> tuple[str, str]:
    return (str(getattr(cls, "__module__", "")), str(getattr(cls, "__qualname__", "")))


class _Covered(Exception):
    """The class was already analysed as part of a model built before it."""


def _protocol_stream():
    """A private copy of stdout for JSON lines; fd 1 then goes to stderr for user prints."""
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return stream


def _limit_memory(extra_mb: int) -> None:
    try:
        import resource

        with open("/proc/self/status", encoding="ascii") as status:
            size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
        limit = (size_kb * 1024) + extra_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: the time limits still hold


# A fresh fork per model where fork after importing torch is sound (Linux); macOS and Windows
# analyse the models one after the other in this process.
FORK_PER_MODEL = hasattr(os, "fork") and sys.platform.startswith("linux")
RESULT_LIMIT = 1 << 20  # bytes of one model's report; more is a malformed report


def _readable(request: dict) -> list[str]:
    """Where a model's code may read (Landlock, where the kernel has it): Python, the project, libraries."""
    places = [*request["roots"], request["scratch"], sys.prefix, sys.base_prefix, sys.exec_prefix,
              *(p for p in sys.path if p and os.path.isabs(p) and os.path.dirname(p) != p),
              "/usr/lib", "/usr/lib64", "/usr/local/lib", "/lib", "/lib64", "/usr/share/zoneinfo",
              "/etc/ld.so.cache", "/dev/null", "/dev/urandom", "/dev/zero", "/proc/driver/nvidia",
              "/sys/devices", "/sys/bus"]
    return list(dict.fromkeys(os.path.realpath(p) for p in places))


def _analyse_in_fork(worker: Worker, spec: dict, request: dict, protocol_fd: int) -> dict:
    """Analyse one model in a forked copy of this process and return what it reported.

    This process imported torch, rnnlint's rules and measurement code, but no
    user code; each model gets a fresh copy of that state, so a model that
    patches the analysis (or anything else) cannot change what later models
    report, and its process is gone when it is done. Its report comes back over
    a pipe of its own: it never holds the stream to rnnlint.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked process
        # all it inherited lives as long as it does: frozen, it is left out of the collections the model's
        # code sets off (torch.export's make many), which no longer write to the pages it shares with us
        gc.freeze()
        code = 0
        try:
            os.close(read_fd)
            os.close(protocol_fd)
            data = json.dumps(_contained(worker, spec, request)).encode()
        except BaseException as exc:  # noqa: BLE001
            data = json.dumps({"status": "error", "reason": f"the analysis failed: {type(exc).__name__}"}).encode()
            code = 1
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks, size, status = [], 0, None
    try:
        while True:
            ready, _, _ = select.select([read_fd], [], [], 0.05)
            if ready:
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > RESULT_LIMIT:
                    break
                chunks.append(chunk)
            elif status is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == 0:
                    status = None
                elif not select.select([read_fd], [], [], 0)[0]:
                    break  # it exited and wrote nothing more (a process it started may hold the pipe)
    finally:
        os.close(read_fd)
    grace = time.monotonic() + 2.0  # the pipe closes a moment before the process is gone
    while status is None and time.monotonic() < grace:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            status = None
            time.sleep(0.01)
    if status is None:  # it closed the pipe and carries on: it is done all the same
        try:
            os.kill(pid, 9)
        except OSError:
            pass
        status = os.waitpid(pid, 0)[1]
    code = os.waitstatus_to_exitcode(status)
    if size > RESULT_LIMIT:
        return {"status": "error", "reason": "its code wrote more than rnnlint reads as one model's report"}
    try:
        result = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        result = None
    if not isinstance(result, dict):
        if code == 0 and chunks:
            return {"status": "error", "reason": "its code wrote into the pipe that carries its report, so rnnlint "
                                                 "could not read what was measured"}
        return {"status": "crash", "code": code}
    return result


def _contained(worker: Worker, spec: dict, request: dict) -> dict:
    """In the forked process: shut every door the OS offers, install the guard, analyse one model."""
    scratch = request["scratch"]
    devices = ["/dev/null", *glob.glob("/dev/nvidia*"), *glob.glob("/dev/dri/*")]  # a model may use the GPU
    held = confine([scratch], files=devices, readable=_readable(request)) if request.get("kernel", True) else {}
    guard = _guard(request, readable=None if held.get("reads") else _readable(request))
    result = worker.analyse(spec)
    if guard.blocked:  # reported even when the model's code caught the PermissionError
        result.update(_refusals(guard, 0))
    if guard.read_elsewhere:  # no Landlock here: keep what it read out of the report
        result = _withheld(result)
    return result


def _refusals(guard: Guard, start: int) -> dict:
    """What the guard refused since ``start``, each with the file of the code that attempted it.

    Plain list slices only: the model's code may have replaced builtins by now. The parent tells
    a library's file from the project's.
    """
    return {"blocked": guard.blocked[start:start + 20], "blocked_by": guard.origins[start:start + 20]}


def _guard(request: dict, readable: list[str] | None) -> Guard:
    return Guard(protected=["/"], writable=[request["scratch"]], processes=False, network=False, readable=readable,
                 why="models are analysed without writing files, starting processes or using the network").install()


_WITHHELD = "(message withheld: the model's code read files outside the project)"


def _withheld(result: dict) -> dict:
    """The report without free text from the model's code (it read files rnnlint must not echo)."""
    if "reason" in result:
        kind = str(result["reason"]).split(":", 1)[0]
        result["reason"] = f"{kind if kind.isidentifier() else 'an error'} {_WITHHELD}"
    if result.get("notes"):
        result["notes"] = [_WITHHELD]
    for finding in result.get("findings") or []:
        finding["message"] = _WITHHELD
    return result


def _tried_export(result: dict) -> bool:
    """Did the model's copy run ``torch.export`` (its graph, or the note saying why export failed; not the note
    that export was never tried, for want of example inputs)?"""
    notes = result.get("notes")
    return result.get("graph") == "export" or (isinstance(notes, list) and any(
        isinstance(note, str) and "torch.export: " in note for note in notes))


def _import_export() -> None:
    """Import what ``torch.export`` needs (TorchDynamo, SymPy, NetworkX: 1.5 s) in this process, once two models
    needed it and more are to come: each model's copy is forked from here and would import it again. torch's own
    code, no user code. Not after the first: in a project of a few models the import would often be for none."""
    if "torch.export._trace" not in sys.modules:
        try:
            import torch.export._trace  # noqa: F401
        except Exception:  # noqa: BLE001 - each copy imports it again and reports why it cannot
            pass


def main() -> None:
    request = json.load(sys.stdin)
    isolated = request.get("kernel", True) and isolate_network()  # first: no network for this process tree
    stream = _protocol_stream()
    sys.dont_write_bytecode = True

    def emit(obj: dict) -> None:
        stream.write(json.dumps(obj) + "\n")
        stream.flush()

    started = time.perf_counter()
    import torch  # noqa: F401 - the cost is paid once, before the first model's clock starts

    worker = Worker(request)
    _limit_memory(int(request.get("memory_mb", 4096)))
    modules = {spec["module"] for spec in request["models"]}
    emit({"event": "ready", "seconds": round(time.perf_counter() - started, 3), "network_namespace": isolated})
    forking = FORK_PER_MODEL and request.get("fork", True)
    guard = None if forking else _guard(request, readable=None)
    exported = 0  # models whose copy fell back to torch.export
    for number, spec in enumerate(request["models"], 1):
        emit({"event": "start", "id": spec["id"]})
        started = time.perf_counter()
        if forking:
            result = _analyse_in_fork(worker, spec, request, stream.fileno())
        else:  # macOS, Windows: in this process, after the models before it (see the README)
            blocked = len(guard.blocked)
            result = worker.analyse(spec)
            if len(guard.blocked) > blocked:
                result.update(_refusals(guard, blocked))
        covered = result.pop("covered", None)
        if isinstance(covered, list):  # only classes of the project's modules, as the request names them
            worker.covered |= {(k[0], k[1]) for k in covered[:1000]
                               if isinstance(k, list) and len(k) == 2 and k[0] in modules and isinstance(k[1], str)}
        emit({**result, "event": "result", "id": spec["id"], "seconds": round(time.perf_counter() - started, 3)})
        if forking and _tried_export(result):
            exported += 1
        if exported >= 2 and number < len(request["models"]):  # likely not the last: import it here, once
            _import_export()
    emit({"event": "done"})
    stream.close()
    os._exit(0)  # skip interpreter teardown


if __name__ == "__main__":
    main()
