"""``rnnlint verify`` end to end: the real command line in a subprocess, real trial runs.

Every test works on a copy of its project in a temporary folder and checks
that verify left every byte of it (and of its linked data directory) as it
was. Torch runs with one thread so that the trials are quick on a busy CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnnlint.verify import compare
from rnnlint.verify.trial import TrialRun, trial_env
from tests.helpers import rnnlint_process

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "verify"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SIDE_KEYS = {"steps", "first_nonfinite_step", "losses", "grad_norms", "end_loss", "max_grad_norm",
             "saturation", "steps_per_second", "device", "seeds", "runs"}


def tree_hash(root: Path) -> dict[str, str]:
    """Every file and link under ``root`` with a hash of its content (links: their target)."""
    result = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            result[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            result[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            result[rel] = "dir"
    return result


def project(tmp_path: Path, fixture: str) -> Path:
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / fixture, root)
    data = root / "data"
    data.mkdir()
    (data / "readings.csv").write_text("t,value\n0,0.1\n1,0.2\n", "utf-8")
    return root


def verify(root: Path, *args: str, timeout: float = 120):
    before = tree_hash(root)
    result = rnnlint_process("verify", *args, cwd=root.parent, env=ENV, timeout=timeout)
    assert tree_hash(root) == before, "verify modified the user's project"
    return result


LOOP = """
import torch
from torch import nn

class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.out(out)

