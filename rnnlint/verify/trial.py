"""The parent side of a trial: copy the project, fix the copy, run both.

The user's files are only ever read. The script's project (the directory tree
it imports from: the project root found by ``pyproject.toml`` or ``.git``, or
else the script's own directory) is copied twice into a temporary directory,
``before/`` untouched and ``after/`` with the fixes that ``rnnlint fix
--unsafe-fixes`` would make to the script and to the project files it imports.
Large data directories (named ``data``/``datasets``, or over 50 MB) and large
files are symbolically linked instead of copied.

With ``--seeds N`` every copy runs once per seed, several runs at a time
where there are cores for them (``--jobs``): each run is driven by a worker
process of its own (when runs go one at a time, the runs of one seed share one,
one after another), so that what one run leaves behind is told apart from
another's.

Each copy runs in its own child process (:mod:`rnnlint.verify.bootstrap`, run by
path so that nothing in the user's project can shadow it): on Linux a child
forked by the worker's fork server (:class:`ForkServer`,
:func:`rnnlint.verify.bootstrap.serve`), which imports torch once for the runs of
a seed and runs no user code; else, or where the runs' start-up environments
differ, a new interpreter. Either way the run is in its own session and process
group (:mod:`rnnlint.sandbox`): killed as a group when it overruns the time
limit or the memory limit, and when it ends, so that no worker it started
outlives it; on Linux this process is a child subreaper, so a daemon that left
the group (``setsid``) comes back to us and is killed too, and the child dies
with this process. Its environment holds nothing that points into the user's
tree (``PWD`` is the copy). In the child, a guard refuses writes into the
user's project, linked data included, and signals outside its own process
group (Landlock's signal scope as well, on Linux 6.12+); the report lists what
it refused. torch is imported by the children only (the fork server is one).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from rnnlint.config import Config
from rnnlint.diagnostics import Diagnostic
from rnnlint.static.runner import Session
from rnnlint.sandbox import LINUX, children, die_with_parent, group_alive, group_rss, kill_group, kill_leftovers
from rnnlint.sandbox import start as start_contained
from rnnlint.sandbox import leftovers as left_behind
from rnnlint.source import SourceError, read_source, write_atomic

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
LINK_BYTES = 50 * 2**20  # directories and files larger than this are linked, not copied
DATA_DIR_NAMES = frozenset({"data", "datasets", "dataset"})
SKIP_NAMES = (
    ".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".tox", ".nox", "node_modules", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".rnnlint_cache", ".ipynb_checkpoints", "*.egg-info",
)
MAX_COPY_FILES = 20_000
MAX_COPY_BYTES = 500 * 2**20
# Failures before the first step that no fix can change (a crash can be: an invalid argument removed; a
# script that never updates its weights can be: a fix may change the loop)
FIX_INDEPENDENT = frozenset({"needs-arguments", "killed", "out-of-memory"})
STARTUP_SECONDS = 120.0  # importing torch (and CUDA initialisation) before the script's clock starts


class TrialError(Exception):
    """The trial cannot be set up (bad script path, project too large, config error)."""


@dataclass
class Options:
    script: Path
    args: list[str] = field(default_factory=list)
    steps: int = 100
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    timeout: float = 300.0  # per run, seconds
    codes: tuple[str, ...] | None = None
    each: bool = False
    memory_limit: int | None = None  # bytes of resident memory for the run's whole process group
    network: bool = False  # the script may open sockets (--allow-network); refused by default
    seeds: int = 1  # runs per copy: seed, seed + 1, ...
    jobs: int | None = None  # runs at a time; None: as many as the cores allow (one on CUDA)
    threads: int | None = None  # OMP/MKL threads per run, set by the scheduler when runs share the CPU

    def workers(self, runs: int) -> int:
        """How many runs at a time: --jobs, else half the cores (one per run on a GPU)."""
        if self.jobs:
            return max(1, min(self.jobs, runs))
        if self.device == "cuda":
            return 1
        return max(1, min(runs, (os.cpu_count() or 1) // 2))

    def memory_bytes(self) -> int | None:
        """The limit in force: the one given, else three quarters of this machine's memory."""
        if self.memory_limit is not None:
            return self.memory_limit
        try:
            return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.75)
        except (ValueError, OSError, AttributeError):
            return None


