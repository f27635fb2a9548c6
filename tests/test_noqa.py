"""``# noqa`` comments: honoured identically by ``check`` and ``fix``.

A suppressed finding is neither reported nor fixed; a code-specific comment
leaves the other codes on the line alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlint.static.noqa import Suppressions
from tests import helpers
from tests.helpers import rnnlint

DATA = Path(__file__).parent / "data"
TRAIN = (DATA / "lstm_train.py").read_text("utf-8")
DROPOUT_LINE = "        self.lstm = nn.LSTM(64, hidden, batch_first=True, dropout=0.2)"
LR_LINE = "    optimizer = optim.Adam(model.parameters(), lr=0.05)"
assert DROPOUT_LINE in TRAIN and LR_LINE in TRAIN


def variant(dropout_comment: str = "", lr_comment: str = "", header: str = "") -> str:
    text = TRAIN.replace(DROPOUT_LINE, DROPOUT_LINE + dropout_comment).replace(LR_LINE, LR_LINE + lr_comment)
    return header + text


@pytest.mark.parametrize(
    "text, expected",
    [
        (variant(), {"RNN020", "RNN041"}),
        (variant(dropout_comment="  # noqa: RNN041"), {"RNN020"}),
        (variant(dropout_comment="  # noqa: RNN020"), {"RNN020", "RNN041"}),  # another code: no effect
        (variant(dropout_comment="  # noqa"), {"RNN020"}),
        (variant(lr_comment="  # NOQA:RNN020,RNN001"), {"RNN041"}),
        (variant(lr_comment="  # noqa: rnn020"), {"RNN041"}),
        (variant(lr_comment="  # noqa: RNN02"), {"RNN041"}),  # a prefix
        (variant(header="# rnnlint: noqa: RNN041\n"), {"RNN020"}),
        (variant(header="# rnnlint: noqa\n"), set()),
        # only comments suppress: the same words inside string literals hide nothing
        (variant(lr_comment='; tag = "# noqa: RNN020"'), {"RNN020", "RNN041"}),
        (variant(header='"""Train the tagger.\n\n# rnnlint: noqa\n"""\n'), {"RNN020", "RNN041"}),
    ],
    ids=["none", "code", "other-code", "bare", "list", "lower-case", "prefix", "file-code", "file-all",
         "in-a-string", "in-a-docstring"],
)
def test_check_honours_noqa(tmp_path, text, expected):
    assert {d.code for d in helpers.check(tmp_path, text, select=["RNN020", "RNN041"])} == expected


def test_fix_does_not_fix_suppressed_findings(tmp_path):
    # RNN041 suppressed on its line, RNN020 suppressed for the whole file: nothing may change.
    text = variant(dropout_comment="  # noqa: RNN041", header="# rnnlint: noqa: RNN020\n")
    script = tmp_path / "train.py"
    script.write_text(text)
    check = rnnlint("check", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert (check.returncode, check.stdout.strip()) == (0, "No findings.")
    result = rnnlint("fix", "--apply", "--unsafe-fixes", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert script.read_text() == text
    # without the comment on the dropout line, that one is fixed and RNN020 still is not
    text = variant(header="# rnnlint: noqa: RNN020\n")
    script.write_text(text)
    result = rnnlint("fix", "--apply", "--unsafe-fixes", "--select", "RNN020,RNN041", "train.py", cwd=tmp_path)
    assert result.returncode == 0
    assert script.read_text() == text.replace("batch_first=True, dropout=0.2)", "batch_first=True)")


def test_suppressions_parsing():
    text = (
        "a = 1  # noqa: RNN001, RNN020\n"
        "b = 2  # noqa:RNN001 RNN030  trailing words\n"
        "c = 3  # type: ignore  # noqa\n"
        "    # rnnlint: noqa: RNN041\n"
        "d = 4  # rnnlint: noqa: RNN010  (not on its own line: a line comment only)\n"
        "e = 5\r\n"
        "f = 6  # noqa: RNN900\r\n"
    )
    s = Suppressions(text)
    assert s.suppressed("RNN001", 1) and s.suppressed("RNN020", 1) and not s.suppressed("RNN030", 1)
    assert s.suppressed("RNN030", 2) and not s.suppressed("RNN020", 2)
    assert s.suppressed("RNN101", 3)
    assert s.suppressed("RNN041", 99)  # file level
    assert s.suppressed("RNN010", 5) and not s.suppressed("RNN010", 6)
    assert s.suppressed("RNN900", 7) and not s.suppressed("RNN900", 6)  # CRLF lines counted right
    assert not Suppressions("x = 1  # no QA here\n").suppressed("RNN001", 1)