model = Tagger()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
"""


def write_script(tmp_path: Path, body: str, loop: bool = True) -> Path:
    """A one-file project: the LSTM training setup above (when ``loop``), then ``body``."""
    root = tmp_path / "project"
    root.mkdir()
    script = root / "train.py"
    script.write_text((LOOP if loop else "") + textwrap.dedent(body), "utf-8")
    return script


@pytest.mark.slow
def test_confirmed_on_a_diverging_relu_rnn_with_json_each_and_plot(tmp_path):
    root = project(tmp_path, "exploding_rnn")
    out, png = tmp_path / "report.json", tmp_path / "curves.png"
    args = ["project/train.py", "--steps", "30", "--each", "--json", str(out)]
    plotting = _has_matplotlib()
    if plotting:
        args += ["--plot", str(png)]
    result = verify(root, *args, "--", "--steps", "25")  # the script's own --steps: it ends first
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: confirmed: the original run hit non-finite values at step" in result.stdout
    assert "first non-finite step" in result.stdout and "grad norm max" in result.stdout
    report = json.loads(out.read_text())
    assert report["verdict"] == "confirmed"
    for side in ("before", "after"):
        assert SIDE_KEYS <= set(report[side])
        assert report[side]["device"] == "cpu"
    before, after = report["before"], report["after"]
    assert before["first_nonfinite_step"] is not None and before["steps"] < 30
    assert after["first_nonfinite_step"] is None and after["steps"] == 25 and after["stopped"] == "finished"
    assert all(isinstance(v, float) for v in after["losses"])  # every step's loss was recorded
    assert after["end_loss"] < after["losses"][0]  # the fixed run learns
    assert before["max_grad_norm"] in ("inf", "nan") or before["max_grad_norm"] > 100 * after["max_grad_norm"]
    # --each: one run per fix; the lowered learning rate alone is enough
    codes = {fix["code"] for fix in report["fixes"]}
    assert "RNN020" in codes
    assert len(report["each"]) == (len(report["fixes"]) if len(report["fixes"]) > 1 else 0)
    for item in report["each"]:
        if item["fix"].startswith("RNN020"):
            assert item["verdict"] == "confirmed"
    if plotting:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


@pytest.mark.slow
def test_inconclusive_when_the_fix_changes_nothing(tmp_path):
    root = project(tmp_path, "stable_lstm")
    out = tmp_path / "report.json"
    result = verify(root, "project/train.py", "--steps", "12", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict: inconclusive: the two runs are identical over 12 steps" in result.stdout
    report = json.loads(out.read_text())
    assert report["before"]["losses"] == report["after"]["losses"]
    assert report["before"]["max_grad_norm"] < 1.0  # why: the clip at max_norm=1.0 never engages


@pytest.mark.slow
def test_a_script_that_crashes_is_reported_with_its_traceback(tmp_path):
    script = write_script(tmp_path, """
    for step in range(100):
        x = torch.randn(4, 10, 6)  # wrong feature size: the LSTM expects 8
        loss = loss_fn(model(x).flatten(0, 1), torch.zeros(40, dtype=torch.long))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    """)
    result = verify(script.parent, "project/train.py", "--steps", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "crashed before its first step" in result.stdout
    assert "RuntimeError" in result.stdout and "train.py" in result.stdout  # the traceback tail
    assert "bootstrap" not in result.stdout  # only the script's own frames
    assert "verdict: error: neither run reached a training step" in result.stdout


@pytest.mark.slow
def test_a_script_that_hangs_is_killed_at_the_time_limit(tmp_path):
    # ignores the alarm that ends a trial in-process (as a script stuck in native code does), before
    # anything else: building the optimizer imports TorchDynamo, which can outlast the 1 s limit on a busy
    # machine. Then it waits for a file that never comes: only the parent's kill can stop it.
    ignore_alarm = "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
    script = write_script(tmp_path, ignore_alarm + LOOP + textwrap.dedent("""
    import time
    from pathlib import Path
    while not Path("never-there.flag").exists():
        time.sleep(0.05)
    for step in range(100):
        loss = loss_fn(model(torch.randn(4, 10, 8)).flatten(0, 1), torch.zeros(40, dtype=torch.long))
        loss.backward()
        optimizer.step()
    """), loop=False)
    result = verify(script.parent, "project/train.py", "--steps", "5", "--timeout", "1", timeout=180)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hung and was killed 1s after it started (0 steps done)" in result.stdout


@pytest.mark.slow
def test_a_script_that_needs_arguments_says_how_to_pass_them(tmp_path):
    script = write_script(tmp_path, """
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    for step in range(100):
        loss = loss_fn(model(torch.randn(4, 10, 8)).flatten(0, 1), torch.zeros(40, dtype=torch.long))
        loss.backward()
        optimizer.step()
    """)
    result = verify(script.parent, "project/train.py", "--steps", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "its argument parser rejected the command line (pass the script's arguments after `--`)" in result.stdout
    assert "the following arguments are required: --data" in result.stdout


@pytest.mark.slow
def test_a_script_that_never_steps_is_reported(tmp_path):
    script = write_script(tmp_path, """
    batches = []  # the dataset came out empty
    for x, y in batches:
        loss = loss_fn(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        optimizer.step()
    print("training done")
    """)
    result = verify(script.parent, "project/train.py", "--steps", "5")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "finished without updating its weights (no optimizer.step()" in result.stdout


def test_nothing_to_fix_runs_nothing(tmp_path):
    script = write_script(tmp_path, """
    import torch
    from torch import nn
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    raise SystemExit("this script must not run")
    """, loop=False)
    out = tmp_path / "report.json"
    result = verify(script.parent, "project/train.py", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No fixable findings in project/train.py or the project files it imports: nothing to verify." in result.stdout
    assert json.loads(out.read_text())["verdict"] == "nothing-to-fix"


def test_unknown_code_is_a_usage_error(tmp_path):
    root = project(tmp_path, "stable_lstm")
    result = verify(root, "project/train.py", "--codes", "RNN999")
    assert result.returncode == 2
    assert "unknown rule code" in result.stderr and "RNN999" in result.stderr


@pytest.mark.cuda
def test_cuda_device_is_forced_and_recorded(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    root = project(tmp_path, "exploding_rnn")
    out = tmp_path / "report.json"
    result = verify(root, "project/train.py", "--steps", "30", "--device", "cuda", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["verdict"] == "confirmed"
    assert report["after"]["device"].startswith("cuda")
    assert report["after"]["peak_memory_kind"] == "cuda"


# -- the verdict rules, on synthetic runs (no subprocess) ---------------------------


def _metrics(losses, grads, stopped="steps", saturation=None, seed=0):
    records = [
        {"step": i + 1, "loss": loss, "grad_norm": grad, "saturation": saturation,
         "nonfinite": not all(v == v and abs(v) != float("inf") for v in (loss, grad))}
        for i, (loss, grad) in enumerate(zip(losses, grads))
    ]
    return compare.metrics(TrialRun("x", stopped, records, seed=seed))


def _run(losses, grads, stopped="steps", saturation=None):
    """One run as the only seed of its arm (verdicts compare arms)."""
    return compare.arm([_metrics(losses, grads, stopped, saturation)], None)


def _pair(before_runs: list[dict], after_runs: list[dict]) -> tuple[dict, dict]:
    (_, before), (_, after) = compare.arms([("before", before_runs), ("after", after_runs)])
    return before, after


def test_verdict_regressed_when_the_fix_diverges():
    before = _run([1.0] * 20, [0.5] * 20)
    after = _run([1.0] * 5 + [float("nan")], [0.5] * 5 + [float("inf")], stopped="nonfinite")
    verdict, reason = compare.verdict(before, after)
    assert verdict == "regressed" and "step 6" in reason


def test_verdict_confirmed_by_gradient_norm_without_worse_loss():
    before = _run([1.0 - i * 0.01 for i in range(20)], [10.0 * (i + 1) for i in range(20)])
    after = _run([1.0 - i * 0.01 for i in range(20)], [1.0] * 20)
    verdict, reason = compare.verdict(before, after)
    assert verdict == "confirmed" and "fell 200x" in reason


def test_verdict_regressed_when_the_loss_ends_worse():
    before = _run([1.0 - i * 0.04 for i in range(20)], [1.0] * 20)
    after = _run([1.0] * 20, [0.9] * 20)
    verdict, reason = compare.verdict(before, after)
    assert verdict == "regressed" and "worse" in reason


def test_verdict_both_diverging_is_not_confirmed():
    nan, inf = float("nan"), float("inf")
    before = _run([1.0, 2.0, nan], [1.0, 5.0, inf], stopped="nonfinite")
    after = _run([1.0, 1.5, 3.0, nan], [1.0, 2.0, 9.0, inf], stopped="nonfinite")
    verdict, reason = compare.verdict(before, after)
    assert verdict == "inconclusive" and "do not prevent" in reason


# -- isolation: what a script can do to the machine and to the user's files ----------


def _live_processes_with(marker: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                state = (cmdline.parent / "stat").read_text().rpartition(") ")[2][:1]
                if state != "Z":
                    found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


TRAIN_STEPS = """
    for step in range(100):
        loss = loss_fn(model(torch.randn(4, 10, 8)).flatten(0, 1), torch.zeros(40, dtype=torch.long))
        loss.backward()
        optimizer.step()
"""  # indented like the bodies it is appended to


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="measures memory in /proc")
def test_a_run_over_the_memory_limit_is_stopped(tmp_path):
    # grows by 64 MiB every 20 ms, up to 8 GiB: far past the 1 GiB limit given
    script = write_script(tmp_path, """
    import time
    hoard = []
    for _ in range(128):
        hoard.append(b"x" * 2**26)
        time.sleep(0.02)
    """ + TRAIN_STEPS)
    result = verify(script.parent, "project/train.py", "--steps", "5", "--memory-limit", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "used more than 1 GiB of memory (with the processes it started) and was stopped" in result.stdout
    assert "the fixed copy was not run" in result.stdout  # no fix makes a script need less memory


def test_no_variable_of_a_trial_points_into_the_users_project(tmp_path, monkeypatch):
    user, copy = (tmp_path / "user").resolve(), (tmp_path / "copy").resolve()
    (user / "src").mkdir(parents=True)
    (copy / "src").mkdir(parents=True)
    monkeypatch.setenv("PWD", str(user / "src"))
    monkeypatch.setenv("OLDPWD", str(user))
    monkeypatch.setenv("DATA_DIR", str(user / "data"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(user / "src"), "/opt/lib", ""]))
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))  # the trial would compile torch anew
    monkeypatch.chdir(user)  # a relative value must not be taken for a path in the project
    env = trial_env(copy / "src", (copy, user))
    assert env["PWD"] == str(copy / "src") and "OLDPWD" not in env
    assert env["DATA_DIR"] == str(copy / "data")
    assert env["PYTHONPATH"] == os.pathsep.join([str(copy / "src"), "/opt/lib", ""])
    assert env["TERM"] == "xterm"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and "PYTHONPYCACHEPREFIX" not in env
    assert not any(str(user) in value for value in env.values())
    # a virtual environment inside the project is not copied: PATH keeps it (the guard still refuses writes)
    (user / ".venv" / "bin").mkdir(parents=True)
    monkeypatch.setenv("PATH", os.pathsep.join([str(user / ".venv" / "bin"), "/usr/bin"]))
    assert trial_env(copy / "src", (copy, user))["PATH"] == os.pathsep.join([str(user / ".venv" / "bin"), "/usr/bin"])


@pytest.mark.slow  # imports torch in a child process
def test_a_trial_runs_with_deterministic_algorithms_as_the_public_call_sets_them():
    """The trial sets the flags ``torch.use_deterministic_algorithms(True, warn_only=True)`` sets, in
    kernels and for Inductor, without importing Inductor itself (0.9 s of every trial otherwise)."""
    import subprocess
    import sys

    probe = textwrap.dedent("""
        import sys, torch
        from rnnlint.verify.bootstrap import seed_everything
        seed_everything(torch, 0)
        print("inductor imported by the seeding:", "torch._inductor.config" in sys.modules)
        print("deterministic:", torch.are_deterministic_algorithms_enabled())
        print("warn only:", torch.is_deterministic_algorithms_warn_only_enabled())
        import torch._inductor.config as inductor  # what a script that compiles gets
        print("inductor deterministic:", inductor.deterministic)
    """)
    # a trial run's environment: torch's own bytecode read (the suite's prefix would compile torch anew), none written
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env=trial_env(Path.cwd(), None))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "inductor imported by the seeding: False",
        "deterministic: True",
        "warn only: True",
        "inductor deterministic: True",
    ]


@dataclass
class Contained:
    """One verify run of a script that tries everything a trial must not do (the tests below read it)."""

    root: Path
    result: object
    accepted: object  # () -> how many connections the local listener took since the last call
    markers: dict[str, str]
    listener: socket.socket


def _listener() -> tuple[socket.socket, object]:
    """A local listener and a function counting the connections it took since the last call."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)

    def accepted() -> int:
        count = 0
        while True:
            try:
                listener.accept()[0].close()
                count += 1
            except BlockingIOError:
                return count

    return listener, accepted


def _connect(port: int) -> str:
    return f"""
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
        print("connected")
    except (PermissionError, OSError) as exc:
        print("refused:", exc)
    """


@pytest.fixture(scope="session")  # its xdist_group's tests may not run one after the other: made once
def contained(tmp_path_factory):
    """A connection, dir_fd from $PWD and from a path, sqlite3,
    SIGKILL/SIGSTOP to rnnlint, a child left running and a setsid daemon: one script, one run."""
    tmp = tmp_path_factory.mktemp("contained")
    name = f"{os.getpid()}-{tmp.name}"
    markers = {"leftover": f"rnnlint-leftover-{name}", "daemon": f"rnnlint-daemon-{name}"}
    listener, accepted = _listener()
    root = tmp / "project"
    write_script(tmp, f"""
    import os, signal, socket, sqlite3, subprocess, sys

    def attempt(step):
        try:
            step()
        except (PermissionError, ProcessLookupError) as exc:
            print("refused:", exc)

    """ + _connect(listener.getsockname()[1]) + f"""
    here = os.open(os.environ["PWD"], os.O_RDONLY)  # the copy's folder, never the user's
    attempt(lambda: os.unlink("victim.txt", dir_fd=here))  # allowed: it is the copy's victim
    user = os.open({str(root)!r}, os.O_RDONLY)
    attempt(lambda: os.unlink("victim.txt", dir_fd=user))
    attempt(lambda: os.close(os.open("victim.txt", os.O_WRONLY | os.O_TRUNC, dir_fd=user)))
    attempt(lambda: sqlite3.connect(os.path.join({str(root)!r}, "stolen.db")).execute("create table t (x)"))
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        attempt(lambda: os.kill(os.getppid(), sig))
        attempt(lambda: signal.pidfd_send_signal(os.pidfd_open(os.getppid()), sig))
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{markers['leftover']}"])
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "{markers['daemon']}"],
                     start_new_session=True)
    """ + TRAIN_STEPS)
    (root / "victim.txt").write_text("the user's own file\n", "utf-8")
    result = verify(root, "project/train.py", "--steps", "3")  # asserts the project is unchanged
    yield Contained(root, result, accepted, markers, listener)
    listener.close()


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="looks for processes in /proc")


