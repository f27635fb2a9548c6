"""Small queries over libcst trees that many rules need."""

from __future__ import annotations

from typing import TypeVar

import libcst as cst

N = TypeVar("N", bound=cst.CSTNode)


def find_all(node: cst.CSTNode, kind: type[N], *, skip: tuple[type[cst.CSTNode], ...] = ()) -> list[N]:
    """Every node of type ``kind`` under ``node`` (itself included), in source order.

    ``skip`` names node types whose insides are not searched, e.g.
    ``skip=(cst.Lambda,)`` to leave out calls that only run when a lambda does.
    """
    found: list[N] = []

    class Finder(cst.CSTVisitor):
        def on_visit(self, child: cst.CSTNode) -> bool:
            if isinstance(child, kind):
                found.append(child)
            return not (skip and isinstance(child, skip))

    node.visit(Finder())
    return found
