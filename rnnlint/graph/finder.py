"""Which models the graph stage builds, and with which arguments (static: no torch).

A model is

* an ``nn.Module`` (or LightningModule) subclass defined in a checked file that
  contains, or is, a recurrent module -- the project index answers that across
  files, so ``Seq2Seq`` built from an ``Encoder`` in another module counts;
* a recurrent module built at module level (``rnn = nn.LSTM(32, 64)``);
* either of these in a checked notebook: its code cells are one module (as
  :mod:`rnnlint.notebook` reads them), named after the file, sent to the child
  as text, and its findings are located by cell;
* anything named in ``[tool.rnnlint.models]``.

Constructor arguments come, in this order, from the config, from the project's
own call of the class (each argument followed by the flow model to the one
literal it always is: argparse defaults, config dicts, constants of other
files; see :mod:`rnnlint.graph.arguments`), or from the constructor's defaults. Classes that other found models build inside
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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import libcst as cst

from rnnlint.graph.arguments import built_classes, call_sites, receives_recurrent
from rnnlint.names import ImportMap, ImportMapView, canonical
from rnnlint.notebook import Notebook, read_notebook
from rnnlint.source import SourceError, parse_python
from rnnlint.static.projectmap import module_name

_MODULE_BASES = frozenset({"lightning.pytorch.LightningModule", "lightning.LightningModule"})


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
    source: str | None = None  # a notebook's code cells as one module (the child compiles this text)

    def to_json(self) -> dict:
        return asdict(self)


def _module_base(resolved: str) -> bool:
    return resolved.startswith("torch.nn.") or canonical(resolved) in _MODULE_BASES


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _parse(path: Path, source: str | None = None) -> ast.Module | None:
    try:
        return ast.parse(source if source is not None else path.read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError):
        return None


class ModelFinder:
    def __init__(self, session) -> None:
        self.session = session
        self.index = session.index
        self.config = session.config
        self._module_memo: dict[tuple, bool] = {}
        self.notebooks: dict[Path, Notebook] = {}  # checked notebooks, by path

    def is_module_class(self, path: Path, name: str) -> bool:
        """Does the class ``name`` of ``path`` derive from ``torch.nn.Module`` (through its bases only)?"""
        key = (path, name)
        if key not in self._module_memo:
            self._module_memo[key] = any(
                _module_base(ImportMapView(self.index.summary(home)).resolve_dotted(base))
                for home, _, definition in self.index.lineage(path, name, depth=20) for base in definition.bases)
        return self._module_memo[key]

    def find(self, files: list[Path]) -> tuple[list[ModelSpec], list[str]]:
        """The models to build, and the folders to put on the child's sys.path."""
        specs: dict[tuple[str, str], ModelSpec] = {}
        search: list[str] = []
        sources = [f.resolve() for f in files if f.suffix in (".py", ".ipynb")]
        for path in sources:
            named = self.named(path)
            summary = self.index.summary(path)
            if named is None or summary is None:
                continue
            dotted_name, folder = named
            added = False
            tree = None
            source = self.notebooks[path].text if path in self.notebooks else None
            for name, definition in summary.definitions.items():
                if definition.kind == "class" and self.is_module_class(path, name) and (
                        self.index.is_recurrent(path, name) or receives_recurrent(self.index.flow(), path, name)):
                    tree = tree or _parse(path, source)
                    line = _definition_line(tree, name) if tree else 1
                    specs[(str(path), name)] = ModelSpec(f"{dotted_name}:{name}", str(path), dotted_name, name, "class",
                                                         line, str(folder), source=source)
                    added = True
                elif definition.kind == "assign":
                    tree = tree or _parse(path, source)
                    spec = self._instance(path, dotted_name, name, summary, tree, source)
                    if spec is not None:
                        spec.base = str(folder)
                        specs[(str(path), name)] = spec
                        added = True
            if added and str(folder) not in search:
                search.append(str(folder))
        self._mark_components(specs)
        self._call_sites(specs)
        self._mark_injected(specs)
        self._apply_config(specs, search)
        # one folder at a time (the child re-imports when it moves on: two projects may both have
        # a train.py), containing models before their components
        ordered = sorted(specs.values(), key=lambda s: (s.base, s.component, s.file, s.line))
        return ordered, search

    def named(self, path: Path) -> tuple[str, Path] | None:
        """``(module name, folder to put on sys.path)`` the child imports ``path`` by (a ``.py`` file or a
        notebook); None when it cannot be imported (a name that is no identifier, a notebook that does not parse)."""
        return module_name(path) if path.suffix == ".py" else self._notebook(path)

    def _notebook(self, path: Path) -> tuple[str, Path] | None:
        """A notebook's code cells as one module (see rnnlint.notebook), named after the file, for the index and the
        child; ``(module name, folder)``. Its findings are reported by cell (see Reporter)."""
        try:
            notebook = read_notebook(path)
            module = parse_python(notebook.text)
        except (SourceError, SyntaxError, cst.ParserSyntaxError, RecursionError, MemoryError, ValueError):
            return None
        self.notebooks[path] = notebook
        imports = ImportMap(module)
        self.index.add(path, module, imports)
        self.index.flow().add(path, module, imports)  # its own cells' calls give the constructor arguments
        return re.sub(r"\W|^(?=\d)", "_", path.stem), path.parent

    def _instance(self, path: Path, dotted_name: str, name: str, summary, tree, source: str | None) -> ModelSpec | None:
        """``name = nn.LSTM(...)`` at module level: the recurrent module is a model."""
        if tree is None:
            return None
        for stmt in tree.body:
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and stmt.targets[0].id == name and isinstance(stmt.value, ast.Call)):
                callee = _dotted(stmt.value.func)
                if callee and ImportMapView(summary).resolve_dotted(callee) in self.index.recurrent_names:
                    text = source if source is not None else path.read_text("utf-8", errors="replace")
                    expr = ast.get_source_segment(text, stmt.value)
                    return ModelSpec(f"{dotted_name}:{name}", str(path), dotted_name, name, "instance",
                                     stmt.lineno, expr=expr, origin="the module-level expression", source=source)
        return None

    def _mark_injected(self, specs: dict) -> None:
        """Classes a model is given built (``Translator(Encoder(...), Decoder(...))``) are its components."""
        by_class = {(s.module, s.qualname): s for s in specs.values()}
        for spec in list(specs.values()):
            for key in built_classes([spec.args, spec.kwargs]):
                if key in by_class and by_class[key] is not spec:
                    by_class[key].component = True

    def _mark_components(self, specs: dict) -> None:
        classes = {k for k, s in specs.items() if s.kind == "class"}
        for (file, name) in classes:
            summary = self.index.summary(Path(file))
            for call in summary.definitions[name].calls if summary else []:
                hit = self.index.lookup(Path(file), call)
                if hit is not None and (str(hit[0]), hit[1]) in classes and (str(hit[0]), hit[1]) != (file, name):
                    specs[(str(hit[0]), hit[1])].component = True

    def _call_sites(self, specs: dict) -> None:
        """Arguments from the project's own calls of each model class (see :mod:`rnnlint.graph.arguments`)."""
        flow = self.index.flow()
        for (file, name), spec in specs.items():
            if spec.kind != "class":
                continue
            sites = call_sites(flow, Path(file), name, self.notebooks)
            if sites:
                best = sites[0]
                spec.args, spec.kwargs, spec.origin = best.args, best.kwargs, best.explained()

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

    def __init__(self, sources: dict[str, str] | None = None) -> None:
        self._files: dict[str, dict[str, tuple[int, dict[str, list[int]]]]] = {}
        self._texts: dict[str, list[str]] = {}
        self._sources = sources or {}  # files whose Python text is not their bytes (notebooks)

    def lookup(self, file: str, qualname: str, attr: str | None, kind: str | None = None) -> int | None:
        """The line of the class, or of its ``self.<attr> = ...``: of several (``if cell == "gru": self.core =
        nn.GRU(...) else: self.core = nn.RNN(...)``), the first that names ``kind``, the layer's class."""
        classes = self._files.get(file)
        if classes is None:
            text = self._sources.get(file)
            if text is None:
                text = Path(file).read_text("utf-8", errors="replace") if Path(file).is_file() else ""
            tree = _parse(Path(file), text)
            classes = self._files[file] = _class_lines(tree) if tree else {}
            self._texts[file] = text.splitlines()
        entry = classes.get(qualname)
        if entry is None:
            return None
        if attr is None:
            return entry[0]
        lines = entry[1].get(attr) or [None]
        text = self._texts[file]
        named = [n for n in lines if kind and n is not None and 0 < n <= len(text)
                 and re.search(rf"\b{re.escape(kind)}\b", text[n - 1])]
        return (named or lines)[0]


def _class_lines(tree: ast.Module) -> dict[str, tuple[int, dict[str, list[int]]]]:
    found: dict[str, tuple[int, dict[str, list[int]]]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for stmt in body:
            if not isinstance(stmt, ast.ClassDef):
                continue
            qualname = prefix + stmt.name
            attrs: dict[str, list[int]] = {}
            methods = [s for s in stmt.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
            methods.sort(key=lambda m: m.name != "__init__")  # __init__ lines win
            for method in methods:
                for node in sorted(ast.walk(method), key=lambda n: getattr(n, "lineno", 0)):
                    for target, line in _self_targets(node):
                        attrs.setdefault(target, []).append(line)
            for item in stmt.body:  # class-level attributes
                if isinstance(item, ast.Assign):
                    for t in item.targets:
                        if isinstance(t, ast.Name):
                            attrs.setdefault(t.id, []).append(item.lineno)
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
