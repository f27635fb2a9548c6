"""The wheel ships the rule pack inside the package, never as a top-level ``rules``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {"rnnlint", "rnnlint.rules"} | {
        "rnnlint." + module.parent.name for module in (REPO / "rnnlint").glob("*/*.py")
    }
    assert on_disk <= listed, f"add {sorted(on_disk - listed)} to [tool.setuptools] packages"


@pytest.mark.slow
def test_wheel_contains_rule_pack_and_no_top_level_rules(tmp_path):
    # pip builds in the source tree (build/, *.egg-info): build a copy, never the checkout
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("rnnlint", "rules"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
    )
    wheel = next(tmp_path.glob("rnnlint-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    rule_files = {Path(n).name for n in names if n.startswith("rnnlint/rules/")}
    assert {p.name for p in (REPO / "rules").glob("rnn*.py")} <= rule_files
    assert not any(n.startswith("rules/") for n in names)
    assert "rnnlint/data/recurrent_signatures.json" in names
