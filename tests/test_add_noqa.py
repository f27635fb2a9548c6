"""``rnnlint check --add-noqa`` and ``--statistics``, through the real command line on temporary copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import rnnlint, rnnlint_process

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

TRAIN = '''import torch
import torch.nn as nn

model = nn.LSTM(8, 16, num_layers=2)
adam = torch.optim.Adam(model.parameters(), lr=0.01)  # noqa: E501
rms = torch.optim.RMSprop(model.parameters(), lr=0.05)  # value from the paper
for x in range(3):
    model(x)[0].sum().backward()
    adam.step()
    adam.zero_grad()
'''


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURES / "char_rnn", root)
    shutil.copy(FIXTURES / "notebook" / "lstm_training.ipynb", root)
    (root / "train_small.py").write_text(TRAIN)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def test_add_noqa_silences_every_finding_once(tmp_path):
    root = project(tmp_path)
    before = json.loads(rnnlint("check", "--static", "--output-format", "json", ".", cwd=root).stdout)
    assert len(before) == 7

    result = rnnlint("check", "--static", "--add-noqa", ".", cwd=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Added 7 noqa directives in 3 files."  # train.py, the notebook, train_small.py

    after = rnnlint("check", "--static", ".", cwd=root)
    assert after.returncode == 0 and after.stdout.strip() == "No findings."
    state = snapshot(root)
    again = rnnlint("check", "--static", "--add-noqa", ".", cwd=root)
    assert again.stdout.strip() == "Added 0 noqa directives in 0 files." and again.returncode == 0
    assert snapshot(root) == state


def test_existing_comments_are_kept_and_noqa_codes_merged(tmp_path):
    root = project(tmp_path)
    rnnlint("check", "--static", "--add-noqa", "train_small.py", cwd=root)
    lines = (root / "train_small.py").read_text().splitlines()
    assert lines[4].endswith("lr=0.01)  # noqa: E501, RNN020")
    assert lines[5].endswith("lr=0.05)  # value from the paper  # noqa: RNN020")
    assert lines[8] == "    adam.step()  # noqa: RNN001"
    assert len(lines) == len(TRAIN.splitlines())


def test_notebook_cells_get_their_noqa_and_keep_the_rest(tmp_path):
    root = project(tmp_path)
    original = json.loads((root / "lstm_training.ipynb").read_text("utf-8"))
    result = rnnlint("check", "--static", "--add-noqa", "lstm_training.ipynb", cwd=root)
    assert result.stdout.strip() == "Added 2 noqa directives in 1 file."
    changed = json.loads((root / "lstm_training.ipynb").read_text("utf-8"))
    training = changed["cells"][6]["source"]
    assert training[0] == "%%time\n"
    assert training[1] == "optimizer = torch.optim.Adam(model.parameters(), lr=0.01)  # noqa: RNN020\n"
    assert training[10] == "        optimizer.step()  # noqa: RNN001\n"
    changed["cells"][6]["source"] = original["cells"][6]["source"]
    assert changed == original


def test_lines_that_cannot_take_a_comment_are_skipped_and_said(tmp_path):
    (tmp_path / "t.py").write_text(
        "import torch\nimport torch.nn as nn\n\nmodel = nn.LSTM(8, 16)\n"
        'adam = torch.optim.Adam(model.parameters(), lr=0.01); NOTE = """\nlr from the paper"""\n'
        "rms = torch.optim.RMSprop(model.parameters(), lr=0.05); SCALE = 1.0 + \\\n    0.5\n"
    )
    before = (tmp_path / "t.py").read_text()
    result = rnnlint("check", "--static", "--select", "RNN020", "--add-noqa", "t.py", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "Added 0 noqa directives in 0 files."
    assert "t.py:5: RNN020: the line is inside a multi-line string" in result.stderr
    assert "t.py:7: RNN020: the line ends with a backslash continuation" in result.stderr
    assert (tmp_path / "t.py").read_text() == before
    assert rnnlint("check", "--static", "--select", "RNN020", "t.py", cwd=tmp_path).returncode == 1


def test_statistics_counts_findings_per_rule(tmp_path):
    root = project(tmp_path)
    result = rnnlint("check", "--static", "--statistics", ".", cwd=root)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "    4  RNN020  high-learning-rate",
        "    3  RNN001  missing-grad-clip  [*] 3 fixable",
        "7 findings, 3 fixable with `rnnlint fix --apply` (4 more with `--unsafe-fixes`).",
    ]


UNBUILDABLE = '''import torch.nn as nn


class Forecaster(nn.Module):
    def __init__(self, data_dir):
        super().__init__()
        self.rnn = nn.LSTM(4, 8)

    def forward(self, x):
        return self.rnn(x)[0]
'''


@pytest.mark.slow  # the graph stage builds the models in a child process
def test_info_notes_get_no_noqa_and_read_as_notes(tmp_path):
    """RNN901 (a model the graph stage could not build) fails nothing: no noqa hides it."""
    pytest.importorskip("torch")
    (tmp_path / "model.py").write_text(UNBUILDABLE)
    checked = rnnlint_process("check", "--graph", ".", cwd=tmp_path, timeout=240)
    assert checked.returncode == 0, checked.stderr
    first = checked.stdout.splitlines()[0]
    assert first.startswith("model.py:4:1: RNN901 `Forecaster`") and "could not be built" in first
    assert checked.stdout.splitlines()[-1].startswith("No findings; 1 note (info: the exit code is unaffected); "
                                                      "graph stage: 0 of 1 models built in ")
    result = rnnlint_process("check", "--graph", "--add-noqa", ".", cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Added 0 noqa directives in 0 files."
    assert (tmp_path / "model.py").read_text() == UNBUILDABLE
