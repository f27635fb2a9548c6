"""The README stays true to the code: its rule table is what `rnnlint rules` prints, its example findings what
`rnnlint check fixtures/` prints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rnnlint.static.registry import load_rules
from tests import helpers

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text("utf-8")


def test_rule_table_is_what_rnnlint_rules_prints(tmp_path):
    """The README's table is generated: `rnnlint rules --output-format markdown` prints it."""
    marker = "<!-- rules-table:"
    assert marker in README
    table = README.split(marker, 1)[1].split("\n", 1)[1].split("\n\n", 1)[0]
    result = helpers.rnnlint("rules", "--output-format", "markdown", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert table == result.stdout.rstrip("\n"), (
        "the README's rule table is out of date: replace it with `rnnlint rules --output-format markdown`"
    )
    assert {line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:]} == set(load_rules())


def test_quickstart_has_exactly_two_commands():
    block = README.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "rnnlint check fixtures/" in commands[0]
    assert "pytest" in commands[1]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text("utf-8")
    assert commands[1] in ci, ".ci/run must run the README's test command"


@pytest.mark.slow  # checks the whole fixture tree
def test_the_example_finding_lines_are_what_the_quickstart_prints(tmp_path):
    """What the README shows a finding looks like is what its first Quickstart command prints (the
    summary line went stale once, as fixtures were added). On a copy of the fixtures with the checkout's
    config: the same findings (tests/test_e2e.py compares them), and no cache written into the checkout."""
    example = README.split("What a finding looks like", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    lines = [line for line in example.strip().splitlines()]
    root = helpers.fixture_copy(tmp_path, "fixtures")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    result = helpers.rnnlint("check", "fixtures/", cwd=root)
    assert result.returncode == 1, result.stderr
    printed = result.stdout.splitlines()
    for line in lines[:-1]:
        shown = line.removesuffix("...")  # an example line may be cut short
        assert any(p.startswith(shown) for p in printed), f"the README shows a finding check does not print: {line}"
    assert lines[-1] in printed, f"the README's summary line is stale: check prints {printed[-1]!r}"