@pytest.mark.slow
def test_writes_into_the_project_are_refused_and_reported(tmp_path):
    # data/ is linked into the copy, so without the guard this write would land in the user's data
    script = write_script(tmp_path, """
    try:
        with open("data/cache.txt", "w") as cache:
            cache.write("preprocessed")
    except PermissionError as exc:
        print("cache not written:", exc)
    """ + TRAIN_STEPS)
    (script.parent / "data").mkdir()
    (script.parent / "data" / "readings.csv").write_text("t,value\n0,0.1\n", "utf-8")
    result = verify(script.parent, "project/train.py", "--steps", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    cache = (script.parent / "data" / "cache.txt").resolve()
    assert f"the before run tried to write {cache} in your project; rnnlint refused" in result.stderr
    assert not cache.exists()


@pytest.mark.xdist_group("verify-contained")  # one worker makes the shared verify run, once
@pytest.mark.slow
@needs_proc
def test_processes_a_script_leaves_behind_are_stopped(contained):
    result = contained.result
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the before run left processes running when it ended" in result.stderr
    assert _live_processes_with(contained.markers["leftover"]) == []


@pytest.mark.xdist_group("verify-contained")  # one worker makes the shared verify run, once
@pytest.mark.slow
@needs_proc
def test_a_hostile_script_cannot_reach_the_project_the_parent_or_outlive_the_run(contained):
    """dir_fd from $PWD and from a path, sqlite3, SIGKILL/SIGSTOP to rnnlint, a setsid daemon: all contained."""
    result = contained.result  # verify() asserted that the project (victim.txt too) is unchanged
    assert result.returncode == 0, result.stdout + result.stderr  # rnnlint was neither killed nor stopped
    assert not (contained.root / "stolen.db").exists()
    assert "the before run left processes running when it ended" in result.stderr
    assert _live_processes_with(contained.markers["daemon"]) == []


@pytest.mark.xdist_group("verify-contained")  # one worker makes the shared verify run, once
@pytest.mark.slow
@needs_proc
def test_the_network_is_refused_unless_allowed(contained, tmp_path):
    """A trial opens no connection unless the user passes --allow-network (a local listener checks)."""
    assert contained.accepted() == 0
    assert "--allow-network" in contained.result.stderr  # the refusal says how to allow it
    script = write_script(tmp_path, "\n    import socket\n" + _connect(contained.listener.getsockname()[1]) + TRAIN_STEPS)
    allowed = verify(script.parent, "project/train.py", "--steps", "3", "--allow-network")
    assert allowed.returncode in (0, 1), allowed.stdout + allowed.stderr
    assert contained.accepted() >= 1  # both runs (before and after the fixes) may connect


# -- issue 14: numbers a user can trust ------------------------------------------------


def _row(stdout: str, label: str) -> list[str]:
    """The cells of one table row (columns are separated by two spaces or more)."""
    import re

    line = next(l for l in stdout.splitlines() if l.startswith(label + "  "))
    return re.split(r"\s{2,}", line[len(label):].strip())


def _verdict_line(stdout: str) -> str:
    return next(l for l in stdout.splitlines() if l.startswith("verdict: "))


@pytest.mark.slow  # trial runs: the script trains in child processes
def test_the_reason_the_table_and_the_seeds_agree(tmp_path):
    """--seeds 2 on the word LM's Adam path: one set of numbers, a spread, a verdict beyond seed noise or not."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "word_lm_manual_sgd", root)
    out = tmp_path / "report.json"
    result = verify(root, "project/train.py", "--steps", "8", "--seeds", "2", "--jobs", "2", "-q", "--json", str(out),
                    "--", "--optimizer", "adam", "--lr", "0.03", "--words", "2000", timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    report = json.loads(out.read_text())
    before, after = report["before"], report["after"]
    assert before["seeds"] == after["seeds"] == [0, 1]
    assert [m["seed"] for m in before["runs"]] == [0, 1]
    assert before["runs"][0]["losses"] != before["runs"][1]["losses"]  # the seeds really differ
    # the table shows mean ± sd and the seed range; the reason quotes exactly the table's cells
    ends = _row(result.stdout, "loss end")
    assert all(" ± " in cell for cell in ends)
    assert len(_row(result.stdout, "loss end, seed range")) == 2
    verdict = _verdict_line(result.stdout)
    assert f"end loss {ends[0]} -> {ends[1]} (mean ± sd of 2 seeds)" in verdict
    grads = _row(result.stdout, "grad norm max, before clipping")
    assert grads == [f"{before['max_grad_norm']:.3g}", f"{after['max_grad_norm']:.3g}"]
    if "max gradient norm" in verdict:
        assert f"{grads[0]} -> {grads[1]}" in verdict
    lows, highs = (before["end_loss_min"], after["end_loss_min"]), (before["end_loss_max"], after["end_loss_max"])
    separated = highs[1] < lows[0] or lows[1] > highs[0]
    if report["verdict"] in ("confirmed", "regressed") and "gradient norm" not in report["reason"]:
        assert separated and "every fixed seed ended" in report["reason"]
    if not separated and report["verdict"] == "inconclusive" and "no marked difference" not in report["reason"]:
        assert "within the spread of 2 seeds" in report["reason"]
    assert "run 1/" not in result.stderr  # -q: no progress
    assert "2 runs at a time shared this machine" in result.stdout  # the runs went in parallel, and it says so


@pytest.mark.slow  # trial runs: the script trains in child processes
def test_a_loop_without_an_optimizer_is_measured_and_the_fixed_copy_runs(tmp_path):
    """The classic word LM: p.data.add_(p.grad, alpha=-lr) by hand. Its steps are weight changes."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURES / "word_lm_manual_sgd", root)
    out = tmp_path / "report.json"
    result = verify(root, "project/train.py", "--steps", "8", "--json", str(out), "--", "--words", "2000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _row(result.stdout, "steps counted by") == ["weight changes", "weight changes"]
    assert "no optimizer object; a step is a change of the weights" in result.stdout
    report = json.loads(out.read_text())
    before = report["before"]["runs"][0]
    assert before["steps"] == 8 and before["stopped"] == "steps"
    assert all(isinstance(v, float) and v > 0 for v in before["losses"])  # the loss of each backward()
    # the hand-written update moves the weights by lr * |grad|: lr is 20, the gradients are not clipped
    assert all(u == pytest.approx(20 * g, rel=1e-3) for u, g in zip(before["update_norms"], before["grad_norms"]))
    assert report["after"] is not None  # the fixed copy ran (its fixes touch only the Adam branch)
    assert "not run" not in result.stdout
    assert "verdict: inconclusive: the two runs are identical over 8 steps" in result.stdout


@pytest.mark.slow  # trial runs: the script trains in child processes
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux's")
def test_the_runs_of_a_seed_share_one_torch_import_and_nothing_else(tmp_path):
    """Two seeds on two workers: each worker runs one seed's runs, forked from one interpreter that imported
    torch (same parent, another one per seed, as its hash seed differs), and each run still starts from that
    clean interpreter (what one run sets in an imported module the next never sees), in its own copy."""
    log = tmp_path / "runs.txt"  # outside the project: the script may write there
    script = write_script(tmp_path, f"""
    import os, sys
    seen = hasattr(torch, "_left_by_an_earlier_run")
    torch._left_by_an_earlier_run = True
    with open({str(log)!r}, "a") as out:
        out.write(f"{{os.getppid()}} {{hash('rnnlint')}} {{seen}} {{os.getcwd()}}\\n")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)  # RNN020: the fix writes 0.001
    for step in range(100):
        loss = loss_fn(model(torch.randn(4, 10, 8)).flatten(0, 1), torch.randint(0, 3, (40,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    """)
    result = verify(script.parent, "project/train.py", "--steps", "3", "--seeds", "2", "--jobs", "2")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert "2 runs at a time shared this machine" in result.stdout  # the seeds side by side
    runs = [line.split(" ", 3) for line in log.read_text().splitlines()]
    assert len(runs) == 4  # seed 0: before, after; seed 1: before, after (the seeds' lines interleave)
    servers: dict[str, set[str]] = {}  # PYTHONHASHSEED is the seed, in every run of it
    for parent, seed_hash, _, _ in runs:
        servers.setdefault(seed_hash, set()).add(parent)
    assert len(servers) == 2 and all(len(parents) == 1 for parents in servers.values())  # one server per seed
    assert len(set.union(*servers.values())) == 2  # not the same one
    assert all(seen == "False" for _, _, seen, _ in runs)
    cwds = [cwd for *_, cwd in runs]
    assert len(set(cwds)) == 2 and all(str(script.parent) not in cwd for cwd in cwds)  # the two copies


def bootstrap_config(folder: Path, script: Path, name: str) -> Path:
    """The configuration of one trial run of ``script`` (one step, no guard: nothing to protect), written as
    ``name``.json beside it, for tests that start the bootstrap (or its fork server) themselves."""
    config = folder / f"{name}.json"
    config.write_text(json.dumps({"script": str(script), "args": [], "steps": 1, "seed": 0, "device": "cpu",
                                  "time_limit": 60, "events": str(folder / f"{name}.events"), "project": str(folder),
                                  "protect": None, "copy": None, "network": False}))
    return config


@pytest.mark.slow  # the fork server imports torch
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux's")
def test_on_a_busy_machine_the_fork_server_imports_torchdynamo_once_before_the_first_run(tmp_path):
    """Every optimizer imports TorchDynamo (a second of CPU). Where no core is idle the server imports it before
    it forks the first run, so that no run imports it again; the load average is set high for the server."""
    import subprocess

    from rnnlint.verify.trial import BOOTSTRAP

    script = tmp_path / "train.py"
    script.write_text(f"import sys\nwith open({str(tmp_path / 'seen.txt')!r}, 'a') as out:\n"
                      f"    out.write(str('torch._dynamo' in sys.modules) + '\\n')\n", "utf-8")
    # a trial run's environment: torch's own bytecode read (the suite's prefix would compile torch anew), none written
    env = {**trial_env(tmp_path, None), **ENV, "CUDA_VISIBLE_DEVICES": ""}
    requests = []
    for run in ("first", "second"):
        config = bootstrap_config(tmp_path, script, run)
        requests.append(json.dumps({"config": str(config), "cwd": str(tmp_path), "env": env,
                                    "stdout": str(tmp_path / f"{run}.out"), "stderr": str(tmp_path / f"{run}.err")}))
    busy = ("import os, runpy, sys; os.getloadavg = lambda: (64.0, 64.0, 64.0); "
            f"sys.argv = [{str(BOOTSTRAP)!r}, '--serve', '2']; runpy.run_path(sys.argv[0], run_name='__main__')")
    server = subprocess.run([sys.executable, "-c", busy], input="\n".join(requests) + "\n", capture_output=True,
                            text=True, timeout=120, env=env)
    replies = [json.loads(line) for line in server.stdout.splitlines()]
    assert [r.get("exit") for r in replies if "exit" in r] == [0, 0], server.stderr
    assert (tmp_path / "seen.txt").read_text().split() == ["True", "True"]


@pytest.mark.slow  # a trial run imports torch
def test_a_runs_collections_leave_out_what_existed_before_the_script(tmp_path):
    """torch's objects (with the hooks, and in a forked run the fork server's) are frozen before the script
    starts: the collections the script sets off, and the one at the run's end, walk only what it made."""
    import subprocess

    from rnnlint.verify.trial import BOOTSTRAP

    seen = tmp_path / "seen.txt"
    script = tmp_path / "train.py"
    script.write_text(f"import gc\nwith open({str(seen)!r}, 'w') as out:\n"
                      f"    out.write(f'{{gc.get_freeze_count()}} {{len(gc.get_objects())}}')\n", "utf-8")
    config = bootstrap_config(tmp_path, script, "run")
    env = {**trial_env(tmp_path, None), **ENV, "CUDA_VISIBLE_DEVICES": ""}  # torch's own bytecode read
    run = subprocess.run([sys.executable, str(BOOTSTRAP), str(config)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    frozen, tracked = map(int, seen.read_text().split())
    assert frozen > 100_000  # torch's own objects, at least
    assert tracked < frozen / 10  # what a collection during the script walks


@pytest.fixture(scope="session")  # its xdist_group's tests may not run one after the other: made once
def clipped_and_timed(tmp_path_factory):
    """One verify run (14 steps) of a script that clips twice, logs the gradient norm it measures itself
    before clipping, and is slow for its first steps only in the first run to start (cold caches)."""
    tmp = tmp_path_factory.mktemp("timed")
    log, marker = tmp / "norms.txt", tmp / "warm.flag"  # outside the project: the script may write there
    script = write_script(tmp, f"""
    import os, time
    cold = not os.path.exists({str(marker)!r})
    open({str(marker)!r}, "w").close()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)  # RNN020: the fix writes 0.001
    for step in range(100):
        loss = loss_fn(model(torch.randn(4, 10, 8)).flatten(0, 1), torch.randint(0, 3, (40,)))
        optimizer.zero_grad()
        loss.backward()
        grads = [p.grad for p in model.parameters()]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        with open({str(log)!r}, "a") as out:
            out.write(f"{{optimizer.param_groups[0]['lr']}} {{float(norm)!r}}\\n")
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)  # a second clip over the same weights
        optimizer.step()
        time.sleep(0.6 if cold and step < 3 else 0.05)
    """)
    out = tmp / "report.json"
    result = verify(script.parent, "project/train.py", "--steps", "14", "--json", str(out))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result, json.loads(out.read_text()), log


@pytest.mark.xdist_group("verify-clipped")  # one worker makes the shared verify run, once
@pytest.mark.slow  # trial runs: the script trains in child processes
def test_two_clip_calls_count_the_gradient_norm_once_before_clipping(clipped_and_timed):
    """The norm the script itself measures before its clips is the norm verify reports: not sqrt(a² + b²)."""
    result, report, log = clipped_and_timed
    assert "grad norm max, before clipping" in result.stdout
    assert "measured before any clipping" in result.stdout
    own = {}
    for line in log.read_text().splitlines():
        lr, norm = line.split()
        own.setdefault(float(lr), []).append(float(norm))
    for side, lr in (("before", 0.01), ("after", 0.001)):
        recorded = report[side]["runs"][0]["grad_norms"]
        assert len(recorded) == 14
        assert recorded == pytest.approx(own[lr][:14], rel=1e-5)
        assert min(recorded) > 0.05  # before clipping


@pytest.mark.xdist_group("verify-clipped")  # one worker makes the shared verify run, once
@pytest.mark.slow  # trial runs: the script trains in child processes
def test_steps_per_second_does_not_compare_a_cold_run_with_a_warm_one(clipped_and_timed):
    """The first run to start is slow for its first steps (cold caches); the second is not. Same rate."""
    result, report, _ = clipped_and_timed
    before, after = report["before"]["steps_per_second"], report["after"]["steps_per_second"]
    assert 0.67 < before / after < 1.5, (before, after)
    assert before < 1 / 0.05  # the sleep bounds the rate: the numbers are real step times
    assert "leaving out each run's first quarter of steps" in result.stdout
    # progress on stderr (not a terminal: one line per finished run), none on stdout
    assert "run 1/2 before seed 0: 14 steps in" in result.stderr and "run 2/2 after seed 0" in result.stderr
    assert "elapsed]" in result.stderr and "run 1/2" not in result.stdout


@pytest.mark.slow  # trial runs: the script trains in child processes
def test_a_traceback_from_the_fixed_copy_names_the_users_lines(tmp_path):
    """The clipping fix inserts a line above the crash: the fixed copy's traceback still points at the user's line."""
    script = write_script(tmp_path, TRAIN_STEPS + """
        if step == 2:
            raise RuntimeError("corrupt batch in shard 7")
    """)
    crash = 1 + next(i for i, line in enumerate(script.read_text().splitlines()) if "corrupt batch" in line)
    out = tmp_path / "report.json"
    result = verify(script.parent, "project/train.py", "--steps", "10", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert any(f["code"] == "RNN001" for f in report["fixes"])  # the fix that inserts a line
    for side in ("before", "after"):
        assert f'train.py", line {crash}, in <module>' in report[side]["error"]
        assert str(script.parent) in report[side]["error"] and "rnnlint-verify-" not in report[side]["error"]
    assert "after: the same failure" in result.stdout  # the tracebacks are now the same


def test_a_line_the_fix_wrote_is_named_as_the_fixed_copys():
    from rnnlint.verify.trial import line_map, users_view

    original = "a\nb\nstep()\nboom()\n"
    fixed = "a\nb\nclip()\nstep()\nboom()\n"
    moved = line_map(original, fixed)
    assert moved == {3: (3, True), 4: (3, False), 5: (4, False)}
    copy, user = Path("/tmp/rnnlint-verify-x/after"), Path("/home/me/project")
    text = (f'  File "{copy}/train.py", line 5, in <module>\n'
            f'  File "{copy}/train.py", line 3, in <module>\n  File "/usr/lib/x.py", line 9, in f')
    shown = users_view(text, copy, user, {"train.py": moved})
    assert shown.splitlines() == [
        f'  File "{user}/train.py", line 4, in <module>',
        f'  File "{user}/train.py", line 3 (line 3 of the fixed copy, written by the fix), in <module>',
        '  File "/usr/lib/x.py", line 9, in f',
    ]


# -- seeds and seed noise in the verdict (synthetic arms, no subprocess) --------------------


def test_one_seed_says_a_small_difference_may_be_seed_noise():
    """A lower lr learns slower in a short trial; the original did not diverge: no evidence either way."""
    before = _metrics([2.0 - 0.02 * i for i in range(50)], [1.0] * 50)  # ends near 1.0
    after = _metrics([2.0 - 0.016 * i for i in range(50)], [0.8] * 50)  # ends near 1.2: 20% worse
    verdict, reason = compare.verdict(*_pair([before], [after]))
    assert verdict == "inconclusive"
    assert "with one seed a difference this size cannot be told from seed noise" in reason
    assert "the original did not diverge in that time: no evidence either way about stability" in reason


def test_several_seeds_confirm_only_an_effect_larger_than_their_spread():
    def seeds(base: float, spread: list[float]) -> list[dict]:
        return [_metrics([2.0] * 10 + [base + d] * 10, [1.0] * 20, seed=n) for n, d in enumerate(spread)]

    verdict, reason = compare.verdict(*_pair(seeds(1.0, [0.0, 0.05, -0.05]), seeds(0.7, [0.0, 0.02, -0.02])))
    assert verdict == "confirmed" and "every fixed seed ended lower than every original seed" in reason
    assert "(mean ± sd of 3 seeds)" in reason
    verdict, reason = compare.verdict(*_pair(seeds(1.0, [0.0, 0.4, -0.4]), seeds(0.7, [0.0, 0.4, -0.4])))
    assert verdict == "inconclusive" and "within the spread of 3 seeds" in reason
    before, after = _pair(seeds(1.0, [0.0, 0.4, -0.4]), seeds(0.7, [0.0, 0.4, -0.4]))
    assert "loss end, seed range" in report_table([("before", before), ("after", after)])


def report_table(columns):
    from rnnlint.verify import report

    return report.table(columns)


@pytest.mark.slow  # trial runs: the script trains in child processes
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_on_a_terminal_progress_is_live_on_stderr_and_stays_out_of_stdout(tmp_path):
    import subprocess
    import sys

    script = write_script(tmp_path, """
    import time
    """ + TRAIN_STEPS + """
        time.sleep(0.15)
    """)
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "rnnlint", "verify", "project/train.py", "--steps", "6"],
                            cwd=tmp_path, env={**os.environ, **ENV}, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other end closed (Linux)
            break
        if not chunk:
            break
        terminal += chunk
    stdout = proc.communicate(timeout=120)[0].decode()
    os.close(master)
    shown = terminal.decode(errors="replace")
    assert proc.returncode == 0, stdout + shown
    assert "run 1/2: before seed 0 step " in shown and "/6  [0:" in shown  # run i/n, step k/N, elapsed
    assert "run 2/2: after seed 0 step " in shown
    assert "run 1/2" not in stdout and "\r" not in stdout  # the table's stream carries no progress


def test_a_worker_that_dies_before_reporting_is_an_error_not_a_hang():
    """A run's worker that dies without sending its result (killed by the OOM killer, say) ends the wait
    with an error that names the run, instead of leaving verify waiting for a result that never comes."""
    import multiprocessing

    from rnnlint.verify.trial import Job, _received

    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=os._exit, args=(3,))
    process.start()
    writer.close()
    job = Job("before", 0, Path("."), 1)
    with pytest.raises(RuntimeError, match=r"the worker of run before-seed0 died \(exit code 3\)"):
        _received(reader, {job.label: job}, process)
    assert not process.is_alive()