@dataclass(frozen=True)
class AppliedFix:
    path: str  # relative to the project root
    line: int
    code: str
    name: str
    message: str
    summary: str  # the fix's own one-line description

    def label(self) -> str:
        return f"{self.code} {self.path}:{self.line}"


@dataclass
class TrialRun:
    """What one child process measured. ``records`` has one dict per optimizer step."""

    label: str
    stopped: str  # steps | time | nonfinite | finished | error | exit | killed | memory
    records: list[dict] = field(default_factory=list)
    device: str | None = None
    updates: str | None = None  # what a step was: "optimizer" (optimizer.step()) or "weights" (weights changed)
    seed: int = 0
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None
    error: str | None = None  # the script's traceback tail
    exit_code: int | None = None
    stderr_tail: str = ""
    wall_seconds: float = 0.0
    time_limit: float = 0.0
    memory_limit: int | None = None
    blocked: list[str] = field(default_factory=list)  # writes into the user's project that the guard refused
    leftovers: bool = False  # processes of the script still running when it ended (stopped by rnnlint)

    @property
    def steps(self) -> int:
        return len(self.records)


def status(run: TrialRun) -> tuple[str, str | None]:
    """``(status, problem)``: ok, or what went wrong, said for a person."""
    steps = run.steps
    where = f"at step {steps + 1}" if steps else "before its first step"
    if run.stopped == "error":
        return "crashed", f"crashed {where}"
    if run.stopped == "exit":
        if run.exit_code == 2 and "usage:" in run.stderr_tail:
            return "needs-arguments", (
                f"exited with status 2 {where}: its argument parser rejected the command line "
                "(pass the script's arguments after `--`)"
            )
        return "exited", f"exited with status {run.exit_code} {where}"
    if run.stopped == "memory":
        limit = f"{run.memory_limit / 2**30:.3g} GiB" if run.memory_limit else "the memory limit"
        return "out-of-memory", (f"used more than {limit} of memory (with the processes it started) and was "
                                 f"stopped after {steps} steps; raise it with --memory-limit")
    if run.stopped == "killed":
        return "killed", f"hung and was killed {run.time_limit:g}s after it started ({steps} steps done)"
    if steps == 0:
        if run.stopped == "time":
            return "no-step", f"reached no training step within the time limit ({run.time_limit:g}s)"
        return "no-step", ("finished without updating its weights (no optimizer.step(), and no change in the "
                           "weights between one backward() and the next)")
    return "ok", None


# -- copying the project --------------------------------------------------------


def _skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIP_NAMES)


def _larger_than(directory: Path, limit: int) -> bool:
    total = 0
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            if total > limit:
                return True
    return False


@dataclass
class ProjectCopy:
    source: Path
    dest: Path
    linked: list[Path] = field(default_factory=list)
    files: int = 0
    size: int = 0


def copy_project(source: Path, dest: Path) -> ProjectCopy:
    """Copy ``source`` to ``dest``, linking data directories and large files."""
    copy = ProjectCopy(source, dest)
    _copy_dir(source, dest, copy)
    return copy


def _copy_dir(src: Path, dst: Path, copy: ProjectCopy) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    try:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
    except OSError as exc:
        raise TrialError(f"cannot read {src}: {exc.strerror}") from None
    for entry in entries:
        if _skipped(entry.name):
            continue
        source, target = Path(entry.path), dst / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(source), target)
        elif entry.is_dir():
            if entry.name.lower() in DATA_DIR_NAMES or _larger_than(source, LINK_BYTES):
                os.symlink(source, target, target_is_directory=True)
                copy.linked.append(source)
            else:
                _copy_dir(source, target, copy)
        elif entry.is_file():
            size = entry.stat().st_size
            if size > LINK_BYTES:
                os.symlink(source, target)
                copy.linked.append(source)
                continue
            copy.files += 1
            copy.size += size
            if copy.files > MAX_COPY_FILES or copy.size > MAX_COPY_BYTES:
                raise TrialError(
                    f"the project at {copy.source} is too large to copy for a trial "
                    f"(over {MAX_COPY_FILES} files or {MAX_COPY_BYTES >> 20} MB outside data directories); "
                    "run verify on a script in a smaller project directory"
                )
            shutil.copy2(source, target)


