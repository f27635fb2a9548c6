"""The graph stage, parent side: find models, build them in a child, report findings.

This process never imports torch. It finds the models statically
(:mod:`rnnlint.graph.finder`), sends them to one child process
(:mod:`rnnlint.graph.child`) and turns what comes back into ordinary
:class:`~rnnlint.diagnostics.Diagnostic` objects at the source line of the layer
or assignment involved, honouring select/ignore/per-file-ignores and ``noqa``
exactly as the static stage does.

Time limits are enforced here: a model whose build or analysis exceeds
``model-timeout`` gets the child killed (its whole process group) and a fresh
child continues with the models left; the stage as a whole stops at
``stage-timeout``. Either way the model is reported as RNN901 with the reason.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rnnlint.config import Config
from rnnlint.diagnostics import Diagnostic, Position, Severity
from rnnlint.graph.causes import library_of, version_of
from rnnlint.graph.finder import LineTable, ModelFinder, ModelSpec
from rnnlint.graph.rule import GraphRule
from rnnlint.static.final import FileStep
from rnnlint.static.noqa import split_lines
from rnnlint.static.output import plural
from rnnlint.source import display_path
from rnnlint.sandbox import children, kill_group, kill_leftovers, start

TORCH_MISSING = (
    'rnnlint: graph stage skipped: torch is not installed (pip install "rnnlint[torch]"), use --static to silence'
)
NOT_ANALYSED = "RNN901"
STARTUP_TIMEOUT = 90.0  # importing torch on a cold, busy machine
_CLIP_WORDS = ("clip_grad_norm", "clip_grad_value", "gradient_clip_val", "clipnorm", "clip_by_global_norm",
               "clip_gradients", "clip_grads_with_norm_")

Executor = Callable[[dict, float, float], dict]


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


@dataclass
class GraphRun:
    """What the graph stage did: its findings, and for the summary line how many models it built and how fast."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    ran: bool = False  # False: no graph rule enabled, or torch missing (said on stderr)
    models: int = 0  # models analysed on their own (not those analysed inside another)
    built: int = 0
    seconds: float = 0.0

    def summary(self) -> str | None:
        """``graph stage: 3 models built in 4.2 s`` for the summary line; None when the stage did not run."""
        if not self.ran:
            return None
        if not self.models:
            return "graph stage: no models to build"
        count = f"{self.built} of {self.models} models" if self.built != self.models else plural(self.built, "model")
        return f"graph stage: {count} built in {self.seconds:.1f} s"


def run_graph_stage(files: list[Path], session, executor: Executor | None = None) -> GraphRun:
    """Graph findings for the models defined in ``files``.

    Costs nothing when there is nothing to build: the models are found
    statically first, and only when there is one is a child process started
    (which imports torch, once for the whole run).
    """
    config: Config = session.config
    graph_rules = [r for r in config.enabled(session.rules) if issubclass(r, GraphRule)]
    if not any(r.code != NOT_ANALYSED for r in graph_rules):
        return GraphRun()
    if executor is None and not torch_available():
        print(TORCH_MISSING, file=sys.stderr)
        return GraphRun()
    started = time.monotonic()
    finder = ModelFinder(session)
    specs, search = finder.find(files)
    specs = [s for s in specs if not s.skip]
    if not specs:
        return GraphRun(ran=True)
    limits = config.options_for(session.rules[NOT_ANALYSED])  # the graph limits are RNN901's options (defaults there)
    request = {
        "roots": [str(config.root), *search],
        "search": search,
        "rules": {
            r.code: {"file": inspect.getsourcefile(r), "class": r.__name__, "options": _jsonable(config.options_for(r))}
            for r in graph_rules if r.code != NOT_ANALYSED
        },
        "project_clips": _clips(files),
        "memory_mb": limits["memory-limit-mb"],
        "models": [{**s.to_json(), "id": str(number)} for number, s in enumerate(specs)],
        # tests only: RNNLINT_SANDBOX_KERNEL=0 leaves out Landlock and the network namespace, to show
        # what the portable layer (the audit hook) holds on its own, as on macOS and Windows
        "kernel": os.environ.get("RNNLINT_SANDBOX_KERNEL", "1") != "0",
    }
    run = executor or run_child
    results = run(request, float(limits["model-timeout"]), float(limits["stage-timeout"]))
    statuses = [results.get(str(number), {}).get("status") for number in range(len(specs))]
    return GraphRun(Reporter(session, search, finder.notebooks).diagnostics(specs, results, limits), ran=True,
                    models=sum(s != "covered" for s in statuses), built=statuses.count("ok"),
                    seconds=time.monotonic() - started)


