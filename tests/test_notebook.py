"""Jupyter notebooks, through the real command line (in this process) on temporary copies.

The fixture ``fixtures/notebook/lstm_training.ipynb`` is a forecasting notebook
as people write them: ``%matplotlib inline`` and ``!pip install`` in the imports
cell, the LSTM in its own cell, a ``%%time`` training cell with Adam at lr=0.01
and no gradient clipping. Cells are numbered among all cells (markdown too):
the training cell is cell 7.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rnnlint.notebook import parse_notebook
from rnnlint.source import SourceError
from tests.helpers import rnnlint
from tests.test_output import sarif_errors

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "notebook"
TRAINING_CELL = 7


def copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "nb"
    shutil.copytree(FIXTURE, target)
    return target


def notebook(cells: list, **extra) -> str:
    """A notebook as Jupyter writes it; each cell is a source string or a (cell_type, source) pair."""
    out = []
    for i, cell in enumerate(cells):
        kind, source = cell if isinstance(cell, tuple) else ("code", cell)
        lines = source.split("\n")
        entry = {"cell_type": kind, "id": f"cell-{i}", "metadata": {},
                 "source": [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])}
        if kind == "code":
            entry.update(execution_count=i + 1, outputs=[])
        out.append(entry)
    data = {"cells": out, "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
            "nbformat": 4, "nbformat_minor": 5, **extra}
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


MODEL_CELL = """import torch
import torch.nn as nn

class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, 5)

    def forward(self, x):
        return self.out(self.rnn(x)[0])"""

TRAIN_CELL = """model = Tagger()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in batches:
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
    loss.backward()
    opt.step()"""


def test_findings_are_located_by_cell_and_line_in_cell(tmp_path):
    root = copy_fixture(tmp_path)
    result = rnnlint("check", "--static", "lstm_training.ipynb", cwd=root)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"lstm_training.ipynb:cell {TRAINING_CELL}:2:53: RNN020 ")  # lr=0.01
    assert lines[1].startswith(f"lstm_training.ipynb:cell {TRAINING_CELL}:11:9: RNN001 ")  # optimizer.step()
    assert lines[2].startswith("2 findings")


def test_json_and_sarif_name_the_cell(tmp_path):
    root = copy_fixture(tmp_path)
    found = json.loads(rnnlint("check", "--static", "--output-format", "json", "lstm_training.ipynb", cwd=root).stdout)
    assert [(d["code"], d["cell"], d["cell_line"], d["line"]) for d in found] == [
        ("RNN020", TRAINING_CELL, 2, 2),
        ("RNN001", TRAINING_CELL, 11, 11),
    ]
    assert found[0]["fix"]["edits"][0]["cell"] == TRAINING_CELL  # edits say which cell they change
    sarif = json.loads(rnnlint("check", "--static", "--output-format", "sarif", "lstm_training.ipynb", cwd=root).stdout)
    assert sarif_errors(sarif) == []
    results = sarif["runs"][0]["results"]
    assert [(r["properties"]["cell"], r["properties"]["cellLine"], r["properties"]["cellColumn"]) for r in results] == [
        (7, 2, 53), (7, 11, 9)]
    assert [r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] for r in results] == [
        "lstm_training.ipynb:cell 7", "lstm_training.ipynb:cell 7"]


def stored_text(raw: str, region: tuple[int, int, int, int]) -> str:
    """The text of the stored file between (line, column) and (end line, end column), 1-based."""
    lines = raw.split("\n")
    line, column, end_line, end_column = region
    assert line == end_line, region
    return lines[line - 1][column - 1 : end_column - 1]


def test_sarif_and_github_point_at_the_stored_json_and_carry_no_unappliable_fix(tmp_path):
    """A region in a notebook is a line of the .ipynb as stored, where the cell's code is; a cell
    edit is not a replacement of the JSON's text, so SARIF gives no `fixes` for it."""
    root = copy_fixture(tmp_path)
    raw = (root / "lstm_training.ipynb").read_text("utf-8")
    sarif = json.loads(rnnlint("check", "--static", "--output-format", "sarif", "lstm_training.ipynb", cwd=root).stdout)
    results = sarif["runs"][0]["results"]
    regions = [r["locations"][0]["physicalLocation"]["region"] for r in results]
    spans = [(g["startLine"], g["startColumn"], g["endLine"], g["endColumn"]) for g in regions]
    assert [stored_text(raw, span) for span in spans] == ["0.01", "optimizer.step()"]
    assert all("fixes" not in r for r in results)
    assert results[1]["properties"]["fix"].startswith("Insert clip_grad_norm_")  # described, for people

    github = rnnlint("check", "--static", "--output-format", "github", "lstm_training.ipynb", cwd=root)
    annotations = github.stdout.splitlines()
    for annotation, span in zip(annotations, spans):
        assert f"line={span[0]},col={span[1]},endLine={span[2]},endColumn={span[3]}," in annotation
    assert "title=RNN001 missing-grad-clip (cell 7%2C line 11)::" in annotations[1]


