"""``[tool.rnnlint]`` in pyproject.toml: found, validated, and obeyed.

A typo in a linter's config must never silently switch a check off, so every
mistake is an error (exit 2) that names the file and the key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rnnlint.config import ConfigError, load_config
from rnnlint.static.runner import Session
from tests.helpers import rnnlint

DATA = Path(__file__).parent / "data"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return path


def findings(*paths: Path) -> list[tuple[str, str]]:
    """(file name, code) of every finding, checked in-process with the config that governs ``paths``."""
    session = Session(load_config(list(paths)), use_cache=False)
    return [(Path(d.path).name, d.code) for path in paths for d in session.check(path).diagnostics]


def test_nearest_pyproject_walking_up_from_the_checked_path(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.rnnlint]\nignore = ["RNN020"]\n')
    # a nearer pyproject.toml without [tool.rnnlint] does not stop the walk
    write(tmp_path / "pkg" / "pyproject.toml", "[project]\nname = 'pkg'\n")
    script = tmp_path / "pkg" / "src" / "train.py"
    script.parent.mkdir(parents=True)
    shutil.copy(DATA / "lstm_train.py", script)
    config = load_config([script])
    assert config.source == tmp_path / "pyproject.toml"
    assert config.root == tmp_path.resolve()
    # and from a working directory elsewhere, the CLI finds the same file
    result = rnnlint("check", "--static", str(script), cwd=tmp_path.parent)
    assert "RNN041" in result.stdout and "RNN020" not in result.stdout


def test_select_and_ignore_from_config(tmp_path):
    script = tmp_path / "train.py"
    shutil.copy(DATA / "lstm_train.py", script)
    write(tmp_path / "pyproject.toml", '[tool.rnnlint]\nselect = ["RNN020", "RNN041"]\nignore = ["RNN04"]\n')
    assert [code for _, code in findings(script)] == ["RNN020"]


def test_cli_flags_override_config(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    write(tmp_path / "pyproject.toml", '[tool.rnnlint]\nselect = ["RNN020"]\n')
    result = rnnlint("check", "--select", "RNN041", "train.py", cwd=tmp_path)
    assert "RNN041" in result.stdout and "RNN020" not in result.stdout


def test_per_file_ignores(tmp_path):
    for name in ("train.py", "experiments/old_train.py"):
        write(tmp_path / name, (DATA / "lstm_train.py").read_text())
    write(tmp_path / "pyproject.toml", """\
[tool.rnnlint]
select = ["RNN020"]

