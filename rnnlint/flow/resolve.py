"""The resolver: the possible values of an expression, across the project.

``values(expr, site)`` answers with every value the expression can take that
the model can see, each with its path. It follows:

* literals and constant arithmetic (``1e-3 * 5``), ``float(x)``/``int(x)``;
* names: assignments in the function, then the module, then imports into
  other files of the project;
* function parameters: the default, and the argument at every call site in
  the project (two call sites with different values give both);
* ``self.x``: every ``self.x = ...`` of the class (and of its project bases),
  and class-level attributes; ``self.hparams.x`` of a Lightning module is the
  constructor's parameter ``x``;
* attributes and subscripts of configuration holders: dict literals and
  ``dict(...)``, ``SimpleNamespace(...)``, classes and instances of the
  project, modules of the project, ``parser.parse_args()`` (the option
  defaults), JSON files of the repository loaded by a literal path;
* return values of project functions.

What it cannot see stays unknown: no value is ever guessed, so a rule that
finds nothing to judge says nothing. The model is demand-driven and memoised
per run; files other than the one being analysed are parsed only when a
question leads to them, and are recorded for the results cache.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Iterator
from pathlib import Path

import libcst as cst

from rnnlint.flow import library
from rnnlint.flow.scopes import FileFacts, Site, collect
from rnnlint.flow.values import (ARGS, CLASS, CONST, DATA, DICT, INSTANCE, LIBRARY, LIBRARY_CLASS, MODULE, SEQUENCE,
                                 Value)
from rnnlint.names import ImportMap, dotted
from rnnlint.static.projectmap import imported_modules
from rnnlint.nodes import find_all, node_positions
from rnnlint.source import SourceError, display_path, read_file_bytes

_MAX_DEPTH = 14
_MAX_VALUES = 24
_MAX_CALL_SITES = 40
#: steps one question may take: parameters fed by many call sites, each through attributes of other
#: parameters, multiply the paths; past this the answer is "unknown" (a part of the paths is no answer)
_BUDGET = 20_000


class _Exhausted(Exception):
    """A question took more than :data:`_BUDGET` steps."""
_OPS = {
    cst.Multiply: operator.mul, cst.Divide: operator.truediv, cst.Add: operator.add,
    cst.Subtract: operator.sub, cst.Power: operator.pow, cst.FloorDivide: operator.floordiv,
}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STR_METHODS = frozenset({"upper", "lower", "strip", "capitalize"})
_CONVERSIONS = {"float": float, "int": int, "str": str, "bool": bool}
_NAMESPACES = frozenset({"types.SimpleNamespace", "argparse.Namespace", "dict", "easydict.EasyDict",
                         "attrdict.AttrDict", "omegaconf.OmegaConf.create", "addict.Dict"})
_LIBRARIES = frozenset({"torch", "torchtext", "transformers", "lightning", "pytorch_lightning", "accelerate",
                        "ignite", "numpy", "keras", "tensorflow"})
_JSON_LOADERS = frozenset({"json.load", "json.loads"})
_YAML_LOADERS = frozenset({"yaml.safe_load", "yaml.load", "yaml.full_load"})


class Flow:
    """The value-flow model of one run, over the project the index knows."""

    def __init__(self, index) -> None:
        self.index = index
        self._files: dict[Path, FileFacts | None] = {}
        self._words: dict[Path, frozenset[str]] | None = None
        self._import_words: dict[Path, frozenset[str]] = {}  # words on each file's import lines
        self._may_call: dict[tuple[Path, Path], bool] = {}  # see may_call_into
        self._links: dict[Path, frozenset[Path]] | None = None  # see linked
        self._importing: dict[str, frozenset[Path]] = {}  # see importing
        #: analysed files the project-wide searches do not list: notebooks, and a file the project map says
        #: cannot matter that is analysed all the same (a comment names an LSTM; code given on stdin)
        self._outside: dict[Path, cst.Module] = {}
        self._analysed: dict[Path, cst.Module] = {}  # the .py files registered by add(), until forget()
        self._data: dict[Path, object] = {}
        #: bumped whenever a file's facts are replaced: memos over node identities start again
        self.generation = 0
        self._models = False  # the question in progress asks for a module (see values())
        self._budget = _BUDGET  # steps left to the question in progress
        #: per-generation results other analyses keep (they hold nodes, so they go with the memo)
        self.scratch: dict = {}
        self._memo: dict[tuple, tuple] = {}  # answers, keyed by node identity (the node is kept to check it)

    # -- files -------------------------------------------------------------

    def add(self, path: Path, module: cst.Module, imports=None) -> FileFacts:
        """Register the file being analysed (already parsed): its facts replace any older ones.

        The answers kept so far hold nodes and conclusions of the files they read: they go when this
        file replaces facts the model had (or had failed to read), or joins the files that project-wide
        searches read (a notebook: "who hands lengths to a pack?" answered before it counted without it),
        and stay when no answer could have read it yet (the model reads a file the first time a question
        leads there)."""
        path = self.index.real(path)
        replaced = path in self._files
        facts = collect(path, module, imports)
        self._files[path] = facts
        if path.suffix == ".py":
            self._analysed[path] = module
        # a notebook is no file of the project walk, yet its code calls its own (and so may a file the
        # searches do not list: see _outside)
        outside = path.suffix != ".py" or path in self._outside or self._words is not None and path not in self._words
        joins = outside and path not in self._outside
        if outside:
            self._take_outside(path, module)  # its tree as it is now
        if replaced or joins:
            self.generation += 1
            self._memo.clear()
            self.scratch.clear()
        return facts

    def _take_outside(self, path: Path, module: cst.Module) -> None:
        """Searches list ``path`` (being analysed) with what its tree holds, though the project's list does not."""
        self._outside[path] = module
        self._links, self._importing = None, {}  # its imports link files too
        if self._words is not None:
            self._learn_words(path, module.code)

    def forget(self, path: Path) -> None:
        """Drop a file's facts (its analysis is done, or its text changed in a fix round)."""
        path = self.index.real(path)
        self._analysed.pop(path, None)
        self._may_call = {key: may for key, may in self._may_call.items() if key[0] != path}  # its imports may change
        if self._outside.pop(path, None) is not None and self._words is not None:
            self._words.pop(path, None)
            self._import_words.pop(path, None)
        if self._files.pop(path, None) is not None:
            self.generation += 1
            self._memo.clear()
            self.scratch.clear()

    def file(self, path: Path) -> FileFacts | None:
        path = self.index.real(path)
        if path not in self._files:
            self._files[path] = None  # cycles
            self._files[path] = self._load(path)
        return self._files[path]

    def _load(self, path: Path) -> FileFacts | None:
        module = self.index.tree(path)  # read, parsed and recorded for the results cache once per run
        return collect(path, module) if module is not None else None

    def line(self, path: Path, node: cst.CSTNode) -> int | None:
        """The line of ``node`` in the file ``path`` (positions computed once per file, only when asked)."""
        facts = self.file(path)
        if facts is None:
            return None
        if facts.positions is None:
            facts.positions = node_positions(facts.module)
        found = facts.positions.get(node)
        return found.start.line if found is not None else None

    def display(self, path: Path) -> str:
        """Another file as a message names it: from the working folder when it lies inside it, as the finding's
        own location is written (see display_path); else from the project's root."""
        shown = display_path(path, self.index.real(path))
        if not os.path.isabs(shown):
            return shown
        try:
            return path.relative_to(self.index.root).as_posix()
        except ValueError:
            return path.name

    def project_files(self) -> dict[Path, frozenset[str]]:
        """Every Python file of the project with the words it contains (built once, on first need)."""
        if self._words is None:
            self._words, self._import_words = {}, {}
            for path in self.index.files():
                try:  # a regular file of sane size only: a FIFO named x.py would block a plain read
                    text = read_file_bytes(path).decode("utf-8", errors="replace")
                except SourceError:
                    continue
                self._learn_words(path, text)
            unlisted = {path: module for path, module in self._analysed.items() if path not in self._words}
            if unlisted:
                self._outside.update(unlisted)
                self._links, self._importing = None, {}  # their imports link files too
            for path, module in self._outside.items():
                self._learn_words(path, module.code)
        return self._words

    def _learn_words(self, path: Path, text: str) -> None:
        self._words[path] = frozenset(_WORD.findall(text))  # type: ignore[index]
        # the names of the modules its import statements take (a ``from the data ...`` line of prose is none)
        self._import_words[path] = frozenset(word for module in imported_modules(text) for word in module.split("."))

    def may_call_into(self, path: Path, defining: Path) -> bool:
        """Could ``path`` call a function (or build a class) of ``defining``? Only by importing it, a name of
        it (perhaps re-exported by another module), or its package.

        Read from the import statements CPython's parser finds (``from train import main`` in a docstring's
        example is no import); an import the index cannot resolve counts when it names ``defining``'s
        module or one of its folders, as it may load it at run time."""
        path, defining = self.index.real(path), self.index.real(defining)
        if path == defining:
            return True
        key = (path, defining)
        if key not in self._may_call:
            # like the project's words, not a dependency of the asking file's cached result: a caller is
            # (its tree is read), a file that could become one is not
            with self.index.unrecorded():
                self._may_call[key] = self._imports_of(path, defining)
        return self._may_call[key]

    def _imports_of(self, path: Path, defining: Path) -> bool:
        self.project_files()
        imports = self.index.import_map(path) if path not in self._outside else None
        if imports is None:  # a notebook, or a file CPython refuses: the words of its import lines
            return bool(self._names_of(defining) & self._import_words.get(path, frozenset()))
        for target, files in self._imported_files(path, imports):
            if any(file == defining or file.name == "__init__.py" and file.parent in defining.parents
                   for file in files):
                return True
            if not files and self._names_of(defining) & set(target.split(".")):
                return True
        # a name another module re-exports (``from utils import Seq2Seq``, utils importing it from model)
        return any((hit := self.index.lookup(path, local)) is not None and hit[0] == defining
                   for local in imports.names)

    def linked(self, path: Path) -> frozenset[Path]:
        """The project files ``path`` is linked to by imports, either way and through other files: the
        only files a value of ``path`` can come from or go to. Found for the whole project at once."""
        if self._links is None:
            with self.index.unrecorded():
                self._links = self._linking()
        path = self.index.real(path)
        return self._links.get(path, frozenset({path}))

    def _linking(self) -> dict[Path, frozenset[Path]]:
        parent: dict[Path, Path] = {}

        def root(file: Path) -> Path:
            while parent.setdefault(file, file) != file:
                parent[file] = parent[parent[file]]
                file = parent[file]
            return file

        for file in self.project_files():
            imports = self._import_map(file)
            for _, files in self._imported_files(file, imports) if imports is not None else ():
                if files:
                    parent[root(file)] = root(files[0])
        groups: dict[Path, set[Path]] = {}
        for file in list(parent):
            groups.setdefault(root(file), set()).add(file)
        return {file: frozenset(group) for group in groups.values() for file in group}

    def importing(self, package: str) -> frozenset[Path]:
        """The project files whose import statements take ``package`` or a module of it."""
        if package not in self._importing:
            head = package.partition(".")[0]
            files = self.project_files()  # an import of it names it on its line: only those files are read
            with self.index.unrecorded():
                self._importing[package] = frozenset(
                    file for file in files if head in self._import_words.get(file, ())
                    and (imports := self._import_map(file)) is not None and imports.imports_from(package))
        return self._importing[package]

    def _imported_files(self, file: Path, imports: ImportMap) -> Iterator[tuple[str, list[Path]]]:
        """Each module an import of ``file`` names (``model.Encoder`` for ``from model import Encoder``),
        with the project files it may load: the module itself, else the one it is taken from."""
        for target in [*imports.names.values(), *imports.star_modules]:
            yield target, [self.index.real(found) for module in (target, target.rpartition(".")[0])
                           if module.strip(".") and (found := self.index.resolve_module(file, module)) is not None]

    def _import_map(self, file: Path):
        module = self._outside.get(file)  # a notebook: its cells' imports
        return ImportMap(module) if module is not None else self.index.import_map(file)

    def _names_of(self, defining: Path) -> set[str]:
        names = set(defining.parent.relative_to(self.index.root).parts) if self.index.root in defining.parents \
            else set()
        names.add(defining.stem)
        return names

    # -- the question rules ask ---------------------------------------------

    def values(self, expr: cst.BaseExpression | None, site: Site, *, models: bool = False) -> list[Value]:
        """The possible values of ``expr`` at ``site``.

        ``models``: the question is which module or object ``expr`` is (``model(x)``), not which
        number: command-line options are then not searched by name (no model is an option).
        """
        if expr is None:
            return []
        key = (id(expr), id(site.file), id(site.function), self.generation, models)
        found = self._memo.get(key)
        if found is None or found[0] is not expr:
            outer = self._models, self._budget
            self._models, self._budget = models, _BUDGET
            try:
                found = (expr, _dedupe(self._values(expr, site, 0, frozenset()))[:_MAX_VALUES])
            except _Exhausted:
                found = (expr, [])  # too many paths to follow: unknown, never a guess from a part of them
            finally:
                self._models, self._budget = outer
            self._memo[key] = found
        return found[1]

    def _values(self, expr: cst.BaseExpression, site: Site, depth: int, seen: frozenset) -> list[Value]:
        self._budget -= 1
        if self._budget < 0:
            raise _Exhausted
        if depth > _MAX_DEPTH:
            return []
        key = (id(expr), id(site.function))
        if key in seen:
            return []
        seen = seen | {key}
        here = site.file.path
        if isinstance(expr, (cst.Integer, cst.Float)):
            try:
                return [Value(CONST, expr.evaluated_value, expr, here)]
            except (ValueError, OverflowError):
                return []
        if isinstance(expr, cst.SimpleString):
            try:
                return [Value(CONST, expr.evaluated_value, expr, here)]
            except Exception:  # noqa: BLE001 - odd prefixes
                return []
        if isinstance(expr, cst.FormattedString):
            return self._formatted(expr, site, depth, seen)
        if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
            return [Value(CONST, {"True": True, "False": False, "None": None}[expr.value], expr, here)]
        if isinstance(expr, (cst.Dict,)):
            return [Value(DICT, None, expr, here)]
        if isinstance(expr, (cst.Tuple, cst.List)):
            return [Value(SEQUENCE, None, expr, here)]
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
            sign = -1 if isinstance(expr.operator, cst.Minus) else 1
            return [
                Value(CONST, sign * v.value, expr, here, v.steps)
                for v in self._values(expr.expression, site, depth + 1, seen)
                if v.number is not None
            ]
        if isinstance(expr, cst.BinaryOperation) and type(expr.operator) in _OPS:
            return self._arithmetic(expr, site, depth, seen)
        if isinstance(expr, cst.Call):
            return self._call(expr, site, depth, seen)
        if isinstance(expr, cst.IfExp) and self._models:
            # which module: ``nn.LSTM if cell == "lstm" else nn.GRU`` may be either. Never a number: the
            # test usually guards the value (``dropout if nlayers > 1 else 0.0``), and both are not possible
            return self._values(expr.body, site, depth + 1, seen) + self._values(expr.orelse, site, depth + 1, seen)
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, site, depth, seen)
        if isinstance(expr, cst.Name):
            return self._name(expr.value, expr, site, depth, seen)
        if isinstance(expr, cst.Attribute):
            return self._attribute(expr, site, depth, seen)
        return []

    def _arithmetic(self, expr: cst.BinaryOperation, site: Site, depth: int, seen) -> list[Value]:
        lefts = [v for v in self._values(expr.left, site, depth + 1, seen) if v.number is not None]
        rights = [v for v in self._values(expr.right, site, depth + 1, seen) if v.number is not None]
        out = []
        for left in lefts[:6]:
            for right in rights[:6]:
                try:
                    result = _OPS[type(expr.operator)](left.value, right.value)
                except (ZeroDivisionError, OverflowError, TypeError, ValueError):
                    continue
                out.append(Value(CONST, result, expr, site.file.path, left.steps or right.steps))
        return out

    # -- names ---------------------------------------------------------------

    def _name(self, name: str, node: cst.CSTNode, site: Site, depth: int, seen) -> list[Value]:
        facts = site.file
        function = site.function
        while function is not None:
            assigned = facts.assigned(function, name)
            if assigned or name in facts.opaque.get(function, ()):
                return self._assigned(assigned, name, facts.site(function), depth, seen)
            if _has_param(function, name):
                return self._parameter(function, name, facts, depth, seen)
            function = facts.owner.get(function, (None, None))[0]  # closures see the enclosing function
        assigned = facts.assigned(facts.module, name)
        if assigned:
            return self._assigned(assigned, name, Site(facts), depth, seen)
        if name in facts.functions or name in facts.classes:
            if name in facts.classes:
                return [Value(CLASS, name, facts.classes[name], facts.path)]
            return []
        return self._imported(name, facts, depth, seen) or _library_class(name, facts, node)

    def _assigned(self, exprs: list[cst.BaseExpression], name: str, site: Site, depth: int, seen) -> list[Value]:
        out = []
        for expr in exprs:
            for value in self._values(expr, site, depth + 1, seen):
                out.append(value.via(name, site.file.path, expr))
        return out

    def _imported(self, name: str, facts: FileFacts, depth: int, seen) -> list[Value]:
        target = facts.imports.names.get(name)
        if target is None and not facts.imports.star_modules:
            return []
        module_file = self.index.resolve_module(facts.path, target) if target is not None else None
        if module_file is not None:
            return [Value(MODULE, target, None, self.index.real(module_file))]
        hit = self.index.lookup(facts.path, name)
        if hit is None:
            return []
        path, defined = hit
        other = self.file(path)
        if other is None or other is facts and defined == name and not other.assigned(other.module, defined):
            return []
        return self._name(defined, None, Site(other), depth + 1, seen)

    # -- parameters and call sites ------------------------------------------

    def _parameter(self, function: cst.FunctionDef, name: str, facts: FileFacts, depth: int, seen) -> list[Value]:
        param = _param(function, name)
        out: list[Value] = []
        outer = facts.site(facts.owner.get(function, (None, None))[0])
        calls = self.callers(function, facts)[:_MAX_CALL_SITES]
        if param is not None and param.default is not None:
            passing = tuple(call for call, _ in calls if _argument(call, function, name, facts) is not None
                            or any(a.star for a in call.args))
            for value in self._values(param.default, outer, depth + 1, seen):
                out.append(value.via(f"default of parameter {name}", facts.path, param.default, passing))
        for call, caller in calls:
            arg = _argument(call, function, name, facts)
            if arg is None:
                if any(a.star == "**" for a in call.args) and not self._models:
                    # ``Model(**vars(args))``, ``Model(**options_of(args))``: the command line's option of that name
                    out.extend(v.via(f"argument {name} of {_display_call(call)}", caller.file.path, call)
                               for v in self._options_named(name, caller.file, depth + 1, seen))
                continue
            for value in self._values(arg, caller, depth + 1, seen):
                out.append(value.via(f"argument {name} of {_display_call(call)}", caller.file.path, call))
        return out

    def callers(self, function: cst.FunctionDef, facts: FileFacts) -> list[tuple[cst.Call, Site]]:
        """Every call of ``function`` the project holds, with the site of each (found once per generation:
        every parameter of a function asks it)."""
        key = ("callers", id(function), id(facts), self.generation)
        found = self._memo.get(key)
        if found is None or found[0] is not function:
            found = self._memo[key] = (function, self._callers(function, facts))
        return found[1]

    def _callers(self, function: cst.FunctionDef, facts: FileFacts) -> list[tuple[cst.Call, Site]]:
        parent, cls = facts.owner.get(function, (None, None))
        if parent is not None:
            return []  # nested functions: called where they are defined, not followed
        if cls is not None:
            if function.name.value == "__init__":
                return self._calls_of(cls.name.value, facts, want_class=cls)
            if any(dotted(d.decorator) == "staticmethod" for d in function.decorators):
                # ``Helpers.train(...)`` and ``train = Helpers.train`` then ``train(...)``: called like a function
                qualified = f"{cls.name.value}.{function.name.value}"
                aliases = [name for name, exprs in facts.assigns.get(facts.module, {}).items()
                           if "." not in name and any(dotted(e) == qualified for e in exprs)]
                found = [(c, s) for alias in aliases for c, s in self._calls_of(alias, facts)]
                return found + [(c, facts.site(f)) for c, f, _ in facts.calls.get(function.name.value, [])
                                if dotted(c.func) == qualified]
            return [
                (call, facts.site(caller))
                for call, caller, caller_cls in facts.calls.get(function.name.value, [])
                if caller_cls is cls and dotted(call.func) == f"self.{function.name.value}"
            ]
        return self._calls_of(function.name.value, facts, want_function=function)

    def _calls_of(self, name: str, facts: FileFacts, want_class=None, want_function=None) -> list[tuple[cst.Call, Site]]:
        found: list[tuple[cst.Call, Site]] = []
        for path, words in self.project_files().items():
            if name not in words or not self.may_call_into(path, facts.path) or (
                    path != facts.path and not self._calls_written(path, name)):
                continue
            other = facts if path == facts.path else self.file(path)
            if other is None:
                continue
            for call, caller, _ in other.calls.get(name, []):
                if self._is_call_to(call, other, facts, name):
                    found.append((call, other.site(caller)))
        return found

    def _calls_written(self, path: Path, name: str) -> bool:
        """Could the text of ``path`` hold a call whose callee's last name is ``name`` (``name(``, ``x.name (``)?
        Read before the file is parsed: a file that names a class only as a base (``class X(name):``) or in
        a type holds no call of it, and libcst's parse costs fifty times this search."""
        if path in self._outside:
            return True
        try:
            text = read_file_bytes(path).decode("utf-8", errors="replace")
        except SourceError:
            return True
        # ``name(``, ``name (``, ``(name)(``, across lines: a backslash, a comment, LF or CRLF
        return re.search(rf"\b{re.escape(name)}(?:[\s)]|\\\r?\n|#[^\n]*\n)*\(", text) is not None

    def _is_call_to(self, call: cst.Call, caller: FileFacts, defining: FileFacts, name: str) -> bool:
        written = dotted(call.func)
        if written is None:
            return False
        if caller is defining:
            return written == name
        hit = self.index.lookup(caller.path, written)
        return hit is not None and hit[0] == defining.path and hit[1] == name

    # -- attributes ----------------------------------------------------------

    def _attribute(self, expr: cst.Attribute, site: Site, depth: int, seen) -> list[Value]:
        attr = expr.attr.value
        base = expr.value
        facts = site.file
        written = dotted(expr)
        # a dotted target assigned in this scope or at module level (``args.lr = 0.1``, ``cfg.lr = ...``)
        if written:
            for scope in (site.function, facts.module):
                if scope is not None and facts.assigned(scope, written):
                    return self._assigned(facts.assigned(scope, written), written, facts.site(
                        scope if isinstance(scope, cst.FunctionDef) else None), depth, seen)
        if isinstance(base, cst.Name) and base.value == "self" and site.cls is not None:
            return self._instance_attr(site.cls, facts, attr, depth, seen, None)
        # Lightning: self.hparams.lr / self.hparams["lr"] is the constructor's argument lr
        if written and written.startswith("self.hparams.") and site.cls is not None:
            return self._hparam(site.cls, facts, attr, depth, seen)
        out: list[Value] = []
        owners = self._values(base, site, depth + 1, seen)
        for owner in owners:
            out.extend(v.via(f".{attr}", facts.path, expr) for v in self._member(owner, attr, depth, seen))
        if not owners and written and "." in written and not self._models:
            declared = self._annotated_classes(base, site, depth, seen)
            if declared:
                # ``cfg.dropout`` with ``cfg: ModelConfig`` that nobody in the project fills: the class's own
                # attribute (a dataclass field's default), never another file's command line of that name
                for cls in declared:
                    other = self.file(cls.path)
                    if other is not None:
                        out.extend(v.via(f".{attr}", facts.path, expr)
                                   for v in self._instance_attr(cls.node, other, attr, depth, seen, None))
                return out
            # ``opt.lr`` where ``opt`` cannot be followed at all (a parameter nobody in the project fills):
            # the project's command line; never when ``opt`` is a known module or object without ``lr``
            out = self._options_named(attr, facts, depth, seen)
        return out or _library_class(written, facts, expr)

    def _annotated_classes(self, base: cst.BaseExpression, site: Site, depth: int, seen) -> list[Value]:
        """The project classes a parameter named ``base`` is declared as (``cfg: ModelConfig``), in the
        function of ``site`` or one enclosing it; none for a name that is no parameter or has no such
        annotation (``args: argparse.Namespace`` is the command line's, and a string is not followed)."""
        if not isinstance(base, cst.Name):
            return []
        function = site.function
        while function is not None and not _has_param(function, base.value):
            function = site.file.owner.get(function, (None, None))[0]
        param = _param(function, base.value) if function is not None else None
        if param is None or param.annotation is None:
            return []
        outer = site.file.site(site.file.owner.get(function, (None, None))[0])
        return [v for v in self._values(param.annotation.annotation, outer, depth + 1, seen) if v.kind == CLASS]

    def _member(self, owner: Value, attr: str, depth: int, seen) -> list[Value]:
        if owner.kind == MODULE:
            other = self.file(owner.path)
            if other is None:
                return []
            return self._name(attr, None, Site(other), depth + 1, seen)
        if owner.kind in (INSTANCE, CLASS):
            other = self.file(owner.path)
            if other is None:
                return []
            return self._instance_attr(owner.node, other, attr, depth, seen, owner if owner.kind == INSTANCE else None)
        if owner.kind == ARGS:
            other = self.file(owner.path)
            return self._options(other, attr, depth, seen) if other is not None else []
        if owner.kind == DICT and isinstance(owner.node, cst.Call):  # SimpleNamespace(lr=...)
            return self._key(owner, attr, depth, seen)
        if owner.kind == DATA and isinstance(owner.value, dict) and attr in owner.value:
            return [_data(owner, owner.value[attr], f".{attr}")]
        return []

    def _instance_attr(self, cls: cst.ClassDef, facts: FileFacts, attr: str, depth: int, seen,
                       instance: Value | None) -> list[Value]:
        out: list[Value] = []
        for value, method in facts.self_assigns.get(cls, {}).get(attr, []):
            for found in self._values(value, facts.site(method), depth + 1, seen):
                out.append(found.via(f"self.{attr}", facts.path, value))
        class_level = facts.assigned(cls, attr)
        out.extend(self._assigned(class_level, f"{cls.name.value}.{attr}", Site(facts, None, cls), depth, seen))
        if not out:
            for base in cls.bases:
                for parent in self._values(base.value, Site(facts), depth + 1, seen):
                    if parent.kind == CLASS:
                        other = self.file(parent.path)
                        if other is not None:
                            out.extend(self._instance_attr(parent.node, other, attr, depth + 1, seen, instance))
        return out

    def _hparam(self, cls: cst.ClassDef, facts: FileFacts, attr: str, depth: int, seen) -> list[Value]:
        init = facts.methods.get(cls, {}).get("__init__")
        if init is None or not _has_param(init, attr):
            return []
        return self._parameter(init, attr, facts, depth + 1, seen)

    def _options(self, facts: FileFacts, dest: str, depth: int, seen) -> list[Value]:
        out = []
        for option in facts.options.get(dest, []):
            if option.default is None:
                continue
            for value in self._values(option.default, Site(facts), depth + 1, seen):
                out.append(value.via(f"{option.kind} default of {option.flag}", facts.path, option.call))
        return out

    def _options_named(self, dest: str, facts: FileFacts, depth: int, seen) -> list[Value]:
        """``x.lr`` where ``x`` cannot be followed: the command line of this file, else of the project."""
        own = self._options(facts, dest, depth, seen)
        if own or facts.options.get(dest):
            return own
        out: list[Value] = []
        for path, words in self.project_files().items():
            if path == facts.path or dest not in words or "add_argument" not in words and "option" not in words:
                continue
            other = self.file(path)
            if other is not None and other.options.get(dest):
                out.extend(self._options(other, dest, depth, seen))
        return out

    # -- subscripts ------------------------------------------------------------

    def _subscript(self, expr: cst.Subscript, site: Site, depth: int, seen) -> list[Value]:
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return []
        keys = [v for v in self._values(expr.slice[0].slice.value, site, depth + 1, seen) if v.kind == CONST]
        if not keys:
            return self._any_entry(expr.value, site, depth, seen)
        written = dotted(expr.value)
        if written and written.startswith("self.hparams") and written.count(".") == 1 and site.cls is not None:
            return [v for k in keys if isinstance(k.value, str)
                    for v in self._hparam(site.cls, site.file, k.value, depth, seen)]
        out: list[Value] = []
        for owner in self._values(expr.value, site, depth + 1, seen):
            for key in keys:
                shown = f"[{key.value!r}]".replace("'", '"')
                out.extend(v.via(shown, site.file.path, expr) for v in self._key(owner, key.value, depth, seen))
        return out

    def _any_entry(self, container: cst.BaseExpression, site: Site, depth: int, seen) -> list[Value]:
        """``MODELS[args.model]`` with a key that cannot be told: when the question asks for a module, any
        entry of a dictionary literal (a registry of classes); never for a number, where the key decides."""
        if not self._models:
            return []
        out: list[Value] = []
        for owner in self._values(container, site, depth + 1, seen):
            other = self.file(owner.path) if owner.path is not None else None
            if owner.kind == DICT and isinstance(owner.node, cst.Dict) and other is not None:
                for element in owner.node.elements:
                    if isinstance(element, cst.DictElement):
                        out.extend(v.via("[...]", site.file.path, container) for v in self._values(
                            element.value, other.site_of(owner.node), depth + 1, seen))
        return out

    def _key(self, owner: Value, key, depth: int, seen) -> list[Value]:
        other = self.file(owner.path) if owner.path is not None else None
        if owner.kind == DICT and other is not None:
            node = owner.node
            if isinstance(node, cst.Dict):
                for element in node.elements:
                    if isinstance(element, cst.DictElement):
                        names = [v.value for v in self._values(element.key, Site(other), depth + 1, seen) if v.kind == CONST]
                        if key in names:
                            return self._values(element.value, other.site_of(owner.node), depth + 1, seen)
            elif isinstance(node, cst.Call):
                for arg in node.args:
                    if arg.keyword is not None and arg.keyword.value == key:
                        return self._values(arg.value, other.site_of(owner.node), depth + 1, seen)
            return []
        if owner.kind == SEQUENCE and other is not None and isinstance(key, int):
            elements = owner.node.elements
            if -len(elements) <= key < len(elements) and not isinstance(elements[key], cst.StarredElement):
                return self._values(elements[key].value, other.site_of(owner.node), depth + 1, seen)
            return []
        if owner.kind == DATA:
            data = owner.value
            if isinstance(data, dict) and key in data:
                return [_data(owner, data[key], f"[{key!r}]")]
            if isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data):
                return [_data(owner, data[key], f"[{key}]")]
            return []
        if owner.kind == ARGS and isinstance(key, str) and other is not None:
            return self._options(other, key, depth, seen)
        if owner.kind == LIBRARY and owner.value in library.LIBRARY_SPLITS and isinstance(key, int):
            return [owner]  # ``train, valid = Dataset.splits(...)``: each one is what the class builds
        return []

    # -- calls -------------------------------------------------------------------

    def _call(self, call: cst.Call, site: Site, depth: int, seen) -> list[Value]:
        facts = site.file
        written = dotted(call.func)
        qualname = facts.imports.resolve_dotted(written) if written else None
        if written in _CONVERSIONS and len(call.args) == 1:
            convert = _CONVERSIONS[written]
            out = []
            for value in self._values(call.args[0].value, site, depth + 1, seen):
                if value.kind == CONST:
                    try:
                        out.append(Value(CONST, convert(value.value), value.node, value.path, value.steps))
                    except (TypeError, ValueError, OverflowError):
                        pass
            return out
        if qualname in _NAMESPACES:
            return [Value(DICT, None, call, facts.path)]
        if qualname == "dataclasses.field":  # a dataclass field's default: ``dropout: float = field(default=0.1)``
            default = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "default"), None)
            return [v.via("default of field", facts.path, call) for v in self._values(default, site, depth + 1, seen)
                    ] if default is not None else []
        if qualname in _JSON_LOADERS or qualname in _YAML_LOADERS:
            return self._loaded(call, site, qualname in _YAML_LOADERS)
        if isinstance(call.func, cst.Attribute):
            method = call.func.attr.value
            if method == "parse_args" or method == "parse_known_args":
                return [Value(ARGS, None, call, facts.path)]
            if method == "get" and call.args:
                key_values = [v for v in self._values(call.args[0].value, site, depth + 1, seen) if v.kind == CONST]
                if not key_values:
                    return self._any_entry(call.func.value, site, depth, seen)
                out = []
                for owner in self._values(call.func.value, site, depth + 1, seen):
                    for key in key_values:
                        out.extend(self._key(owner, key.value, depth, seen))
                if len(call.args) > 1 and not out:
                    out.extend(self._values(call.args[1].value, site, depth + 1, seen))
                return out
        if qualname in library.MODULE_WRAPPERS and call.args:
            return self._values(call.args[library.MODULE_WRAPPERS[qualname]].value, site, depth + 1, seen)
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in library.MODULE_SELF_METHODS:
            return [v for v in self._values(call.func.value, site, depth + 1, seen) if v.kind in (INSTANCE, LIBRARY)]
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in _STR_METHODS and not call.args:
            method = call.func.attr.value
            return [Value(CONST, getattr(v.value, method)(), v.node, v.path, v.steps)
                    for v in self._values(call.func.value, site, depth + 1, seen)
                    if v.kind == CONST and isinstance(v.value, str)]
        if written == "vars" and len(call.args) == 1:
            return self._values(call.args[0].value, site, depth + 1, seen)
        if written == "getattr" and len(call.args) in (2, 3) and not any(a.keyword or a.star for a in call.args):
            names = {v.value for v in self._values(call.args[1].value, site, depth + 1, seen)
                     if v.kind == CONST and isinstance(v.value, str)}
            module = facts.imports.resolve(call.args[0].value) or ""
            if module.split(".")[0] in _LIBRARIES:  # ``getattr(torch.optim, args.optimizer)``
                return [v.via(f"getattr(..., {attr!r})", facts.path, call)
                        for attr in sorted(names) for v in _library_class(f"{module}.{attr}", facts, call)]
            return [v.via(f"getattr(..., {attr!r})", facts.path, call)
                    for owner in self._values(call.args[0].value, site, depth + 1, seen)
                    for attr in sorted(names) for v in self._member(owner, attr, depth, seen)]
        if qualname in library.MODULE_IMPORTERS and call.args:
            out = []
            for name in self._values(call.args[library.MODULE_IMPORTERS[qualname]].value, site, depth + 1, seen):
                found = self.index.resolve_module(facts.path, name.value) if (
                    name.kind == CONST and isinstance(name.value, str)) else None
                if found is not None:
                    out.append(Value(MODULE, name.value, None, self.index.real(found), name.steps))
            return out
        if written is None and not isinstance(call.func, (cst.Call, cst.Subscript)):
            return []
        out = []
        # ``getattr(module, name)(...)`` and ``MODELS[name](...)`` too
        for target in self._values(call.func, site, depth + 1, seen):
            if target.kind == CLASS:
                out.append(Value(INSTANCE, target.value, target.node, target.path, target.steps, call, facts.path,
                                 site))
            elif target.kind == LIBRARY_CLASS:  # ``self.cell_type(...)`` with ``cell_type = nn.LSTM``
                out.append(Value(LIBRARY, target.value, call, facts.path, target.steps, call, facts.path, site))
        if out or written is None:
            return out
        if qualname and qualname.split(".")[0] in _LIBRARIES:
            return [Value(LIBRARY, qualname, call, facts.path, (), call, facts.path, site)]
        function, other = self.function(written, facts)
        if function is not None and other is not None:
            for returned in other.returns.get(function, []):
                out.extend(v.via(f"{written}()", facts.path, call)
                           for v in self._values(returned, other.site(function), depth + 1, seen))
        return out

    def _formatted(self, expr: cst.FormattedString, site: Site, depth: int, seen) -> list[Value]:
        """``f"archs.{arch}"`` with each part a known constant (a few combinations at most)."""
        texts = [""]
        for part in expr.parts:
            if isinstance(part, cst.FormattedStringText):
                texts = [t + part.value for t in texts]
                continue
            if part.conversion is not None or part.format_spec is not None:
                return []
            known = [v.value for v in self._values(part.expression, site, depth + 1, seen)
                     if v.kind == CONST and isinstance(v.value, (str, int)) and not isinstance(v.value, bool)]
            if not known:
                return []
            texts = [t + str(k) for t in texts for k in known][:6]
        if "{" in "".join(p.value for p in expr.parts if isinstance(p, cst.FormattedStringText)):
            return []  # doubled braces: the written text is not the value
        return [Value(CONST, text, expr, site.file.path) for text in texts]

    def function(self, written: str, facts: FileFacts) -> tuple[cst.FunctionDef | None, FileFacts | None]:
        """The project function ``written`` (as called in ``facts``' file) names, with its file's facts."""
        local = facts.function_named(written)
        if local is not None:
            return local, facts
        hit = self.index.lookup(facts.path, written)
        if hit is None:
            return None, None
        other = self.file(hit[0])
        if other is None:
            return None, None
        return other.function_named(hit[1]), other

    def _loaded(self, call: cst.Call, site: Site, yaml_file: bool) -> list[Value]:
        """``json.load(open("config.json"))``: the repository's file, read as data (never executed)."""
        if not call.args:
            return []
        source = call.args[0].value
        if isinstance(source, cst.Name):  # with open("x.json") as f: json.load(f)
            source = _opened_as(site, source.value) or source
        if not (isinstance(source, cst.Call) and dotted(source.func) == "open" and source.args):
            return []
        names = [v.value for v in self.values(source.args[0].value, site) if v.kind == CONST and isinstance(v.value, str)]
        out = []
        for name in names[:4]:
            data = self._read_data(site.file.path, name, yaml_file)
            if data is not None:
                out.append(Value(DATA, data, call, site.file.path).via(f"{name}", site.file.path, call))
        return out

    def _read_data(self, importer: Path, name: str, yaml_file: bool):
        root = self.index.root
        for base in (importer.parent, root):
            path = (base / name).resolve()
            if root not in path.parents or not path.is_file():
                continue
            if path not in self._data:
                self._data[path] = _parse_data(path, yaml_file)
                self.index.consulted(path, None)
            return self._data[path]
        return None