# -- fixing the copy ------------------------------------------------------------


def imported_files(session: Session, script: Path) -> list[Path]:
    """The script and the project files it imports, transitively (project index)."""
    index = session.index
    root = index.root
    order: list[Path] = [script.resolve()]
    seen = set(order)
    for importer in order:
        summary = index.summary(importer)
        if summary is None:
            continue
        for target in [*summary.imports.values(), *summary.star_modules]:
            parts = target.split(".")
            for cut in range(len(parts), 0, -1):
                module = ".".join(parts[:cut])
                if not module.strip("."):
                    continue
                found = index.resolve_module(importer, module)
                if found is not None:
                    found = found.resolve()
                    if found not in seen and (found == root or root in found.parents):
                        seen.add(found)
                        order.append(found)
                    break
    return order


def fix_session(config: Config, copy_root: Path, codes: tuple[str, ...] | None) -> Session:
    settings = replace(config, root=copy_root.resolve(), cache_dir=None)
    if codes:
        settings = replace(settings, select=codes, extend_select=())
    return Session(settings, use_cache=False)


def _applied(d: Diagnostic, rel: str) -> AppliedFix:
    summary = d.fix.message if d.fix is not None else d.message
    return AppliedFix(rel, d.line, d.code, d.name, d.message, summary)


def fix_copy(session: Session, copy_root: Path, script: Path) -> tuple[list[AppliedFix], list[str]]:
    """Apply every allowed fix (unsafe included) to the script and its project imports in the copy."""
    fixes: list[AppliedFix] = []
    messages: list[str] = []
    for path in imported_files(session, script):
        rel = path.relative_to(copy_root.resolve()).as_posix()
        outcome = session.fix(path, write=True, unsafe=True)
        fixes.extend(_applied(d, rel) for d in outcome.fixed)
        messages.extend(m.replace(str(copy_root.resolve()) + os.sep, "") for m in outcome.messages)
    return fixes, messages


def fix_one(session: Session, copy_root: Path, wanted: AppliedFix) -> bool:
    """Apply only ``wanted`` (found again by code, line and message) in a fresh copy."""
    path = copy_root.resolve() / wanted.path
    try:
        source = read_source(path)
    except SourceError:
        return False
    rounds = 0

    def choose(found: list[Diagnostic]) -> list[Diagnostic]:
        nonlocal rounds
        rounds += 1
        if rounds > 1:
            return []  # one fix, one round
        exact = [d for d in found if (d.code, d.line, d.message) == (wanted.code, wanted.line, wanted.message)]
        loose = [d for d in found if (d.code, d.message) == (wanted.code, wanted.message)]
        return (exact or loose)[:1]

    outcome = session.fix_document(path, wanted.path, source.text, unsafe=True, choose=choose)
    if outcome.text == source.text:
        return False
    write_atomic(source, outcome.text)
    return True


def line_map(original: str, fixed: str) -> dict[int, tuple[int, bool]]:
    """Each line of ``fixed`` that moved or that the fix wrote -> (the user's line, written by the fix)."""
    a, b = original.splitlines(), fixed.splitlines()
    moved: dict[int, tuple[int, bool]] = {}
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        for j in range(j1, j2):
            if tag == "equal":
                if i1 != j1:
                    moved[j + 1] = (i1 + (j - j1) + 1, False)
            else:  # replaced or inserted: the user's line at that place
                moved[j + 1] = (min(i1 + (j - j1), max(i1, i2 - 1)) + 1, True)
    return moved


def fixed_lines(user_root: Path, copy_root: Path, paths) -> dict[str, dict[int, tuple[int, bool]]]:
    """For each file the fixes changed (relative paths): its :func:`line_map`."""
    maps = {}
    for rel in sorted(set(paths)):
        try:
            original = (user_root / rel).read_text("utf-8")
            fixed = (copy_root / rel).read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        moved = line_map(original, fixed)
        if moved:
            maps[rel] = moved
    return maps


