"""Fixing files without losing anything of the user's.

``write_atomic`` keeps encoding, BOM, newlines and mode and never overwrites a
file that changed since it was read; ``fix`` shows a diff and writes nothing
unless ``--apply``; a second ``fix --apply`` changes nothing; unsafe fixes need
``--unsafe-fixes``.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from rnnlint.diagnostics import Edit, Position
from rnnlint.static.fixer import EditError, apply_edits
from rnnlint.source import SourceError, read_source, write_atomic
from tests.helpers import rnnlint

DATA = Path(__file__).parent / "data"
TRAIN = (DATA / "lstm_train.py").read_text("utf-8")
CLIP = "            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
assert CLIP in TRAIN


# -- write_atomic ------------------------------------------------------------------


def test_write_atomic_refuses_a_file_changed_since_it_was_read(tmp_path):
    path = tmp_path / "train.py"
    path.write_text("lr = 0.05\n")
    source = read_source(path)
    path.write_text("lr = 0.05  # the user's newer edit\n")
    with pytest.raises(SourceError, match="changed on disk"):
        write_atomic(source, "lr = 0.001\n")
    assert path.read_text() == "lr = 0.05  # the user's newer edit\n"
    assert os.listdir(tmp_path) == ["train.py"]  # no temporary file left behind


def test_write_atomic_keeps_mode_and_replaces_content(tmp_path):
    path = tmp_path / "train.py"
    path.write_text("#!/usr/bin/env python\nlr = 0.05\n")
    path.chmod(0o755)
    write_atomic(read_source(path), "#!/usr/bin/env python\nlr = 0.001\n")
    assert path.read_text() == "#!/usr/bin/env python\nlr = 0.001\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert os.listdir(tmp_path) == ["train.py"]


def test_write_atomic_keeps_latin1_cookie_encoding(tmp_path):
    path = tmp_path / "train.py"
    path.write_bytes('# -*- coding: latin-1 -*-\nauthor = "Zoë"\nlr = 0.05\n'.encode("latin-1"))
    source = read_source(path)
    assert source.encoding == "iso-8859-1" and 'Zoë' in source.text
    write_atomic(source, source.text.replace("0.05", "0.001"))
    assert path.read_bytes() == '# -*- coding: latin-1 -*-\nauthor = "Zoë"\nlr = 0.001\n'.encode("latin-1")
    # a fix that the file's encoding cannot hold is refused, the file untouched
    source = read_source(path)
    with pytest.raises(SourceError, match="cannot represent"):
        write_atomic(source, source.text + "# η\n")
    assert path.read_bytes().endswith(b"lr = 0.001\n")


def test_write_atomic_keeps_bom_and_crlf(tmp_path):
    path = tmp_path / "train.py"
    path.write_bytes(b"\xef\xbb\xbfname = 'Zo\xc3\xab'\r\nlr = 0.05\r\n")
    source = read_source(path)
    assert not source.text.startswith("\ufeff") and source.newline == "\r\n"
    write_atomic(source, source.text.replace("0.05", "0.001"))
    assert path.read_bytes() == b"\xef\xbb\xbfname = 'Zo\xc3\xab'\r\nlr = 0.001\r\n"  # exactly one BOM


def test_write_atomic_follows_symlinks(tmp_path):
    real = tmp_path / "real.py"
    real.write_text("lr = 0.05\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    write_atomic(read_source(link), "lr = 0.001\n")
    assert link.is_symlink() and real.read_text() == "lr = 0.001\n"


def test_apply_edits_rejects_overlaps_and_handles_crlf():
    text = "a = 1\r\nb = 2\r\n"
    edit = Edit(Position(2, 5), Position(2, 6), "3")
    assert apply_edits(text, [edit]) == "a = 1\r\nb = 3\r\n"
    with pytest.raises(EditError):
        apply_edits(text, [Edit(Position(1, 1), Position(2, 3), ""), Edit(Position(2, 1), Position(2, 2), "x")])


# -- through the CLI -------------------------------------------------------------------


def test_fix_prints_a_diff_and_writes_nothing(tmp_path):
    script = tmp_path / "train.py"
    shutil.copy(DATA / "lstm_train.py", script)
    before = script.read_bytes()
    result = rnnlint("fix", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert script.read_bytes() == before
    assert result.stdout.startswith("--- a/train.py\n+++ b/train.py\n@@ ")
    assert "-        self.lstm = nn.LSTM(64, hidden, batch_first=True, dropout=0.2)\n" in result.stdout
    assert "+        self.lstm = nn.LSTM(64, hidden, batch_first=True)\n" in result.stdout
    assert "lr=0.001" not in result.stdout  # the unsafe fix is not even proposed
    assert "Would fix 1 finding in 1 file" in result.stderr
    result = rnnlint("fix", "--unsafe-fixes", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert "+    optimizer = optim.Adam(model.parameters(), lr=0.001)\n" in result.stdout
    assert script.read_bytes() == before


def test_fix_apply_then_again_changes_nothing(tmp_path):
    script = tmp_path / "train.py"
    shutil.copy(DATA / "lstm_train.py", script)
    first = rnnlint("fix", "--apply", "--unsafe-fixes", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    fixed = script.read_bytes()
    assert fixed == TRAIN.replace(", dropout=0.2)", ")").replace("lr=0.05", "lr=0.001").encode()
    second = rnnlint("fix", "--apply", "--unsafe-fixes", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert second.returncode == 0
    assert script.read_bytes() == fixed
    assert "Fixed" not in second.stderr


def test_fix_keeps_encoding_newlines_and_mode_of_real_files(tmp_path):
    # No clipping: RNN001 inserts a line, so inserted newlines are checked as well.
    source = TRAIN.replace(CLIP, "")
    files = {
        "crlf.py": source.replace("\n", "\r\n").encode(),
        "latin1.py": ("# -*- coding: latin-1 -*-\n# Auteur : Zoë\n" + source).encode("latin-1"),
        "bom.py": b"\xef\xbb\xbf" + source.encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "crlf.py").chmod(0o755)
    result = rnnlint("fix", "--apply", "--select", "RNN001,RNN041", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    crlf = (tmp_path / "crlf.py").read_bytes()
    assert b"dropout" not in crlf and b"clip_grad_norm_(" in crlf
    assert crlf.count(b"\n") == crlf.count(b"\r\n")  # every newline, inserted ones too, is CRLF
    assert stat.S_IMODE((tmp_path / "crlf.py").stat().st_mode) == 0o755
    latin1 = (tmp_path / "latin1.py").read_bytes()
    assert latin1.startswith("# -*- coding: latin-1 -*-\n# Auteur : Zoë\n".encode("latin-1"))
    assert b"dropout" not in latin1
    bom = (tmp_path / "bom.py").read_bytes()
    assert bom.startswith(b"\xef\xbb\xbf\"\"\"") and bom.count(b"\xef\xbb\xbf") == 1 and b"dropout" not in bom


def test_unsafe_fixes_are_gated(tmp_path):
    script = tmp_path / "train.py"
    shutil.copy(DATA / "lstm_train.py", script)
    result = rnnlint("fix", "--apply", "--select", "RNN020", "train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "train.py:22:51: RNN020 [-]" in result.stdout  # reported, marked as needing --unsafe-fixes
    assert script.read_text() == TRAIN
