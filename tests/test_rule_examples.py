"""Every rule's own VALID / INVALID / fixed examples (see rnnlint/rule.py)."""

from __future__ import annotations

import pytest

from rnnlint.graph.rule import GraphRule
from rnnlint.registry import load_rules
from rnnlint.rule import Invalid, Valid, dedent
from tests import helpers

# graph rules' examples are models, built by tests/test_graph_rules.py
RULES = {code: rule for code, rule in load_rules().items() if not issubclass(rule, GraphRule)}


def _cases(kind: str):
    for code, rule in RULES.items():
        for number, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{code}-{kind.lower()}-{number}")


def _as_example(example, cls):
    return example if isinstance(example, cls) else cls(example)


def test_every_rule_has_examples():
    for code, rule in RULES.items():
        assert rule.VALID and rule.INVALID, f"{code} needs VALID and INVALID examples"
        assert rule.__doc__ and "Fix safety" in rule.__doc__, f"{code} docstring needs a 'Fix safety' paragraph"
        if rule.fixable():
            assert any(_as_example(e, Invalid).fixed is not None for e in rule.INVALID), f"{code} needs a fixed example"


@pytest.mark.parametrize("rule, example", list(_cases("VALID")))
def test_valid_example_is_quiet(tmp_path, rule, example):
    example = _as_example(example, Valid)
    files = {k: dedent(v) for k, v in example.files.items()}
    found = helpers.check(tmp_path, dedent(example.code), files, select=[rule.code], options=_opts(rule, example))
    assert [d for d in found if d.code == rule.code] == []


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_invalid_example_is_reported_and_fixed(tmp_path, rule, example):
    example = _as_example(example, Invalid)
    files = {k: dedent(v) for k, v in example.files.items()}
    source = dedent(example.code)
    found = [d for d in helpers.check(tmp_path, source, files, select=[rule.code], options=_opts(rule, example))
             if d.code == rule.code]
    assert found, f"{rule.code} did not report:\n{source}"
    if example.line is not None:
        assert found[0].line == example.line
    assert all(d.message for d in found)
    if example.fixed is not None:
        fixed, _ = helpers.fix(tmp_path, source, files, select=[rule.code], options=_opts(rule, example))
        assert fixed == dedent(example.fixed)
        again, _ = helpers.fix(tmp_path, fixed, files, select=[rule.code], options=_opts(rule, example))
        assert again == fixed, "fixing twice must change nothing"


def _opts(rule, example):
    return {rule.name: example.options} if example.options else None