# -- helpers ----------------------------------------------------------------------


def _parse_data(path: Path, yaml_file: bool):
    try:
        if path.stat().st_size > 1 << 20:
            return None
        text = path.read_text("utf-8")
        if yaml_file or path.suffix in (".yaml", ".yml"):
            try:
                import yaml  # optional: only when the project's own tooling has it
            except ImportError:
                return None
            return yaml.safe_load(text)
        return json.loads(text)
    except Exception:  # noqa: BLE001 - a file that is not data is no value
        return None


def _data(owner: Value, item, shown: str) -> Value:
    if isinstance(item, (dict, list)):
        return Value(DATA, item, owner.node, owner.path, owner.steps).via(shown, owner.path, owner.node)
    return Value(CONST, item, None, owner.path, owner.steps).via(shown, owner.path, owner.node)


def _opened_as(site: Site, name: str) -> cst.BaseExpression | None:
    """``with open("config.json") as f``: what ``f`` was opened from, in the function (or module) around."""
    found = [item.item for item in find_all(site.function or site.file.module, cst.WithItem)
             if item.asname is not None and isinstance(item.asname.name, cst.Name) and item.asname.name.value == name]
    return found[-1] if found else None

def _params(function: cst.FunctionDef) -> list[cst.Param]:
    p = function.params
    return [*p.posonly_params, *p.params, *p.kwonly_params]


