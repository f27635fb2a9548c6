"""The shapes real projects use to pass values to where a rule looks, as our own fixtures.

Each folder of ``fixtures/realcode/`` is a small multi-file project written by this team that
reproduces one way real training code (the rows of ``../shared/corpus-dev``) passes a value
across files, containers, parameters or objects. ``fixtures/realcode/EXPECTED.toml`` lists the
exact findings of ``rnnlint check --static`` on each project; fixed twins and negative files
must report nothing. The comparison is exact: a missing finding and an extra one both fail.

Projects the engine cannot follow yet are marked ``xfail(strict=True)`` with what the value-flow
model must follow: the suite stays green, and a case turns into a failure (XPASS) the moment the
engine handles it, so that its mark gets removed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import fixture_copy, rnnlint, rnnlint_process

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
REALCODE = REPO / "fixtures" / "realcode"
EXPECTED = tomllib.loads((REALCODE / "EXPECTED.toml").read_text("utf-8"))["projects"]

# project -> what the flow model must follow before the project passes (absent: passes today)
NOT_YET: dict[str, str] = {}  # projects the engine cannot follow yet: name -> why


def projects() -> list[str]:
    return sorted(p.name for p in REALCODE.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def params() -> list:
    return [
        pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=NOT_YET[name])] if name in NOT_YET else [], id=name)
        for name in sorted(EXPECTED)
    ]


def key(finding: dict) -> tuple:
    return finding["path"], finding["code"], finding["line"], finding.get("cell")


def test_every_project_has_expectations_and_parses():
    assert projects() == sorted(EXPECTED), "fixtures/realcode folders and EXPECTED.toml disagree"
    assert set(NOT_YET) <= set(EXPECTED)
    for name in EXPECTED:
        root = REALCODE / name
        for path in root.rglob("*.py"):
            compile(path.read_text("utf-8"), str(path), "exec")
        for path in root.rglob("*.ipynb"):
            cells = json.loads(path.read_text("utf-8"))["cells"]
            for cell in cells:
                if cell["cell_type"] == "code":
                    compile("".join(cell["source"]), f"{path}:{cell.get('id')}", "exec")
        for finding in EXPECTED[name]["findings"]:
            target = root / finding["path"]
            assert target.is_file(), target
            assert not target.stem.endswith("_fixed"), f"a fixed twin cannot have findings: {finding}"


@pytest.mark.slow
def test_realcode_tree_checks_cleanly_and_twins_stay_silent(tmp_path):
    """Not marked: whatever the engine follows yet, the whole tree is checked without an error,
    and no fixed twin is ever reported (a twin with a finding is a false alarm)."""
    result = rnnlint_process("check", "--static", "--output-format", "json", "--no-cache", "--exit-zero",
                     "fixtures/realcode", cwd=fixture_copy(tmp_path, "fixtures/realcode"), timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert not [d for d in found if Path(d["path"]).stem.endswith("_fixed")], result.stdout


@pytest.mark.parametrize("project", params())
def test_realcode_project_findings(project, tmp_path):
    result = rnnlint(
        "check", "--static", "--output-format", "json", "--no-cache", "--exit-zero",
        f"fixtures/realcode/{project}", cwd=fixture_copy(tmp_path, f"fixtures/realcode/{project}"),
    )
    assert result.returncode == 0, result.stderr
    prefix = f"fixtures/realcode/{project}/"
    found = set()
    for d in json.loads(result.stdout):
        assert d["path"].startswith(prefix), d
        found.add((d["path"][len(prefix):], d["code"], d["line"], d.get("cell")))
    expected = {key(f) for f in EXPECTED[project]["findings"]}
    missing, extra = sorted(expected - found, key=str), sorted(found - expected, key=str)
    assert not missing and not extra, f"missing: {missing}\nextra: {extra}"
