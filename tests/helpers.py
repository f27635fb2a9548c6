"""Running rnnlint in-process on small projects written to a temporary folder."""

from __future__ import annotations

import shutil
from pathlib import Path

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

    Checked where it lies, a fixture belongs to the whole checkout (the nearest
    ``pyproject.toml``), so each question the value-flow model asks about
    callers parses the tests and rnnlint's own sources too; a copy is checked as
    the project it stands for, and nothing a run writes (caches, fixes) lands in
    the checkout. Returns ``tmp_path``, the folder to run from.
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


def rnnlint(*args: str, cwd: Path, env: dict | None = None, timeout: float = 60, input: str | None = None):
    """Run the real command line in a subprocess (``python -m rnnlint``), as a user or CI does.

    Its output is not a terminal, so there is no colour. ``input`` is written to its stdin.
    """
    import os
    import subprocess
    import sys

    full_env = {**os.environ, **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "rnnlint", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout, input=input,
    )