def _param(function: cst.FunctionDef, name: str) -> cst.Param | None:
    return next((p for p in _params(function) if p.name.value == name), None)


def _has_param(function: cst.FunctionDef, name: str) -> bool:
    return _param(function, name) is not None


def _argument(call: cst.Call, function: cst.FunctionDef, name: str, facts: FileFacts) -> cst.BaseExpression | None:
    """The expression ``call`` passes for parameter ``name`` of ``function``, if it can be told."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    positional = [*function.params.posonly_params, *function.params.params]
    _, cls = facts.owner.get(function, (None, None))
    if cls is not None and positional and positional[0].name.value in ("self", "cls"):
        positional = positional[1:]
    index = next((i for i, p in enumerate(positional) if p.name.value == name), None)
    if index is None:
        return None
    given = []
    for arg in call.args:
        if arg.keyword is not None:
            break
        if arg.star:
            return None  # *args: positions unknown
        given.append(arg.value)
    return given[index] if index < len(given) else None


def _display_call(call: cst.Call) -> str:
    return f"{dotted(call.func) or 'call'}(...)"


def _dedupe(values: list[Value]) -> list[Value]:
    seen = set()
    out = []
    for value in values:
        key = (value.kind, repr(value.value) if value.kind in (CONST,) else id(value.node), value.path, id(value.node))
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def flow_of(ctx) -> tuple[Flow, FileFacts]:
    """The run's flow model and the facts of the file ``ctx`` analyses (collected once per file)."""
    def build():
        flow = ctx.index.flow()
        known = flow.file(ctx.path) if ctx.module is ctx.index.cached_tree(ctx.path) else None
        if known is not None and known.module is ctx.module:
            return flow, known  # another file's context over the index's own parse: nothing to replace
        return flow, flow.add(ctx.path, ctx.module, ctx.imports)

    return ctx.memo("flow", build)


