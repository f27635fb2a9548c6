"""A definitions-only view of a Python module.

The graph stage has to import the user's model code to build the models, but a
file that defines a model often also trains it at top level: loading data,
running epochs, writing checkpoints. The view keeps what defining a model needs
and drops the rest, so importing it runs no training:

* imports (also inside ``try``/``except ImportError`` and ``if TYPE_CHECKING``);
* ``def`` and ``class`` statements (their bodies run only when called);
* assignments of simple constant expressions (``HIDDEN = 2 * 128``,
  ``PAD = "<pad>"``) whose names are all defined above;
* hyper-parameter holders: ``hp = HParams()`` (constant arguments) where
  ``HParams`` is a plain class defined above (no base, or ``object``), and
  ``SimpleNamespace``/``Namespace``/``dict`` calls with constant arguments; a model
  module often imports ``hp`` from such a file (an ``nn.Module`` is never built here);
* the module docstring.

Everything else, ``if __name__ == "__main__":`` included, becomes blank lines:
line numbers stay those of the file, so tracebacks and the lines the graph
stage reports are the user's own. ``ast`` only compiles the text to a tree:
nothing runs here, and this module never imports torch.
"""

from __future__ import annotations

import ast
import builtins
import re

_BUILTINS = frozenset(dir(builtins))
_CONSTANT_NODES = (
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.BinOp,
    ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Subscript, ast.Slice, ast.Load,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context,
)


def _bound_names(stmt: ast.stmt) -> set[str]:
    """Names a kept statement defines at module level."""
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {stmt.name}
    if isinstance(stmt, ast.Assign):
        return {n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return {stmt.target.id}
    names: set[str] = set()
    for child in ast.iter_child_nodes(stmt):
        if isinstance(child, ast.stmt):
            names |= _bound_names(child)
    return names


def _is_constant(expr: ast.expr, known: set[str]) -> bool:
    for node in ast.walk(expr):
        if not isinstance(node, _CONSTANT_NODES):
            return False
        if isinstance(node, ast.Name) and node.id not in known and node.id not in _BUILTINS:
            return False
    return True


_NAMESPACES = frozenset({"SimpleNamespace", "types.SimpleNamespace", "Namespace", "argparse.Namespace", "dict"})


def _is_holder(expr: ast.expr, known: set[str], holders: set[str]) -> bool:
    """``HParams(...)`` of a plain class defined above, or a namespace of constants."""
    if not isinstance(expr, ast.Call):
        return False
    func = ast.unparse(expr.func)
    return (func in holders or func in _NAMESPACES) and all(
        _is_constant(a, known) for a in [*expr.args, *(k.value for k in expr.keywords)])


def _plain_class(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.ClassDef) and not stmt.keywords and all(
        isinstance(b, ast.Name) and b.id == "object" for b in stmt.bases)


def _only_imports(body: list[ast.stmt]) -> bool:
    return all(isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)) for s in body)


def _is_import_guard(stmt: ast.stmt) -> bool:
    """``try: import x / except ImportError: ...`` and ``if TYPE_CHECKING: import x``."""
    if isinstance(stmt, ast.Try):
        blocks = [stmt.body, stmt.orelse, *(h.body for h in stmt.handlers)]
        return all(_only_imports(b) or all(isinstance(s, ast.Assign) and _is_constant(s.value, set())
                                           for s in b) for b in blocks)
    if isinstance(stmt, ast.If):
        test = stmt.test
        name = test.id if isinstance(test, ast.Name) else (test.attr if isinstance(test, ast.Attribute) else "")
        return name == "TYPE_CHECKING" and _only_imports(stmt.body) and _only_imports(stmt.orelse)
    return False


def kept_statements(tree: ast.Module) -> list[ast.stmt]:
    """The top-level statements the view keeps, in order."""
    known: set[str] = {"__name__", "__file__", "__doc__"}
    holders: set[str] = set()
    kept: list[ast.stmt] = []
    for index, stmt in enumerate(tree.body):
        keep = False
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep = True
            if _plain_class(stmt):
                holders.add(stmt.name)
        elif index == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            keep = True  # docstring
        elif isinstance(stmt, ast.Assign) and (_is_constant(stmt.value, known) or _is_holder(stmt.value, known, holders)):
            keep = all(isinstance(n, (ast.Name, ast.Tuple, ast.Store)) for t in stmt.targets for n in ast.walk(t))
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and _is_constant(stmt.value, known):
            keep = isinstance(stmt.target, ast.Name)
        elif _is_import_guard(stmt):
            keep = True
        if keep:
            kept.append(stmt)
            known |= _bound_names(stmt)
    return kept


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def python_lines(text: str) -> list[str]:
    """``text`` split into lines (with their ends) exactly where the tokenizer counts lines for ``ast``.

    ``str.splitlines`` also breaks at form feeds, vertical tabs, ``\\x1c``-``\\x1e``,
    ``\\x85`` and the Unicode line separators, which Python source does not: a form
    feed in a comment would shift every line after it.
    """
    return _LINE.findall(text)


def definitions_view(text: str) -> str:
    """``text`` with every statement that is not a definition blanked out.

    Raises SyntaxError when the text does not parse (the caller reports it).
    """
    tree = ast.parse(text)
    lines = python_lines(text)
    keep = [False] * len(lines)
    kept = kept_statements(tree)
    # a dropped statement sharing a line with a kept one (``x = 1; train()``) wins
    for wanted in (True, False):
        for stmt in tree.body:
            if (stmt in kept) != wanted:
                continue
            first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
            for number in range(first, (stmt.end_lineno or stmt.lineno) + 1):
                keep[number - 1] = wanted
    out = []
    for line, keep_line in zip(lines, keep):
        if keep_line:
            out.append(line)
        else:
            out.append(line[len(line.rstrip("\r\n")):])  # the line's own end, so numbering is unchanged
    return "".join(out)