[tool.rnnlint.per-file-ignores]
"experiments/**" = ["RNN020"]
""")
    result = rnnlint("check", ".", cwd=tmp_path)
    assert "train.py:22:51: RNN020" in result.stdout
    assert "old_train.py" not in result.stdout


def test_rule_options_change_the_result(tmp_path):
    # lr=0.05 with Adam: above the default ceiling 3e-3, below a configured 0.1
    script = write(tmp_path / "train.py", (DATA / "lstm_train.py").read_text())
    assert ("train.py", "RNN020") in findings(script)
    write(tmp_path / "pyproject.toml", "[tool.rnnlint.high-learning-rate]\nadam = 0.1\n")
    assert ("train.py", "RNN020") not in findings(script)
    # the value the fix writes is an option too
    write(tmp_path / "pyproject.toml", '[tool.rnnlint.high-learning-rate]\nadam = 0.02\n"adam-fix" = 0.0005\n')
    result = rnnlint("fix", "--unsafe-fixes", "--select", "RNN020", "train.py", cwd=tmp_path)
    assert "+    optimizer = optim.Adam(model.parameters(), lr=0.0005)" in result.stdout


@pytest.mark.parametrize(
    "toml, expected",
    [
        ('[tool.rnnlint]\nselct = ["RNN020"]\n', "[tool.rnnlint] selct: unknown key 'selct'; did you mean 'select'?"),
        ('[tool.rnnlint.missing-grad-clp]\nmax-norm = 0.5\n',
         "unknown key 'missing-grad-clp' (not a setting nor a rule name); did you mean 'missing-grad-clip'?"),
        ('[tool.rnnlint.missing-grad-clip]\nmax-nrm = 0.5\n', "unknown option 'max-nrm' for RNN001 (missing-grad-clip); "
         "did you mean 'max-norm'?"),
        ('[tool.rnnlint]\nselect = "RNN020"\n', "[tool.rnnlint] select: must be a list of strings"),
        ("[tool.rnnlint]\ngraph = 1\n", "[tool.rnnlint] graph: must be true or false"),
        ('[tool.rnnlint]\nexclude = [1]\n', "[tool.rnnlint] exclude: must be a list of strings"),
        ('[tool.rnnlint]\nselect = ["RNN999"]\n', "[tool.rnnlint] select: unknown rule code or prefix 'RNN999'"),
        ('[tool.rnnlint.per-file-ignores]\n"a.py" = "RNN020"\n', "per-file-ignores: 'a.py' must map to a list"),
        ("[tool.rnnlint.high-learning-rate]\nadam = 'high'\n",
         "high-learning-rate.adam: adam must be a finite number > 0 and <= 1000, got 'high'"),
        # values checked for meaning: the safe fix would write max_norm=nan; a 0 s stage reports nothing
        ("[tool.rnnlint.missing-grad-clip]\nmax-norm = nan\n",
         "missing-grad-clip.max-norm: max-norm must be a finite number > 0 and <= 1e+06, got nan"),
        ("[tool.rnnlint.missing-grad-clip]\nmax-norm = inf\n", "max-norm must be a finite number > 0 and <= 1e+06, got inf"),
        ("[tool.rnnlint.missing-grad-clip]\nmax-norm = -1.0\n", "max-norm must be a finite number > 0 and <= 1e+06, got -1.0"),
        ("[tool.rnnlint.RNN001]\nmax-norm = 0\n", "max-norm must be a finite number > 0 and <= 1e+06, got 0"),
        ("[tool.rnnlint.model-not-analysed]\nstage-timeout = 0\n",
         "model-not-analysed.stage-timeout: stage-timeout must be a finite number > 0 and <= 86400, got 0"),
        ("[tool.rnnlint.model-not-analysed]\nmemory-limit-mb = 99999999999999999\n",
         "memory-limit-mb must be an integer >= 64 and <= 4194304, got 99999999999999999"),
        ("[tool.rnnlint.saturated-at-init]\nmax-share = 1.5\n", "max-share must be a finite number >= 0 and <= 1, got 1.5"),
        ('[tool.rnnlint]\ncache-dir = "a\\u0000b"\n', "[tool.rnnlint] cache-dir: 'a\\x00b' is not a usable path"),
        ('[tool.rnnlint]\nrule-folders = [""]\n', "[tool.rnnlint] rule-folders: '' is not a usable path"),
        ('[tool.rnnlint.models]\n"builtins:exec" = {args = ["print(1)"]}\n',
         "[tool.rnnlint] models 'builtins:exec': 'builtins' is not a module of this project"),
        ('[tool.rnnlint.models]\n"os:system" = {args = ["true"]}\n', "models 'os:system': 'os' is not a module of this project"),
        ('[tool.rnnlint.models]\n"train:x" = {factory = "subprocess:call"}\n',
         "models 'train:x'.factory ('subprocess:call'): 'subprocess' is not a module of this project"),
        ('[tool.rnnlint.models]\n"numpy:load" = {}\n', "models 'numpy:load': 'numpy' is not a module of this project"),
        ("[tool.rnnlint.high-learning-rate]\nadm = 0.1\n", "high-learning-rate.adm: unknown option 'adm' for RNN020"),
        ("[tool.rnnlint.no-such-rule]\nx = 1\n", "unknown key 'no-such-rule'"),
        ("[tool.rnnlint\nselect = []\n", "invalid TOML"),
    ],
)
def test_config_mistakes_exit_2_naming_file_and_key(tmp_path, toml, expected):
    write(tmp_path / "train.py", "x = 1\n")
    config = write(tmp_path / "pyproject.toml", toml)
    # in-process for every case: the message
    with pytest.raises(ConfigError) as info:
        Session(load_config([tmp_path / "train.py"]), use_cache=False)
    assert expected in str(info.value)
    assert str(config) in str(info.value)


def test_config_mistake_through_the_cli(tmp_path):
    write(tmp_path / "train.py", "x = 1\n")
    write(tmp_path / "pyproject.toml", "[tool.rnnlint.high-learning-rate]\nadam = 'high'\n")
    result = rnnlint("check", "train.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "pyproject.toml: [tool.rnnlint] high-learning-rate.adam" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_explicit_config_file(tmp_path):
    shutil.copy(DATA / "lstm_train.py", tmp_path / "train.py")
    other = write(tmp_path / "ci" / "strict.toml", '[tool.rnnlint]\nselect = ["RNN041"]\n')
    result = rnnlint("check", "--config", str(other), "train.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "RNN041" in result.stdout and "RNN020" not in result.stdout


@pytest.mark.parametrize("toml, expected", [
    ('[tool.rnnlint.models]\n"model:Tagger" = { argz = [65] }\n',
     "models 'model:Tagger': unknown key 'argz'; did you mean 'args'?"),
    ('[tool.rnnlint.models]\n"model:Tagger" = { args = [1], inputs = [{ shape = [4, 0] }] }\n',
     "models 'model:Tagger'.inputs: shape must be a list of positive integers"),
    ('[tool.rnnlint.models]\n"Tagger" = {}\n', "models 'Tagger': keys are \"module:Name\""),
    ('[tool.rnnlint.model-not-analysed]\nmodel-timout = 5\n', "did you mean 'model-timeout'?"),
])
def test_graph_settings_are_checked_before_any_stage_runs(tmp_path, toml, expected):
    """`check --static` (what pre-commit runs) never runs the graph stage, yet a typo in its settings fails it."""
    write(tmp_path / "model.py", "class Tagger:\n    pass\n")
    write(tmp_path / "pyproject.toml", toml)
    result = rnnlint("check", "--static", "model.py", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr and "pyproject.toml" in result.stderr
