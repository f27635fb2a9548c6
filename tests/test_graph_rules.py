"""Every graph rule's VALID / INVALID model examples, built and measured in-process.

The CLI runs graph rules in a child process (see tests/test_graph_stage.py for
that, and for isolation); here the child's worker runs inside the test process
so torch is imported once for all examples.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from rnnlint.graph.child import Worker  # noqa: E402
from rnnlint.graph.rule import GraphRule  # noqa: E402
from rnnlint.graph.stage import run_graph_stage  # noqa: E402
from rnnlint.registry import load_rules  # noqa: E402
from rnnlint.rule import Valid, dedent  # noqa: E402
from tests import helpers  # noqa: E402

RULES = {code: rule for code, rule in load_rules().items() if issubclass(rule, GraphRule)}


def in_process(request: dict, model_timeout: float, stage_timeout: float) -> dict:
    worker = Worker(request)
    try:
        return {spec["id"]: worker.analyse(spec) for spec in request["models"]}
    finally:
        worker.close()


def graph_check(root, main: str, files=None, select=None, options=None):
    helpers.write_project(root, main, files)
    session = helpers.session(root, select, options)
    sources = sorted(root.rglob("*.py"))
    return run_graph_stage(sources, session, executor=in_process)


def _cases(kind: str):
    for code, rule in RULES.items():
        for number, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{code}-{kind.lower()}-{number}")


def _select(rule) -> list[str]:
    # RNN901 alone builds nothing: it reports on the other graph rules' behalf
    return [rule.code, "RNN105"] if rule.code == "RNN901" else [rule.code]


def _opts(rule, example):
    return {rule.name: example.options} if example.options else None


def test_graph_rules_have_examples_and_docs():
    assert set(RULES) >= {f"RNN10{i}" for i in range(1, 9)} | {"RNN901"}
    for code, rule in RULES.items():
        assert rule.VALID and rule.INVALID, code
        assert "Fix safety" in (rule.__doc__ or ""), code


@pytest.mark.parametrize("rule, example", list(_cases("VALID")))
def test_valid_model_is_quiet(tmp_path, rule, example):
    example = example if isinstance(example, Valid) else Valid(example)
    files = {k: dedent(v) for k, v in example.files.items()}
    found = graph_check(tmp_path, dedent(example.code), files, _select(rule), _opts(rule, example))
    assert [d for d in found if d.code == rule.code] == []
    if rule.code != "RNN901":  # the model was really built and measured
        assert [d for d in found if d.code == "RNN901"] == []


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_invalid_model_is_reported(tmp_path, rule, example):
    files = {k: dedent(v) for k, v in example.files.items()}
    source = dedent(example.code)
    found = [d for d in graph_check(tmp_path, source, files, _select(rule), _opts(rule, example)) if d.code == rule.code]
    assert [d.line for d in found] == list(example.lines), f"{rule.code} findings in:\n{source}\n{found}"
    assert all(d.message and d.path.endswith(helpers.MAIN) for d in found)
    assert example.fixed is None and all(d.fix is None for d in found), "graph rules do not fix"
