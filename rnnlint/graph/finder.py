"""Which models the graph stage builds, and with which arguments (static: no torch).

A model is

* an ``nn.Module`` (or LightningModule) subclass defined in a checked file that
  contains, or is, a recurrent module -- the project index answers that across
  files, so ``Seq2Seq`` built from an ``Encoder`` in another module counts;
* a recurrent module built at module level (``rnn = nn.LSTM(32, 64)``);
* anything named in ``[tool.rnnlint.models]``.

Constructor arguments come, in this order, from the config, from a call site in
the checked files whose arguments are literals or names bound to literals, or
from the constructor's defaults. Classes that other found models build inside
themselves (an ``Encoder`` inside ``Seq2Seq``) are "components": the child
skips them when a model containing them was already built, so a layer is
analysed once, with the arguments its real owner gives it.

``[tool.rnnlint.models]`` entries::

    [tool.rnnlint.models]
    "models.seq2seq:Seq2Seq" = { args = [1000, 256], kwargs = { dropout = 0.1 } }
    "models.tagger:Tagger" = { factory = "models.tagger:build_tagger" }
    "train:make_model" = {}                       # a factory function is a model too
    "models.big:Huge" = { skip = true }
    "models.lm:LM" = { inputs = [{ shape = [4, 20], dtype = "int64", high = 1000 }] }

Keys are ``module:attribute`` with the module named as Python imports it from
the project root (or ``src/``, or the file's own folder when it is not in a package).
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnlint.index import ImportMapView
from rnnlint.names import canonical

UNKNOWN = {"$unknown": True}  # an argument whose value is not a literal (the child may use a placeholder)
_MODULE_BASES = frozenset({"lightning.pytorch.LightningModule", "lightning.LightningModule"})
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


@dataclass
class ModelSpec:
    """One model to build, as sent to the child process (JSON)."""

    key: str  # "pkg.mod:Name", the [tool.rnnlint.models] key that configures it
    file: str  # absolute path of the defining file ("" when unknown)
    module: str
    qualname: str
    kind: str  # "class" | "instance" (module-level expression) | "factory" (a function from config)
    line: int
    base: str = ""  # the folder its module is imported from (put first on the child's sys.path)
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    origin: str = "defaults"  # where the arguments came from, for messages
    expr: str | None = None
    factory: str | None = None
    inputs: list | None = None
    skip: bool = False
    component: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def module_name(path: Path) -> tuple[str, Path] | None:
    """``(dotted module name, folder to put on sys.path)`` as Python would import the file."""
    path = path.resolve()
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts), directory


class _Folder:
    """Literal values of expressions, following names bound to literals."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, ast.expr]] = [{}]

    def bind(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            self.scopes[-1][stmt.targets[0].id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and isinstance(stmt.target, ast.Name):
            self.scopes[-1][stmt.target.id] = stmt.value

    def fold(self, node: ast.expr, depth: int = 0) -> Any:
        """The value, or raise ValueError."""
        if depth > 12:
            raise ValueError
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return [self.fold(e, depth + 1) for e in node.elts]
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            return {str(self.fold(k, depth + 1)): self.fold(v, depth + 1) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.fold(node.operand, depth + 1)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = self.fold(node.left, depth + 1), self.fold(node.right, depth + 1)
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
                try:
                    return _OPS[type(node.op)](left, right)
                except (ZeroDivisionError, OverflowError):
                    raise ValueError from None
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return self.fold(scope[node.id], depth + 1)
        raise ValueError


class _CallSites(ast.NodeVisitor):
    """Calls of the candidate classes whose arguments fold to literals."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted
        self.folder = _Folder()
        # (dotted callee, line, args, kwargs, number of arguments that are not literals)
        self.found: list[tuple[str, int, list, dict, int]] = []

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def _body(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.folder.scopes.append({})
                self._body(stmt.body)
                self.folder.scopes.pop()
                continue
            if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
                for header in ("test", "iter", "items"):
                    for part in _as_list(getattr(stmt, header, None)):
                        self.visit(part)
                for block in ("body", "orelse", "finalbody"):
                    self._body(getattr(stmt, block, []))
                for handler in getattr(stmt, "handlers", []):
                    self._body(handler.body)
                continue
            self.visit(stmt)
            self.folder.bind(stmt)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.folder.scopes.append({})
        self._body(node.body)
        self.folder.scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        name = _dotted(node.func)
        if name is None or name.rsplit(".", 1)[-1] not in self.wanted:
            return
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            return
        args = [self._value(a) for a in node.args]
        kwargs = {k.arg: self._value(k.value) for k in node.keywords}
        unknown = sum(v == UNKNOWN for v in [*args, *kwargs.values()])
        self.found.append((name, node.lineno, args, kwargs, unknown))

    def _value(self, node: ast.expr) -> Any:
        try:
            return self.folder.fold(node)
        except ValueError:
            return UNKNOWN


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None


class ModelFinder:
    def __init__(self, session) -> None:
        self.session = session
        self.index = session.index
        self.config = session.config
        self._module_memo: dict[tuple, bool] = {}

    def is_module_class(self, path: Path, name: str, depth: int = 0) -> bool:
        """Does the class ``name`` of ``path`` derive from ``torch.nn.Module`` (through its bases only)?"""
        key = (path, name)
        if key in self._module_memo or depth > 20:
            return self._module_memo.get(key, False)
        self._module_memo[key] = False
        summary = self.index.summary(path)
        definition = summary.definitions.get(name) if summary else None
        result = False
        if definition is not None and definition.kind == "class":
            for base in definition.bases:
                resolved = ImportMapView(summary).resolve_dotted(base)
                if resolved.startswith("torch.nn.") or canonical(resolved) in _MODULE_BASES:
                    result = True
                    break
                hit = self.index.lookup(path, base)
                if hit is not None and self.is_module_class(hit[0], hit[1], depth + 1):
                    result = True
                    break
        self._module_memo[key] = result
        return result

    def find(self, files: list[Path]) -> tuple[list[ModelSpec], list[str]]:
        """The models to build, and the folders to put on the child's sys.path."""
        specs: dict[tuple[str, str], ModelSpec] = {}
        search: list[str] = []
        sources = [f.resolve() for f in files if f.suffix == ".py"]
        for path in sources:
            named = module_name(path)
            summary = self.index.summary(path)
            if named is None or summary is None:
                continue
            dotted_name, folder = named
            added = False
            tree = None
            for name, definition in summary.definitions.items():
                if definition.kind == "class" and self.is_module_class(path, name) and self.index.is_recurrent(path, name):
                    tree = tree or _parse(path)
                    line = _definition_line(tree, name) if tree else 1
                    specs[(str(path), name)] = ModelSpec(f"{dotted_name}:{name}", str(path), dotted_name, name, "class",
                                                         line, str(folder))
                    added = True
                elif definition.kind == "assign":
                    tree = tree or _parse(path)
                    spec = self._instance(path, dotted_name, name, summary, tree)
                    if spec is not None:
                        spec.base = str(folder)
                        specs[(str(path), name)] = spec
                        added = True
            if added and str(folder) not in search:
                search.append(str(folder))
        self._mark_components(specs)
        self._call_sites(sources, specs)
        self._apply_config(specs, search)
        # one folder at a time (the child re-imports when it moves on: two projects may both have
        # a train.py), containing models before their components
        ordered = sorted(specs.values(), key=lambda s: (s.base, s.component, s.file, s.line))
        return ordered, search

    def _instance(self, path: Path, dotted_name: str, name: str, summary, tree) -> ModelSpec | None:
        """``name = nn.LSTM(...)`` at module level: the recurrent module is a model."""
        if tree is None:
            return None
        for stmt in tree.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == name and isinstance(stmt.value, ast.Call)):
                callee = _dotted(stmt.value.func)
                if callee and ImportMapView(summary).resolve_dotted(callee) in self.index.recurrent_names:
                    text = path.read_text("utf-8", errors="replace")
                    expr = ast.get_source_segment(text, stmt.value)
                    return ModelSpec(f"{dotted_name}:{name}", str(path), dotted_name, name, "instance",
                                     stmt.lineno, expr=expr, origin="the module-level expression")
        return None

    def _mark_components(self, specs: dict) -> None:
        classes = {k for k, s in specs.items() if s.kind == "class"}
        for (file, name) in classes:
            summary = self.index.summary(Path(file))
            for call in summary.definitions[name].calls if summary else []:
                hit = self.index.lookup(Path(file), call)
                if hit is not None and (str(hit[0]), hit[1]) in classes and (str(hit[0]), hit[1]) != (file, name):
                    specs[(str(hit[0]), hit[1])].component = True

    def _call_sites(self, sources: list[Path], specs: dict) -> None:
        wanted = {name for (_, name), s in specs.items() if s.kind == "class"}
        if not wanted:
            return
        best: dict[tuple[str, str], int] = {}  # the call site with the fewest non-literal arguments wins
        for path in sources:
            try:
                text = path.read_text("utf-8", errors="replace")
            except OSError:
                continue
            if not any(name in text for name in wanted):
                continue
            tree = _parse(path)
            if tree is None:
                continue
            visitor = _CallSites(wanted)
            visitor.visit(tree)
            for callee, line, args, kwargs, unknown in visitor.found:
                hit = self.index.lookup(path, callee)
                key = (str(hit[0]), hit[1]) if hit else None
                spec = specs.get(key)
                if spec is not None and unknown < best.get(key, len(args) + len(kwargs) + 1):
                    best[key] = unknown
                    spec.args, spec.kwargs = args, kwargs
                    spec.origin = f"the call at {self.config.relative(path)}:{line}"

    def _apply_config(self, specs: dict, search: list[str]) -> None:
        by_key = {s.key: s for s in specs.values()}
        for key, entry in self.config.models.items():  # validated when the config was read
            spec = by_key.get(key)
            if spec is None:  # a factory function, or a model the finder did not see
                module, _, attr = key.partition(":")
                file, line, base = self._locate(module, attr, search)
                spec = ModelSpec(key, file, module, attr, "factory", line, base)
                specs[(file or key, attr)] = spec
            spec.args, spec.kwargs, spec.inputs, spec.skip = entry.args, entry.kwargs, entry.inputs, entry.skip
            spec.origin = f"[tool.rnnlint.models] {key!r}"
            spec.component = False
            if entry.factory:
                spec.factory = entry.factory

    def _locate(self, module: str, attr: str, search: list[str]) -> tuple[str, int, str]:
        bases = [*search, str(self.config.root), str(self.config.root / "src")]
        for base in bases:
            target = Path(base).joinpath(*module.split("."))
            for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                if candidate.is_file():
                    if str(candidate.parent) not in search and not (candidate.parent / "__init__.py").is_file():
                        search.append(str(candidate.parent))
                    elif base not in search:
                        search.append(base)
                    tree = _parse(candidate)
                    return str(candidate.resolve()), _definition_line(tree, attr) if tree else 1, base
        return "", 1, str(self.config.root)


def _definition_line(tree: ast.Module, name: str) -> int:
    for stmt in tree.body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
            return stmt.lineno
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return stmt.lineno
    return 1


class LineTable:
    """Source lines of classes and of the ``self.<attr> = ...`` assignments in them, per file."""

    def __init__(self) -> None:
        self._files: dict[str, dict[str, tuple[int, dict[str, int]]]] = {}

    def lookup(self, file: str, qualname: str, attr: str | None) -> int | None:
        classes = self._files.get(file)
        if classes is None:
            tree = _parse(Path(file))
            classes = self._files[file] = _class_lines(tree) if tree else {}
        entry = classes.get(qualname)
        if entry is None:
            return None
        if attr is None:
            return entry[0]
        return entry[1].get(attr)


def _class_lines(tree: ast.Module) -> dict[str, tuple[int, dict[str, int]]]:
    found: dict[str, tuple[int, dict[str, int]]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if not isinstance(stmt, ast.ClassDef):
                continue
            qualname = prefix + stmt.name
            attrs: dict[str, int] = {}
            methods = [s for s in stmt.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
            methods.sort(key=lambda m: m.name != "__init__")  # __init__ lines win
            for method in methods:
                for node in ast.walk(method):
                    for target, line in _self_targets(node):
                        attrs.setdefault(target, line)
            for item in stmt.body:  # class-level attributes
                if isinstance(item, ast.Assign):
                    for t in item.targets:
                        if isinstance(t, ast.Name):
                            attrs.setdefault(t.id, item.lineno)
            found[qualname] = (stmt.lineno, attrs)
            visit(stmt.body, qualname + ".")

    visit(tree.body, "")
    return found


def _self_targets(node: ast.AST):
    """``self.x = ...`` / ``self.add_module("x", ...)`` / ``setattr(self, "x", ...)``."""
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Call):
        name = _dotted(node.func) or ""
        if (name in ("self.add_module", "self.register_module") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno
        if (name == "setattr" and len(node.args) >= 2 and isinstance(node.args[0], ast.Name)
                and node.args[0].id == "self" and isinstance(node.args[1], ast.Constant)):
            yield str(node.args[1].value), node.lineno
        return
    for target in targets:
        for sub in ast.walk(target):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "self":
                yield sub.attr, node.lineno


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_RECURRENT_WORDS = (b"LSTM", b"GRU", b"RNN")
_MODULE_CLASS = re.compile(rb"^[ \t]*class[ \t]+\w+[ \t]*\([^)]*Module", re.MULTILINE)


def count_models(files: list[Path], session) -> int:
    """About how many models the graph stage would build from ``files``: static, and cheap.

    For the one line ``check`` prints when the graph stage is off. Counts the
    classes :meth:`ModelFinder.find` would build (``nn.Module`` subclasses that
    hold a recurrent module, as the project index answers) in the files whose
    bytes name a recurrent module and define a ``Module`` subclass; the others
    are not parsed, so a model composed only of classes from other files is
    not counted (the number is a lower bound). Nothing is imported or run.
    Zero when no graph rule is enabled.
    """
    from rnnlint.graph.rule import GraphRule
    from rnnlint.source import SourceError, read_file_bytes

    enabled = session.config.enabled(session.rules)
    if not any(issubclass(r, GraphRule) and r.code != "RNN901" for r in enabled):
        return 0
    words = _RECURRENT_WORDS + tuple(name.rsplit(".", 1)[-1].encode() for name in session.config.recurrent_classes)
    finder = ModelFinder(session)
    count = 0
    for path in (f.resolve() for f in files if f.suffix == ".py"):
        try:
            data = read_file_bytes(path)
        except SourceError:
            continue
        if not any(word in data for word in words) or not _MODULE_CLASS.search(data) or module_name(path) is None:
            continue
        summary = finder.index.summary(path)
        for name, definition in (summary.definitions.items() if summary else ()):
            if definition.kind == "class" and finder.is_module_class(path, name) and finder.index.is_recurrent(path, name):
                count += 1
    return count
