"""Hostile input: every case gets a clear message naming the file and the cause,
the rest of the run goes on, exit codes stay 0/1/2, no traceback, and nothing
is written to a file that was not fixed.

Cases already covered elsewhere are not repeated here: binary files, non-UTF-8
files with and without a cookie and a bad cookie (``test_discovery``),
unreadable files, broken notebook JSON and nbformat 3 (``test_notebook``),
invalid TOML and most wrong config types in-process (``test_config``), a file
changed on disk before ``write_atomic`` (``test_fixer``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from rnnlint import cli
from rnnlint.config import ConfigError, load_config
from rnnlint.static.runner import Session
from rnnlint.source import MAX_SOURCE_BYTES

from tests.helpers import rnnlint, rnnlint_process

DATA = Path(__file__).parent / "data"
TRAIN = DATA / "lstm_train.py"  # RNN041 at 12:59 (a safe fix), RNN020 at 22:51
HEADER = "import torch\nimport torch.nn as nn\nmodel = nn.LSTM(8, 8)\nopt = torch.optim.Adam(model.parameters(), lr=0.1)\n"


def stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def assert_clean_exit(result, codes=(1,)) -> None:
    assert result.returncode in codes, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr


# -- size and depth ---------------------------------------------------------------


def test_a_ten_megabyte_file_is_skipped_with_a_message_and_quickly(tmp_path):
    line = "TABLE_{} = [0.5, 0.25, 0.125, 0.0625, 0.03125]  # Adam lr sweep, optim.step() sizes\n"
    with open(tmp_path / "generated.py", "w") as handle:
        handle.write(HEADER)
        written, i = 0, 0
        while written < 10 * 2**20:
            written += handle.write(line.format(i))
            i += 1
    assert (tmp_path / "generated.py").stat().st_size > MAX_SOURCE_BYTES
    shutil.copy(TRAIN, tmp_path / "train.py")
    big = stamp(tmp_path / "generated.py")
    start = time.perf_counter()
    result = rnnlint("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert time.perf_counter() - start < 30  # parsing it would take minutes and gigabytes
    assert_clean_exit(result)
    assert "generated.py:1:1: RNN900 file too large to analyse (10.0 MiB, the limit is 2 MiB)" in result.stdout
    assert "train.py:22:51: RNN020" in result.stdout  # the run went on
    fixed = rnnlint("fix", "--static", "--no-cache", "--apply", "--unsafe-fixes", ".", cwd=tmp_path)
    assert_clean_exit(fixed)
    assert stamp(tmp_path / "generated.py") == big


DEEP = {
    # CPython refuses all of these; libcst's native parser used to overflow the C stack on them
    # (the process died with SIGSEGV and the whole run was lost)
    "parens.py": "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "lists.py": "x = " + "[" * 5000 + "]" * 5000 + "\n",
    "calls.py": "x = " + "f(" * 3000 + ")" * 3000 + "\n",
    "attributes.py": "x = a" + ".b" * 30000 + "\n",
    "unary.py": "x = " + "-" * 30000 + "1\n",
    "sum.py": "x = " + "+".join(["1"] * 30000) + "\n",
}


def test_deeply_nested_expressions_are_reported_not_fatal(tmp_path):
    for name, body in DEEP.items():
        (tmp_path / name).write_text(HEADER + body)
    shutil.copy(TRAIN, tmp_path / "train.py")
    before = {name: stamp(tmp_path / name) for name in DEEP}
    result = rnnlint_process("check", "--static", "--no-cache", "--output-format", "json", ".", cwd=tmp_path)
    assert_clean_exit(result)
    found = {(d["path"], d["code"]): d["message"] for d in json.loads(result.stdout)}
    for name in DEEP:
        message = found[(name, "RNN900")]
        assert "too many nested parentheses" in message or "nested too deeply" in message, (name, message)
    assert ("train.py", "RNN020") in found
    fixed = rnnlint_process("fix", "--static", "--no-cache", "--apply", "--unsafe-fixes", ".", cwd=tmp_path)
    assert_clean_exit(fixed)
    assert {name: stamp(tmp_path / name) for name in DEEP} == before


def test_the_depth_guard_does_not_reject_syntax_newer_than_the_interpreter(tmp_path):
    # CPython 3.11 refuses `type X = ...` (3.12); libcst reads it: the file is still analysed
    (tmp_path / "train.py").write_text(HEADER + "type Batch = list[int]\n")
    result = rnnlint("check", "--static", "--no-cache", "train.py", cwd=tmp_path)
    assert_clean_exit(result)
    assert "train.py:4:" in result.stdout and "RNN020" in result.stdout and "RNN900" not in result.stdout


def test_a_deeply_nested_module_imported_by_the_checked_file(tmp_path):
    """The project index and cross-file rules parse imported modules too: same protection."""
    (tmp_path / "vocab.py").write_text("PAD_IDX = 0\nTABLE = " + "(" * 3000 + "1" + ")" * 3000 + "\n")
    (tmp_path / "layers.py").write_text("import torch.nn as nn\nclass Encoder(nn.Module):\n    pass\n"
                                        "X = a" + ".b" * 30000 + "\n")
    (tmp_path / "train.py").write_text(
        "import torch\nfrom torch import nn\nfrom torch.nn.utils.rnn import pad_sequence\n"
        "from vocab import PAD_IDX\nfrom layers import Encoder\n"
        "model = Encoder()\ncriterion = nn.CrossEntropyLoss()\n"
        "optimizer = torch.optim.Adam(model.parameters(), lr=0.1)\n"
        "for x, y in loader:\n    x = pad_sequence(x, padding_value=PAD_IDX)\n"
        "    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n"
    )
    result = rnnlint_process("check", "--static", "--no-cache", "train.py", cwd=tmp_path)
    assert result.returncode in (0, 1), result  # not -11 (SIGSEGV)
    assert "Traceback" not in result.stderr


# -- the file system moving under the run --------------------------------------------


def test_symlink_loops_and_dangling_links(tmp_path):
    shutil.copy(TRAIN, tmp_path / "train.py")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "loop").symlink_to("..")  # a directory loop: not followed
    (tmp_path / "a.py").symlink_to("b.py")
    (tmp_path / "b.py").symlink_to("a.py")
    (tmp_path / "self").symlink_to("self")
    (tmp_path / "dangling.py").symlink_to(tmp_path / "gone" / "x.py")
    result = rnnlint("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert_clean_exit(result)
    for name in ("a.py", "b.py", "dangling.py"):
        assert f"warning: {name}: broken symbolic link or symlink loop; skipped" in result.stderr
    assert "train.py:22:51: RNN020" in result.stdout
    assert result.stdout.count("train.py:22:51: RNN020") == 1  # not again through pkg/loop
    # named on the command line: said, and with nothing else to check that is a usage error
    explicit = rnnlint("check", "--static", "--no-cache", "self", "a.py", cwd=tmp_path)
    assert_clean_exit(explicit, codes=(2,))
    assert "self: no such file or directory (a broken symbolic link or a symlink loop)" in explicit.stderr
    fixed = rnnlint("fix", "--static", "--no-cache", "--apply", ".", cwd=tmp_path)
    assert_clean_exit(fixed)


@pytest.mark.slow  # the graph stage builds the model in a child process
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_named_like_a_source_does_not_hang_the_run(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")
    os.mkfifo(tmp_path / "pipe.ipynb")
    shutil.copy(TRAIN, tmp_path / "train.py")
    # the graph stage too (--graph): every stage would wait forever for a writer
    result = rnnlint_process("check", "--graph", "--no-cache", ".", cwd=tmp_path, timeout=120)
    assert_clean_exit(result)
    for name in ("pipe.py", "pipe.ipynb"):
        assert f"warning: {name}: not a regular file (a pipe, socket or device); skipped" in result.stderr
    assert "train.py:22:51: RNN020" in result.stdout
    # the project index does not read it either, when a checked file imports it
    (tmp_path / "uses_pipe.py").write_text("import torch\nfrom pipe import Net\nmodel = Net()\n"
                                           "opt = torch.optim.Adam(model.parameters(), lr=0.5)\n")
    assert_clean_exit(rnnlint_process("check", "--static", "--no-cache", "uses_pipe.py", cwd=tmp_path, timeout=60), (0, 1))


def test_an_unreadable_directory_is_reported_and_the_rest_checked(tmp_path, monkeypatch):
    # root reads every directory whatever its mode: make scandir refuse instead
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "hidden.py").write_text(HEADER)
    shutil.copy(TRAIN, tmp_path / "train.py")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = rnnlint("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "locked: cannot read directory: Permission denied" in result.stderr
    assert "train.py:22:51: RNN020" in result.stdout and "hidden.py" not in result.stdout


def test_a_file_deleted_after_it_was_listed(tmp_path, monkeypatch):
    shutil.copy(TRAIN, tmp_path / "train.py")
    (tmp_path / "vanishing.py").write_text(HEADER)
    real_discover = cli.discover

    def discover(*args, **kwargs):
        files, problems = real_discover(*args, **kwargs)
        (tmp_path / "vanishing.py").unlink()  # e.g. a build step or `git checkout` meanwhile
        return files, problems

    monkeypatch.setattr(cli, "discover", discover)
    result = rnnlint("fix", "--static", "--no-cache", "--apply", ".", cwd=tmp_path)
    assert result.returncode == 1
    assert "vanishing.py:1:1: RNN900 cannot read file: No such file or directory" in result.stdout
    assert "Fixed" in result.stderr and not (tmp_path / "vanishing.py").exists()
    assert "dropout" not in (tmp_path / "train.py").read_text()  # the other file was fixed


def test_fix_apply_never_overwrites_a_file_edited_during_the_run(tmp_path, monkeypatch):
    shutil.copy(TRAIN, tmp_path / "train.py")
    shutil.copy(TRAIN, tmp_path / "other.py")
    from rnnlint.static import fixer

    real_fix_text = fixer.fix_text

    def fix_text(text, analyse, unsafe):
        outcome = real_fix_text(text, analyse, unsafe)
        # the user saves the file in the editor while rnnlint computes the fix
        if "# user edit" not in text:
            with open(tmp_path / "train.py", "a") as handle:
                handle.write("# user edit\n")
        return outcome

    monkeypatch.setattr(fixer, "fix_text", fix_text)  # read by the runner when a fix starts
    result = rnnlint("fix", "--static", "--no-cache", "--apply", "train.py", cwd=tmp_path)
    assert result.returncode == 1  # the findings of train.py remain: it was not fixed
    assert "train.py: not written: file changed on disk since it was read; not overwritten" in result.stderr
    assert (tmp_path / "train.py").read_text() == TRAIN.read_text() + "# user edit\n"
    assert "train.py:12:59: RNN041" in result.stdout  # reported as still there, not as fixed


# -- notebooks and config ----------------------------------------------------------------


NOTEBOOKS = {
    "deep.ipynb": ("[" * 100000 + "]" * 100000, "not a valid notebook: JSON nested too deeply"),
    "array.ipynb": ("[1, 2]", 'not a valid notebook: no "cells" list'),
    "null.ipynb": ("null", 'not a valid notebook: no "cells" list'),
    "empty.ipynb": ("", "not a valid notebook: invalid JSON: Expecting value"),
    "cells_object.ipynb": ('{"cells": {"0": {}}, "nbformat": 4}', 'not a valid notebook: no "cells" list'),
    "numbers.ipynb": ('{"cells": [{"cell_type": "code", "source": [1, 2]}], "metadata": {}, "nbformat": 4}',
                      "not a valid notebook: cell 1 has a source that is not text"),
}


def test_notebooks_with_missing_or_mistyped_keys(tmp_path):
    for name, (text, _) in NOTEBOOKS.items():
        (tmp_path / name).write_text(text)
    # tolerated: a cell that is not an object, a code cell without source, metadata of the wrong type
    (tmp_path / "odd.ipynb").write_text(json.dumps(
        {"cells": [5, {"cell_type": "code"}, {"cell_type": "code", "source": "x = 1\n"}],
         "metadata": [], "nbformat": 4}))
    shutil.copy(TRAIN, tmp_path / "train.py")
    before = {p.name: stamp(p) for p in tmp_path.glob("*.ipynb")}
    result = rnnlint("check", "--static", "--no-cache", ".", cwd=tmp_path)
    assert_clean_exit(result)
    for name, (_, message) in NOTEBOOKS.items():
        assert f"{name}:1:1: RNN900 {message}" in result.stdout, result.stdout
    assert "odd.ipynb" not in result.stdout
    assert "train.py:22:51: RNN020" in result.stdout
    fixed = rnnlint("fix", "--static", "--no-cache", "--apply", "--unsafe-fixes", ".", cwd=tmp_path)
    assert_clean_exit(fixed)
    assert {p.name: stamp(p) for p in tmp_path.glob("*.ipynb")} == before


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"[tool.rnnlint\nselect = []\n", "invalid TOML"),
        (b"\xff\xfe[tool.rnnlint]\n", "invalid TOML: not valid UTF-8"),
    ],
)
def test_a_broken_pyproject_stops_fix_before_anything_is_written(tmp_path, data, expected):
    (tmp_path / "pyproject.toml").write_bytes(data)
    shutil.copy(TRAIN, tmp_path / "train.py")
    before = stamp(tmp_path / "train.py")
    result = rnnlint("fix", "--apply", "--unsafe-fixes", "train.py", cwd=tmp_path)
    assert_clean_exit(result, codes=(2,))
    assert f"{tmp_path / 'pyproject.toml'}: {expected}" in result.stderr
    assert result.stdout == ""
    assert stamp(tmp_path / "train.py") == before


@pytest.mark.parametrize("toml", ['tool = 5\n', 'tool = "rnnlint"\n', '[project]\nname = "x"\n'])
def test_a_pyproject_without_an_rnnlint_table_is_not_ours_to_judge(tmp_path, toml):
    (tmp_path / "pyproject.toml").write_text(toml)
    shutil.copy(TRAIN, tmp_path / "train.py")
    result = rnnlint("check", "--static", "--no-cache", "train.py", cwd=tmp_path)
    assert_clean_exit(result)
    assert "train.py:22:51: RNN020" in result.stdout


@pytest.mark.parametrize(
    "toml, expected",
    [
        ("[tool.rnnlint]\ncache-dir = 1\n", "[tool.rnnlint] cache-dir: must be a path string"),
        ('[tool.rnnlint]\nrespect-gitignore = "yes"\n', "[tool.rnnlint] respect-gitignore: must be true or false"),
        ("[tool.rnnlint]\nper-file-ignores = []\n", "[tool.rnnlint] per-file-ignores: must be a table"),
        ("[tool.rnnlint]\nrecurrent-classes = [1]\n", "[tool.rnnlint] recurrent-classes: must be a list of strings"),
        ("[tool.rnnlint]\nmodels = 1\n", "[tool.rnnlint] models: must be a table"),
        ("[tool]\nrnnlint = 5\n", "[tool.rnnlint] must be a table"),
        ("[tool.rnnlint.missing-grad-clip]\nmax-norm = true\n", "[tool.rnnlint] missing-grad-clip.max-norm: max-norm must be a finite number > 0"),
    ],
)
def test_config_values_of_the_wrong_type_name_the_file_and_the_key(tmp_path, toml, expected):
    (tmp_path / "pyproject.toml").write_text(toml)
    (tmp_path / "train.py").write_text("x = 1\n")
    with pytest.raises(ConfigError) as info:
        Session(load_config([tmp_path / "train.py"]), use_cache=False)
    assert f"{tmp_path / 'pyproject.toml'}: {expected}" in str(info.value)


def test_a_project_module_named_like_the_standard_librarys_does_not_replace_it(tmp_path):
    # `python -m rnnlint` run in a project that has its own random.py, tokenize.py and rules/: the working
    # folder that `python -m` puts first on sys.path must not hand them to rnnlint (or to torch) in place of
    # the standard library's modules and rnnlint's own rule pack
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    for name in ("random.py", "tokenize.py", "rules/__init__.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(f"raise RuntimeError('the project {name} was imported')\n")
    result = rnnlint_process("check", "--no-cache", "--select", "RNN020", "train.py", cwd=tmp_path)
    assert "was imported" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert "train.py:22:51: RNN020" in result.stdout