def _jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def _clips(files: list[Path]) -> bool:
    """Does any checked file clip gradients? (RNN102 weighs a vanilla RNN trained without it.)"""
    for path in files:
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            continue
        if any(word in text for word in _CLIP_WORDS):
            return True
    return False


# -- the child process ----------------------------------------------------------


class _Lines:
    """Line reader over a pipe with a deadline per line."""

    def __init__(self, stream) -> None:
        self.fd = stream.fileno()
        self.buffer = b""

    def next(self, deadline: float) -> bytes | None | str:
        """A line, ``None`` at end of file, or ``"timeout"``."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return "timeout"
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _child_command() -> list[str]:
    # -c rather than -m: -m would put the user's folder first on sys.path, where a
    # file named random.py or json.py would shadow the standard library.
    code = "import sys; del sys.path[0]; from rnnlint.graph.child import main; main()"
    return [sys.executable, "-c", code]


_ENV_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "LD_LIBRARY_PATH", "SYSTEMROOT", "WINDIR", "PATHEXT")


def _child_env(scratch: str) -> dict:
    """A minimal environment: nothing the user's shell or CI holds (tokens, keys) reaches the models' code."""
    env = {key: os.environ[key] for key in _ENV_KEPT if key in os.environ}
    home = os.path.join(scratch, "home")
    os.makedirs(home, exist_ok=True)
    env["HOME"] = env["USERPROFILE"] = home
    env["TMPDIR"] = env["TEMP"] = env["TMP"] = scratch  # the only folder the child may write (rnnlint.sandbox)
    # libraries' own config and cache folders (matplotlib's font cache, ~/.cache): private and writable
    for name, folder in (("MPLCONFIGDIR", "matplotlib"), ("XDG_CACHE_HOME", ".cache"),
                         ("XDG_CONFIG_HOME", ".config"), ("XDG_DATA_HOME", ".local/share")):
        env[name] = os.path.join(home, folder)
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(scratch, "inductor")  # torch.export's caches go there
    env["TRITON_CACHE_DIR"] = os.path.join(scratch, "triton")
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run_child(request: dict, model_timeout: float, stage_timeout: float) -> dict:
    """Run the models of ``request`` in child processes; results by model id.

    One child serves every model; a model that times out or kills its process
    costs a restart, and the next child starts with the models after it. Every
    child may write only in one scratch folder, removed at the end.
    """
    results: dict[str, dict] = {}
    pending = [m["id"] for m in request["models"]]  # keys may repeat across folders; ids do not
    specs = {m["id"]: m for m in request["models"]}
    stage_deadline = time.monotonic() + stage_timeout
    with tempfile.TemporaryDirectory(prefix="rnnlint-graph-") as scratch:
        restart = True
        while pending and restart and time.monotonic() < stage_deadline:
            batch = {**request, "scratch": scratch, "models": [specs[k] for k in pending]}
            restart = _one_child(batch, results, pending, model_timeout, stage_deadline)
    for key in pending:
        results.setdefault(key, {"status": "stage-timeout", "seconds": stage_timeout})
    return results


def _one_child(request: dict, results: dict, pending: list[str], model_timeout: float, stage_deadline: float) -> bool:
    """Serve ``pending`` models from one child; True when another child must take the ones left."""
    baseline = children()
    with tempfile.TemporaryFile() as errors:
        proc = start(
            _child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            cwd=request["roots"][0], env=_child_env(request["scratch"]),
        )
        try:
            try:
                proc.stdin.write(json.dumps(request).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            return _converse(proc, errors, results, pending, model_timeout, stage_deadline, _codes(request))
        finally:
            kill_group(proc)  # also whatever the child left running in its group ...
            kill_leftovers(baseline)  # ... and out of it (a daemon that called setsid), on Linux


def _codes(request: dict) -> frozenset[str]:
    return frozenset(request["rules"])


class _Forged(Exception):
    """A line from the child that does not follow the protocol."""


def _converse(proc, errors, results: dict, pending: list[str], model_timeout: float, stage_deadline: float,
              codes: frozenset[str] = frozenset()) -> bool:
    reader = _Lines(proc.stdout)
    current: str | None = None
    deadline = min(stage_deadline, time.monotonic() + STARTUP_TIMEOUT)
    while True:
        line = reader.next(deadline)
        if line == "timeout":
            if time.monotonic() >= stage_deadline:
                return False
            if current is None:  # torch import hung
                _fail_all(results, pending, "the graph stage's child process did not start in time")
                return False
            results[current] = {"status": "timeout", "seconds": model_timeout}
            pending.remove(current)
            return True
        if line is None:  # the child died
            code = proc.wait()
            if current is None:
                errors.seek(0)
                tail = errors.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
                _fail_all(results, pending, f"the graph stage's child process failed: {clean_text(tail[0], 200)}")
                return False
            results[current] = {"status": "crash", "code": code}
            pending.remove(current)
            return True
        try:
            event = _checked(line, current, pending, codes)
        except _Forged as exc:  # never a traceback: the model it concerns is reported, a fresh child goes on
            victim = current if current is not None else (pending[0] if pending else None)
            if victim is None:
                return False
            results[victim] = {"status": "error", "reason": f"the graph stage's child process sent a malformed "
                                                            f"report ({exc}), so its results were discarded"}
            pending.remove(victim)
            return True
        kind = event["event"]
        if kind == "start":
            current = event["id"]
        elif kind == "result":
            results[event["id"]] = event
            pending.remove(event["id"])
            current = None
        elif kind == "done":
            return False
        elif kind == "ready":
            results.setdefault("", {"status": "ready", "seconds": []})["seconds"].append(event.get("seconds"))
        deadline = min(stage_deadline, time.monotonic() + model_timeout)


# -- the protocol: every line from the child is checked before it is believed ----

MAX_LINE = 1 << 20
_STATUSES = frozenset({"ok", "error", "covered", "crash"})
_SEVERITIES = frozenset({"error", "warning", "info", None})


def clean_text(value, limit: int) -> str:
    """One line of printable text, at most ``limit`` characters (no terminal escapes from the child)."""
    text = "".join(c if c.isprintable() else " " for c in str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _checked(line: bytes, current: str | None, pending: list[str], codes: frozenset[str]) -> dict:
    if len(line) > MAX_LINE:
        raise _Forged("a line too long")
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        raise _Forged("not JSON") from None
    if not isinstance(event, dict):
        raise _Forged("not an object")
    kind = event.get("event")
    if kind == "ready":
        seconds = event.get("seconds")
        return {"event": "ready", "seconds": seconds if _number(seconds) else None}
    if kind == "done":
        if current is not None:
            raise _Forged("done in the middle of a model")
        return {"event": "done"}
    if kind == "start":
        if current is not None or not pending or event.get("id") != pending[0]:
            raise _Forged("a model started out of order")
        return {"event": "start", "id": pending[0]}
    if kind == "result":
        if current is None or event.get("id") != current:
            raise _Forged("a result for a model that was not started")
        return {"event": "result", "id": current, **_checked_result(event, codes)}
    raise _Forged("an unknown event")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9


def _strings(value, count: int, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > count or not all(isinstance(v, str) for v in value):
        raise _Forged("a list of texts of the wrong shape")
    return [clean_text(v, limit) for v in value]


def _checked_result(event: dict, codes: frozenset[str]) -> dict:
    status = event.get("status")
    if status not in _STATUSES:
        raise _Forged("an unknown status")
    out: dict = {"status": status, "seconds": event["seconds"] if _number(event.get("seconds")) else 0.0,
                 "blocked": _strings(event.get("blocked"), 50, 300)}
    by = _strings(event.get("blocked_by"), 50, 1000)
    if by and len(by) != len(out["blocked"]):
        raise _Forged("refusals and their origins do not pair up")
    out["blocked_by"] = [library_of(file) or "" for file in by] or [""] * len(out["blocked"])  # "" for the project
    if status == "crash":
        code = event.get("code")
        out["code"] = code if isinstance(code, int) and not isinstance(code, bool) and -256 < code < 256 else None
    elif status == "error":
        out["reason"] = clean_text(event.get("reason", "unknown error"), 300)
        out["cause"] = "environment" if event.get("cause") == "environment" else None
        out["missing"] = [m for m in _strings(event.get("missing"), 100, 100) if m.isidentifier()]
    elif status == "ok":
        out["summary"] = clean_text(event.get("summary", ""), 200)
        out["notes"] = _strings(event.get("notes"), 20, 400)
        out["needs_inputs"] = bool(event.get("needs_inputs"))
        placeholders = event.get("placeholders") or {}
        if not isinstance(placeholders, dict) or len(placeholders) > 100 or not all(
                isinstance(k, str) and k.isidentifier() and isinstance(v, int) and not isinstance(v, bool)
                for k, v in placeholders.items()):
            raise _Forged("placeholders of the wrong shape")
        out["placeholders"] = placeholders
        out["template"] = _checked_template(event.get("template"))
        findings = event.get("findings") or []
        if not isinstance(findings, list) or len(findings) > 1000:
            raise _Forged("findings of the wrong shape")
        out["findings"] = [_checked_finding(f, codes) for f in findings]
    return out


def _checked_template(template) -> dict | None:
    """The input the probe guessed (see ModelRun.input_template), checked: it is printed as TOML."""
    if template is None:
        return None
    shape, dtype, high = (template.get(k) for k in ("shape", "dtype", "high")) if isinstance(template, dict) else (
        None, None, None)
    if (not isinstance(shape, list) or not 0 < len(shape) <= 4 or dtype not in ("int64", "float32")
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 < n < 10**7 for n in shape)
            or not (high is None or isinstance(high, int) and not isinstance(high, bool) and 0 <= high < 10**9)):
        raise _Forged("an input template of the wrong shape")
    return {"shape": shape, "dtype": dtype, "high": high, "layer": clean_text(template.get("layer", ""), 120)}


def _checked_finding(finding, codes: frozenset[str]) -> dict:
    if not isinstance(finding, dict) or finding.get("code") not in codes:
        raise _Forged("a finding of an unknown rule")
    severity = finding.get("severity")
    if severity not in _SEVERITIES:
        raise _Forged("a finding of an unknown severity")
    file, line, attr = finding.get("file"), finding.get("line"), finding.get("attr")
    owner = finding.get("owner") or []
    if (not (file is None or isinstance(file, str)) or not (line is None or (isinstance(line, int)
            and not isinstance(line, bool) and 0 < line < 10**7)) or not (attr is None or isinstance(attr, str))
            or not isinstance(owner, list) or len(owner) > 100
            or not all(isinstance(o, list) and len(o) == 2 and all(isinstance(x, str) for x in o) for o in owner)):
        raise _Forged("a finding of the wrong shape")
    kind = finding.get("kind")
    return {"code": finding["code"], "message": clean_text(finding.get("message", ""), 500), "severity": severity,
            "file": file, "line": line, "owner": owner, "attr": attr,
            "kind": kind if isinstance(kind, str) and kind.isidentifier() else None}


def _fail_all(results: dict, pending: list[str], reason: str) -> None:
    for key in pending:
        results[key] = {"status": "error", "reason": reason}
    pending.clear()


# -- results -> diagnostics -------------------------------------------------------


class Reporter:
    def __init__(self, session, search: list[str] | None = None, notebooks: dict | None = None) -> None:
        self.session = session
        self._search = [Path(p).resolve() for p in search or []]
        self.config: Config = session.config
        self.notebooks = {str(path): notebook for path, notebook in (notebooks or {}).items()}
        self.lines = LineTable({path: notebook.text for path, notebook in self.notebooks.items()})
        self._texts: dict[str, list[str]] = {}
        self._final: dict[str, FileStep] = {}  # each file's final step (its `# noqa`), while the stage reports
        self._folders: set[Path] = set()

    def diagnostics(self, specs: list[ModelSpec], results: dict, limits: dict) -> list[Diagnostic]:
        found: dict[tuple, Diagnostic] = {}
        self._folders = ({Path(s.file).resolve().parent for s in specs if s.file} | {Path(self.config.root).resolve()}
                         | set(self._search))
        for number, spec in enumerate(specs):
            result = results.get(str(number), {"status": "stage-timeout", "seconds": limits["stage-timeout"]})
            status = result.get("status")
            if status == "covered":
                continue
            if status == "ok":
                note = ""
                if result.get("placeholders"):
                    sizes = ", ".join(f"{k}={v}" for k, v in result["placeholders"].items())
                    note = (f" (`{spec.qualname}` was built with placeholder sizes {sizes}; give the real ones in "
                            f"[tool.rnnlint.models] \"{spec.key}\" = {{ args = [...] }})")
                for finding in result.get("findings", []):
                    file, line = self._where(spec, finding)
                    self._add(found, finding["code"], file, line, finding["message"] + note, finding.get("severity"))
                said = " ".join(m for m in (self._partial(spec, result), _blocked(spec, result, True)) if m)
                if said:
                    self._add(found, NOT_ANALYSED, spec.file, spec.line, said, None)
                continue
            said = self._failure(spec, result)
            said = " ".join(m for m in (said, _blocked(spec, result, False, own="rnnlint blocked" not in said)) if m)
            self._add(found, NOT_ANALYSED, spec.file, spec.line, said, None)
        return sorted(found.values(), key=Diagnostic.sort_key)

    # -- locations ---------------------------------------------------------

    def _known(self, file: str) -> bool:
        """A Python file of the project: the only files a location from the child may name (it is read)."""
        try:
            path = Path(file).resolve()
        except (OSError, RuntimeError, ValueError):
            return False
        if str(path) in self.notebooks:
            return True
        return (path.suffix == ".py" and any(f == path.parent or f in path.parents for f in self._folders)
                and path.is_file())

    def _where(self, spec: ModelSpec, finding: dict) -> tuple[str, int]:
        if finding.get("file") and finding.get("line") and self._known(finding["file"]):
            return finding["file"], int(finding["line"])
        owners = [(f, q) for f, q in finding.get("owner") or [] if self._known(f)]
        for file, qualname in owners:
            line = self.lines.lookup(file, qualname, finding.get("attr"), finding.get("kind"))
            if line is not None:
                return file, line
        for file, qualname in owners:
            line = self.lines.lookup(file, qualname, None)
            if line is not None:
                return file, line
        return spec.file, spec.line

    def _text(self, file: str) -> list[str]:
        if file not in self._texts:
            try:
                text = self.notebooks[file].text if file in self.notebooks else Path(file).read_text(
                    "utf-8", errors="replace")
            except OSError:
                text = ""
            self._texts[file] = split_lines(text)
            self._final[file] = self.session.final.file(Path(file), text)
        return self._texts[file]

    def _add(self, found: dict, code: str, file: str, line: int, message: str, severity: str | None) -> None:
        rule = self.session.rules.get(code)
        if not file and self.config.source is not None:  # a configured model whose module was not found
            file, line = str(self.config.source), 1
        if rule is None or not file:
            return
        path = Path(file)
        if rule not in self.config.enabled(self.session.rules, path):
            return
        lines = self._text(file)
        if not self._final[file].keeps(code, line):  # the final step, as for every finding
            return
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        start = Position(line, len(text) - len(text.lstrip()) + 1)
        end = Position(line, len(text.rstrip()) + 1)
        display = display_path(path)
        key = (code, display, line)
        if key not in found:
            found[key] = Diagnostic(code=code, name=rule.name, severity=Severity(severity) if severity else rule.severity,
                                    path=display, start=start, end=end, message=message)
            if file in self.notebooks:  # located by cell, as the final step places the static stage's findings
                found[key] = self.notebooks[file].for_output(found[key])

    # -- RNN901 messages -----------------------------------------------------

    def _partial(self, spec: ModelSpec, result: dict) -> str:
        if not result.get("notes"):
            return ""
        message = f"`{spec.qualname}` was only partly analysed: " + "; ".join(result["notes"]) + "."
        if result.get("needs_inputs"):
            message += " " + _inputs_hint(spec, result.get("template"))
        return message

    def _failure(self, spec: ModelSpec, result: dict) -> str:
        status = result.get("status")
        name = f"`{spec.qualname}`"
        built = f" (arguments from {spec.origin})" if spec.origin != "defaults" else ""
        if not built and spec.kind == "class" and result.get("missing"):
            built = " (no call of it in the project's Python files gives its arguments)"
        if status == "timeout":
            reason = (f"building and analysing {name}{built} did not finish within {result['seconds']:g} s "
                      "(an endless loop or heavy work in __init__?); it was stopped")
        elif status == "stage-timeout":
            reason = f"the graph stage's time limit ({result['seconds']:g} s) ran out before {name} was analysed"
        elif status == "crash":
            code = result.get("code")
            how = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
            reason = f"the process building {name}{built} died ({how}): it may call os._exit or crash the interpreter"
        else:
            reason = f"{name}{built} could not be built: {result.get('reason', 'unknown error')}"
        missing = result.get("missing") or []
        if result.get("cause") == "environment":
            hint = ("Install the versions the project's requirements name (its requirements file or setup), "
                    "in the environment that runs rnnlint, then run again")
        elif missing:
            hint = (f"Give its constructor arguments ({', '.join(missing)}) in pyproject.toml: "
                    f"[tool.rnnlint.models] \"{spec.key}\" = {{ args = [...], kwargs = {{ ... }} }}, or a factory "
                    f"that builds it: {{ factory = \"{spec.module}:make_model\" }}")
        else:
            hint = (f"To build it another way, add [tool.rnnlint.models] \"{spec.key}\" = "
                    f"{{ factory = \"{spec.module}:make_model\" }} to pyproject.toml; to stop trying, {{ skip = true }}")
        return f"{reason}. {hint}."


def _inputs_hint(spec: ModelSpec, template: dict | None) -> str:
    """Where to give example inputs, with a template of the kind the model's first layer takes."""
    where = f"[tool.rnnlint.models] \"{spec.key}\" = {{ inputs = [{{ "
    if template is None:
        return (f"Give the inputs forward() takes in pyproject.toml: {where}shape = [...], dtype = \"float32\" }}] }} "
                "(dtype \"int64\" with high = <vocabulary size> for token ids).")
    high = f", high = {template['high']}" if template["dtype"] == "int64" else ""
    takes = (f"token ids below {template['high']}" if template["dtype"] == "int64"
             else f"float features, shape {template['shape']}")
    return (f"The probe fed {takes}, as its first layer {template['layer']} takes; if forward() takes other inputs, "
            f"give them in pyproject.toml: {where}shape = {template['shape']}, dtype = \"{template['dtype']}\"{high} "
            "}] }.")


def _blocked(spec: ModelSpec, result: dict, analysed: bool, own: bool = True) -> str:
    """What the guard refused (see rnnlint.sandbox), said where it helps.

    The project's own attempts always (``own``: unless the failure already quotes
    the refusal); a library's (matplotlib asking for ``fc-list``) only when the
    model then failed, naming the library: when the model was analysed there is
    nothing to change and nothing was missed.
    """
    pairs = list(zip(result.get("blocked") or [], result.get("blocked_by") or []))
    mine = [what for what, by in pairs if not by]
    theirs = [(what, by) for what, by in pairs if by]
    said = []
    if mine and own:
        more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
        said.append(f"While rnnlint built and ran `{spec.qualname}`, its code tried to {mine[0]}{more}; rnnlint "
                    "blocked that: models are analysed without writing files, starting processes or using the "
                    "network, so move such work out of the model.")
    if theirs and not analysed:
        what, by = theirs[0]
        said.append(f"The library {version_of(by)} (not the model's code) tried to {what} while the model was built; rnnlint "
                    "blocked that, which may be why the build failed.")
    return " ".join(said)
