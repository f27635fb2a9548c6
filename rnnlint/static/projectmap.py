"""The project map: what every file imports and defines, and which files can matter to the rules.

libcst is what the rules read, and its parser costs about ten times CPython's.
In a large repository most files hold no recurrent model and train none: the
text prefilter of the rules cannot tell (``optim``, ``step(`` and ``device``
are everywhere), the imports can. So every file is first *mapped* from
CPython's own parser (which the syntax check needs anyway) and a few regular
expressions, never from libcst:

* the names it imports (``local name -> dotted target``, as
  :class:`rnnlint.names.ImportMap` reads them) and every module it imports;
* its top-level definitions (classes, functions, assignments), each with the
  dotted names and words its code holds (bases, calls, string constants; not
  comments or docstrings, whose prose would make files relevant that are not);
* CPython's syntax error, when it refuses the file.

A map is a small JSON document, sealed and cached by content hash beside the
project index's summaries (see :mod:`rnnlint.seal`).

:class:`ProjectMap` then answers which files *can matter*: a definition is
recurrent when its text holds one of the rule set's relevance words
(:attr:`rnnlint.rule.Rule.relevant_words`, e.g. ``LSTM``) or names a recurrent
definition of the project (inheritance, composition, a factory, a re-export,
across files); a file matters when it holds such a word or names such a
definition, and so do the definitions the code using one calls or reads
(training helpers handed the model, configuration, hyper-parameter classes,
data pipelines), :data:`FEEDING_DEPTH` calls deep. Every other file is read,
mapped and skipped: no rule could report in it. The flow model still reads any
file a question leads to through the project index, mapped or not.

This module imports no libcst.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rnnlint import __version__, seal
from rnnlint.diagnostics import Diagnostic, syntax_error
from rnnlint.source import SourceError, decode, digest_bytes, read_file_bytes

# Third-party packages whose names are never project code.
EXTERNAL_ROOTS = frozenset(
    {"torch", "numpy", "np", "tensorflow", "keras", "lightning", "pytorch_lightning",
     "transformers", "accelerate", "math", "random", "os", "sys", "typing", "collections"}
)
# Names that start a call chain but never name a module of the project.
NEVER_MODULES = frozenset({"self", "cls", "super", "print", "len", "range", "list", "dict", "tuple",
                           "set", "zip", "enumerate", "isinstance", "getattr", "setattr", "float",
                           "int", "str", "bool", "min", "max", "sum", "sorted", "open", "iter", "next"})
_MAP_VERSION = 5
#: how far values are followed from the code that uses a recurrent model into the helpers it calls (a
#: training helper handed the model, the step function it calls): further, a library's every utility
FEEDING_DEPTH = 2
# a comment with no quote after its ``#`` (one with a quote may be a ``#`` inside a string: kept)
_COMMENT = re.compile(r"#[^'\"\n]*$")
_CHAIN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# An import statement read from the text around each ``import`` (see imported_modules)
# ``from pkg.mod``, ``from`` and a backslash then the module on the next line, ``from pkg . mod`` (spaces by a dot)
_FROM_HEAD = re.compile(r"\bfrom(?:\s|\\\n)+([.\w](?:[.\w]|(?:\s|\\\n)+(?=\.)|(?<=\.)(?:\s|\\\n)+)*)(?:\s|\\\n)*$")
_SPACE = re.compile(r"\s|\\\n")
_NAMES = re.compile(r"\s*(\([^)]*\)|(?:[^\n;#()\\]|\\\n)*)")
_NAME = re.compile(r"[\w.]+")
#: ``getattr(nn, cell)(...)``: a torch layer picked by name may be any of them, the recurrent ones too (the
#: module however it is imported: ``import torch.nn as tnn``, ``import torch as T`` then ``T.nn``)
_GETATTR = re.compile(r"getattr\(\s*([A-Za-z_][\w.]*)\s*,")
_ANY_RECURRENT_LAYER = ["torch.nn.GRU", "torch.nn.LSTM", "torch.nn.RNN"]
#: ``importlib.import_module("archs." + name)`` / ``(f"archs.{name}")``: the constant head is the package
_IMPORT_BY_NAME = re.compile(r"import_module\(\s*f?[\"']([A-Za-z_][\w.]*)")
_SKIP_DIRS = frozenset({"site-packages", "node_modules", "__pycache__", "build", "dist", "venv", "env"})


@dataclass
class FileMap:
    """What one file imports and defines (see the module docstring)."""

    imports: dict[str, str] = field(default_factory=dict)
    stars: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    definitions: dict[str, list[str]] = field(default_factory=dict)
    rest: list[str] = field(default_factory=list)  # the names and words outside every definition
    classes: list[str] = field(default_factory=list)  # the definitions that are classes
    error: list | None = None  # [message, line, column] when CPython refuses the file
    by_name: list[str] = field(default_factory=list)  # packages imported by name (``import_module(f"pkg.{x}")``)

    def to_json(self) -> dict:
        return vars(self)

    @classmethod
    def from_json(cls, data) -> "FileMap":
        """The inverse of :meth:`to_json`; ValueError for a document of the wrong shape or types."""
        if not (isinstance(data, dict) and set(data) == set(cls.__dataclass_fields__)
                and _str_map(data["imports"]) and all(_strs(data[k]) for k in ("stars", "modules", "rest", "classes", "by_name"))
                and isinstance(data["definitions"], dict)
                and all(isinstance(k, str) and _strs(v) for k, v in data["definitions"].items())
                and (data["error"] is None or _valid_error(data["error"]))):
            raise ValueError("not a file map")
        return cls(**data)

    def refuses(self) -> bool:
        """Did CPython refuse the file with an error libcst might not share (newer syntax)? Then
        nothing is known of its structure and it is never skipped."""
        return self.error is not None and not self.error[0].startswith("cannot parse")


def _strs(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _str_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _valid_error(value) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:]))


def cpython_error(text: str) -> tuple[ast.Module | None, list | None]:
    """CPython's tree of ``text``, or its refusal as ``[message, line, column]`` (the RNN900 message).

    ``ast.parse`` only compiles to a tree: nothing of the file runs.
    """
    try:
        return ast.parse(text), None
    except SyntaxError as error:
        return None, [f"SyntaxError: {error.msg}; the file is skipped by every other rule", error.lineno or 1,
                      error.offset or 1]
    except (ValueError, RecursionError, MemoryError) as error:
        return None, [f"cannot parse: {error}", 1, 1]


def syntax_findings(display: str, text: str, facts: "FileMap | None" = None) -> list[Diagnostic]:
    """RNN900 from CPython's parser alone (several times faster than libcst's), for a file no other
    rule reads; ``facts``: the file's map, which holds the parser's verdict already. Like every finding,
    it then passes the final step (``# noqa``, per-file-ignores)."""
    error = facts.error if facts is not None else cpython_error(text)[1]
    if error is None:
        return []
    message, line, column = error
    return [syntax_error(display, message, line, column)]


def map_text(text: str) -> FileMap:
    """The map of one source text."""
    tree, error = cpython_error(text)
    result = FileMap(error=error)
    if tree is None:
        return result
    lines = text.splitlines(keepends=True)
    for first, last in _docstrings(tree):  # prose: "class LSTM(...)" in an example is no model
        for number in range(first, last + 1):
            lines[number - 1] = "\n"
    lines = [_COMMENT.sub("", line) if "#" in line else line for line in lines]
    uncovered = [True] * len(lines)  # per line (from 0): outside every definition and import

    def cover(first: int, last: int) -> None:
        uncovered[first - 1:last] = [False] * (last - first + 1)

    def define(name: str, node: ast.stmt) -> None:
        first, last = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))]), node.end_lineno
        cover(first, last or first)
        text = "".join(lines[first - 1:last or first])
        words = set(_CHAIN.findall(text))
        words.update(_picked_by_name(text, result.imports))
        result.definitions[name] = sorted(words.union(result.definitions.get(name, ())))

    def top(body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                define(stmt.name, stmt)
                if isinstance(stmt, ast.ClassDef):
                    result.classes.append(stmt.name)
            elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
                cover(stmt.lineno, stmt.end_lineno or stmt.lineno)  # bindings, not uses (re-exports): not ``rest``
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and name.id == "__all__":
                            cover(stmt.lineno, stmt.end_lineno or stmt.lineno)  # exports: no uses
                        elif isinstance(name, ast.Name):
                            define(name.id, stmt)
            elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.AsyncWith)) or type(stmt).__name__ == "TryStar":
                top(stmt.body)  # try: from apex import X / except ImportError: ...; if TYPE_CHECKING: ...
                top(getattr(stmt, "orelse", []))
                top(getattr(stmt, "finalbody", []))
                for handler in getattr(stmt, "handlers", []):
                    top(handler.body)

    _imports(tree.body, result)  # first: a definition's words depend on what its names import
    top(tree.body)
    result.by_name = _imported_by_name(text)
    result.modules.extend(result.by_name)
    rest = "".join(itertools.compress(lines, uncovered))
    result.rest = sorted(set(_CHAIN.findall(rest)) | set(_picked_by_name(rest, result.imports)))
    return result


