"""Running rnnlint on small projects written to a temporary folder: the engine, the command line in this process, or the command line in a new one."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from rnnlint.config import parse_table
from rnnlint.diagnostics import Diagnostic
from rnnlint.static.runner import Session

MAIN = "train.py"
REPO = Path(__file__).resolve().parents[1]


def write_project(root: Path, main: str, files: dict[str, str] | None = None) -> Path:
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    main_path = root / MAIN
    main_path.write_text(main, "utf-8")
    return main_path


def fixture_copy(tmp_path: Path, relative: str) -> Path:
    """Copy ``relative`` (``fixtures/...``) to the same place under ``tmp_path``, a project of its own.

    A copy is checked as the project it stands for (its own ``pyproject.toml``,
    or ``fixtures/pyproject.toml`` when it is copied with it), and nothing a run
    writes (caches, fixes) lands in the checkout. Returns ``tmp_path``, the
    folder to run from.
    """
    shutil.copytree(REPO / relative, tmp_path / relative, ignore=shutil.ignore_patterns("__pycache__", ".rnnlint_cache"))
    (tmp_path / "pyproject.toml").write_text("[tool.rnnlint]\n", "utf-8")
    return tmp_path


def session(root: Path, select: list[str] | None = None, options: dict | None = None) -> Session:
    table: dict = {}
    if select is not None:
        table["select"] = select
    for rule_name, values in (options or {}).items():
        table[rule_name] = values
    return Session(parse_table(table, root=root.resolve()), use_cache=False)


def check(root: Path, main: str, files=None, select=None, options=None) -> list[Diagnostic]:
    path = write_project(root, main, files)
    return session(root, select, options).check(path).diagnostics


def fix(root: Path, main: str, files=None, select=None, options=None, unsafe=True) -> tuple[str, list[Diagnostic]]:
    path = write_project(root, main, files)
    outcome = session(root, select, options).fix_document(path, MAIN, main, unsafe)
    return outcome.text, outcome.remaining


needs_hypothesmith = pytest.mark.skipif(importlib.util.find_spec("hypothesmith") is None,
                                        reason="pip install -e '.[dev]' (hypothesmith)")


def generated_python(kind: str = "from_node"):
    """hypothesmith's ``from_node()`` or ``from_grammar()`` strategy, built when the first example is drawn.

    Importing hypothesmith builds strategies for the whole grammar (seconds of CPU), which every
    test process would otherwise pay while collecting, for tests that mostly do not run (``slow``).
    """
    from hypothesis import strategies as st

    def build():
        import hypothesmith

        return getattr(hypothesmith, kind)()

    return st.deferred(build)


class Ran(NamedTuple):
    """What a run of the command line left: the fields of ``subprocess.CompletedProcess`` that tests read."""

    returncode: int
    stdout: str
    stderr: str


def rnnlint(*args: str, cwd: Path, env: dict | None = None, input: str | None = None) -> Ran:
    """Run the real command line (``rnnlint.cli.entry``, what ``rnnlint`` and ``python -m rnnlint`` call) in this process.

    Arguments, the working folder and ``env`` are set for the call and restored
    after it; stdout and stderr are kept apart and are not terminals (no colour);
    ``input`` is its stdin. A new interpreter costs about half a second of start-up
    and imports per call; use ``rnnlint_process`` where the process itself is the
    subject (what it imports, signals, the children it starts, project code it
    imports) and for each command's end-to-end test.
    """
    from click.testing import CliRunner

    from rnnlint.cli import entry

    saved_argv = sys.argv
    sys.argv = ["rnnlint", *args]
    code = 0
    try:
        with contextlib.chdir(cwd), CliRunner().isolation(input=input, env={"FORCE_COLOR": None, **(env or {})}) as (out, err, _):
            try:
                entry()
            except SystemExit as exit_:
                code = _exit_code(exit_.code)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
    finally:
        sys.argv = saved_argv
    return Ran(code, out.getvalue().decode("utf-8", "replace"), err.getvalue().decode("utf-8", "replace"))


def _exit_code(code: object) -> int:
    """The status a process exiting with ``sys.exit(code)`` reports."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")  # a message: printed, and the status is 1
    return 1


def rnnlint_process(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60, input: str | None = None):
    """Run the real command line in a new interpreter (``python -m rnnlint``), as a user or CI does.

    Its output is not a terminal, so there is no colour. ``input`` is written to its stdin.
    """
    full_env = {**os.environ, **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "rnnlint", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout, input=input,
    )