def _library_class(written: str | None, facts: FileFacts, node: cst.CSTNode | None) -> list[Value]:
    """``nn.GRU`` named, not called (by convention a capitalised name is a class): a value a later call
    builds (``cell = nn.LSTM if lstm else nn.GRU``; ``self.rnn = cell(...)``)."""
    qualname = facts.imports.resolve_dotted(written) if written else ""
    if qualname.split(".")[0] in _LIBRARIES and qualname.rsplit(".", 1)[-1][:1].isupper():
        return [Value(LIBRARY_CLASS, qualname, node, facts.path)]
    return []


def values(ctx, expr: cst.BaseExpression | None, node: cst.CSTNode | None = None, *,
           models: bool = False) -> list[Value]:
    """The possible values of ``expr`` written in the file ``ctx`` analyses.

    ``node`` is any node that encloses ``expr`` inside its function (the
    expression itself by default): it tells which function's names apply.
    ``models``: the question asks for a module (see :meth:`Flow.values`).
    """
    flow, facts = flow_of(ctx)
    return flow.values(expr, site_of(ctx, node if node is not None else expr), models=models)


def site_of(ctx, node: cst.CSTNode | None) -> Site:
    """The function and class around ``node`` in the analysed file."""
    _, facts = flow_of(ctx)
    return facts.site_of(node) if node is not None else Site(facts)

