"""Which files a run checks, and what happens to files that are not plain Python.

Discovery: recursive ``.py``, default excludes, ``exclude`` / ``extend-exclude``
globs, ``.gitignore`` (nested, negation), and files named on the command line
always checked. Files that cannot be read or decoded get a clear RNN900 and
the run goes on.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rnnlint.config import load_config
from rnnlint.static.discovery import discover
from rnnlint.static.runner import Session
from tests.helpers import rnnlint, rnnlint_process

DATA = Path(__file__).parent / "data"


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def found(root: Path, *paths: str) -> list[str]:
    targets = [root / p for p in paths] or [root]
    files, problems = discover(targets, load_config(targets))
    assert problems == []
    return sorted(f.resolve().relative_to(root.resolve()).as_posix() for f in files)


def test_recursive_python_files_and_default_excludes(tmp_path):
    tree(tmp_path, {
        "train.py": "", "pkg/__init__.py": "", "pkg/deep/model.py": "", "notes.txt": "", "run.sh": "",
        ".venv/lib/site.py": "", "venv/x.py": "", "build/lib/pkg/model.py": "", "dist/x.py": "",
        "pkg/__pycache__/model.py": "", "foo.egg-info/x.py": "", ".git/hooks/x.py": "", "node_modules/y.py": "",
    })
    assert found(tmp_path) == ["pkg/__init__.py", "pkg/deep/model.py", "train.py"]


def test_exclude_and_extend_exclude(tmp_path):
    tree(tmp_path, {"train.py": "", "data/gen.py": "", "legacy/old.py": "", "pkg/test_x.py": "", "build/b.py": ""})
    (tmp_path / "pyproject.toml").write_text('[tool.rnnlint]\nextend-exclude = ["data/**", "test_*.py"]\n')
    assert found(tmp_path) == ["legacy/old.py", "train.py"]  # build/ still excluded by default
    # exclude replaces the defaults
    (tmp_path / "pyproject.toml").write_text('[tool.rnnlint]\nexclude = ["legacy"]\n')
    assert found(tmp_path) == ["build/b.py", "data/gen.py", "pkg/test_x.py", "train.py"]


def test_gitignore_nested_and_negated(tmp_path):
    (tmp_path / ".git").mkdir()
    tree(tmp_path, {
        ".gitignore": "generated/\n*_tmp.py\n/top_only.py\n",
        "generated/a.py": "", "scratch_tmp.py": "", "top_only.py": "", "sub/top_only.py": "",
        "sub/.gitignore": "*.py\n!keep.py\n", "sub/keep.py": "", "sub/drop.py": "",
        "sub/inner/.gitignore": "!also_kept.py\n", "sub/inner/also_kept.py": "", "sub/inner/gone.py": "",
        "other/scratch_tmp.py": "", "other/fine.py": "",
    })
    assert found(tmp_path) == ["other/fine.py", "sub/inner/also_kept.py", "sub/keep.py"]
    # checking a subdirectory that has its own config still honours the .gitignore
    # files of the repository above it
    (tmp_path / "other" / "pyproject.toml").write_text("[tool.rnnlint]\nselect = ['RNN0']\n")
    assert load_config([tmp_path / "other"]).root == (tmp_path / "other").resolve()
    assert found(tmp_path, "other") == ["other/fine.py"]
    # and respect-gitignore = false turns it off
    (tmp_path / "pyproject.toml").write_text("[tool.rnnlint]\nrespect-gitignore = false\n")
    assert "generated/a.py" in found(tmp_path)


def test_explicit_files_are_always_checked(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train_tmp.py")
    (tmp_path / "build").mkdir()
    shutil.copy(DATA / "lstm_train.py", tmp_path / "build" / "train.py")
    (tmp_path / ".gitignore").write_text("*_tmp.py\n")
    assert found(tmp_path) == []
    assert found(tmp_path, "train_tmp.py", "build/train.py") == ["build/train.py", "train_tmp.py"]
    # as pre-commit passes them, through the CLI
    result = rnnlint("check", "--select", "RNN020", "train_tmp.py", "build/train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "build/train.py:22:51: RNN020" in result.stdout and "train_tmp.py:22:51: RNN020" in result.stdout


def test_inputs_that_no_project_holds_are_each_their_own_project(tmp_path):
    # two folders named on the command line, with no pyproject.toml or .git above them: their common
    # folder (here tmp_path, in real life / or the home folder) is no project; walking it read every file
    # under it (a minute and more than a gigabyte for `check train.py /tmp/other.py`)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(DATA / "lstm_train.py", tmp_path / name / "train.py")
    tree(tmp_path, {"unrelated/big/module.py": "x = 1\n", "other/pyproject.toml": "", "other/pkg/train.py": "y = 2\n"})
    inputs = [tmp_path / "a", tmp_path / "b" / "train.py", tmp_path / "other" / "pkg" / "train.py"]
    config = load_config(inputs)
    root = tmp_path.resolve()
    assert set(config.folders) == {root / "a", root / "b", root / "other"}  # other: its own project
    walked = {p.relative_to(root).as_posix() for p in Session(config).project_files()}
    assert walked == {"a/train.py", "b/train.py", "other/pkg/train.py"}
    result = rnnlint("check", "--select", "RNN020", "a", "b/train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "a/train.py:22:51: RNN020" in result.stdout and "b/train.py:22:51: RNN020" in result.stdout
    assert not (tmp_path / ".rnnlint_cache").exists()  # nothing written in a folder the user did not name
    # one project holding every input is walked whole, as before
    assert load_config([tmp_path / "other" / "pkg" / "train.py"]).folders == ()


def test_missing_paths(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    result = rnnlint("check", "--select", "RNN020", "nope.py", "train.py", cwd=tmp_path)
    assert result.stderr.splitlines() == ["rnnlint: error: nope.py: no such file or directory"]  # said once
    assert "RNN020" in result.stdout  # the rest is still checked
    assert result.returncode == 2  # and a mistyped path never passes a build
    result = rnnlint("check", "nope.py", "gone/", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == ["rnnlint: error: nope.py: no such file or directory",
                                          "rnnlint: error: gone: no such file or directory"]


UNUSUAL = {
    "binary.py": b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00" + bytes(range(256)),
    "latin1_no_cookie.py": 'name = "Zoë"\nlr = 0.1\n'.encode("latin-1"),
    "latin1_cookie.py": '# -*- coding: latin-1 -*-\nname = "Zoë"\n'.encode("latin-1"),
    "bom.py": b"\xef\xbb\xbf" + 'name = "Zoë"\n'.encode("utf-8"),
    "bad_cookie.py": b"# coding: klingon\nx = 1\n",
    "syntax.py": b"def train(model:\n    pass\n",
}


def test_unusual_files_get_clear_rnn900_and_the_run_goes_on(tmp_path):
    for name, data in UNUSUAL.items():
        (tmp_path / name).write_bytes(data)
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    result = rnnlint("check", "--select", "RNN020,RNN900", "--output-format", "json", ".", cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    messages = {(d["path"], d["code"]): (d["line"], d["message"]) for d in json.loads(result.stdout)}
    assert messages[("binary.py", "RNN900")][1] == "binary file (contains NUL bytes), not Python source"
    line, message = messages[("latin1_no_cookie.py", "RNN900")]
    assert line == 1 and "cannot decode as utf-8: byte 0xeb on line 1" in message and "coding cookie" in message
    assert "unknown encoding" in messages[("bad_cookie.py", "RNN900")][1]
    assert messages[("syntax.py", "RNN900")][0] == 1
    assert ("train.py", "RNN020") in messages  # the run went on
    # a declared latin-1 file and a BOM file are ordinary sources
    assert not any(path in ("latin1_cookie.py", "bom.py") for path, _ in messages)
    # --ignore RNN900 is honoured for undecodable files too
    quiet = rnnlint("check", "--static", "--ignore", "RNN900", "binary.py", "latin1_no_cookie.py", cwd=tmp_path)
    assert (quiet.returncode, quiet.stdout.strip()) == (0, "No findings.")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, chmod 000 or not")
def test_unreadable_file(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    locked = tmp_path / "locked.py"
    locked.write_text("x = 1\n")
    locked.chmod(0)
    try:
        result = rnnlint("check", "--select", "RNN020,RNN900", ".", cwd=tmp_path)
    finally:
        locked.chmod(0o644)
    assert "locked.py:1:1: RNN900 cannot read file: Permission denied" in result.stdout
    assert "train.py:22:51: RNN020" in result.stdout
    assert "Traceback" not in result.stderr


def test_notebooks_are_discovered_and_read_as_notebooks(tmp_path):
    # JSON parses as a Python dict literal: a notebook must be read through its cells, not as Python.
    (tmp_path / "explore.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    (tmp_path / "broken.ipynb").write_text('{"cells": [')
    result = rnnlint("check", "--static", ".", cwd=tmp_path)
    assert "broken.ipynb:1:" in result.stdout and "not a valid notebook" in result.stdout
    assert "explore.ipynb" not in result.stdout + result.stderr  # empty notebook: nothing to report
    assert result.returncode == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_gitignore_or_config_does_not_hang(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    (tmp_path / ".git").mkdir()
    os.mkfifo(tmp_path / ".gitignore")
    result = rnnlint_process("check", "--static", "--no-cache", "--select", "RNN020", ".", cwd=tmp_path, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "train.py:22:51: RNN020" in result.stdout
    assert ".gitignore: not read: not a regular file (a pipe, socket or device)" in result.stderr
    os.mkfifo(tmp_path / "fifo.toml")
    result = rnnlint_process("check", "--config", "fifo.toml", "train.py", cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "fifo.toml: cannot read: not a regular file (a pipe, socket or device)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_gitignore_pattern_that_backtracks_does_not_hang(tmp_path):
    """`*a*a*a...b` against a long name of a's: exponential for a backtracking matcher."""
    (tmp_path / ".git").mkdir()
    name = "a" * 200 + ".py"
    tree(tmp_path, {name: "", "keep.py": "", "skip_me.py": "",
                    ".gitignore": "*a" * 12 + "b\n**/x/**/x/**/y\nskip_*.py\n!\n**/keep/**/*.txt\n"})
    files, problems = discover([tmp_path], load_config([tmp_path]))  # seconds to hours before; now instant
    assert sorted(f.name for f in files) == sorted([name, "keep.py"])
    said = "too many wildcards in one pattern (at most 3 `*` runs, 2 of them `**`): matching it could take hours; " \
           "rnnlint does not use it"
    assert [p.split(": ", 1)[1] for p in problems] == [said] * 2
    assert problems[0].endswith(f".gitignore:1: {said}") and problems[1].endswith(f".gitignore:2: {said}")
    result = rnnlint_process("check", "--static", "--no-cache", ".", cwd=tmp_path, timeout=30)
    assert result.returncode == 0 and result.stderr.count(".gitignore:") == 2


