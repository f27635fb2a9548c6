"""The pre-commit hooks, run by the real ``pre-commit`` as a user's repository would.

``pre-commit try-repo`` needs the hook repository as a git repository, so the
working tree of this checkout (tracked and untracked files, not ignored ones)
is copied to a temporary folder and committed there. pre-commit then builds
its own virtual environment and pip-installs rnnlint into it, exactly as for a
user; ``PRE_COMMIT_HOME`` keeps that environment out of the user's cache.
"""

from __future__ import annotations

import os
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
    pytest.mark.xdist_group("precommit"),  # one worker: pre-commit builds its environment once for both hooks
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


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def user_repo(root: Path, script: str) -> Path:
    git("init", "-q", cwd=root)
    (root / "train.py").write_text(script)
    git("add", "train.py", cwd=root)
    return root / "train.py"


def try_repo(hook_repo: Path, hook: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), hook, "--all-files", "--verbose"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
    )


def test_hook_reports_a_finding_and_fails(hook_repo, pre_commit_home, tmp_path):
    # lr=0.05 with Adam on an LSTM: RNN020
    user_repo(tmp_path, (DATA / "lstm_train.py").read_text())
    result = try_repo(hook_repo, "rnnlint", tmp_path, pre_commit_home)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "rnnlint" in output and "Failed" in output
    assert "train.py:22:51: RNN020" in output


def test_fix_hook_rewrites_the_file(hook_repo, pre_commit_home, tmp_path):
    # dropout on a one-layer LSTM: RNN041, whose fix is safe; RNN020 only needs --unsafe-fixes
    script = user_repo(tmp_path, (DATA / "lstm_train.py").read_text())
    result = try_repo(hook_repo, "rnnlint-fix", tmp_path, pre_commit_home)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # files were modified (and RNN020 remains)
    fixed = script.read_text()
    assert "nn.LSTM(64, hidden, batch_first=True)" in fixed and "dropout" not in fixed
    assert "lr=0.05" in fixed  # the unsafe fix was not applied
    assert "train.py:22:51: RNN020" in output
