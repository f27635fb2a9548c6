"""Containment of the code rnnlint runs: each escape is tried, and the test shows it did not happen.

The graph-stage tests run the real CLI on the hostile projects in
fixtures/graph/hostile/escape (Python-level escapes: held by the audit hook
alone, and again with the kernel's layers) and fixtures/graph/hostile/native
(escapes through libc, which only the kernel stops: skipped where it lacks
Landlock). The sandbox tests run small scripts in a subprocess, because an
audit hook cannot be removed once installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rnnlint import sandbox
from rnnlint.graph.view import definitions_view

REPO = Path(__file__).resolve().parents[1]
HOSTILE = REPO / "fixtures" / "graph" / "hostile"
LINUX_PROC = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()
SECRET = "rnnlint-test-secret-6c0ffee"
RUN_AS_RNNLINT = (  # writes its own pid into the project, so that models can aim at rnnlint itself
    "import os, sys\n"
    "open(os.path.join(sys.argv[-1], 'rnnlint_pid.txt'), 'w').write(str(os.getpid()))\n"
    "from rnnlint.cli import main\n"
    "main(sys.argv[1:])\n"
)


def _live(name: str) -> list[str]:
    """Live (not zombie) processes named ``name`` or with ``name`` in their command line."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        command, _, rest = text.rpartition(") ")
        if (command.endswith(f"({name}") or name.encode() in cmdline) and not rest.startswith("Z"):
            found.append(stat.parent.name)
    return found


def _gone(pids: list[int], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][:1]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _check_project(tmp_path: Path, fixture: str, env: dict) -> tuple[subprocess.CompletedProcess, dict, Path,
                                                                     socket.socket]:
    root = tmp_path / "project"
    shutil.copytree(HOSTILE / fixture, root)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    (root / "port.txt").write_text(str(listener.getsockname()[1]))
    result = subprocess.run(
        [sys.executable, "-c", RUN_AS_RNNLINT, "check", "--graph", "--no-cache", "--output-format", "json", str(root)],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env={**os.environ, "RNNLINT_SECRET_TOKEN": SECRET, **env},
    )
    messages = {}
    for item in json.loads(result.stdout or "[]"):
        messages.setdefault(item["line"], []).append((item["code"], item["message"]))
    return result, messages, root, listener


def _no_connection(listener: socket.socket) -> bool:
    try:
        listener.accept()
    except BlockingIOError:
        return True
    return False


def _line(root: Path, text: str) -> int:
    return next(n for n, line in enumerate((root / "models.py").read_text().splitlines(), 1) if text in line)


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["1", "0"], ids=["with-kernel-layers", "audit-hook-only"])
def test_python_level_escapes_from_the_graph_stage_are_contained(tmp_path, kernel):
    pytest.importorskip("torch")
    if not sys.platform.startswith("linux"):
        pytest.skip("a fork per model, subreaper and pidfds are Linux (the README says what holds elsewhere)")
    result, messages, root, listener = _check_project(tmp_path, "escape", {"RNNLINT_SANDBOX_KERNEL": kernel})
    assert result.returncode == 1, result.stdout + result.stderr  # rnnlint was neither killed nor stopped
    assert "Traceback" not in result.stderr, result.stderr

    def said(model: str) -> str:
        line = _line(root, f"class {model}(")
        return " ".join(m for code, m in messages.get(line, []) if code == "RNN901")

    # 1, 5: dir_fd writes, sqlite3, the guard switched off through gc or monkeypatching: nothing written
    assert (root / "victim.txt").read_text() == "a file of the project that no model may change\n"
    for name in ("DIRFD_WROTE", "STOLEN.db", "GUARD_OFF_WROTE", "FORK_EXEC_RAN", "moved.txt"):
        assert not (tmp_path / name).exists() and not (root / name).exists(), name
    # (the message itself is withheld without Landlock: the model opened a folder outside the project)
    assert f"its code tried to delete {(root / 'victim.txt').resolve()} (and " in said("DirFdDeleter")
    assert "open a database at" in said("SqliteWriter")
    assert "through_gc: PermissionError" in said("GuardDisabler")
    assert "write: PermissionError" in said("GuardDisabler")
    assert "rnnlint blocked an attempt to start a subprocess" in said("ForkExec")
    # 5: signals to rnnlint and to its child, by os.kill and by pidfd: refused (rnnlint exited normally above)
    assert said("Signaller").count("PermissionError") == 6, said("Signaller")
    # 4: the network and the environment
    assert _no_connection(listener)
    assert "connect: PermissionError" in said("Exfiltrator") or "withheld" in said("Exfiltrator")
    assert SECRET not in result.stdout + result.stderr
    assert "token=None" in said("EnvSpy")
    assert "root:" not in result.stdout  # /etc/passwd was not read, or its content was withheld
    assert "PasswdEcho" in said("PasswdEcho")
    # 6: a forged report is a contained failure of its own model, and the model patching the
    # analysis did not hide the finding of the model after it
    assert "wrote into the pipe that carries its report" in said("Forger")
    assert "wrote into the pipe that carries its report" in said("DeepForger")
    later = _line(root, "self.rnn = nn.RNN(4, 8")
    assert any(code == "RNN102" for code, _ in messages.get(later, [])), messages
    # 5: the daemon that left the process group with setsid was found and killed
    if LINUX_PROC:
        assert _gone([int(p) for p in _live("rnnlint-daemon")], 2.0)


