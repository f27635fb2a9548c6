"""The README stays true to the code: every rule in the table, as `rnnlint rules` says."""

from __future__ import annotations

import re
from pathlib import Path

from rnnlint.registry import load_rules

README = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")


def test_rule_table_matches_the_rule_pack():
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| (RNN\d{3}) \|.*$", README, re.MULTILINE)}
    rules = load_rules()
    assert set(rows) == set(rules), "README rule table and rnnlint rules disagree"
    for code, rule in rules.items():
        cells = [c.strip() for c in rows[code].strip("|").split("|")]
        assert cells[1] == rule.name
        assert cells[3] == (rule.fix_applicability.value if rule.fix_applicability else "—")
        assert cells[4] == ("on" if rule.default_enabled else "off")


def test_quickstart_has_exactly_two_commands():
    block = README.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [line for line in block.splitlines()[1:] if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "rnnlint check fixtures/" in commands[0]
    assert "pytest" in commands[1]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text("utf-8")
    assert commands[1] in ci, ".ci/run must run the README's test command"
