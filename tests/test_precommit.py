"""The pre-commit hooks, run by the real ``pre-commit`` as a user's repository would.

``pre-commit try-repo`` needs the hook repository as a git repository, so the
working tree of this checkout (tracked and untracked files, not ignored ones)
is copied to a temporary folder and committed there. pre-commit then builds
its own virtual environment and pip-installs rnnlint into it, exactly as for a
user; ``PRE_COMMIT_HOME`` keeps that environment out of the user's cache. One
``try-repo`` runs both hooks, one after the other, as a user's config listing
both would: the environment (a pip install) is built once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "rnnlint tests", "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "rnnlint tests", "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("precommit"),  # one worker: the one pre-commit run serves both tests
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git"),
]


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> Path:
    """This checkout's working tree, committed to a fresh git repository."""
    copy = tmp_path_factory.mktemp("hook-repo")
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO)
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is skipped
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("init", "-q", cwd=copy)
    git("add", "-A", cwd=copy)
    git("commit", "-q", "-m", "snapshot for pre-commit try-repo", cwd=copy)
    return copy


def user_repo(root: Path, script: str) -> Path:
    git("init", "-q", cwd=root)
    (root / "train.py").write_text(script)
    git("add", "train.py", cwd=root)
    return root / "train.py"


#: one hook's part of ``pre-commit --verbose``'s output: ``name.....Failed``, ``- hook id: x``, then what it printed
HOOK = re.compile(r"^[^\n]+?\.{3,}(?P<status>Passed|Failed|Skipped)\n- hook id: (?P<id>\S+)\n(?P<body>.*?)"
                  r"(?=^[^\n]+?\.{3,}(?:Passed|Failed|Skipped)\n- hook id:|\Z)", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def hooks_run(hook_repo, tmp_path_factory):
    """Both hooks run by one ``pre-commit try-repo`` on a user's repository holding one training script,
    in the order the hooks file lists them (pre-commit builds its environment, a pip install, once):
    ``(the exit code, {hook id: (status, what it printed)}, the script as the fix hook left it)``."""
    root = tmp_path_factory.mktemp("user-repo")
    # dropout on a one-layer LSTM: RNN041, whose fix is safe; lr=0.05 with Adam on an LSTM: RNN020, whose
    # fix needs --unsafe-fixes
    script = user_repo(root, (DATA / "lstm_train.py").read_text())
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit-home")),
           "PRE_COMMIT_COLOR": "never"}
    result = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "--all-files", "--verbose"],
                            cwd=root, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    hooks = {m["id"]: (m["status"], m["body"]) for m in HOOK.finditer(output)}
    assert list(hooks) == ["rnnlint", "rnnlint-fix"], output
    return result.returncode, hooks, script.read_text()


def test_hook_reports_a_finding_and_fails(hooks_run):
    code, hooks, _ = hooks_run
    status, printed = hooks["rnnlint"]
    assert code == 1 and status == "Failed", printed
    assert "train.py:22:51: RNN020" in printed and "train.py:12:59: RNN041" in printed
    assert "files were modified" not in printed  # it reports; it never writes


def test_fix_hook_rewrites_the_file(hooks_run):
    code, hooks, fixed = hooks_run
    status, printed = hooks["rnnlint-fix"]
    assert code == 1 and status == "Failed", printed  # files were modified (and RNN020 remains)
    assert "files were modified by this hook" in printed
    assert "nn.LSTM(64, hidden, batch_first=True)" in fixed and "dropout" not in fixed
    assert "lr=0.05" in fixed  # the unsafe fix was not applied
    assert "train.py:22:51: RNN020" in printed and "RNN041" not in printed