def test_a_symlink_loop_named_on_the_command_line_is_a_clean_error(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    os.symlink("loop_b", tmp_path / "loop_a")
    os.symlink("loop_a", tmp_path / "loop_b")
    alone = rnnlint("check", "loop_a", cwd=tmp_path)
    assert alone.returncode == 2 and "Traceback" not in alone.stderr
    assert "loop_a: no such file or directory (a broken symbolic link or a symlink loop)" in alone.stderr
    for command in (("check", "--select", "RNN020"), ("fix", "--select", "RNN020")):
        with_others = rnnlint(*command, "loop_a", "train.py", "loop_b/x.py", cwd=tmp_path)
        assert with_others.returncode == 2 and "Traceback" not in with_others.stderr, with_others.stderr
        assert "loop_a: no such file or directory (a broken symbolic link or a symlink loop)" in with_others.stderr
        assert "loop_b/x.py: no such file or directory" in with_others.stderr
    assert "train.py:22:51: RNN020" in rnnlint("check", "loop_a", "train.py", cwd=tmp_path).stdout


def test_the_project_files_come_in_the_order_their_paths_sort_in(tmp_path):
    """The project's file list (what the flow model scans, and the key of the cached relevance) is walked
    and sorted as strings: in the order ``Path`` objects sort in, part by part, not character by character."""
    from rnnlint.static.projectmap import walk_project

    tree(tmp_path, {name: "x = 1\n" for name in ("a/b.py", "a-c/x.py", "a.py", "a_b/y.py", "A/z.py", "a/b/c.py",
                                                  ".hidden/h.py", "venv/v.py")})
    walked = walk_project(tmp_path)
    assert walked == sorted(walked) and all(isinstance(p, Path) for p in walked)
    assert [p.relative_to(tmp_path).as_posix() for p in walked] == [
        "A/z.py", "a/b/c.py", "a/b.py", "a-c/x.py", "a.py", "a_b/y.py"]

