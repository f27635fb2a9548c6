"""Small queries over libcst trees that many rules need."""

from __future__ import annotations

from typing import TypeVar

import libcst as cst

N = TypeVar("N", bound=cst.CSTNode)


class Visitor(cst.CSTVisitor):
    """A libcst visitor without the per-attribute hooks.

    libcst's default ``on_visit_attribute`` looks up a ``visit_<Node>_<field>``
    method for every field of every node; nothing here uses those hooks, and
    skipping the lookups makes a walk markedly cheaper. Every visitor of
    rnnlint derives from this class.
    """

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class _Collector(Visitor):
    def __init__(self, kind: type, skip: tuple[type, ...]) -> None:
        self.kind = kind
        self.skip = skip
        self.found: list = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, self.kind):
            self.found.append(node)
        return not (self.skip and isinstance(node, self.skip))

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass


def find_all(node: cst.CSTNode, kind: type[N], *, skip: tuple[type[cst.CSTNode], ...] = ()) -> list[N]:
    """Every node of type ``kind`` under ``node`` (itself included), in source order.

    ``skip`` names node types whose insides are not searched, e.g.
    ``skip=(cst.Lambda,)`` to leave out calls that only run when a lambda does.
    """
    collector = _Collector(kind, skip)
    node.visit(collector)
    return collector.found


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    """The ``name=...`` argument of a call, if written."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def body_of(node: cst.CSTNode) -> list:
    """The statements directly inside a compound statement, a class or a function."""
    body = node.body
    if isinstance(body, (cst.IndentedBlock, cst.SimpleStatementSuite)):
        return list(body.body)
    return list(body)
