"""No import cycle among rnnlint's modules, so that each module reads on its own and the layers show.

The graph is built from the source with ``ast``, nothing is imported: every ``import`` and
``from ... import`` counts, at the top of a module, inside a function (a lazy import hides a cycle,
it does not remove it) or under ``if TYPE_CHECKING:``. The rule pack (``rules/``, shipped as
``rnnlint.rules``) is part of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"rnnlint": ROOT / "rnnlint", "rnnlint.rules": ROOT / "rules"}


def modules(packages: dict[str, Path]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``)."""
    found = {}
    for package, folder in packages.items():
        for file in sorted(folder.rglob("*.py")):
            parts = [package, *file.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return found


def import_graph(packages: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its body."""
    known = modules(packages)

    def owner(name: str) -> str | None:  # the longest prefix that is one of our modules
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, (file, is_package) in known.items():
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text("utf-8"), str(file))):
            if isinstance(node, ast.Import):
                targets.update(owner(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                # ``from pkg import mod`` imports the module mod; ``from mod import name`` imports mod
                targets.update(owner(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else owner(base)
                               for alias in node.names)
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "\n".join(f"  {m} imports {', '.join(sorted(graph[m] & members))}" for m in component)


def test_rnnlint_has_no_import_cycle():
    graph = import_graph(PACKAGES)
    assert "rnnlint.static.index" in graph and "rnnlint.rules.rnn010_padded_not_packed" in graph
    found = cycles(graph)
    assert not found, "import cycles (move the shared part to the module both import):\n" + "\n".join(
        describe(graph, c) for c in found)


def test_a_cycle_through_a_lazy_or_type_checking_import_is_found(tmp_path):
    """The check sees what a cycle hides behind: an import inside a function, under TYPE_CHECKING,
    a relative import, and ``from package import module``."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from ..c import thing\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (package / "d.py").write_text("import pkg.a\nfrom . import c\n")  # imports into the cycle, not part of it
    graph = import_graph({"pkg": package})
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (package / "c.py").write_text("thing = 1\n")
    assert cycles(import_graph({"pkg": package})) == []