_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def users_view(text: str, copy_root: Path, user_root: Path, moved: dict | None) -> str:
    """A traceback from a copy, told in the user's files: their paths and, where a fix moved lines, their lines.

    A frame on a line the fix wrote keeps the user's nearest line and says which
    line of the fixed copy ran.
    """
    copy, user = str(copy_root.resolve()) + os.sep, str(user_root.resolve()) + os.sep

    def frame(match: re.Match) -> str:
        path, line = match.group(1), int(match.group(2))
        if not path.startswith(copy):
            return match.group(0)
        rel = path[len(copy):]
        mapped, written = (moved or {}).get(rel, {}).get(line, (line, False))
        where = f'File "{user}{rel}", line {mapped}'
        return where + (f" (line {line} of the fixed copy, written by the fix)" if written else "")

    return _FRAME.sub(frame, text).replace(copy, user)


# -- running --------------------------------------------------------------------


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def read_events(path: Path) -> tuple[list[dict], dict | None, bool]:
    """``(step records, end record or None, whether the script has started)``."""
    records, end, started = [], None, False
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError:
        return records, end, started
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if "end" in item:
            end = item
        elif "start" in item:
            started = True
        else:
            records.append(item)
    return records, end, started


def grace_seconds(timeout: float) -> float:
    """How long after its own time limit a child gets to write its metrics before it is killed."""
    return min(15.0, max(2.0, 0.2 * timeout))


def trial_env(cwd: Path, project: tuple[Path, Path] | None) -> dict:
    """The environment of a trial run: ours, with nothing that points into the user's own tree.

    ``PWD`` is the run's folder in the copy; any other variable whose value (or
    an entry of its path list) lies in the user's project is mapped to the same
    place in the copy, so ``os.open(os.environ[...])`` cannot hand the script a
    descriptor of the user's folder. The exception is a folder that is never
    copied, like a ``.venv`` on ``PATH``: it stays, read-only under the guard.
    """
    env = dict(os.environ)
    env.pop("OLDPWD", None)
    env["PWD"] = str(cwd)
    # no bytecode written (never into the copy or the user's tree), the installed packages' own read: a
    # PYTHONPYCACHEPREFIX would send the child to a folder it never fills, and torch would be compiled
    # from source in every run (1.8 s -> 5.1 s a trial)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPYCACHEPREFIX", None)
    if project is None:
        return env
    copy_root, user_root = (os.path.realpath(p) for p in project)
    for key, value in list(env.items()):
        if key == "PWD" or os.sep not in value:
            continue
        entries = []
        for entry in value.split(os.pathsep):
            if os.path.isabs(entry):
                for form in (os.path.realpath(entry), entry):
                    if form == user_root or form.startswith(user_root + os.sep):
                        inner = form[len(user_root):]
                        if os.path.exists(copy_root + inner) or not any(_skipped(part) for part in
                                                                         inner.split(os.sep)):
                            entry = copy_root + inner
                        # else: a virtual environment or cache that is not copied (.venv in PATH): it
                        # stays, and the guard still refuses writes there
                        break
            entries.append(entry)
        env[key] = os.pathsep.join(entries)
    return env


def run_env(cwd: Path, project: tuple[Path, Path] | None, options: Options) -> dict:
    """The environment of one run: :func:`trial_env`, and what makes it repeatable."""
    env = trial_env(cwd, project)
    env["PYTHONHASHSEED"] = str(options.seed)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    if options.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # the script's own "cuda if available" picks the CPU
    if options.threads:  # runs share the cores: each gets its part, unless the user chose
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, str(options.threads))
    return env


#: what a new interpreter reads from its environment before any code runs (where it imports from), with
#: PYTHONHASHSEED: runs whose values differ cannot share one fork server
STARTUP_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONPLATLIBDIR", "PYTHONSAFEPATH",
                     "PYTHONNOUSERSITE", "HOME", "PYTHONHASHSEED", "PYTHONWARNINGS", "PYTHONSTARTUP")


def startup_env(env: dict) -> tuple:
    return tuple(env.get(name) for name in STARTUP_VARIABLES)