@pytest.mark.slow
def test_native_escapes_are_stopped_by_the_kernel(tmp_path):
    """libc through ctypes: writes, exec, reads, signals and TCP, which only Landlock and a netns stop."""
    pytest.importorskip("torch")
    if sandbox.landlock_abi() < 6:
        pytest.skip("needs Landlock ABI 6 (Linux 6.12+) for the signal scope")
    result, messages, root, listener = _check_project(tmp_path, "native", {})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    said = {code_line: " ".join(m for _, m in msgs) for code_line, msgs in messages.items()}
    assert "unlink, truncate, create: [-1, -1, -1]" in said[_line(root, "class NativeWriter(")]
    assert (root / "victim.txt").read_text() == "a file of the project that no model may change\n"
    assert not (tmp_path / "NATIVE_WROTE").exists() and not (tmp_path / "NATIVE_EXEC_RAN").exists()
    assert "read refused" in said[_line(root, "class NativeReader(")] and "root:" not in result.stdout
    assert "kill: [-1, -1]" in said[_line(root, "class NativeKiller(")]
    assert "connect: -1" in said[_line(root, "class NativeConnect(")]
    assert _no_connection(listener)
    assert any(code == "RNN102" for code, _ in messages[_line(root, "self.rnn = nn.RNN(4, 8")])


def _converse_with(tmp_path: Path, lines: list) -> tuple[bool, dict, list[str]]:
    from rnnlint.graph import stage

    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    script = tmp_path / "child.py"
    script.write_text(f"import sys\nsys.stdout.write({text!r})\n")
    results: dict = {}
    pending = ["0", "1"]
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        with open(os.devnull, "rb") as errors:
            restart = stage._converse(proc, errors, results, pending, 10.0, time.monotonic() + 30,
                                      frozenset({"RNN102"}))
    finally:
        proc.kill()
        proc.wait()
    return restart, results, pending


def test_forged_and_malformed_lines_from_the_child_are_contained(tmp_path):
    """The parent checks every line: a violation fails that model (RNN901) and a fresh child goes on."""
    restart, results, pending = _converse_with(tmp_path, [
        {"event": "ready", "seconds": 1.0}, {"event": "start", "id": "0"},
        {"event": "result", "id": "1", "status": "ok", "findings": []}])  # a result for the next model
    assert restart and pending == ["1"]
    assert "malformed report (a result for a model that was not started)" in results["0"]["reason"]
    restart, results, pending = _converse_with(tmp_path, [{"event": "start", "id": "0"}, "[" * 100000])
    assert restart and pending == ["1"] and "malformed report (not JSON)" in results["0"]["reason"]
    restart, results, pending = _converse_with(tmp_path, [
        {"event": "start", "id": "1"}])  # out of order
    assert restart and pending == ["1"] and "out of order" in results["0"]["reason"]
    restart, results, pending = _converse_with(tmp_path, [
        {"event": "start", "id": "0"},
        {"event": "result", "id": "0", "status": "ok", "summary": "\x1b[31mred\x1b[0m", "findings": [
            {"code": "RNN102", "message": "ok\x1b]0;title\x07" + "x" * 5000, "severity": "warning",
             "file": None, "line": None, "owner": [], "attr": None}]},
        {"event": "done"}])
    assert not restart and pending == ["1"]
    message = results["0"]["findings"][0]["message"]
    assert len(message) <= 500 and "\x1b" not in message and "\x07" not in message