def _picked_by_name(text: str, imports: dict[str, str]) -> list[str]:
    """What ``getattr(module, name)`` in ``text`` may pick: any torch layer, the recurrent ones too, for
    ``torch.nn`` under any alias; any member of another module, written ``module.*`` (see
    :meth:`ProjectMap._edges`)."""
    found: list[str] = []
    for name in _GETATTR.findall(text):
        found += _ANY_RECURRENT_LAYER if _is_torch_nn(name, imports) else [f"{name}.*"]
    return found


def _is_torch_nn(name: str, imports: dict[str, str]) -> bool:
    """Does ``name`` (as written in a file with these imports) stand for ``torch.nn``?"""
    head, _, rest = name.partition(".")
    full = imports.get(head, head) + (f".{rest}" if rest else "")
    return full in ("nn", "torch.nn")


def _docstrings(tree: ast.Module):
    """``(first, last)`` lines of every docstring: the module's, its classes' and functions', nested too."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        if (not isinstance(node, (ast.If, ast.For, ast.While, ast.With, ast.Try)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
                and body[0].lineno != getattr(node, "lineno", 0)):  # not on the header's own line
            yield body[0].lineno, body[0].end_lineno or body[0].lineno
        todo.extend(stmt for stmt in body if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))


#: statements that hold no statements (most of a file's): no import can be inside them
_FLAT = frozenset({ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Pass, ast.Break,
                   ast.Continue, ast.Raise, ast.Assert, ast.Delete, ast.Global, ast.Nonlocal})


def _imports(body: list[ast.stmt], result: FileMap) -> None:
    """Every import statement, in any statement body (never walking expressions: that costs a parse)."""
    for stmt in body:
        if type(stmt) in _FLAT:
            continue
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                result.modules.append(alias.name)
                if alias.asname:
                    result.imports[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    result.imports.setdefault(head, head)
        elif isinstance(stmt, ast.ImportFrom):
            base = "." * stmt.level + (stmt.module or "")
            result.modules.append(base)
            sep = "" if base.endswith(".") else "."
            for alias in stmt.names:
                if alias.name == "*":
                    result.stars.append(base)
                    continue
                result.modules.append(f"{base}{sep}{alias.name}")  # ``from pkg import config``: a module
                result.imports[alias.asname or alias.name] = f"{base}{sep}{alias.name}"
        else:
            for name in ("body", "orelse", "finalbody"):
                inner = getattr(stmt, name, None)
                if isinstance(inner, list):
                    _imports(inner, result)
            for handler in getattr(stmt, "handlers", ()):
                _imports(handler.body, result)
            for case in getattr(stmt, "cases", ()):
                _imports(case.body, result)


def _imported_by_name(text: str) -> list[str]:
    """The packages ``import_module`` calls name by a constant head: ``f"archs.{arch}"`` imports a module
    of ``archs`` (which one is decided at run time: the package stands for them all)."""
    return [match.group(1).rstrip(".") for match in _IMPORT_BY_NAME.finditer(text)]


def imported_modules(text: str) -> set[str]:
    """The modules ``text`` may import, read with regular expressions (no parse): every module an
    import statement names, and ``module.name`` for each name a ``from`` import takes (a submodule,
    perhaps). A superset of what :func:`map_text` finds: comments, strings and prose count too."""
    found: set[str] = set()
    text = text.replace("\r\n", "\n").replace("\r", "\n")  # a line ends as Python reads it: ``\`` then CRLF too
    at = text.find("import")
    while at >= 0:
        end = at + len("import")
        if (at == 0 or not (text[at - 1].isalnum() or text[at - 1] == "_")) and (end == len(text) or text[end] in " \t\\("):
            start = text.rfind("\n", 0, at) + 1
            while start >= 2 and text[start - 2] == "\\":  # the statement began on a continued line
                start = text.rfind("\n", 0, start - 2) + 1
            head = _FROM_HEAD.search(text, start, at)
            names = [n for n in _NAME.findall(_NAMES.match(text, end).group(1)) if n != "as"]
            if head is not None:
                base = _SPACE.sub("", head.group(1))
                sep = "" if base.endswith(".") else "."
                found.add(base)
                found.update(f"{base}{sep}{name}" for name in names)
            else:
                found.update(names)  # ``import a.b as c, d``: ``c`` is no module, and resolves to nothing
        at = text.find("import", end)
    found.update(_imported_by_name(text))
    return found


# -- module resolution: shared with the project index ---------------------------

_UNRESOLVED = object()  # not asked yet (None is an answer: not a project file)


def module_candidates(importer: str, module: str, root: str):
    """The files ``import <module>`` in ``importer`` could load, in the order they are tried.

    Relative imports start from the importer's package; absolute ones from the
    importer's own folder and its parents up to ``root`` (as ``python train.py``
    would), then ``root`` and ``root/src``. Packages that are never project code
    (``torch``, ``os``) have none. Paths are strings: a large run asks this
    a hundred thousand times.
    """
    if module.startswith("."):
        level = len(module) - len(module.lstrip("."))
        base = os.path.dirname(importer)
        for _ in range(level - 1):
            base = os.path.dirname(base)
        rest = module[level:]
        if not rest:
            yield os.path.join(base, "__init__.py")
            return
        bases: tuple[str, ...] = (base,)
    else:
        head = module.split(".")[0]
        if head in EXTERNAL_ROOTS or head in NEVER_MODULES:
            return
        rest = module
        bases = _search_dirs(os.path.dirname(importer), root)
    tail = rest.replace(".", os.sep)
    for base in bases:  # os.path.join(base, tail), without its cost
        target = base + tail if base.endswith(os.sep) else base + os.sep + tail
        yield target + ".py"
        yield target + _PACKAGE_INIT


_PACKAGE_INIT = os.sep + "__init__.py"


def module_name(path: Path) -> tuple[str, Path] | None:
    """``(dotted module name, folder to put on sys.path)`` as Python would import the file: the
    inverse of :func:`module_candidates` (the graph stage imports a model's module by this name)."""
    path = path.resolve()
    parts = [] if path.name == "__init__.py" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file() and directory.parent != directory:
        parts.insert(0, directory.name)
        directory = directory.parent
    if not parts or not all(p.isidentifier() for p in parts):
        return None
    return ".".join(parts), directory


@functools.lru_cache(maxsize=4096)
def _search_dirs(directory: str, root: str) -> tuple[str, ...]:
    """Where an absolute import in a file of ``directory`` is looked for: that folder and its parents up
    to ``root``, then ``root`` and ``root/src``."""
    found = []
    inside = directory == root or directory.startswith(root.rstrip(os.sep) + os.sep)
    while True:
        found.append(directory)
        parent = os.path.dirname(directory)
        if directory == root or parent == directory or not inside:
            break
        directory = parent
    for extra in (root, os.path.join(root, "src")):
        if extra not in found:
            found.append(extra)
    return tuple(found)


def walk_project(root: Path, folders: tuple[Path, ...] = ()) -> list[Path]:
    """Every ``.py`` file of the project, sorted: under ``root``, or under ``folders`` when given (see
    :attr:`rnnlint.config.Config.folders`). Walked and sorted as strings (in the order paths sort in):
    hashing and comparing a thousand ``Path`` objects took longer than the walk."""
    found = {path for folder in (folders or (root,)) for path in _walk_names(str(folder))}
    return [Path(path) for path in sorted_paths(found)]


def sorted_paths(paths) -> list[str]:
    """Path strings in the order their ``Path`` objects sort in (by part: ``a/b`` before ``a-c``)."""
    return sorted(paths, key=lambda path: path.split(os.sep))


def walk_python(root: Path):
    """Every ``.py`` file under ``root``, skipping virtual environments, caches and hidden folders."""
    return map(Path, _walk_names(str(root)))


def _walk_names(root: str):
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in _SKIP_DIRS and not d.startswith(".")]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