class _Started:
    """A run in a new interpreter: ``bootstrap.py CONFIG``."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.pid: int | None = proc.pid

    def ended(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def kill(self) -> None:
        kill_group(self.proc)


class ForkServer:
    """``bootstrap.py --serve`` (see :func:`rnnlint.verify.bootstrap.serve`): one interpreter that imports
    torch once, in its own session, and forks each run of a seed from itself; it runs no user code."""

    def __init__(self, env: dict, workdir: Path, name: str, runs: int) -> None:
        self.startup = startup_env(env)
        self._stderr = open(workdir / f"{name}.server.stderr", "wb")
        self.proc = start_contained([sys.executable, str(BOOTSTRAP), "--serve", str(runs)], cwd=workdir, env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._pending = b""
        self.broken = False  # it died, or did not answer: the next run starts a new interpreter

    def serves(self, env: dict) -> bool:
        return not self.broken and startup_env(env) == self.startup

    def start(self, config_file: Path, cwd: Path, env: dict, stdout: Path, stderr: Path) -> "_Forked":
        request = {"config": str(config_file), "cwd": str(cwd), "env": env, "stdout": str(stdout),
                   "stderr": str(stderr)}
        try:
            os.write(self.proc.stdin.fileno(), (json.dumps(request) + "\n").encode())
        except OSError:
            self.broken = True
        return _Forked(self)

    def reply(self, timeout: float) -> dict | None:
        """The server's next reply, or None when none came within ``timeout``; EOFError once it is gone."""
        if self.broken:
            raise EOFError
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.broken = True
                raise EOFError
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        kill_group(self.proc)
        self._stderr.close()


