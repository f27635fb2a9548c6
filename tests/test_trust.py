"""The trust model, as a user meets it: what each command runs from the checked tree.

``check`` (by default), ``check --static`` and ``fix`` run nothing from the
checked tree. The graph stage and ``rule-folders`` run project code only when
asked for (``--graph`` / ``graph = true`` / ``rule-folders``), and
``--no-project-code`` refuses both whatever the repository's config says.
A test where project code could run runs the real command line in a subprocess
(a module imported there stays imported); the others run it in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import rnnlint, rnnlint_process

PROJECT_RULE = '''\
from pathlib import Path

from rnnlint.rule import Rule

Path(__file__).with_name("IMPORTED").write_text("project code ran")


class NoPrint(Rule):
    """A call to print() in training code (a project's own rule)."""

    code = "PRJ001"
    name = "no-print"

    def visit_Call(self, node):
        if getattr(node.func, "value", None) == "print":
            self.report(node, "print() in training code")
'''

MODEL = '''\
import torch.nn as nn


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0]
'''


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "proj"
    (project / "lint_rules").mkdir(parents=True)
    (project / "lint_rules" / "no_print.py").write_text(PROJECT_RULE, "utf-8")
    (project / "train.py").write_text('print("hello")\n', "utf-8")
    (project / "pyproject.toml").write_text('[tool.rnnlint]\nrule-folders = ["lint_rules"]\n', "utf-8")
    return project


def test_rule_folders_resolve_from_the_config_file_not_the_working_directory(tmp_path):
    project = _project(tmp_path)
    # run from the folder above: "lint_rules" is found beside the pyproject that names it
    result = rnnlint_process("check", "--static", "--no-cache", "proj/train.py", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "proj/train.py:1:1: PRJ001 print() in training code" in result.stdout
    assert (project / "lint_rules" / "IMPORTED").exists()


def test_no_project_code_refuses_rule_folders_and_says_so(tmp_path):
    project = _project(tmp_path)
    for command in (("check", "--static"), ("fix",), ("check",)):
        result = rnnlint_process(*command, "--no-project-code", "--no-cache", "train.py", cwd=project)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "PRJ001" not in result.stdout
        notes = [line for line in result.stderr.splitlines() if "--no-project-code" in line]
        assert notes == [f"rnnlint: note: --no-project-code: not running rule-folders enabled by "
                         f"{(project / 'pyproject.toml').resolve()}"]
        assert not (project / "lint_rules" / "IMPORTED").exists()


def test_rules_and_explain_list_the_projects_own_rules(tmp_path):
    project = _project(tmp_path)
    listed = rnnlint_process("rules", "--output-format", "json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "PRJ001" in {r["code"] for r in json.loads(listed.stdout)}
    explained = rnnlint_process("explain", "PRJ001", cwd=project)
    assert explained.returncode == 0 and "a project's own rule" in explained.stdout
    (project / "lint_rules" / "IMPORTED").unlink()
    builtin_only = rnnlint_process("rules", "--no-project-code", cwd=project)
    assert builtin_only.returncode == 0 and "PRJ001" not in builtin_only.stdout
    assert not (project / "lint_rules" / "IMPORTED").exists()


def test_check_builds_no_model_by_default_and_says_so_once(tmp_path):
    (tmp_path / "model.py").write_text(MODEL, "utf-8")
    (tmp_path / "other.py").write_text(MODEL.replace("Tagger", "Encoder"), "utf-8")
    result = rnnlint("check", "--no-cache", "--output-format", "json", ".", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []  # no RNN1xx: nothing was built
    assert result.stderr.strip() == (
        "note: 2 models not built by the graph stage (it runs project code); use --graph or graph = true to enable it"
    )
    assert "note:" not in rnnlint("check", "--static", ".", cwd=tmp_path).stderr


def test_models_config_naming_code_outside_the_project_is_refused_at_load(tmp_path):
    (tmp_path / "model.py").write_text(MODEL, "utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.rnnlint.models]\n"builtins:exec" = { args = ["open(\'PWNED\', \'w\')"] }\n', "utf-8")
    for command in (("check",), ("check", "--static"), ("fix",)):
        result = rnnlint_process(*command, "--no-cache", ".", cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "[tool.rnnlint] models 'builtins:exec': 'builtins' is not a module of this project" in result.stderr
    assert not (tmp_path / "PWNED").exists()
    # the project's own model is fine
    (tmp_path / "pyproject.toml").write_text('[tool.rnnlint.models]\n"model:Tagger" = {}\n', "utf-8")
    assert rnnlint_process("check", "--static", ".", cwd=tmp_path).returncode == 0


def test_a_config_value_that_would_make_a_bad_fix_is_an_error(tmp_path):
    source = ("import torch\nfrom torch import nn\nmodel = nn.LSTM(4, 8)\n"
              "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
              "for x in range(3):\n    loss = model(x)[0].sum()\n    loss.backward()\n    opt.step()\n")
    (tmp_path / "train.py").write_text(source, "utf-8")
    (tmp_path / "pyproject.toml").write_text("[tool.rnnlint.missing-grad-clip]\nmax-norm = nan\n", "utf-8")
    result = rnnlint("fix", "--apply", "train.py", cwd=tmp_path)
    assert result.returncode == 2
    assert ("[tool.rnnlint] missing-grad-clip.max-norm: max-norm must be a finite number > 0 and <= 1e+06, got nan"
            in result.stderr)
    assert (tmp_path / "train.py").read_text("utf-8") == source
    (tmp_path / "pyproject.toml").write_text("[tool.rnnlint.missing-grad-clip]\nmax-norm = 0.5\n", "utf-8")
    assert "max_norm=0.5" in rnnlint("fix", "train.py", cwd=tmp_path).stdout
    # explain says what each option allows
    explained = rnnlint("explain", "RNN001", cwd=tmp_path).stdout
    assert "max-norm = 1.0  -- max_norm written by the fix (a finite number > 0 and <= 1e+06)" in explained
