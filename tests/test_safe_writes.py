"""``fix --apply`` never loses a user's edit and changes no byte it did not mean to.

Compare-and-swap before the replace (a save or a delete that comes in while a
fix is being written wins), metadata kept (owner, group, mode, extended
attributes, hard links, symbolic links), files left alone with a message
(read-only, several hard links, a link out of the tree), byte fidelity (every
newline style, encodings that write one character in several ways), files
CPython refuses never fixed, and broken notebooks refused cleanly.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlint import source as source_module
from rnnlint.source import SourceError, read_source, write_atomic
from tests.helpers import rnnlint

BAD = "import torch.nn as nn\n\nmodel = nn.LSTM(10, 20, dropout=0.5)\n"
GOOD = "import torch.nn as nn\n\nmodel = nn.LSTM(10, 20)\n"
FIX = ("fix", "--apply", "--select", "RNN041", "--no-cache")
SAVED = BAD + "# the user's save\n"


def _run_with_hook(cwd: Path, hook: str, *args: str) -> subprocess.CompletedProcess:
    """The real command line in a subprocess, with ``hook`` (Python) run first: a fake slow disk or editor."""
    program = f"{hook}\nfrom rnnlint.cli import main\nmain({list(args)!r})\n"
    return subprocess.run([sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, timeout=120)


# -- 2. compare-and-swap -----------------------------------------------------------------


# The user's editor saves while rnnlint flushes its temporary file to disk: the
# slowest step of a write, after the first check. One editor rewrites the file in
# place, another writes a new file and renames it over the old one.
EDITOR_IN_PLACE = """
import os
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    with open("train.py", "a") as handle:
        handle.write("# the user's save\\n")
os.fsync = fsync
"""
EDITOR_RENAME = """
import os
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    with open(".train.py.swp", "w") as handle:
        handle.write(open("train.py").read() + "# the user's save\\n")
    os.rename(".train.py.swp", "train.py")
os.fsync = fsync
"""


@pytest.mark.parametrize("editor, why", [(EDITOR_IN_PLACE, "changed"), (EDITOR_RENAME, "was replaced")],
                         ids=["in-place", "rename"])
def test_a_save_while_the_fix_is_written_survives(tmp_path, editor, why):
    (tmp_path / "train.py").write_text(BAD)
    result = _run_with_hook(tmp_path, editor, *FIX, "train.py")
    assert result.returncode == 1, result.stderr  # the finding remains: the file was not fixed
    assert "Traceback" not in result.stderr
    assert (tmp_path / "train.py").read_text() == SAVED
    assert f"train.py: not written: file {why} on disk since it was read; not overwritten" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["train.py"]  # no temporary file left


def test_a_save_in_the_last_instant_before_the_swap_is_swapped_back(tmp_path, monkeypatch):
    """The narrowest window: after the last check, as the exchange happens."""
    path = tmp_path / "train.py"
    path.write_text(BAD)
    source = read_source(path)
    real_exchange = source_module._exchange

    def exchange(a, b):
        with open(path, "a") as handle:  # lands between the last compare and the swap
            handle.write("# the user's save\n")
        return real_exchange(a, b)

    monkeypatch.setattr(source_module, "_exchange", exchange)
    with pytest.raises(SourceError, match="changed on disk while the fix was being written"):
        write_atomic(source, GOOD, tmp_path)
    assert path.read_text() == SAVED
    assert os.listdir(tmp_path) == ["train.py"]


def test_a_file_deleted_during_the_run_is_not_recreated(tmp_path):
    (tmp_path / "train.py").write_text(BAD)
    (tmp_path / "other.py").write_text(BAD)
    deleter = """
import os
real_fsync = os.fsync
def fsync(fd):
    real_fsync(fd)
    if os.path.exists("train.py"):
        os.unlink("train.py")  # e.g. `git checkout` of another branch meanwhile