class _Forked:
    """A run forked by a :class:`ForkServer`: the leader of its own process group, once its pid is known."""

    def __init__(self, server: ForkServer) -> None:
        self.server = server
        self.pid: int | None = None
        self.returncode: int | None = None

    def ended(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.returncode is None:
            try:
                reply = self.server.reply(max(0.0, deadline - time.monotonic()))
            except EOFError:  # the server died; its child dies with it
                self.returncode = -signal.SIGKILL
                break
            if reply is None:
                return False
            if "pid" in reply:
                self.pid = reply["pid"]
            else:
                self.returncode = reply["exit"]
        return True

    def kill(self) -> None:
        if self.returncode is not None:
            return
        if self.pid is not None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.ended(10.0):
                return
        self.server.broken = True  # still starting, or not answering: it goes, and its child with it
        self.server.close()
        self.returncode = -signal.SIGKILL


def run_trial(
    label: str,
    script: Path,
    cwd: Path,
    options: Options,
    workdir: Path,
    progress: Callable[[str, list[dict]], None] | None = None,
    project: tuple[Path, Path] | None = None,
    extra: dict | None = None,
    moved: dict | None = None,
    server: ForkServer | None = None,
) -> TrialRun:
    """Run ``script`` under the bootstrap in a child process and collect what it measured: a new
    interpreter, or a child of ``server`` when it serves this run's start-up environment.

    ``project`` is ``(copy root, user's root)``: tracebacks name the user's files, at the user's
    lines where ``moved`` (:func:`fixed_lines`) says the fixes moved them.
    ``extra`` adds to the child's config (``extensions``: more observers the bootstrap loads by path).
    """
    events = workdir / f"{label}.events.jsonl"
    config_file = workdir / f"{label}.config.json"
    config_file.write_text(json.dumps({
        "script": str(script), "args": list(options.args), "steps": options.steps, "seed": options.seed,
        "device": options.device, "time_limit": options.timeout, "events": str(events),
        "project": str(project[0] if project else script.parent),
        "protect": str(project[1]) if project else None, "copy": str(project[0]) if project else None,
        "network": options.network,
        **(extra or {}),
    }), "utf-8")
    env = run_env(cwd, project, options)
    stdout, stderr = workdir / f"{label}.stdout", workdir / f"{label}.stderr"
    start = time.monotonic()
    limit = options.timeout + grace_seconds(options.timeout)
    deadline = start + STARTUP_SECONDS + limit  # until the child says torch is imported and the script starts
    memory_limit = options.memory_bytes()
    started, killed, leftovers = False, None, False
    baseline = children()
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        if server is not None and server.serves(env):
            child = server.start(config_file, cwd, env, stdout, stderr)
        else:  # its own session; on Linux it dies with us and what it detaches comes back to us
            child = _Started(start_contained([sys.executable, str(BOOTSTRAP), str(config_file)],
                                             cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err))
        try:
            while True:
                if child.ended(0.25):
                    leftovers = (child.pid is not None and group_alive(child.pid)) or bool(left_behind(baseline))
                    break
                records, _, now_started = read_events(events)
                if now_started and not started:
                    started, deadline = True, time.monotonic() + limit
                if progress is not None:
                    progress(label, records)
                if time.monotonic() > deadline:
                    killed = "killed"
                elif memory_limit is not None and child.pid is not None and \
                        (group_rss(child.pid) or 0) > memory_limit:
                    killed = "memory"
                if killed:
                    break
        finally:  # also on Ctrl-C in the parent: take the child and all it started down with it
            child.kill()
            kill_leftovers(baseline)  # daemons that left the group (setsid), found as our descendants
    records, end, _ = read_events(events)
    run = TrialRun(label, killed or ("killed" if end is None else end["end"]), records, seed=options.seed,
              stderr_tail=_tail(stderr), wall_seconds=time.monotonic() - start, time_limit=options.timeout,
              memory_limit=memory_limit, leftovers=leftovers)
    if end is not None:
        run.device = end.get("device")
        run.updates = end.get("updates")
        run.peak_memory_bytes = end.get("peak_memory_bytes")
        run.peak_memory_kind = end.get("peak_memory_kind")
        run.error = end.get("error")
        run.exit_code = end.get("exit_code")
        run.blocked = end.get("blocked") or []
    elif not killed:
        run.stopped = "error"
        run.error = run.stderr_tail or f"the trial process exited with status {child.returncode} without a report"
    if project is not None:
        run.error = users_view(run.error, *project, moved) if run.error else run.error
        run.stderr_tail = users_view(run.stderr_tail, *project, moved)
    return run


# -- the whole trial --------------------------------------------------------------


@dataclass
class Job:
    """One run of the trial: a copy of the project (an *arm*: before, after, fix1, ...) with one seed."""

    arm: str
    seed: int
    copy_root: Path
    number: int  # 1-based, in the order the runs start
    moved: dict | None = None  # fixed_lines() of this copy
    run: TrialRun | None = None

    @property
    def label(self) -> str:
        return f"{self.arm}-seed{self.seed}"


@dataclass
class Trial:
    options: Options
    root: Path
    fixes: list[AppliedFix] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    before: list[TrialRun] = field(default_factory=list)  # one per seed
    after: list[TrialRun] | None = None  # None: not run (the original failed in a way no fix changes)
    each: list[tuple[AppliedFix, list[TrialRun] | None]] = field(default_factory=list)
    linked: list[Path] = field(default_factory=list)
    workers: int = 1


def _working_dir(root: Path, script: Path, copy_root: Path) -> Path:
    """The user's working directory mapped into the copy (the script's directory when outside)."""
    cwd = Path.cwd().resolve()
    if cwd == root or root in cwd.parents:
        return copy_root / cwd.relative_to(root)
    return copy_root / script.parent.relative_to(root)


class Progress:
    """Callbacks for the command: a line per phase, a live step counter."""

    def applied(self, trial: "Trial") -> None:  # pragma: no cover - interface
        pass

    def phase(self, text: str) -> None:  # pragma: no cover - interface
        pass

    def step(self, label: str, records: list[dict]) -> None:  # pragma: no cover - interface
        pass

    def done(self, label: str, run: TrialRun) -> None:  # pragma: no cover - interface
        pass

    def runs(self, jobs: list[Job], steps: dict[str, int], elapsed: float) -> None:  # pragma: no cover
        """The state of every run: finished (``job.run``), running (steps done so far), waiting."""

    def finished(self, job: Job, total: int, elapsed: float) -> None:  # pragma: no cover - interface
        pass


def _steps_done(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.startswith(b'{"step"'))
    except OSError:
        return -1  # not started


def _stop_worker(signum, frame):
    raise SystemExit(1)  # unwinds run_trial, whose finally kills the run's process group


def _worker_init() -> None:
    """A run's worker dies with rnnlint; Ctrl-C is the parent's to handle; SIGTERM ends the run cleanly."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)


def _drive(connection, batch: list[tuple[str, tuple]], stop: Callable[[str, TrialRun], bool]) -> None:
    """A worker: run ``batch`` (``(arm, run_trial's arguments)`` of the runs of one seed, one after another)
    and send back, as each ends, ``(label, True, its TrialRun)`` or ``(label, False, the exception)``. On
    Linux one fork server (one torch import) serves them all; ``stop(arm, run)`` after a run ends the batch."""
    _worker_init()
    server = None
    try:
        for number, (arm, args) in enumerate(batch):
            label, _, cwd, options, workdir, _, project, _, _ = args
            try:
                if LINUX and (server is None or server.broken):
                    if server is not None:
                        server.close()
                    server = ForkServer(run_env(cwd, project, options), workdir, label, len(batch) - number)
                run = run_trial(*args, server=server)
                outcome = (label, True, run)
            except Exception as exc:
                outcome = (label, False, exc)
            try:
                connection.send(outcome)
            except (TypeError, AttributeError, ValueError, RecursionError):  # what does not pickle: its words
                connection.send((label, False, RuntimeError(f"{type(outcome[2]).__name__}: {outcome[2]}")))
            if not outcome[1] or stop(arm, outcome[2]):
                break
    except OSError:
        pass  # the parent is gone or stopped listening
    finally:
        if server is not None:
            server.close()
        connection.close()


def _received(reader, jobs: dict[str, Job], process) -> Job | None:
    """The job whose run a worker reported (its run set), or None once the worker has reported all it will;
    a worker's exception is raised here."""
    try:
        label, ok, value = reader.recv()
    except (EOFError, OSError):
        process.join()
        if process.exitcode not in (0, None):
            waiting = next((job for job in jobs.values() if job.run is None), None)
            if waiting is not None:
                raise RuntimeError(f"the worker of run {waiting.label} died (exit code {process.exitcode}) "
                                   f"before it reported") from None
        return None
    if not ok:
        raise value
    job = jobs[label]
    job.run = value
    return job


def batches(jobs: list[Job], workers: int) -> list[list[Job]]:
    """The jobs each worker runs: the runs of one seed together, in order, so that one fork server (one torch
    import) serves them all, where the seeds still share the workers out evenly (``--seeds 4`` on 2 workers:
    two seeds each); else one run each, side by side (one seed on 2 workers: before and after at once)."""
    grouped: list[list[Job]] = []
    for job in jobs:
        if grouped and grouped[-1][0].seed == job.seed:
            grouped[-1].append(job)
        else:
            grouped.append([job])
    if len(grouped) % workers:
        return [[job] for job in jobs]
    return grouped


def run_jobs(jobs: list[Job], relative: Path, root: Path, script: Path, options: Options, workdir: Path,
             progress: Progress, stop: Callable[[str, TrialRun], bool]) -> list[Job]:
    """Run ``jobs`` in that order, ``options.workers`` at a time, each batch (see :func:`batches`) driven by a
    worker process.

    A worker is its runs' parent: a run's leftovers are found among its own
    descendants after it ends, never another run's (a worker's runs follow one
    another). When ``stop(arm, run)`` says so after a run, no further run
    starts. Returns the jobs that ran.

    One process per batch, each with its own pipe back, not a ``multiprocessing.Pool``:
    a pool's workers share a lock on its task queue, and the suite once saw
    a pool worker blocked on that lock after the pool was terminated, with no
    signal pending, and rnnlint waiting for it at exit for minutes. Here
    nothing is shared between workers, and a worker that does not stop when
    asked is killed.
    """
    workers = options.workers(len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    memory = options.memory_limit  # the default (3/4 of the machine) is shared by the runs at a time
    if memory is None and workers > 1 and options.memory_bytes():
        memory = options.memory_bytes() // workers
    # not "fork": this process may hold threads (and their locks) by now, and a child forked at the
    # wrong moment waits on a lock forever; a fork server forks from a clean process
    context = multiprocessing.get_context("forkserver" if sys.platform == "linux" else "spawn")
    waiting, running, ran = batches(jobs, workers), {}, []
    started = time.monotonic()
    try:
        while waiting or running:
            while waiting and len(running) < workers:
                batch = waiting.pop(0)
                args = []
                for job in batch:
                    job_options = replace(options, seed=job.seed, threads=threads, memory_limit=memory)
                    cwd = _working_dir(root, script, job.copy_root)
                    args.append((job.arm, (job.label, job.copy_root / relative, cwd, job_options, workdir, None,
                                           (job.copy_root, root), None, job.moved)))
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(target=_drive, args=(writer, args, stop), daemon=True)
                process.start()
                writer.close()
                running[reader] = ({job.label: job for job in batch}, process)
                ran.extend(batch)
            ready = multiprocessing.connection.wait(list(running), timeout=0.25)
            for reader in ready:
                batch_jobs, process = running[reader]
                job = _received(reader, batch_jobs, process)
                if job is None:  # the worker is done
                    del running[reader]
                    reader.close()
                    process.join()
                    continue
                progress.finished(job, len(jobs), time.monotonic() - started)
                if stop(job.arm, job.run):
                    waiting.clear()
            current = [next(job for job in batch_jobs.values() if job.run is None)  # each worker's run now
                       for batch_jobs, _ in running.values() if any(job.run is None for job in batch_jobs.values())]
            steps = {job.label: _steps_done(workdir / f"{job.label}.events.jsonl") for job in current}
            progress.runs(jobs, steps, time.monotonic() - started)
    finally:  # on Ctrl-C or an error: a worker stopped takes its run down with it (its finally kills the group)
        for reader, (_, process) in running.items():
            process.terminate()
            reader.close()
        for _, process in running.values():
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()
    return [job for job in ran if job.run is not None]


def hopeless(arm: str, run: TrialRun) -> bool:
    """The original fails before its first step in a way no fix changes: the fixed copies need not run."""
    return arm == "before" and run.steps == 0 and status(run)[0] in FIX_INDEPENDENT


def run(options: Options, config: Config, progress: Progress | None = None) -> Trial:
    """Set up the copies, apply the fixes and run the trials; never writes the user's files."""
    progress = progress or Progress()
    script = options.script.resolve()
    root = config.root.resolve()
    if not (script == root or root in script.parents):
        root = script.parent
    trial = Trial(options, root)
    workdir = Path(tempfile.mkdtemp(prefix="rnnlint-verify-"))
    try:
        before_root = workdir / "before"
        after_root = workdir / "after"
        copied = copy_project(root, before_root)
        copy_project(root, after_root)
        trial.linked = copied.linked
        relative = script.relative_to(root)
        session = fix_session(config, after_root, options.codes)
        trial.fixes, trial.messages = fix_copy(session, after_root, after_root / relative)
        if not trial.fixes:
            return trial
        progress.applied(trial)
        moved = fixed_lines(root, after_root, [f.path for f in trial.fixes])
        arms = [("before", before_root, None), ("after", after_root, moved)]
        singles: list[tuple[AppliedFix, str | None]] = []
        if options.each and len(trial.fixes) > 1:
            for number, fix in enumerate(trial.fixes, 1):
                copy_root = workdir / f"fix{number}"
                copy_project(root, copy_root)
                if fix_one(fix_session(config, copy_root, options.codes), copy_root, fix):
                    arms.append((f"fix{number}", copy_root, fixed_lines(root, copy_root, [fix.path])))
                    singles.append((fix, f"fix{number}"))
                else:
                    singles.append((fix, None))
        seeds = range(options.seed, options.seed + options.seeds)
        jobs = [Job(arm, seed, copy_root, 0, moved) for seed in seeds for arm, copy_root, moved in arms]
        for number, job in enumerate(jobs, 1):
            job.number = number
        trial.workers = options.workers(len(jobs))

        ran = run_jobs(jobs, relative, root, script, options, workdir, progress, hopeless)
        by_arm: dict[str, list[TrialRun]] = {}
        for job in ran:
            by_arm.setdefault(job.arm, []).append(job.run)
        trial.before = by_arm["before"]
        if any(hopeless(job.arm, job.run) for job in ran):
            return trial  # no fix can change that: a fixed copy, if it started, fails the same way
        trial.after = by_arm.get("after")
        trial.each = [(fix, by_arm.get(arm) if arm else None) for fix, arm in singles]
        return trial
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # symlinks are unlinked, never followed


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
