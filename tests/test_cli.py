"""The command line as a user meets it: exit codes, the catalogue, selection.

Every test runs the real ``rnnlint`` in a subprocess on a small project in a
temporary folder. Where the exact set of findings matters, ``--select`` names
the rules so that rules added later do not change what is asserted.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from rnnlint import __version__
from rnnlint.registry import load_rules
from tests.helpers import rnnlint

DATA = Path(__file__).parent / "data"
# tests/data/lstm_train.py: RNN041 (safe fix) on line 12, RNN020 (unsafe fix) on line 22.
TRAIN = (DATA / "lstm_train.py").read_text("utf-8")

# Data utilities of a recurrent project: nothing to report, no model to build.
CLEAN = """\
import torch
from torch.nn.utils.rnn import pad_sequence


def collate(batch):
    tokens = [torch.tensor(item["tokens"]) for item in batch]
    lengths = torch.tensor([len(t) for t in tokens])
    return pad_sequence(tokens, batch_first=True), lengths
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    return tmp_path


def codes(stdout: str) -> list[str]:
    return re.findall(r"^\S+:\d+:\d+: (RNN\d+)", stdout, re.MULTILINE)


# -- exit codes ----------------------------------------------------------------


def test_findings_exit_1_and_text_format(project):
    result = rnnlint("check", "--select", "RNN020,RNN041", "train.py", cwd=project)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("train.py:12:59: RNN041 [*] dropout=0.2 has no effect on nn.LSTM")
    assert lines[1].startswith("train.py:22:51: RNN020 ")
    assert "lr=0.05" in lines[1]
    assert lines[-1].startswith("2 findings, 1 fixable with `rnnlint fix --apply`")
    assert "\x1b[" not in result.stdout + result.stderr  # not a terminal: no colour


def test_nothing_found_exits_0(tmp_path):
    (tmp_path / "data.py").write_text(CLEAN)
    result = rnnlint("check", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "No findings."


def test_exit_zero_keeps_the_report(project):
    result = rnnlint("check", "--exit-zero", "--select", "RNN020", "train.py", cwd=project)
    assert result.returncode == 0
    assert codes(result.stdout) == ["RNN020"]


def test_exit_zero_does_not_hide_errors(project):
    result = rnnlint("check", "--exit-zero", "--select", "RNN999", "train.py", cwd=project)
    assert result.returncode == 2


def test_usage_errors_exit_2(project):
    assert rnnlint("check", "--no-such-flag", cwd=project).returncode == 2
    assert rnnlint("check", "--output-format", "xml", "train.py", cwd=project).returncode == 2
    assert rnnlint("frobnicate", cwd=project).returncode == 2


def test_unknown_code_on_the_command_line_names_the_option(project):
    (project / "pyproject.toml").write_text('[tool.rnnlint]\nselect = ["RNN0"]\n')
    result = rnnlint("check", "--ignore", "RNN020,RNN77", "train.py", cwd=project)
    assert result.returncode == 2
    assert "--ignore: unknown rule code or prefix 'RNN77'" in result.stderr
    assert "pyproject.toml" not in result.stderr  # the file is not to blame
    assert "Traceback" not in result.stderr


def test_fix_exit_codes(project):
    # Only the safe RNN041 is selected: everything gets fixed -> 0.
    result = rnnlint("fix", "--apply", "--select", "RNN041", "train.py", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Fixed 1 finding in 1 file." in result.stderr
    # RNN020's fix is unsafe: without --unsafe-fixes the finding remains -> 1.
    result = rnnlint("fix", "--apply", "--select", "RNN020", "train.py", cwd=project)
    assert result.returncode == 1
    assert codes(result.stdout) == ["RNN020"]
    result = rnnlint("fix", "--apply", "--unsafe-fixes", "--select", "RNN020", "train.py", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lr=0.001" in (project / "train.py").read_text()


def test_fix_without_fixable_findings_exits_1(tmp_path):
    (tmp_path / "bad.py").write_text("def train(:\n    pass\n")
    result = rnnlint("fix", "--apply", "bad.py", cwd=tmp_path)
    assert result.returncode == 1
    assert codes(result.stdout) == ["RNN900"]


# -- version and the catalogue ----------------------------------------------------


def test_version():
    result = rnnlint("--version", cwd=DATA)
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_rules_table_lists_every_rule():
    result = rnnlint("rules", cwd=DATA)
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["code", "name", "fix", "default"]
    by_code = {row.split()[0]: row.split() for row in rows}
    assert set(by_code) == set(load_rules())
    assert by_code["RNN020"][1:4] == ["high-learning-rate", "unsafe", "on"]
    assert by_code["RNN900"][1:4] == ["syntax-error", "-", "on"]


def test_explain_prints_the_rule_documentation():
    result = rnnlint("explain", "RNN020", cwd=DATA)
    assert result.returncode == 0
    text = result.stdout
    assert text.startswith("RNN020 high-learning-rate")
    for section in ("What it catches.", "Why it matters.", "Example.", "Fix safety.", "Options"):
        assert section in text, section
    assert "adam = 0.003" in text  # each option with its default
    # by name and in lower case too
    assert rnnlint("explain", "high-learning-rate", cwd=DATA).stdout == text
    assert rnnlint("explain", "rnn020", cwd=DATA).stdout == text


def test_explain_unknown_code_exits_2():
    result = rnnlint("explain", "RNN999", cwd=DATA)
    assert result.returncode == 2
    assert "unknown rule 'RNN999'" in result.stderr


# -- selection -------------------------------------------------------------------


def test_select_ignore_extend_select(project):
    def found(*args):
        return sorted(set(codes(rnnlint("check", "--static", *args, "train.py", cwd=project).stdout)))

    assert found("--select", "RNN020") == ["RNN020"]
    assert found("--select", "RNN04") == ["RNN041"]  # a prefix
    assert found("--select", "RNN020", "--select", "RNN041") == ["RNN020", "RNN041"]  # repeatable
    assert found("--select", "RNN020,RNN041", "--ignore", "RNN02") == ["RNN041"]
    assert found("--select", "RNN020", "--extend-select", "RNN041") == ["RNN020", "RNN041"]
    assert "RNN020" not in found("--ignore", "RNN020")


def test_statistics(project):
    result = rnnlint("check", "--statistics", "--select", "RNN020,RNN041", "train.py", cwd=project)
    assert result.returncode == 1
    assert re.search(r"^\s+1\s+RNN041\s+dropout-on-single-layer\s+\[\*\] 1 fixable$", result.stdout, re.M)
    assert re.search(r"^\s+1\s+RNN020\s+high-learning-rate$", result.stdout, re.M)