os.fsync = fsync
"""
    result = _run_with_hook(tmp_path, deleter, *FIX, "-j", "1", "train.py", "other.py")
    assert "Traceback" not in result.stderr
    assert "train.py: not written: file was deleted since it was read; not re-created" in result.stderr
    assert not (tmp_path / "train.py").exists()
    assert (tmp_path / "other.py").read_text() == GOOD  # the run went on
    assert sorted(os.listdir(tmp_path)) == ["other.py"]


def test_without_an_atomic_exchange_the_last_check_still_catches_a_save(tmp_path, monkeypatch):
    """Other systems: ``os.replace`` right after the final compare (a window of microseconds)."""
    path = tmp_path / "train.py"
    path.write_text(BAD)
    source = read_source(path)
    monkeypatch.setattr(source_module, "_exchange", lambda a, b: False)
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        path.write_text(SAVED)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(SourceError, match="changed on disk since it was read"):
        write_atomic(source, GOOD, tmp_path)
    assert path.read_text() == SAVED
    monkeypatch.setattr(os, "fsync", real_fsync)
    write_atomic(read_source(path), SAVED.replace(", dropout=0.5", ""), tmp_path)  # and it writes when untouched
    assert path.read_text() == GOOD + "# the user's save\n"


# -- 9. metadata ------------------------------------------------------------------------------


def test_a_read_only_file_is_left_alone(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BAD)
    path.chmod(0o444)  # root may write it anyway: rnnlint looks at the mode, not at access
    result = rnnlint(*FIX, "train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "train.py: not written: read-only file (mode 0444); left alone" in result.stderr
    assert path.read_text() == BAD and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_hard_links_are_not_split(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BAD)
    os.link(path, tmp_path / "shared.py")
    result = rnnlint(*FIX, "train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "train.py: not written: the file has 2 hard links and replacing it would split them; left alone" \
        in result.stderr
    assert path.stat().st_nlink == 2 and path.stat().st_ino == (tmp_path / "shared.py").stat().st_ino
    assert path.read_text() == BAD


def test_mode_owner_group_and_extended_attributes_are_kept(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BAD)
    path.chmod(0o640)
    try:
        os.setxattr(path, "user.origin", b"notebook export")
    except (OSError, AttributeError):
        pytest.skip("no extended attributes on this file system")
    owner = (os.getuid(), os.getgid())
    if os.geteuid() == 0:  # root fixing another user's file must leave it theirs
        owner = (4242, 4343)
        os.chown(path, *owner)
    result = rnnlint(*FIX, "train.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = path.stat()
    assert path.read_text() == GOOD
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (info.st_uid, info.st_gid) == owner
    assert os.getxattr(path, "user.origin") == b"notebook export"


def test_a_symlink_out_of_the_tree_is_not_written_through(tmp_path):
    outside = tmp_path / "elsewhere" / "shared_model.py"
    outside.parent.mkdir()
    outside.write_text(BAD)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.rnnlint]\n")
    (project / "model.py").symlink_to(outside)
    (project / "inside.py").write_text(BAD)
    (project / "link.py").symlink_to(project / "inside.py")
    result = rnnlint(*FIX, ".", cwd=project)
    assert "Traceback" not in result.stderr
    assert "model.py: not written: a symbolic link to" in result.stderr
    assert "outside the checked tree" in result.stderr
    assert outside.read_text() == BAD
    named = rnnlint(*FIX, "model.py", cwd=project)  # named on the command line: still not followed out
    assert "model.py: not written: a symbolic link to" in named.stderr and outside.read_text() == BAD
    # a link inside the tree stays a link, and the file it points to is fixed
    assert (project / "link.py").is_symlink() and (project / "inside.py").read_text() == GOOD


# -- 12. byte fidelity ------------------------------------------------------------------------


def _fix_bytes(tmp_path: Path, data: bytes, *extra: str) -> bytes:
    path = tmp_path / "train.py"
    path.write_bytes(data)
    result = rnnlint(*FIX, *extra, "train.py", cwd=tmp_path)
    assert "Traceback" not in result.stderr and "not written" not in result.stderr, result.stderr
    return path.read_bytes()


def test_a_cr_only_file_gets_no_line_feed(tmp_path):
    text = (Path(__file__).parent / "data" / "lstm_train.py").read_text("utf-8")
    clip = "            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
    assert clip in text
    text = text.replace(clip, "")  # RNN001 inserts a line, RNN041 edits one
    (tmp_path / "lf").mkdir()
    expected = _fix_bytes(tmp_path / "lf", text.encode(), "--select", "RNN001,RNN041")
    assert expected.count(b"\n") == text.count("\n") + 1
    fixed = _fix_bytes(tmp_path, text.replace("\n", "\r").encode(), "--select", "RNN001,RNN041")
    assert b"\n" not in fixed
    assert fixed == expected.replace(b"\n", b"\r")


@pytest.mark.parametrize("encoding, odd_line", [
    # one character, written in a form the codec's encoder would not choose
    ("utf-7", b"# +AGEAYgBj- (abc as base64)\n"),
    ("cp932", b"# \x87\x9a (NEC code of U+2235; the encoder writes 81 E6)\n"),
    ("iso-2022-jp", b"# \x1b(Jabc\x1b(B (a redundant JIS-Roman shift)\n"),
])
def test_untouched_lines_keep_their_bytes_in_any_encoding(tmp_path, encoding, odd_line):
    cookie = f"# -*- coding: {encoding} -*-\n".encode()
    data = cookie + odd_line + BAD.encode(encoding)
    fixed = _fix_bytes(tmp_path, data)
    assert fixed == cookie + odd_line + GOOD.encode(encoding)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_rnn040_removes_an_argument_without_reindenting_the_call(tmp_path, newline):
    before = (
        "import torch.nn as nn\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.rnn = nn.LSTM(\n"
        "            10,\n"
        "            peephole=True,  # a Keras habit\n"
        "            hidden_size=20,\n"
        "        )\n"
        "        self.gru = nn.GRU(10,\n"
        "                          20, recurrent_dropout=0.1)\n"
    )
    after = before.replace("            peephole=True,  # a Keras habit\n", "").replace(
        "20, recurrent_dropout=0.1)", "20)")
    data = before.replace("\n", newline).encode()
    fixed = _fix_bytes(tmp_path, data, "--unsafe-fixes", "--select", "RNN040")
    assert fixed == after.replace("\n", newline).encode()


def test_a_nul_byte_after_8_kib_is_reported_and_never_fixed(tmp_path):
    path = tmp_path / "train.py"
    data = BAD.encode() + b"# padding\n" * 1000 + b"x = 1  # \x00\n"
    assert data.index(b"\x00") > 8192
    path.write_bytes(data)
    check = rnnlint("check", "--no-cache", "train.py", cwd=tmp_path)
    assert check.returncode == 1
    assert "train.py:1004:1: RNN900 source code cannot contain NUL bytes (line 1004)" in check.stdout
    assert "RNN041" not in check.stdout
    result = rnnlint("fix", "--apply", "--no-cache", "--select", "RNN041,RNN900", "train.py", cwd=tmp_path)
    assert result.returncode == 1 and "RNN900" in result.stdout and path.read_bytes() == data


def test_a_file_python_refuses_to_compile_is_never_fixed(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(BAD + "return model\n")  # parses; `return` outside a function does not compile
    (tmp_path / "ok.py").write_text(BAD)
    result = rnnlint(*FIX, "train.py", "ok.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "train.py: not fixed: Python" in result.stderr
    assert "'return' outside function (line 4)" in result.stderr
    assert path.read_text() == BAD + "return model\n"
    assert (tmp_path / "ok.py").read_text() == GOOD
    diff = rnnlint("fix", "--select", "RNN041", "--no-cache", "train.py", cwd=tmp_path)
    assert "+++" not in diff.stdout  # not even offered as a diff


# -- 11. notebooks that are not quite notebooks ----------------------------------------------------------


def _notebook(cells: list) -> str:
    metadata = {"kernelspec": {"language": "python", "name": "python3"}}
    return json.dumps({"cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}, indent=1)


CODE = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
        "source": ["import torch.nn as nn\n", "model = nn.LSTM(10, 20, dropout=0.5)\n"]}


@pytest.mark.parametrize("odd_cell, message", [
    (42, "cell 1 is not a JSON object"),
    ({"cell_type": "code", "metadata": {}, "outputs": []}, 'code cell 1 has no "source"'),
], ids=["non-dict-cell", "code-cell-without-source"])
def test_a_broken_notebook_is_a_clean_per_file_error(tmp_path, odd_cell, message):
    notebook = tmp_path / "explore.ipynb"
    notebook.write_text(_notebook([odd_cell, CODE]))
    before = notebook.read_bytes()
    (tmp_path / "train.py").write_text(BAD)
    result = rnnlint(*FIX, "-j", "1", "explore.ipynb", "train.py", cwd=tmp_path)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert f"explore.ipynb: not written: not a valid notebook: {message}" in result.stderr
    assert result.returncode == 1
    assert notebook.read_bytes() == before
    assert (tmp_path / "train.py").read_text() == GOOD  # the run went on
