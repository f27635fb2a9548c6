"""Where a statement sits relative to the loops and conditions around it.

:mod:`rnnlint.flow.training` linearises each function into events; some rules also
need the nesting: "is this ``zero_grad()`` anywhere inside the loop that
contains the ``step()``?", "which statement of the loop body leads to this
call?", "is the ``step()`` under an ``if``?". :func:`placed` answers them for
one scope, computed on demand (only for scopes a rule looks into) and memoised
on the file context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import libcst as cst

from rnnlint.names import assigned_names, dotted
from rnnlint.nodes import find_all
from rnnlint.rule import FileContext
from rnnlint.flow.training import Scope

LOOPS = (cst.For, cst.While)


@dataclass(frozen=True)
class Placed:
    """A simple statement line with the compound statements around it.

    ``path`` lists, outermost first, each enclosing ``for``/``while`` (only
    when the statement is in the loop's body, not its ``else``), ``if``
    (including its ``elif``/``else`` branches), ``with`` and ``try``, each
    paired with the statement of its body that leads to this one.
    """

    statement: cst.SimpleStatementLine | cst.SimpleStatementSuite
    path: tuple[tuple[cst.CSTNode, cst.CSTNode], ...]

    @property
    def loops(self) -> list[tuple[cst.For | cst.While, cst.CSTNode]]:
        """Enclosing loops, innermost first, with the body statement leading here."""
        return [(node, child) for node, child in reversed(self.path) if isinstance(node, LOOPS)]

    def conditions_inside(self, loop: cst.CSTNode) -> list[cst.If]:
        """The ``if`` statements between ``loop`` and this statement."""
        nodes = [node for node, _ in self.path]
        start = nodes.index(loop) + 1 if loop in nodes else 0
        return [n for n in nodes[start:] if isinstance(n, cst.If)]


def placed(ctx: FileContext, scope: Scope) -> list[Placed]:
    """Every simple statement of ``scope`` (not of nested functions), in source order."""
    return ctx.memo(f"loops.placed.{id(scope.node)}", lambda: list(_walk(block(scope.node), ())))


def block(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The statements of a compound statement's body (a one-line suite is one statement)."""
    body = node.body
    if isinstance(body, cst.SimpleStatementSuite):
        return [body]
    if isinstance(body, cst.IndentedBlock):
        return list(body.body)
    return list(body)


def _walk(body: list[cst.CSTNode], path: tuple) -> Iterator[Placed]:
    for stmt in body:
        yield from _place(stmt, path)


def _place(stmt: cst.CSTNode, path: tuple) -> Iterator[Placed]:
    path = tuple((node, child if child is not None else stmt) for node, child in path)
    if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        yield Placed(stmt, path)
    elif isinstance(stmt, LOOPS):
        yield from _walk(block(stmt), path + ((stmt, None),))
        if stmt.orelse is not None:
            yield from _walk(block(stmt.orelse), path)
    elif isinstance(stmt, cst.If):
        inner = path + ((stmt, None),)
        yield from _walk(block(stmt), inner)
        if isinstance(stmt.orelse, cst.If):
            yield from _place(stmt.orelse, inner)
        elif stmt.orelse is not None:
            yield from _walk(block(stmt.orelse), inner)
    elif isinstance(stmt, cst.With):
        yield from _walk(block(stmt), path + ((stmt, None),))
    elif isinstance(stmt, cst.Try):
        inner = path + ((stmt, None),)
        for part in (stmt, *stmt.handlers, stmt.orelse, stmt.finalbody):
            if part is not None:
                yield from _walk(block(part), inner)
    # functions and classes are scopes of their own; other statements hold no code we follow


def calls_inside(ctx: FileContext, node: cst.CSTNode) -> list[cst.Call]:
    """Every call under ``node``, closures and lambdas defined there included.

    A closure defined in a loop body (``def closure(): opt.zero_grad() ...``
    for ``opt.step(closure)``) runs as part of that loop's iterations.
    """

    def collect() -> list[cst.Call]:
        return find_all(node, cst.Call)

    return ctx.memo(f"loops.calls.{id(node)}", collect)


def contains(ctx: FileContext, node: cst.CSTNode, call: cst.Call) -> bool:
    """Is ``call`` somewhere under ``node``?"""
    ids = ctx.memo(f"loops.call_ids.{id(node)}", lambda: {id(c) for c in calls_inside(ctx, node)})
    return id(call) in ids


def assignments(statement: cst.CSTNode) -> Iterator[tuple[list[str], cst.BaseExpression]]:
    """``(names bound, value)`` for each assignment of a simple statement line."""
    if not isinstance(statement, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        return
    for small in statement.body:
        if isinstance(small, cst.Assign):
            names = [n for t in small.targets for n in assigned_names(t.target)]
            yield names, small.value
        elif isinstance(small, (cst.AnnAssign, cst.AugAssign)) and small.value is not None:
            yield assigned_names(small.target), small.value


def definition(ctx: FileContext, name: str):
    """The project definition (:class:`rnnlint.static.index.Definition`) ``name`` refers to, or None.

    For helpers called in a loop body (``repackage_hidden(h)``, ``reset_grads(model)``),
    defined in this file or imported from the project.
    """
    hit = ctx.index.lookup(ctx.path, name)
    if hit is None:
        return None
    summary = ctx.index.summary(hit[0])
    return summary.definitions.get(hit[1]) if summary else None


def unreachable(ctx: FileContext, scope: Scope, call: cst.Call) -> bool:
    """Does ``call`` (in ``scope``) sit in a branch that the values the flow model sees never take?

    ``if opt.adam: Adam(lr=opt.lr) else: Adadelta(lr=opt.lr)`` with ``--adam`` a flag: with the
    command line's defaults the Adam line does not run, so its default lr never reaches Adam. An
    ``if`` whose test is unknown is taken both ways.
    """
    from rnnlint.flow.resolve import truth

    for where in placed(ctx, scope):
        if not contains(ctx, where.statement, call):
            continue
        for node, child in where.path:
            if not isinstance(node, cst.If):
                continue
            taken = truth(ctx, node.test, call)
            in_body = any(child is stmt for stmt in block(node))
            if taken is not None and taken != in_body:
                return True
        return False
    return False
