"""A file's outline from CPython's parser: what the project index's lookups need, without libcst.

Most of the project index's questions ("where is ``Encoder`` defined?", "does this class build a
recurrent layer?") need only what a file imports and what its top-level definitions are: their kind,
their bases, the dotted names they call and return. libcst's parse costs about ten times CPython's,
so the index answers those questions from this outline and parses a file with libcst only when a
question needs the facts its summarisers add (what a function pads, a loader's batches).

The outline is exactly the libcst summary's shape (:func:`rnnlint.static.index.summarise` with no
summarisers): the same definitions, kinds, bases, and calls and returns in source order
(``tests/test_outline.py`` compares them on every fixture). Imports are read as the project map reads
them (:func:`rnnlint.static.projectmap.map_text`). This module imports no libcst.
"""

from __future__ import annotations

import ast
import re

from rnnlint.static.projectmap import FileMap, _imports


def outline(text: str) -> tuple[dict[str, str], list[str], dict[str, dict]] | None:
    """``(imports, star modules, definitions)`` of ``text``, each definition a dict of
    :class:`rnnlint.static.index.Definition`'s fields; None when CPython refuses the text."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    found = FileMap()
    _imports(tree.body, found)
    definitions: dict[str, dict] = {}
    lines = re.split(r"\r\n|\r|\n", text)  # CPython's line ends (str.splitlines also splits at \f)
    for stmt in tree.body:
        _statement(stmt, definitions, lines)
    return found.imports, found.stars, definitions


def _statement(stmt: ast.stmt, definitions: dict[str, dict], lines: list[str]) -> None:
    if isinstance(stmt, ast.ClassDef):
        bases = [d for d in (_dotted(b.value if isinstance(b, ast.Starred) else b) for b in stmt.bases) if d]
        definitions[stmt.name] = {"kind": "class", "line": 0, "bases": bases, "calls": _calls(stmt.body)[0]}
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        calls, returns = _calls(stmt.body)
        definitions[stmt.name] = {"kind": "function", "line": 0, "calls": calls, "returns": returns}
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        calls = _calls([stmt.value])[0]
        alias = _dotted(stmt.value)
        if alias:  # LSTM = nn.LSTM
            calls.append(alias)
        for target in targets:
            if isinstance(target, ast.Name):
                definitions[target.id] = {"kind": "assign", "line": 0, "calls": calls}
    elif isinstance(stmt, (ast.If, ast.Try)):
        # try: from apex import X / except ImportError: ...; if TYPE_CHECKING: ...
        blocks = [stmt.body, *(h.body for h in stmt.handlers), stmt.orelse] if isinstance(stmt, ast.Try) else [
            stmt.body, stmt.orelse]
        for block in blocks:
            if block and not _one_line(block[0], lines):  # ``if x: y = 1``: libcst's summary skips it too
                for inner in block:
                    _statement(inner, definitions, lines)


def _one_line(first: ast.stmt, lines: list[str]) -> bool:
    """Is ``first`` on its block's header line (``else: x = 1``), a suite of simple statements?"""
    line = lines[first.lineno - 1].encode("utf-8")
    return bool(line[:first.col_offset].strip())


def _calls(body: list[ast.AST]) -> tuple[list[str], list[str]]:
    """The dotted names of every call under ``body``, and those a ``return`` hands back (a called name,
    or a returned one: ``return Encoder``), each in source order."""
    calls: list[tuple[int, int, str]] = []
    returns: list[tuple[int, int, int, str]] = []
    for top in body:
        for node in ast.walk(top):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                if name:
                    calls.append((node.lineno, node.col_offset, name))
            elif isinstance(node, ast.Return) and node.value is not None:
                name = _dotted(node.value)
                if name:
                    returns.append((node.lineno, node.col_offset, 0, name))
                for inner in ast.walk(node.value):
                    if isinstance(inner, ast.Call) and (called := _dotted(inner.func)):
                        returns.append((inner.lineno, inner.col_offset, 1, called))
    calls.sort()
    returns.sort()
    return [c[-1] for c in calls], [r[-1] for r in returns]


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, None for anything else (as :func:`rnnlint.names.dotted`)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Constant) and (node.value is None or node.value is True or node.value is False):
        parts.append(repr(node.value))  # names in libcst's tree, as ``rnnlint.names.dotted`` reads them
    else:
        return None
    return ".".join(reversed(parts))