def origin(ctx, value: Value, written: cst.BaseExpression) -> str:
    """Where a value came from, for a message: ``config["lr"], config.py:4``; "" when written in place.

    Names the expression as the rule saw it, the kind of default the value is
    (a parameter's, a command-line option's) and the file and line of the
    literal that holds it.
    """
    if value.node is written:
        return ""
    flow, _ = flow_of(ctx)
    parts = [ctx.code(written)]
    source = value.source
    if source is not None and "default" in source.text:
        parts.append(source.text)
    node, path = value.node, value.path
    if node is not None and path is not None:
        line = flow.line(path, node)
        if line:
            if path == ctx.index.real(ctx.path):
                parts.append(f"line {line}")
            else:
                parts.append(f"{flow.display(path)}:{line}")
    return ", ".join(parts)


def chain(ctx, value: Value) -> tuple:
    """The places ``value`` came through, source first, as :class:`~rnnlint.diagnostics.Related`
    locations: the literal that holds it, then each hop the flow model followed that has a line."""
    from rnnlint.diagnostics import Related

    flow, _ = flow_of(ctx)
    out = []
    if value.node is not None and value.path is not None:
        line = flow.line(value.path, value.node)
        if line:
            out.append(Related(flow.display(value.path), line, f"the value {value.value!r} is written here"))
    for step in value.steps:
        if step.node is not None and step.path is not None:
            line = flow.line(step.path, step.node)
            if line and not any(r.line == line and r.path == flow.display(step.path) for r in out):
                out.append(Related(flow.display(step.path), line, f"through {step.text}"))
    return tuple(out)


