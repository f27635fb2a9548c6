"""The README stays true to the code: its rule table is what `rnnlint rules` prints."""

from __future__ import annotations

from pathlib import Path

from rnnlint.static.registry import load_rules
from tests import helpers

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


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