def test_stored_positions_follow_json_escapes_and_one_string_sources(tmp_path):
    # one string per cell, written with ASCII escapes: é is six characters in the file, the quote two
    code = 'note = "résumé: \\"fast\\""\nopt = optim.Adam(model.parameters(), lr=0.01)\n'
    cells = [{"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
              "source": "import torch.nn as nn\nfrom torch import optim\nmodel = nn.LSTM(4, 8)\n"},
             {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [], "source": code}]
    raw = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)
    (tmp_path / "escaped.ipynb").write_text(raw, "utf-8")
    sarif = json.loads(rnnlint("check", "--static", "--select", "RNN020", "--output-format", "sarif",
                               "escaped.ipynb", cwd=tmp_path).stdout)
    assert sarif_errors(sarif) == []
    [result] = sarif["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    span = (region["startLine"], region["startColumn"], region["endLine"], region["endColumn"])
    assert stored_text(raw, span) == "0.01"
    assert (result["properties"]["cell"], result["properties"]["cellLine"]) == (2, 2)


def test_a_notebook_from_stdin_is_fixed_to_stdout(tmp_path):
    root = copy_fixture(tmp_path)
    before = (root / "lstm_training.ipynb").read_text("utf-8")
    result = rnnlint("fix", "--static", "--apply", "--unsafe-fixes", "-", "--stdin-filename", "lstm_training.ipynb",
                     cwd=root, input=before)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (FIXTURE / "lstm_training_fixed.ipynb").read_text("utf-8")
    assert (root / "lstm_training.ipynb").read_text("utf-8") == before


def test_fix_apply_writes_the_fixed_twin_and_touches_nothing_else(tmp_path):
    root = copy_fixture(tmp_path)
    before = (root / "lstm_training.ipynb").read_text("utf-8")
    preview = rnnlint("fix", "--static", "--unsafe-fixes", "lstm_training.ipynb", cwd=root)
    assert f"--- a/lstm_training.ipynb:cell {TRAINING_CELL}" in preview.stdout
    assert "+        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)" in preview.stdout
    assert (root / "lstm_training.ipynb").read_text("utf-8") == before  # a preview writes nothing

    result = rnnlint("fix", "--static", "--apply", "--unsafe-fixes", "lstm_training.ipynb", cwd=root)
    assert result.returncode == 0, result.stderr
    after = (root / "lstm_training.ipynb").read_text("utf-8")
    assert after == (FIXTURE / "lstm_training_fixed.ipynb").read_text("utf-8")
    old, new = json.loads(before), json.loads(after)
    # only the training cell's source changed: outputs, metadata, other cells, nbformat as they were
    assert old.pop("metadata") == new.pop("metadata") and old["nbformat"] == new["nbformat"]
    for number, (a, b) in enumerate(zip(old["cells"], new["cells"]), start=1):
        assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
        assert (a["source"] == b["source"]) == (number != TRAINING_CELL)
    # the IPython lines survive the round trip, and the file keeps Jupyter's 1-space layout
    assert new["cells"][1]["source"][:2] == ["%matplotlib inline\n", "!pip install -q matplotlib\n"]
    assert new["cells"][TRAINING_CELL - 1]["source"][0] == "%%time\n"
    assert after == json.dumps(json.loads(after), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    again = rnnlint("fix", "--static", "--apply", "--unsafe-fixes", "lstm_training.ipynb", cwd=root)
    assert (root / "lstm_training.ipynb").read_text("utf-8") == after and again.returncode == 0
    assert rnnlint("check", "--static", "lstm_training_fixed.ipynb", cwd=root).returncode == 0


def test_fix_keeps_the_files_own_json_style_and_ipython_lines(tmp_path):
    # a compact one-line notebook with string sources, a magic inside the loop, shell and help lines
    cells = [
        {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["setup"]}, "outputs": [],
         "source": "from torch import nn, optim\n%load_ext autoreload"},
        {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
         "source": "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.rnn = nn.GRU(4, 8)\n"},
        {"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": "é\n"}],
         "source": "model = M()\nopt = optim.SGD(model.parameters(), lr=0.1)\nfor x in data:\n    %time y = model(x)\n"
                   "    y.sum().backward()\n    opt.step()\n    opt.zero_grad()\nM?\nfiles = !ls\n!echo a \\\n  b"},
    ]
    raw = json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, ensure_ascii=False)
    (tmp_path / "compact.ipynb").write_text(raw, "utf-8")
    result = rnnlint("fix", "--static", "--apply", "compact.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    after = (tmp_path / "compact.ipynb").read_text("utf-8")
    assert "\n" not in after  # still one line, as it was
    new = json.loads(after)["cells"]
    # the import the fix needs goes to the imports cell, the clip into the loop, magics untouched
    assert new[0]["source"] == "from torch import nn, optim\nimport torch\n%load_ext autoreload"
    assert new[2]["source"] == (
        "model = M()\nopt = optim.SGD(model.parameters(), lr=0.1)\nfor x in data:\n    %time y = model(x)\n"
        "    y.sum().backward()\n    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)\n"
        "    opt.step()\n    opt.zero_grad()\nM?\nfiles = !ls\n!echo a \\\n  b"
    )
    assert new[2]["outputs"] == cells[2]["outputs"] and new[0]["metadata"] == {"tags": ["setup"]}
    assert after == raw.replace(json.dumps(cells[0]["source"]), json.dumps(new[0]["source"])).replace(
        json.dumps(cells[2]["source"]), json.dumps(new[2]["source"]))


def test_the_index_sees_definitions_across_cells_and_modules(tmp_path):
    (tmp_path / "across_cells.ipynb").write_text(notebook([("markdown", "# Tagger"), MODEL_CELL, TRAIN_CELL]))
    (tmp_path / "models.py").write_text(MODEL_CELL + "\n")
    (tmp_path / "from_module.ipynb").write_text(notebook(["import torch\nimport torch.nn as nn\nfrom models import Tagger", TRAIN_CELL]))
    cnn = MODEL_CELL.replace("nn.GRU(16, 32, batch_first=True)", "nn.Conv1d(16, 32, 3)").replace("Tagger", "Conv")
    (tmp_path / "cnn.ipynb").write_text(notebook([cnn, TRAIN_CELL.replace("Tagger", "Conv")]))
    result = rnnlint("check", "--static", "--select", "RNN001", ".", cwd=tmp_path)
    located = sorted(line.split(": RNN001")[0] for line in result.stdout.splitlines() if "RNN001" in line)
    assert located == ["across_cells.ipynb:cell 3:7:5", "from_module.ipynb:cell 2:7:5"]  # not the CNN


def test_noqa_in_a_cell_suppresses(tmp_path):
    (tmp_path / "t.ipynb").write_text(notebook([MODEL_CELL, TRAIN_CELL.replace("opt.step()", "opt.step()  # noqa: RNN001")]))
    result = rnnlint("check", "--static", "--select", "RNN001", "t.ipynb", cwd=tmp_path)
    assert result.returncode == 0 and "No findings." in result.stdout


def test_a_broken_notebook_is_reported_and_the_run_goes_on(tmp_path):
    root = copy_fixture(tmp_path)
    (root / "broken.ipynb").write_text('{\n "cells": [\n  {"cell_type": "code",,}\n ]\n}\n')
    (root / "old.ipynb").write_text('{"worksheets": [], "nbformat": 3}')
    result = rnnlint("check", "--static", ".", cwd=root)
    assert result.returncode == 1
    out = result.stdout
    assert "broken.ipynb:3:" in out and "RNN900 not a valid notebook: invalid JSON: Expecting property name" in out
    assert 'old.ipynb:1:1: RNN900 not a valid notebook: no "cells" list; nbformat 3' in out
    assert f"lstm_training.ipynb:cell {TRAINING_CELL}:11:9: RNN001" in out  # the others are still checked
    fixed = rnnlint("fix", "--static", "--apply", ".", cwd=root)
    assert fixed.returncode == 1 and "Traceback" not in fixed.stderr
    assert (root / "broken.ipynb").read_text().startswith('{\n "cells"')


def test_notebooks_of_other_languages_are_left_alone(tmp_path):
    text = notebook([TRAIN_CELL])
    data = json.loads(text)
    data["metadata"] = {"kernelspec": {"language": "R", "name": "ir"}}
    (tmp_path / "r.ipynb").write_text(json.dumps(data))
    assert rnnlint("check", "--static", "r.ipynb", cwd=tmp_path).returncode == 0


def test_a_fix_may_not_change_a_masked_ipython_line(tmp_path):
    nb = parse_notebook(tmp_path / "x.ipynb", notebook(["import os\n%time os.getcwd()", "x = 1"]))
    assert nb.text.count("\n") == 2 + 1 + 1 + 1  # two lines, a boundary, one line, a boundary
    broken = nb.text.replace("pass  # rnnlint-ipython-line-0", "pass  # rnnlint-ipython-line-0 edited")
    with pytest.raises(SourceError, match="IPython line in cell 1"):
        nb.split(broken)
    assert nb.split(nb.text) == ["import os\n%time os.getcwd()", "x = 1"]