def related(flow, path, node, message: str) -> tuple:
    """``node`` of ``path`` as a :class:`~rnnlint.diagnostics.Related` location, or nothing when it has no line."""
    from rnnlint.diagnostics import Related

    line = flow.line(path, node) if node is not None else None
    return (Related(flow.display(path), line, message),) if line else ()


def truth(ctx, test: cst.BaseExpression, node: cst.CSTNode | None = None) -> bool | None:
    """What ``test`` evaluates to with the values the flow model sees (command-line defaults, constants,
    configuration), or None when any part is unknown or has several values.

    ``opt.adam`` (a ``store_true`` flag: False), ``args.optimizer == "adam"``,
    ``args.optim.lower() in ("adam", "adamw")``, ``not``, ``and``, ``or``.
    """
    node = node if node is not None else test
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = truth(ctx, test.expression, node)
        return None if inner is None else not inner
    if isinstance(test, cst.BooleanOperation):
        left, right = truth(ctx, test.left, node), truth(ctx, test.right, node)
        if isinstance(test.operator, cst.And):
            return False if False in (left, right) else (True if left and right else None)
        return True if True in (left, right) else (False if left is False and right is False else None)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        left, target = _constant(ctx, test.left, node), test.comparisons[0]
        right = _constant(ctx, target.comparator, node)
        if left is _UNKNOWN or right is _UNKNOWN:
            return None
        compare = {cst.Equal: operator.eq, cst.NotEqual: operator.ne, cst.In: lambda a, b: a in b,
                   cst.NotIn: lambda a, b: a not in b, cst.Is: operator.is_, cst.IsNot: operator.is_not}
        how = compare.get(type(target.operator))
        try:
            return bool(how(left, right)) if how is not None else None
        except TypeError:
            return None
    found = _constant(ctx, test, node)
    return None if found is _UNKNOWN else bool(found)


