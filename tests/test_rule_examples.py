"""Every rule's own VALID / INVALID examples (see rnnlint/rule.py), held to them strictly.

Like Fixit's rule tests: a valid example produces no finding at all; an
invalid one produces exactly the findings it lists (how many, on which lines),
and fixing it gives exactly its ``fixed`` text, or changes nothing when it
states no fix. Graph rules' examples are models: tests/test_graph_rules.py
builds them with the same strictness.
"""

from __future__ import annotations

import pytest

from rnnlint.graph.rule import GraphRule
from rnnlint.static.registry import load_rules
from rnnlint.rule import Invalid, Valid, dedent
from tests import helpers

RULES = {code: rule for code, rule in load_rules().items() if not issubclass(rule, GraphRule)}


def _cases(kind: str):
    for code, rule in RULES.items():
        for number, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{code}-{kind.lower()}-{number}")


def test_every_rule_has_examples():
    for code, rule in load_rules().items():
        assert rule.VALID and rule.INVALID, f"{code} needs VALID and INVALID examples"
        assert rule.__doc__ and "Fix safety" in rule.__doc__, f"{code} docstring needs a 'Fix safety' paragraph"
        assert all(isinstance(e, Invalid) and e.lines for e in rule.INVALID), (
            f"{code}: every INVALID example is an Invalid(...) that lists the line of each finding (lines=[...])"
        )
        if rule.fixable():
            assert any(e.fixed is not None for e in rule.INVALID), f"{code} needs an example with its fixed text"


@pytest.mark.parametrize("rule, example", list(_cases("VALID")))
def test_valid_example_is_quiet(tmp_path, rule, example):
    example = example if isinstance(example, Valid) else Valid(example)
    files = {k: dedent(v) for k, v in example.files.items()}
    # RNN900 too: a valid example that does not even parse would be quiet for nothing
    found = helpers.check(tmp_path, dedent(example.code), files, select=[rule.code, "RNN900"],
                          options=_opts(rule, example))
    assert found == []


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_invalid_example_is_reported_and_fixed(tmp_path, rule, example):
    files = {k: dedent(v) for k, v in example.files.items()}
    source = dedent(example.code)
    options = _opts(rule, example)
    found = helpers.check(tmp_path, source, files, select=[rule.code], options=options)
    assert [d.line for d in found] == list(example.lines), f"{rule.code} findings in:\n{source}\n{found}"
    assert all(d.code == rule.code and d.message for d in found)
    fixed, _ = helpers.fix(tmp_path, source, files, select=[rule.code], options=options)
    if example.fixed is None:
        assert fixed == source, "the example states no fix, but fixing changed it"
        return
    assert fixed == dedent(example.fixed)
    again, _ = helpers.fix(tmp_path, fixed, files, select=[rule.code], options=options)
    assert again == fixed, "fixing twice must change nothing"


def _opts(rule, example):
    return {rule.name: example.options} if example.options else None