def test_each_kind_of_forgery_is_refused():
    from rnnlint.graph.stage import _checked, _Forged

    codes = frozenset({"RNN102"})
    bad = [
        b"[" * 100000, b"not json", b"[]", b'{"event": "start", "id": {"x": 1}}', b'{"event": "result", "id": "0"}',
        b'{"event": "result", "id": "0", "status": "ok", "findings": [{"code": "RNN999"}]}',
        b'{"event": "result", "id": "0", "status": "ok", "placeholders": {"a b": 1}}',
        b'{"event": "result", "id": "0", "status": "ok", "notes": "text"}', b'{"event": "surprise"}',
        b'{"event": "result", "id": "0", "status": "ok", "findings": [{"code": "RNN102", "line": true}]}',
    ]
    for line in bad:
        with pytest.raises(_Forged):
            _checked(line, "0" if b'"result"' in line else None, ["0"], codes)
    ok = _checked(b'{"event": "result", "id": "0", "status": "error", "reason": "\\u001b[2Jroot:x:0:0\\n' + b"y" * 999
                  + b'"}', "0", ["0"], codes)
    assert len(ok["reason"]) <= 300 and "\x1b" not in ok["reason"] and "\n" not in ok["reason"]


GUARD_SCRIPT = """
import builtins, gc, json, os, signal, sqlite3, sys
sys.path.insert(0, {repo!r})
from rnnlint.sandbox import Guard
user, copy = {user!r}, {copy!r}
os.chdir(copy)
guard = Guard(protected=[user], writable=[copy], why="test").install()
outcome = {{}}

def attempt(name, step):
    try:
        step()
        outcome[name] = "done"
    except PermissionError:
        outcome[name] = "refused"
    except OSError as exc:
        outcome[name] = type(exc).__name__

user_fd = os.open(user, os.O_RDONLY)
attempt("unlink_dir_fd", lambda: os.unlink("victim.txt", dir_fd=user_fd))
attempt("open_dir_fd", lambda: os.close(os.open("victim.txt", os.O_WRONLY | os.O_TRUNC, dir_fd=user_fd)))
attempt("open_opener", lambda: open("victim.txt", "w", opener=lambda p, f: os.open(p, f, dir_fd=user_fd)))
attempt("mkdir_dir_fd", lambda: os.mkdir("made", dir_fd=user_fd))
attempt("rename_dir_fd", lambda: os.rename("victim.txt", "x", src_dir_fd=user_fd, dst_dir_fd=user_fd))
attempt("sqlite", lambda: sqlite3.connect(os.path.join(user, "db.sqlite")).execute("create table t (x)"))
attempt("sqlite_uri", lambda: sqlite3.connect("file:" + os.path.join(user, "u.sqlite") + "?mode=rwc", uri=True))
attempt("gc", lambda: gc.get_objects())
attempt("settrace", lambda: sys.settrace(lambda *a: None))
guard.protected, guard.writable = (), ("/",)  # changing the object changes nothing
os.path.realpath = lambda p, *a, **k: copy
builtins.any = lambda it: False
attempt("after_patching", lambda: open(os.path.join(user, "victim.txt"), "w"))
attempt("copy_write", lambda: open(os.path.join(copy, "ok.txt"), "w").close())
attempt("kill_parent", lambda: os.kill(os.getppid(), 0))
attempt("killpg_parent", lambda: os.killpg(os.getpgid(os.getppid()), 0))
attempt("kill_all", lambda: os.kill(-1, 0))
attempt("kill_self", lambda: os.kill(os.getpid(), 0))
if hasattr(signal, "pidfd_send_signal"):
    attempt("pidfd_parent", lambda: signal.pidfd_send_signal(os.pidfd_open(os.getppid()), 0))
print(json.dumps(outcome))
"""


@pytest.mark.skipif(os.name != "posix", reason="dir_fd and process groups are POSIX")
def test_guard_resolves_dir_fd_and_cannot_be_switched_off(tmp_path):
    user, copy = tmp_path / "user", tmp_path / "copy"
    user.mkdir()
    copy.mkdir()
    (user / "victim.txt").write_text("keep me\n")
    (copy / "victim.txt").write_text("a copy\n")
    script = GUARD_SCRIPT.format(repo=str(REPO), user=str(user), copy=str(copy))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            start_new_session=True)  # its own group: the parent is outside it
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    refused = {k for k, v in outcome.items() if v == "refused"}
    expected = {"unlink_dir_fd", "open_dir_fd", "open_opener", "mkdir_dir_fd", "rename_dir_fd", "sqlite",
                "sqlite_uri", "gc", "settrace", "after_patching", "kill_parent", "killpg_parent", "kill_all"}
    if "pidfd_parent" in outcome:
        expected.add("pidfd_parent")
    assert refused == expected, outcome
    assert outcome["copy_write"] == "done" and outcome["kill_self"] == "done"
    assert (user / "victim.txt").read_text() == "keep me\n"
    assert sorted(p.name for p in user.iterdir()) == ["victim.txt"]


DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", {marker!r}])
    os._exit(0)
"""

REAPER = """
import json, os, sys
sys.path.insert(0, {repo!r})
from rnnlint import sandbox
baseline = sandbox.children()
proc = sandbox.start([sys.executable, "-c", {daemon!r}])
proc.wait()
import time
deadline = time.monotonic() + 5
found = sandbox.leftovers(baseline)
while not found and time.monotonic() < deadline:  # the value the loop saw: a second look can fall between
    time.sleep(0.05)                                # the middle process's exit and the daemon's new parent
    found = sandbox.leftovers(baseline)
killed = sandbox.kill_leftovers(baseline)
print(json.dumps({{"found": found, "killed": killed, "left": sandbox.leftovers(baseline)}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not LINUX_PROC, reason="child subreapers are Linux")
def test_a_daemon_that_left_the_process_group_is_found_and_killed(tmp_path):
    marker = f"rnnlint-test-daemon-{os.getpid()}-{tmp_path.name}"
    daemon = DAEMON.format(marker=marker)
    result = subprocess.run([sys.executable, "-c", REAPER.format(repo=str(REPO), daemon=daemon)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["found"] and outcome["killed"] >= 1 and outcome["left"] == [], outcome
    assert _gone([int(p) for p in _live(marker)], 2.0)


ORPHANS = """
import json, multiprocessing, os, sys
sys.path.insert(0, {repo!r})
from rnnlint import sandbox
from rnnlint.static import runner
runner.Session = lambda config, use_cache: None  # the worker's analysis is beside the point here
child = sandbox.start([sys.executable, "-c", "import time; time.sleep(600)", {marker!r}])
pool = multiprocessing.get_context("fork").Pool(2, initializer=runner._init_worker, initargs=(None, False, os.getpid()))
pool.apply(os.getpid)  # the workers are up
print(json.dumps([child.pid] + [worker.pid for worker in pool._pool]), flush=True)
os._exit(0)  # rnnlint dies without cleaning up
"""


@pytest.mark.slow
@pytest.mark.skipif(not LINUX_PROC, reason="parent-death signals are Linux")
def test_children_and_pool_workers_die_with_rnnlint(tmp_path):
    marker = f"rnnlint-test-orphan-{os.getpid()}-{tmp_path.name}"
    result = subprocess.run([sys.executable, "-c", ORPHANS.format(repo=str(REPO), marker=marker)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    pids = json.loads(result.stdout)
    assert len(pids) == 3
    assert _gone(pids), [p for p in pids if Path(f"/proc/{p}").exists()]


def test_a_form_feed_in_a_comment_does_not_shift_the_definitions_view():
    source = textwrap.dedent("""\
        import os
        # a comment with a form feed \f here
        class Model:  # and odd separators \x1c \x1d \x1e \x85 \u2028 in comments
            pass
        os.system("echo top-level code ran")
        X = 1\r\n""")
    view = definitions_view(source)
    assert "os.system" not in view
    assert view.count("\n") == source.count("\n") and "class Model:" in view
    lines = view.split("\n")
    assert lines[2].startswith("class Model:") and lines[4] == ""
    namespace: dict = {}
    exec(compile(view, "model.py", "exec"), namespace)  # noqa: S102 - the view runs nothing but definitions
    assert "Model" in namespace and namespace["X"] == 1


def test_a_location_from_the_child_must_be_a_python_file_of_the_project(tmp_path):
    """The parent reads the file a finding names (for columns and noqa): never /etc/passwd, never a FIFO."""
    from rnnlint.graph.stage import Reporter
    from tests import helpers

    (tmp_path / "model.py").write_text("x = 1\n")
    reporter = Reporter(helpers.session(tmp_path))
    reporter._folders = {tmp_path.resolve()}
    assert reporter._known(str(tmp_path / "model.py"))
    assert not reporter._known("/etc/passwd") and not reporter._known(str(tmp_path / "missing.py"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.py")
        assert not reporter._known(str(tmp_path / "fifo.py"))
    os.symlink("/etc/hostname", tmp_path / "link.py")
    assert not reporter._known(str(tmp_path / "link.py"))