_UNKNOWN = object()
_STRING_METHODS = frozenset({"lower", "upper", "strip", "casefold"})


def _constant(ctx, expr: cst.BaseExpression, node: cst.CSTNode):
    """The one Python constant ``expr`` is (a tuple of them for a tuple/list literal), or ``_UNKNOWN``."""
    if isinstance(expr, (cst.Tuple, cst.List)):
        parts = [_constant(ctx, e.value, node) for e in expr.elements]
        return _UNKNOWN if _UNKNOWN in parts else tuple(parts)
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and not expr.args \
            and expr.func.attr.value in _STRING_METHODS:
        inner = _constant(ctx, expr.func.value, node)
        return getattr(inner, expr.func.attr.value)() if isinstance(inner, str) else _UNKNOWN
    possible = values(ctx, expr, node) if not isinstance(expr, cst.Call) else []
    found = {(type(v.value), v.value) for v in possible}
    if len(found) != 1 or any(v.kind != CONST for v in possible):
        return _UNKNOWN
    return next(iter(found))[1]


def number(ctx, expr: cst.BaseExpression | None, node: cst.CSTNode | None = None) -> float | None:
    """The one number ``expr`` always is, or None (unknown, not a number, or several values)."""
    found = {v.number for v in values(ctx, expr, node)} if expr is not None else set()
    if len(found) != 1 or None in found:
        return None
    return found.pop()
