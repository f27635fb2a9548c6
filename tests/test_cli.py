"""The command line as a user meets it: exit codes, the catalogue, selection.

Every test runs the real command line (``rnnlint.cli.entry``, in this process:
``tests.helpers.rnnlint``) on a small project in a temporary folder; the
end-to-end tests (``test_e2e``) run it in a subprocess. Where the exact set of findings matters, ``--select`` names
the rules so that rules added later do not change what is asserted.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from rnnlint import __version__
from rnnlint.static.registry import load_rules
from tests.helpers import rnnlint
from tests.test_trust import MODEL  # a recurrent model alone: nothing to report, one model to build

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


def test_statistics_as_json(project):
    result = rnnlint("check", "--output-format", "json", "--statistics", "--select", "RNN020,RNN041", "train.py",
                     cwd=project)
    assert result.returncode == 1
    rows = json.loads(result.stdout)  # stdout is the JSON list alone
    assert sorted(rows, key=lambda r: r["code"]) == [
        {"code": "RNN020", "name": "high-learning-rate", "count": 1, "fixable": False, "fixable_count": 0},
        {"code": "RNN041", "name": "dropout-on-single-layer", "count": 1, "fixable": True, "fixable_count": 1},
    ]
    sarif = rnnlint("check", "--output-format", "sarif", "--statistics", "train.py", cwd=project)
    assert sarif.returncode == 2 and "--statistics prints text or json" in sarif.stderr


def test_mistyped_rule_codes_get_a_did_you_mean(project):
    result = rnnlint("check", "--select", "RNN21", "train.py", cwd=project)
    assert result.returncode == 2
    assert "--select: unknown rule code or prefix 'RNN21'; did you mean 'RNN021'?" in result.stderr
    by_name = rnnlint("check", "--ignore", "high-learning-rate", "train.py", cwd=project)
    assert by_name.returncode == 2
    assert "that is the name of RNN020: use its code" in by_name.stderr
    (project / "pyproject.toml").write_text('[tool.rnnlint]\nextend-select = ["RNN0211"]\n')
    config = rnnlint("check", "train.py", cwd=project)
    assert config.returncode == 2
    assert "extend-select: unknown rule code or prefix 'RNN0211'; did you mean 'RNN021'?" in config.stderr


# -- Ruff's habits: check --fix, -q, --silent, --show-fixes, stdin ----------------------


def test_check_fix_applies_safe_fixes_then_reports_what_remains(project):
    result = rnnlint("check", "--fix", "--select", "RNN020,RNN041", "train.py", cwd=project)
    assert result.returncode == 1, result.stderr
    assert "Fixed 1 finding in 1 file." in result.stderr
    assert codes(result.stdout) == ["RNN020"]  # the unsafe one is left, and reported
    text = (project / "train.py").read_text()
    assert "dropout=0.2" not in text and "lr=0.05" in text
    result = rnnlint("check", "--fix", "--unsafe-fixes", "--select", "RNN020,RNN041", "train.py", cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lr=0.001" in (project / "train.py").read_text()
    assert result.stdout.strip() == "No findings."


def test_check_unsafe_fixes_without_fix_is_a_usage_error(project):
    result = rnnlint("check", "--unsafe-fixes", "train.py", cwd=project)
    assert result.returncode == 2
    assert "--unsafe-fixes applies fixes: use it with --fix" in result.stderr
    assert (project / "train.py").read_text() == TRAIN


def test_quiet_prints_the_findings_only_and_silent_nothing(project):
    (project / "model.py").write_text(MODEL)  # a model the graph stage would build: normally a note
    normal = rnnlint("check", ".", cwd=project)
    assert "not built by the graph stage" in normal.stderr
    quiet = rnnlint("check", "-q", ".", cwd=project)
    assert quiet.returncode == 1
    assert quiet.stdout.splitlines() == normal.stdout.splitlines()[:-1]  # no summary line
    assert "RNN020" in codes(quiet.stdout) and quiet.stderr == ""
    silent = rnnlint("check", "--silent", "--select", "RNN020,RNN041", ".", cwd=project)
    assert (silent.returncode, silent.stdout, silent.stderr) == (1, "", "")
    fixed = rnnlint("check", "--fix", "--quiet", "--select", "RNN041", ".", cwd=project)
    assert (fixed.returncode, fixed.stdout, fixed.stderr) == (0, "", "")


def test_show_fixes_names_each_fix(project):
    shown = rnnlint("check", "--show-fixes", "--select", "RNN020,RNN041", "train.py", cwd=project)
    lines = shown.stdout.splitlines()
    assert lines[1] == "    fix: Remove the dropout argument (safe)"
    assert lines[3] == "    fix: Set the learning rate to 0.001 (unsafe)"
    applied = rnnlint("check", "--fix", "--unsafe-fixes", "--show-fixes", "--select", "RNN020,RNN041", "train.py",
                      cwd=project)
    assert applied.returncode == 0
    assert applied.stderr.splitlines() == [
        "Fixed 2 findings in 1 file:",
        "- train.py:",
        "    1 × RNN020 (high-learning-rate)",
        "    1 × RNN041 (dropout-on-single-layer)",
    ]


def test_stdin_is_checked_as_the_named_file(project):
    (project / "pyproject.toml").write_text('[tool.rnnlint.per-file-ignores]\n"scripts/*" = ["RNN041"]\n')
    result = rnnlint("check", "--select", "RNN020,RNN041", "-", "--stdin-filename", "train.py", cwd=project,
                     input=TRAIN)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith("train.py:12:59: RNN041 ")
    # the name decides the per-file-ignores, as for a file on disk
    ignored = rnnlint("check", "--select", "RNN020,RNN041", "--stdin-filename", "scripts/train.py", cwd=project,
                      input=TRAIN)
    assert codes(ignored.stdout) == ["RNN020"]
    assert ignored.stdout.startswith("scripts/train.py:22:51: RNN020 ")
    both = rnnlint("check", "-", "train.py", cwd=project, input=TRAIN)
    assert both.returncode == 2 and "give it alone" in both.stderr


def test_stdin_fix_prints_the_fixed_code_and_writes_nothing(project):
    before = (project / "train.py").read_bytes()
    result = rnnlint("fix", "--apply", "--select", "RNN020,RNN041", "-", "--stdin-filename", "train.py",
                     cwd=project, input=TRAIN)
    assert result.returncode == 1  # RNN020's fix is unsafe: it remains, reported on stderr
    assert result.stdout == TRAIN.replace(", dropout=0.2", "")
    assert "Fixed 1 finding in 1 file." in result.stderr
    assert "train.py:22:51: RNN020 " in result.stderr
    checked = rnnlint("check", "--fix", "--unsafe-fixes", "--select", "RNN020,RNN041", "-", cwd=project,
                      input=TRAIN)
    assert checked.returncode == 0
    assert checked.stdout == TRAIN.replace(", dropout=0.2", "").replace("lr=0.05", "lr=0.001")
    clean = rnnlint("fix", "--apply", "-", cwd=project, input=CLEAN)
    assert (clean.returncode, clean.stdout) == (0, CLEAN)  # unchanged code comes back as it was
    assert (project / "train.py").read_bytes() == before


def test_fix_lists_findings_it_cannot_fix(project):
    result = rnnlint("fix", "--select", "RNN021", "train.py", cwd=project)
    assert result.returncode == 1
    assert codes(result.stdout) == ["RNN021"]  # listed, as check lists it
    assert result.stdout.splitlines()[-1] == "1 finding, none with an automatic fix."
    assert "Nothing to fix: none of the findings above has an automatic fix." in result.stderr
    unsafe = rnnlint("fix", "--apply", "--select", "RNN020", "train.py", cwd=project)
    assert unsafe.returncode == 1
    assert codes(unsafe.stdout) == ["RNN020"]
    assert "Nothing to fix without --unsafe-fixes: 1 finding above has only an unsafe fix" in unsafe.stderr


# -- wording ----------------------------------------------------------------------


def test_a_path_that_does_not_exist_is_one_error(project):
    said = ["rnnlint: error: trian.py: no such file or directory"]
    alone = rnnlint("check", "trian.py", cwd=project)
    assert (alone.returncode, alone.stdout, alone.stderr.splitlines()) == (2, "", said)
    with_others = rnnlint("check", "--static", "train.py", "trian.py", cwd=project)
    assert with_others.stderr.splitlines() == said
    assert "train.py:22:51: RNN020" in with_others.stdout  # the rest is still checked
    assert with_others.returncode == 2  # but a mistyped path never passes a build


def test_rule_docs_have_no_rest_double_backticks():
    listed = rnnlint("rules", cwd=DATA)
    assert "``" not in listed.stdout
    assert "`pack_padded_sequence` given lengths" in listed.stdout
    explained = rnnlint("explain", "RNN001", cwd=DATA)
    assert "``" not in explained.stdout and "`backward()`" in explained.stdout
