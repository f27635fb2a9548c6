"""The base class of graph rules (RNN1xx).

A graph rule is a :class:`~rnnlint.rule.Rule` like any other (a code, a name,
a docstring for ``explain``, options, select/ignore/noqa), but it looks at a
built model instead of a syntax tree. Its :meth:`measure` runs in the graph
stage's child process, on a :class:`rnnlint.graph.measure.ModelRun`; the
static walk never runs it (its trigger never matches). Rule files are loaded
by the static stage too, so they must import torch only inside methods.

Examples are model sources: ``INVALID`` ones must produce exactly the
findings they list (``lines``) when the graph stage builds the models they
define, ``VALID`` ones none (``tests/test_graph_rules.py`` runs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rnnlint.rule import Rule

if TYPE_CHECKING:
    from rnnlint.graph.measure import ModelRun

NEVER = "\x00graph-rule\x00"  # a static-stage trigger no source text contains


def is_graph_rule(rule) -> bool:
    """Does the graph stage run ``rule`` (a rule class or the catalogue's entry for one)?"""
    return NEVER in rule.triggers


class GraphRule(Rule):
    triggers: ClassVar[tuple[str, ...]] = (NEVER,)

    @classmethod
    def for_model(cls, options: dict[str, Any]) -> "GraphRule":
        """An instance for the child process: options only, no file context."""
        return cls(None, options, [])  # type: ignore[arg-type]

    def measure(self, run: "ModelRun") -> None:
        """Inspect ``run.model`` (and ``run.graph`` / ``run.probe``) and ``run.report(...)``."""