# -- the project -----------------------------------------------------------------


class ProjectMap:
    """The maps of every project file, and the files that can matter to a rule set.

    ``files`` are the project's files (resolved paths); ``cache_dir`` is where
    maps are cached (None: not cached). Paths are strings inside: a run over a
    thousand files resolves a hundred thousand names, and ``Path`` hashing would
    cost more than the rest.
    """

    def __init__(self, root: Path, files: list[Path] | list[str], cache_dir: Path | None = None) -> None:
        self.root = root.resolve()
        self._root = str(self.root)
        self.files = [str(f) for f in files]
        self.cache_dir = cache_dir
        self._known = set(self.files)
        self._maps: dict[str, FileMap | None] = {}
        self.digests: dict[str, str] = {}  # the content hash of each Python file mapped (see accepted)
        self._modules: dict[tuple[str, str], str | None] = {}  # (importer's folder, module) -> file
        self._folder_of: dict[str, str] = {}  # importer -> its folder (see module)
        self._targets: dict[tuple[str, str, int], tuple[str, str] | None] = {}  # see _target
        self._package_dirs: dict[tuple[str, str], frozenset[str]] = {}  # see _reaches
        self._relevant: dict[tuple[str, ...], frozenset[Path]] = {}
        self._seeds: dict[tuple[str, ...], list[str]] = {}
        self._basenames: dict[str, list[str]] | None = None
        self._heads: frozenset[str] | None = None
        self._dirs: frozenset[str] | None = None
        self._joined: dict[str, str] = {}  # see _mentions
        self._used: dict[tuple[str, str | None], list[tuple[str, str]]] = {}  # see _uses
        self._graph: tuple[dict[str, set[str]], dict[str, set[str]]] | None = None  # see _importers
        self._scans: _Scans | None = None  # every file's imports and text (see closure)
        self._verdicts: dict | None = None  # the project's cached relevance (see _document)
        self._verdicts_file: Path | None = None

    # -- maps ----------------------------------------------------------------

    def map(self, path: Path | str, text: str | None = None, digest: str | None = None) -> FileMap | None:
        """The map of ``path`` (None when it cannot be read or decoded); ``text`` and its ``digest``
        when the caller has read it already."""
        key = str(path)
        if key not in self._maps:
            self._maps[key] = self._load(Path(key), text, digest)
        return self._maps[key]

    def forget(self, path: str) -> None:
        """Drop what was learnt of ``path`` (a mapping worker's maps go to the run, not to its memory)."""
        self._maps.pop(path, None)
        self.digests.pop(path, None)

    def mapped(self, path: str) -> bool:
        return path in self._maps

    def add(self, path: str, facts: FileMap | None, digest: str | None = None) -> None:
        """A map made elsewhere (by a worker process), of the content ``digest``."""
        self._maps[path] = facts
        if digest is not None:
            self.digests[path] = digest

    def accepted(self) -> frozenset[str]:
        """The content hashes of the Python files CPython's parser accepted as the map read them: libcst
        may parse those without asking CPython again (see :func:`rnnlint.source.parse_python`)."""
        return frozenset(digest for path, digest in self.digests.items()
                         if (facts := self._maps.get(path)) is not None and facts.error is None)

    def candidates(self, words: tuple[str, ...]) -> set[str]:
        """The files that may hold, use or train a recurrent definition for ``words``: those whose map
        holds a word or that CPython refuses, and every file that imports one, transitively. Relevance
        is worked out among these; any other file can matter only as a relevant file's helper or
        configuration, which :meth:`_compute` follows from the relevant file."""
        seeds = self.seeds(words)
        importers, names = self._importers()
        found = set(seeds)
        todo = list(found)
        while todo:
            path = todo.pop()
            name = _module_name(path)
            for user in importers.get(path, ()):
                if user not in found:
                    found.add(user)
                    todo.append(user)
            for folder in self._packages_above(path):  # ``import pkg`` then ``pkg.sub.Model``: names ``sub``
                for user in importers.get(folder, ()):
                    if user not in found and name in names.get(user, ()):
                        found.add(user)
                        todo.append(user)
        return found

    def seeds(self, words: tuple[str, ...]) -> list[str]:
        """The files whose map holds one of ``words``, or that CPython refuses: where relevance starts."""
        if words not in self._seeds:
            self._seeds[words] = [path for path in self.files if (facts := self.map(path)) is not None and (
                facts.refuses() or self._mentions(path, facts, words) and (_holds(facts.rest, words, facts) or any(
                    _holds(text, words, facts) for text in facts.definitions.values())))]
        return self._seeds[words]

    def _mentions(self, path: str, facts: FileMap, words: tuple[str, ...]) -> bool:
        """Could any name of the file, or anything it imports, hold one of ``words``? (A superset of
        :func:`_holds` over its definitions, asked first: most files of a large project hold none.)"""
        joined = self._joined.get(path)
        if joined is None:
            joined = self._joined[path] = "\n".join(
                [*facts.rest, *(w for ws in facts.definitions.values() for w in ws), *facts.imports.values()])
        return any(word in joined for word in words)

    def _importers(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """``(file or folder -> the files whose imports reach it, file reaching a folder -> every name its
        code writes)``: the same for every set of relevance words, so built once per run."""
        if self._graph is None:
            importers: dict[str, set[str]] = {}
            names: dict[str, set[str]] = {}
            for path in self.files:
                facts = self.map(path)
                if facts is None:
                    continue
                files, dirs = self._reaches(path, set(facts.modules))
                for target in files | dirs:
                    importers.setdefault(target, set()).add(path)
                if dirs:
                    names[path] = {part for chain in (*facts.rest, *(w for ws in facts.definitions.values() for w in ws))
                                   for part in chain.split(".")}
            self._graph = importers, names
        return self._graph

    def _load(self, path: Path, text: str | None, digest: str | None) -> FileMap | None:
        if path.suffix == ".ipynb":  # its code cells, as one module (what the rules read)
            from rnnlint.notebook import read_notebook

            try:
                notebook = read_notebook(path)
            except SourceError:
                return None
            text, digest = notebook.text, notebook.source.digest
        elif text is None or digest is None:
            try:
                data = read_file_bytes(path)
                text, _ = decode(data, path)
            except SourceError:
                return None
            digest = digest_bytes(data)
        if path.suffix == ".py":
            self.digests[str(path)] = digest
        file = self._cache_file(digest)
        if file is not None:
            document = seal.read_json(file)
            if document is not None:
                try:
                    return FileMap.from_json(document)
                except (ValueError, TypeError):
                    pass
        result = map_text(text)
        if file is not None:
            seal.write_json(self.cache_dir, file, result.to_json())  # type: ignore[arg-type]
        return result

    def _cache_file(self, digest: str) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"map-{__version__}-{_MAP_VERSION}-{seal.code_digest(Path(__file__))}" / f"{digest}.json"

    # -- the project's verdicts, cached by the content of every file -----------------

    def _document(self) -> dict | None:
        """The relevance this project had when every file held what it holds now (None: not known).

        A warm run of an unchanged tree then reads and hashes the files and
        nothing else: no map is loaded and nothing is parsed. The document
        holds the relevant files per set of relevance words and CPython's
        syntax error of every file that has one (RNN900 for the skipped files).
        """
        if self.cache_dir is None:
            return None
        if self._verdicts_file is None:
            h = hashlib.blake2b(digest_size=16)
            for path in self.files:
                try:
                    digest = digest_bytes(read_file_bytes(Path(path)))
                except SourceError:
                    digest = "-"
                h.update(f"{path}\0{digest}\0".encode())
            folder = f"relevance-{__version__}-{_MAP_VERSION}-{seal.code_digest(Path(__file__))}"
            self._verdicts_file = self.cache_dir / folder / f"{h.hexdigest()}.json"
            document = seal.read_json(self._verdicts_file)
            self._verdicts = document if _valid_verdicts(document) else {"relevant": {}, "errors": None}
        return self._verdicts

    def known(self, words: tuple[str, ...]) -> bool:
        """Is the project's relevance for ``words`` cached (no file need be mapped)?"""
        document = self._document()
        return document is not None and "\n".join(words) in document["relevant"]

    def error(self, path: str) -> list | None:
        """CPython's syntax error of a project file, ``[message, line, column]``, or None."""
        document = self._verdicts
        if document is not None and document["errors"] is not None and path in self._known and path not in self._maps:
            return document["errors"].get(path)
        facts = self.map(path)
        return facts.error if facts is not None else None

    def _remember(self, words: tuple[str, ...], relevant: set[str]) -> None:
        document = self._document()
        if document is None:
            return
        document["relevant"]["\n".join(words)] = sorted(relevant)
        document["errors"] = {path: error for path in self.files if (error := self.error(path)) is not None}
        seal.write_json(self.cache_dir, self._verdicts_file, document)  # type: ignore[arg-type]

    # -- resolution ------------------------------------------------------------

    def module(self, importer: str, module: str) -> str | None:
        """The project file ``import <module>`` in ``importer`` loads, if it is one of the project's."""
        key = (self._folder(importer), module)
        found = self._modules.get(key, _UNRESOLVED)
        if found is not _UNRESOLVED:
            return found
        if not module.startswith(".") and module.partition(".")[0] not in self._names():
            self._modules[key] = None  # no file or folder of the project has that name: ``import click``
            return None
        candidates = module_candidates(importer, module, self._root)
        found = next((c for c in candidates if c in self._known), None)
        if found is None and not module.startswith(".") and "." not in module:
            alone = self._by_basename().get(module + ".py", [])  # the folder on PYTHONPATH (see index)
            found = alone[0] if len(alone) == 1 else None
        self._modules[key] = found
        return found

    def _folder(self, path: str) -> str:
        """``os.path.dirname(path)``, once per file: a thousand-file run asks a hundred thousand times."""
        folder = self._folder_of.get(path)
        if folder is None:
            folder = self._folder_of[path] = os.path.dirname(path)
        return folder

    def _names(self) -> frozenset[str]:
        """The names of the project's files (without ``.py``) and folders: what an absolute import's
        first name must be to load a project file."""
        if self._heads is None:
            heads = set()
            for path in self.files:
                heads.update(Path(os.path.relpath(path, self._root)).parts)
                heads.add(os.path.basename(path)[:-3])
            self._heads = frozenset(heads)
        return self._heads

    def _by_basename(self) -> dict[str, list[str]]:
        if self._basenames is None:
            self._basenames = {}
            for path in self.files:
                self._basenames.setdefault(os.path.basename(path), []).append(path)
        return self._basenames

    def _target(self, importer: str, dotted_name: str, depth: int = 0) -> tuple[str, str] | None:
        """The definition a dotted name written in ``importer`` (its imports applied) reaches: the
        longest module prefix that is a project file, and the first name after it; the module itself
        ("") when nothing follows or the name is not one the module binds (set at run time)."""
        key = (importer, dotted_name, depth)  # the same names are followed for every set of relevance words
        found = self._targets.get(key, _UNRESOLVED)
        if found is _UNRESOLVED:
            found = self._targets[key] = self._find_target(importer, dotted_name, depth)
        return found

    def _find_target(self, importer: str, dotted_name: str, depth: int) -> tuple[str, str] | None:
        parts = dotted_name.split(".")
        lead = len(dotted_name) - len(dotted_name.lstrip("."))
        if lead:
            parts = ["." * lead + parts[lead]] + parts[lead + 1:] if len(parts) > lead else ["." * lead]
        for cut in range(len(parts), 0, -1):
            found = self.module(importer, ".".join(parts[:cut]))
            if found is None:
                continue
            name = parts[cut] if cut < len(parts) else ""
            if not self._binds(found, name) and cut == 1 and not lead:
                # ``from solver import Solver`` run with the module's own folder on PYTHONPATH: the
                # project's one file of that name, as the index looks it up
                alone = self._by_basename().get(parts[0] + ".py", [])
                if len(alone) == 1 and self._binds(alone[0], name):
                    found = alone[0]
            if not self._binds(found, name):
                return found, ""
            return self._defining(found, name, depth)
        return None

    def _defining(self, path: str, name: str, depth: int = 0) -> tuple[str, str]:
        """Where a name a module binds is defined: through its re-exports (``from .trainer import Trainer``
        in a package's ``__init__``), as far as the project goes."""
        facts = self.map(path)
        if facts is None or name in facts.definitions or name not in facts.imports or depth > 8:
            return path, name
        hit = self._target(path, facts.imports[name], depth + 1)
        return hit if hit is not None and hit[1] else (path, name)

    def _binds(self, path: str, name: str) -> bool:
        facts = self.map(path)
        return bool(name) and facts is not None and (name in facts.definitions or name in facts.imports)

    def _uses(self, path: str, name: str | None, facts: FileMap) -> list[tuple[str, str]]:
        """:meth:`_edges` of the definition ``name`` of ``path`` (None: its module-level code), once per run
        (every set of relevance words asks)."""
        key = (path, name)
        if key not in self._used:
            self._used[key] = self._edges(path, facts.rest if name is None else facts.definitions[name], facts)
        return self._used[key]

    def _edges(self, path: str, words, facts: FileMap) -> list[tuple[str, str]]:
        """The project definitions the names in ``words`` (written in ``path``) refer to."""
        out = []
        for word in words:
            head, _, rest = word.partition(".")
            if facts.by_name and word.rsplit(".", 1)[-1] == "import_module":
                out.extend(self._by_name(path, facts))  # whatever it picks, it may be any of them
            elif word.endswith(".*"):  # ``getattr(models, arch)``: any member of that module
                out.extend(self._members(path, word[:-2], facts))
            elif head in facts.definitions:
                out.append((path, head))
            elif head in facts.imports:
                target = facts.imports[head]
                hit = self._target(path, f"{target}.{rest}" if rest else target)
                if hit is not None:
                    out.append(hit)
            else:
                for star in facts.stars:
                    found = self.module(path, star)
                    other = self.map(found) if found is not None else None
                    if other is not None and (head in other.definitions or head in other.imports):
                        out.append((found, head))
        return out

    def _members(self, path: str, written: str, facts: FileMap) -> list[tuple[str, str]]:
        """Every definition and import of the project module ``written`` names in ``path`` (none for a name
        that is no module of the project: ``getattr(self, name)``, ``getattr(torch.optim, name)``)."""
        head, _, rest = written.partition(".")
        if head not in facts.imports:
            return []
        target = facts.imports[head] + (f".{rest}" if rest else "")
        found = self.module(path, target)
        other = self.map(found) if found is not None else None
        return [(found, name) for name in (*other.definitions, *other.imports)] if other is not None else []

    def _by_name(self, path: str, facts: FileMap) -> list[tuple[str, str]]:
        """Every definition of the modules that ``path`` imports by a name made at run time."""
        out = []
        for package in facts.by_name:
            found = self.module(path, package)
            if found is None:
                continue
            folder = os.path.dirname(found) if os.path.basename(found) == "__init__.py" else None
            for other in sorted(self._under({folder})) if folder else [found]:
                other_map = self.map(other)
                out.extend((other, name) for name in (other_map.definitions if other_map else ()))
        return out

    # -- the closure: what a few files' relevance depends on ------------------------

    def closure(self, paths: list[str], limit: int | None = None) -> set[str] | None:
        """The project files whose maps decide whether ``paths`` can matter, found without a parse.

        A file is recurrent, uses, trains or feeds a recurrent definition only
        through what it imports (a definition of its own holds a word, or names
        an imported one); it is fed only by a file that imports it. So the
        files that import ``paths`` (transitively), with ``paths``, and every
        file those import (transitively): a pre-commit run on one file of a
        large project maps that neighbourhood, not the project. Imports are
        read with :func:`imported_modules` from every file's text. None when
        it holds more than ``limit`` files (mapping it would cost more than
        reading ``paths`` with libcst, whose findings the results cache keeps).
        """
        if self._scans is None:
            self._scans = _Scans(self.files)
        scans = self._scans
        # upward: who reaches a file names it or a package above it in an import (a bare ``from . import
        # x`` names its own package): only such imports are resolved
        reach = _Reach(self, scans)
        up = set(paths)
        todo = list(up)
        while todo:
            target = todo.pop()
            above = self._packages_above(target)
            names = {os.path.basename(target)[:-3], *map(os.path.basename, above)}
            for path in scans.naming(names):
                if path in up:
                    continue
                scan = scans.get(path)
                if scan is None:  # cannot be decoded
                    continue
                if not scans.names_any(path, names):
                    continue
                text = scan[1]
                files, dirs = reach.get(path)
                if target in files or (not dirs.isdisjoint(above) and _module_name(target) in text):
                    up.add(path)
                    todo.append(path)
            if limit is not None and len(up) > limit:
                return None
        return _reach(up, _Imports(reach), limit)

    def _packages_above(self, path: str) -> set[str]:
        """The folders ``path`` lies in below the project's root (the root is no package a module names)."""
        found = set()
        directory = os.path.dirname(path)
        inside = self._root.rstrip(os.sep) + os.sep
        while directory.startswith(inside) and directory not in found:
            found.add(directory)
            directory = os.path.dirname(directory)
        return found

    def _reaches(self, importer: str, modules: set[str]) -> tuple[set[str], set[str]]:
        """The project files and the project folders ``modules`` (imported by ``importer``) reach. A
        folder: ``import pkg`` lets the code name ``pkg.sub.Model``, any module below it."""
        dirs = set()
        here = self._folder(importer)
        for module in modules:
            if not module.startswith(".") and module.partition(".")[0] not in self._names():
                continue
            key = (here, module)  # files of one folder import the same packages: resolved once
            if key not in self._package_dirs:
                folders = self._folders()
                candidates = module_candidates(importer, module, self._root)
                packages = (found[:-len(_PACKAGE_INIT)] for found in candidates if found.endswith(_PACKAGE_INIT))
                self._package_dirs[key] = frozenset(folder for folder in packages if folder in folders)
            dirs |= self._package_dirs[key]
        return self._resolve_all(importer, modules), dirs

    def _folders(self) -> frozenset[str]:
        if self._dirs is None:
            self._dirs = frozenset(d for path in self.files for d in self._packages_above(path))
        return self._dirs

    def _under(self, folders: set[str]) -> set[str]:
        """The project files below any of ``folders``."""
        if not folders:
            return set()
        prefixes = tuple(folder.rstrip(os.sep) + os.sep for folder in folders)
        return {path for path in self.files if path.startswith(prefixes)}

    def _resolve_all(self, importer: str, modules: set[str]) -> set[str]:
        """The project files any prefix of ``modules`` resolves to from ``importer`` (as :meth:`_target`
        tries them), with the project's one file of a head's name (the folder on PYTHONPATH)."""
        found = set()
        for module in modules:
            lead = len(module) - len(module.lstrip("."))
            parts = module[lead:].split(".") if module[lead:] else []
            for cut in range(0 if lead else 1, len(parts) + 1):
                hit = self.module(importer, "." * lead + ".".join(parts[:cut]))
                if hit is not None:
                    found.add(hit)
            if not lead and parts:
                alone = self._by_basename().get(parts[0] + ".py", [])
                if len(alone) == 1:
                    found.add(alone[0])
        return found

    # -- relevance ---------------------------------------------------------------

    def relevant(self, words: tuple[str, ...], among: set[str] | None = None) -> frozenset[Path]:
        """The project files that can matter to rules whose relevance words are ``words``. ``among``:
        a :meth:`closure`; the answer is then exact for the files it was made for (and only them)."""
        if among is not None:
            return frozenset(map(Path, self._compute(words, among)))
        if words not in self._relevant:
            if self.known(words):
                found = set(self._verdicts["relevant"]["\n".join(words)])  # type: ignore[index]
            else:
                found = self._compute(words, self.candidates(words))
                self._remember(words, found)
            self._relevant[words] = frozenset(map(Path, found))
        return self._relevant[words]

    def worked_out(self, words: tuple[str, ...]) -> frozenset[Path] | None:
        """:meth:`relevant` for ``words`` if this map (or the copy it adopted from) has worked it out, else None."""
        return self._relevant.get(words)

    def decided(self) -> dict[tuple[str, ...], frozenset[Path]]:
        """The relevant files worked out so far, per set of relevance words (see :meth:`adopt`)."""
        return dict(self._relevant)

    def adopt(self, relevant: dict[tuple[str, ...], frozenset[Path]]) -> None:
        """Take over what a forked copy of this map worked out (:meth:`decided`)."""
        self._relevant.update(relevant)

    def _compute(self, words: tuple[str, ...], among) -> set[str]:
        maps = {path: self.map(path) for path in among}
        users: dict[tuple[str, str], list[tuple[str, str]]] = {}  # who is recurrent when a definition is
        recurrent: set[tuple[str, str]] = set()
        relevant: set[str] = set()
        for path, facts in maps.items():
            if facts is None:
                continue
            mentions = self._mentions(path, facts, words)  # else no part of the file holds a word
            if facts.refuses() or mentions and _holds(facts.rest, words, facts):
                relevant.add(path)  # a refused file: nothing known of its structure, never skipped
                recurrent.add((path, ""))  # the module's own statements build one: so may ``module.<name>``
            for name, text in facts.definitions.items():
                node = (path, name)
                if mentions and _holds(text, words, facts):
                    recurrent.add(node)
                    continue
                for target in self._uses(path, name, facts):
                    users.setdefault(target, []).append(node)
            for name, target in facts.imports.items():  # a binding is what it imports (re-exports)
                if name not in facts.definitions:
                    hit = self._target(path, target)
                    if hit is not None:
                        users.setdefault(hit, []).append((path, name))
        todo = list(recurrent)
        while todo:
            node = todo.pop()
            more = users.get(node, [])
            for user in more:
                if user not in recurrent:
                    recurrent.add(user)
                    todo.append(user)
        # The files that build, hold or use a recurrent definition; then what their code (not a model
        # class's: its helpers see tensors, not the model) hands values to or takes values from:
        # training helpers, configuration, data pipelines, FEEDING_DEPTH calls deep.
        feeding: set[tuple[str, str]] = set()
        for path, facts in maps.items():
            if facts is None:
                continue
            own = {(path, name) for name in facts.definitions if (path, name) in recurrent}
            used = self._uses(path, None, facts)  # what the module's own statements use
            if path in relevant or own or any(hit in recurrent for hit in used):
                relevant.add(path)
                feeding.update(used, (node for node in own if node[1] not in facts.classes
                                       or not _is_model_class(facts.definitions[node[1]])))
        frontier = list(feeding)
        for _ in range(FEEDING_DEPTH):
            following = []
            for path, name in frontier:
                facts = maps.get(path) or self.map(path)
                if facts is None or name not in facts.definitions or (
                        name in facts.classes and (path, name) in recurrent and _is_model_class(facts.definitions[name])):
                    continue
                for target in self._uses(path, name, facts):
                    if target not in feeding:
                        feeding.add(target)
                        following.append(target)
            frontier = following
        relevant.update(path for path, _ in feeding)
        return relevant


class _Scans:
    """Each file's imports (:func:`imported_modules`) and text, for :meth:`ProjectMap.closure`: every file is
    read, and its imports scanned only when its text could import a given module."""

    def __init__(self, files: list[str]) -> None:
        self.data: dict[str, bytes] = {}
        self.known: dict[str, tuple[set[str], str]] = {}
        self._relative: dict[str, bool] = {}  # does the file's text hold ``from .``? (asked for every target)
        self._holding: dict[str, set[str]] = {}  # name -> the files whose text holds it
        self._parts: dict[str, tuple[bool, frozenset[str]]] = {}  # see names_any
        for path in files:
            try:
                self.data[path] = read_file_bytes(Path(path))
            except SourceError:
                continue

    def naming(self, names: set[str]) -> list[str]:
        """The files whose imports may name one of ``names`` (a module or a package), or a package by dots
        alone (``from . import x``): the text holds the name, or ``from`` and a dot."""
        found = set().union(*(self._holding_of(name) for name in names))
        return [path for path in self.data if path in found or self._from_dot(path)]

    def _holding_of(self, name: str) -> set[str]:
        """The files whose text holds ``name`` (the targets of a closure share their packages' names)."""
        found = self._holding.get(name)
        if found is None:
            wanted = name.encode()
            found = self._holding[name] = {path for path, data in self.data.items() if wanted in data}
        return found

    def names_any(self, path: str, names: set[str]) -> bool:
        """Does an import of ``path`` name one of ``names`` as a part of its module (``a.b.c``), or
        a package by dots alone (``from . import x``)?"""
        parts = self._parts.get(path)
        if parts is None:
            modules = self.get(path, (set(), ""))[0]
            parts = self._parts[path] = (any(not m.strip(".") for m in modules),
                                         frozenset(part for m in modules for part in m.split(".") if part))
        return parts[0] or not parts[1].isdisjoint(names)

    def _from_dot(self, path: str) -> bool:
        found = self._relative.get(path)
        if found is None:
            found = self._relative[path] = _FROM_DOT.search(self.data[path]) is not None
        return found

    def get(self, path: str, default=None):
        if path not in self.known:
            if path not in self.data:
                return default
            try:
                text = decode(self.data[path], Path(path))[0]
            except SourceError:
                self.data.pop(path)
                return default
            self.known[path] = (imported_modules(text), text)
        return self.known[path]


# a prefilter (names_any reads the imports): without a leading ``\b`` it is 20 times faster over a whole file
_FROM_DOT = re.compile(rb"from[\s\\]+\.")


class _Reach:
    """What each file's imports reach (:meth:`ProjectMap._reaches`), resolved once, when first asked."""

    def __init__(self, project: ProjectMap, scans: _Scans) -> None:
        self.project, self.scans, self.known = project, scans, {}

    def get(self, path: str) -> tuple[set[str], set[str]]:
        if path not in self.known:
            self.known[path] = self.project._reaches(path, self.scans.get(path, (set(), ""))[0])
        return self.known[path]


class _Imports:
    """The project files each file's code can reach: what it imports, and the modules below an imported
    package that its text names (see :meth:`ProjectMap.closure`)."""

    def __init__(self, reach: _Reach) -> None:
        self.reach, self.known = reach, {}

    def get(self, path: str, default=()):
        if path not in self.known:
            files, dirs = self.reach.get(path)
            text = self.reach.scans.get(path, (set(), ""))[1]
            self.known[path] = files | {f for f in self.reach.project._under(dirs) if _module_name(f) in text}
        return self.known[path]


def _valid_verdicts(document) -> bool:
    return (isinstance(document, dict) and isinstance(document.get("relevant"), dict)
            and all(isinstance(k, str) and _strs(v) for k, v in document["relevant"].items())
            and (document.get("errors") is None or (isinstance(document["errors"], dict) and all(
                isinstance(k, str) and _valid_error(v) for k, v in document["errors"].items()))))


def _module_name(path: str) -> str:
    """The last name of the module a file is: ``sub`` for ``pkg/sub.py`` and for ``pkg/sub/__init__.py``."""
    return os.path.basename(os.path.dirname(path) if path.endswith("__init__.py") else path[:-3])


def _reach(start, edges, limit: int | None = None) -> set[str] | None:
    """``start`` and everything reachable from it along ``edges`` (None: more than ``limit`` files)."""
    seen = set(start)
    todo = list(seen)
    while todo:
        for other in edges.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
        if limit is not None and len(seen) > limit:
            return None
    return seen


def _is_model_class(words: list[str]) -> bool:
    """A class that names a module or model base (``nn.Module``, ``LightningModule``, ``keras.Model``): its
    methods see tensors, not models. Any other class (a trainer, a holder of static methods) hands values
    on like a function does."""
    return any(word.endswith(("Module", "Model")) for word in words)


def _holds(names: list[str], seeds: tuple[str, ...], facts: FileMap) -> bool:
    """Do ``names`` (written in the file of ``facts``) hold a seed word, themselves or in what they
    were imported as (``from torch.nn.utils.rnn import pack_padded_sequence as pack``)?"""
    imported = [facts.imports[head] for head in {name.partition(".")[0] for name in names} if head in facts.imports]
    joined = "\n".join(names) + "\n" + "\n".join(imported)
    return any(seed in joined for seed in seeds)
