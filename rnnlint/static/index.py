"""The project index: what the rest of the project defines.

A training script rarely defines its model: ``from models.seq2seq import
Seq2Seq`` is enough to make its loop recurrent training. The index answers
"is this name a recurrent model?" (and similar questions) across files, by
following imports into the project.

It is demand-driven: a file is summarised only when a rule asks about a name it
defines, so a tree of ten thousand files with one training script parses the
script and the few modules it imports. Summaries are small JSON documents cached
on disk by content hash, so a pre-commit run on one file still knows the whole
project without re-parsing it.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import libcst as cst

from rnnlint import __version__, seal
from rnnlint.flow.library import RECURRENT_MODULES
from rnnlint.flow.resolve import Flow
from rnnlint.names import ImportMap, ImportMapView, canonical, dotted
from rnnlint.nodes import Visitor
from rnnlint.static import outline as _outline_module
from rnnlint.static.projectmap import EXTERNAL_ROOTS, NEVER_MODULES as _NEVER_MODULES, module_candidates, walk_project
from rnnlint.source import EXISTS, RealPaths, SourceError, decode, digest_bytes, parse_python, read_file_bytes

_SUMMARY_VERSION = 6
_MAX_DEPTH = 8

#: What another package learns about a file for the index to store: given the parsed file, its imports
#: and the calls of each of its definitions, facts by definition name (``{"padded_returns": [...]}``), each
#: fact one of :class:`Definition`'s fields. The flow package's (:data:`rnnlint.flow.SUMMARISERS`) say
#: what a file's functions and classes pad; the index stores facts and never computes them itself.
Summariser = Callable[[cst.Module, ImportMap, dict[str, list[str]]], dict[str, dict]]


@dataclass
class Definition:
    """A class, function or module-level assignment of one file."""

    kind: str  # "class" | "function" | "assign"
    line: int
    bases: list[str] = field(default_factory=list)  # classes only
    calls: list[str] = field(default_factory=list)  # dotted callees in the body / value
    returns: list[str] = field(default_factory=list)  # functions: callees in return values
    # padding facts (a Summariser's: see rnnlint.flow.padding.summarise)
    #: functions: padded positions (-1: all) or dict keys of what they return; classes: of an item
    padded_returns: list = field(default_factory=list)
    pads: dict[str, str] = field(default_factory=dict)  # padded position -> pad written by hand ("" unknown)
    loaders: dict[str, dict] = field(default_factory=dict)  # position -> facts of a returned loader's batches
    passes: dict[str, list] = field(default_factory=dict)  # returned position -> [index, name] of a parameter
    feeds: dict[str, list] = field(default_factory=dict)  # classes: forward param -> unpacked callees


@dataclass
class FileSummary:
    imports: dict[str, str]
    star_modules: list[str]
    definitions: dict[str, Definition]

    def to_json(self) -> dict:
        return {
            "imports": self.imports,
            "star_modules": self.star_modules,
            "definitions": {k: vars(v) for k, v in self.definitions.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> "FileSummary":
        """The inverse of :meth:`to_json`; ValueError for a document of the wrong shape or types."""
        if not (isinstance(data, dict) and _str_map(data.get("imports")) and _strs(data.get("star_modules"))
                and isinstance(data.get("definitions"), dict)
                and all(isinstance(k, str) and _valid_definition(v) for k, v in data["definitions"].items())):
            raise ValueError("not a file summary")
        return cls(
            imports=data["imports"],
            star_modules=data["star_modules"],
            definitions={k: Definition(**v) for k, v in data["definitions"].items()},
        )


def _strs(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _str_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _valid_definition(value) -> bool:
    """A cached :class:`Definition`: exactly its fields, each of its type (``feeds`` lists are checked loosely:
    their items are callee names or nested lists of them)."""
    return (isinstance(value, dict) and set(value) <= set(Definition.__dataclass_fields__)
            and isinstance(value.get("kind"), str) and isinstance(value.get("line"), int)
            and not isinstance(value.get("line"), bool)
            and all(_strs(value.get(k, [])) for k in ("bases", "calls", "returns"))
            and isinstance(value.get("padded_returns", []), list)
            and all(isinstance(i, (int, str)) and not isinstance(i, bool) for i in value.get("padded_returns", []))
            and _str_map(value.get("pads", {}))
            and isinstance(value.get("loaders", {}), dict)
            and all(isinstance(k, str) and isinstance(v, dict) for k, v in value.get("loaders", {}).items())
            and isinstance(value.get("passes", {}), dict)
            and all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
                    for v in value.get("passes", {}).values())
            and isinstance(value.get("feeds", {}), dict)
            and all(isinstance(k, str) and isinstance(v, list) for k, v in value.get("feeds", {}).items()))


_FACTS = frozenset(Definition.__dataclass_fields__) - {"kind", "line", "bases", "calls", "returns"}


def summarise(module: cst.Module, imports: ImportMap | None = None,
              summarisers: tuple[Summariser, ...] = (), outline: FileSummary | None = None) -> FileSummary:
    """What ``module`` defines (and imports), with the facts each of ``summarisers`` adds. ``outline``:
    the file's outline when the index holds it already (the same definitions, see
    :mod:`rnnlint.static.outline`): its definitions are copied rather than walked for again."""
    imports = imports or ImportMap(module)
    definitions: dict[str, Definition] = {}
    if outline is not None:
        for name, d in outline.definitions.items():
            definitions[name] = Definition(d.kind, d.line, list(d.bases), list(d.calls), list(d.returns))
    else:
        for stmt in module.body:
            _summarise_statement(stmt, definitions)
    calls = {name: d.calls for name, d in definitions.items() if d.kind != "assign"}
    for summariser in summarisers:
        for name, facts in summariser(module, imports, calls).items():
            if name in definitions:
                for key, value in facts.items():
                    if key in _FACTS:
                        setattr(definitions[name], key, value)
    return FileSummary(
        imports=dict(imports.names), star_modules=list(imports.star_modules), definitions=definitions
    )


def _summarise_statement(stmt: cst.CSTNode, definitions: dict[str, Definition]) -> None:
    if isinstance(stmt, cst.ClassDef):
        calls = _CallCollector.collect(stmt.body)
        bases = [d for d in (dotted(arg.value) for arg in stmt.bases) if d]
        definitions[stmt.name.value] = Definition("class", 0, bases=bases, calls=calls)
    elif isinstance(stmt, cst.FunctionDef):
        collector = _CallCollector()
        collector.walk(stmt.body)
        definitions[stmt.name.value] = Definition(
            "function", 0, calls=collector.calls, returns=collector.returns
        )
    elif isinstance(stmt, cst.SimpleStatementLine):
        for small in stmt.body:
            if isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                targets = (
                    [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                )
                value_calls = _CallCollector.collect(small.value)
                alias = dotted(small.value)
                if alias:  # LSTM = nn.LSTM
                    value_calls.append(alias)
                for target in targets:
                    if isinstance(target, cst.Name):
                        definitions[target.value] = Definition("assign", 0, calls=value_calls)
    elif isinstance(stmt, (cst.If, cst.Try)):
        # try: from apex import X / except ImportError: ...; if TYPE_CHECKING: ...
        for block in _blocks(stmt):
            for inner in block.body:
                _summarise_statement(inner, definitions)


def _blocks(stmt: cst.CSTNode):
    if isinstance(stmt, cst.If):
        yield stmt.body
        if stmt.orelse is not None:
            yield from _blocks(stmt.orelse) if isinstance(stmt.orelse, cst.If) else [stmt.orelse.body]
    elif isinstance(stmt, cst.Else):
        yield stmt.body
    elif isinstance(stmt, cst.Try):
        yield stmt.body
        for handler in stmt.handlers:
            yield handler.body
        if stmt.orelse is not None:
            yield stmt.orelse.body


class _CallCollector(Visitor):
    """Dotted names of every call (and every return value call) under a node."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.returns: list[str] = []
        self._in_return = 0

    @classmethod
    def collect(cls, node: cst.CSTNode) -> list[str]:
        collector = cls()
        collector.walk(node)
        return collector.calls

    def visit_Call(self, node: cst.Call) -> None:
        name = dotted(node.func)
        if name:
            self.calls.append(name)
            if self._in_return:
                self.returns.append(name)

    def visit_Return(self, node: cst.Return) -> None:
        self._in_return += 1
        if node.value is not None:
            name = dotted(node.value)
            if name:  # return SomeClass / return self.model
                self.returns.append(name)

    def leave_Return(self, original_node: cst.Return) -> None:
        self._in_return -= 1


class ProjectIndex:
    """Answers questions about names defined anywhere in the project.

    ``roots`` are the directories absolute imports are searched from (the project
    root and its ``src/``); the importing file's own directory and its parents up
    to the root are searched too, as ``python train.py`` would.
    """

    def __init__(
        self,
        root: Path,
        extra_recurrent: tuple[str, ...] = (),
        cache_dir: Path | None = None,
        summarisers: tuple[Summariser, ...] = (),
        folders: tuple[Path, ...] = (),
    ) -> None:
        """``summarisers``: what other packages learn about each summarised file (see :data:`Summariser`);
        ``folders``: where the project's files are walked from, when not from ``root`` (see Config.folders)."""
        self.root = root.resolve()
        self.folders = folders
        self.summarisers = tuple(summarisers)
        self.recurrent_names = RECURRENT_MODULES | {canonical(n) for n in extra_recurrent}
        self.cache_dir = cache_dir
        self._summaries: dict[Path, FileSummary | None] = {}
        self._outlines: dict[Path, FileSummary | None] = {}  # see outline()
        # memoised answers keep the files they consulted, so a later question
        # answered from the memo still records its dependencies (see recording())
        self._memo: dict[tuple, tuple[bool, dict]] = {}
        self._modules: dict[tuple[Path, str], tuple[Path | None, dict]] = {}
        self._parsed: dict[Path, tuple[cst.Module, ImportMap]] = {}
        self._digests: dict[Path, str | None] = {}  # content hash of each file read from disk
        self._recording: list[dict[Path, str | None]] = []
        self._flow = None
        self._trees: dict[Path, cst.Module | None] = {}  # other files' trees, parsed once per run
        self._texts: dict[Path, str] = {}
        self._files: list[Path] | None = None
        self._basenames: dict[str, list[Path]] | None = None
        self.scope = None  # () -> the files that can matter, or None while the run does not know (see files())
        self.relevance = None  # (words) -> the files that can matter to rules with those words (see relevant_to)
        self.accepted: frozenset[str] = frozenset()  # contents CPython's parser accepted (the project map's)
        # path.resolve(), once per path and run: the flow model asks it of the same few files hundreds of
        # thousands of times in a large project
        self.real = RealPaths()

    def flow(self):
        """The run's value-flow model (:mod:`rnnlint.flow`), built on first use over this index."""
        if self._flow is None:
            self._flow = Flow(self)
        return self._flow

    def consulted(self, path: Path, digest: str | None) -> None:
        """A project file another analysis read (the flow model): a cached result depends on it."""
        path = self.real(path)
        if digest is not None:
            self._digests[path] = digest
        self._record({path: digest if digest is not None else EXISTS})

    # -- dependency recording (for the results cache) -----------------------

    @contextmanager
    def recording(self):
        """Collect the project files consulted while the block runs.

        Yields a dict filled with ``path -> content hash`` for every file whose
        summary was used, ``EXISTS`` for a module file found by import
        resolution, and None for a candidate path that was not there (creating
        it would change what an import resolves to). A cached result is valid
        only while all of these are unchanged.
        """
        deps: dict[Path, str | None] = {}
        self._recording.append(deps)
        try:
            yield deps
        finally:
            self._recording.pop()
            if self._recording:
                self._record(deps)

    @contextmanager
    def unrecorded(self):
        """Run-wide facts (which files of the project import a package, how imports link them) are no one
        file's dependency: a cached result that listed every file would never be served."""
        saved, self._recording = self._recording, []
        try:
            yield
        finally:
            self._recording = saved

    def _record(self, deps: dict[Path, str | None]) -> None:
        if self._recording:
            current = self._recording[-1]
            for path, digest in deps.items():
                # a content hash says more than EXISTS, which says more than None
                if _rank(digest) > _rank(current.get(path, None)) or path not in current:
                    current[path] = digest

    def note_digest(self, path: Path, digest: str) -> None:
        """The content hash of a file the caller read itself (the file being analysed)."""
        self._digests[self.real(path)] = digest

    # -- summaries ---------------------------------------------------------

    def add(self, path: Path, module: cst.Module, imports: ImportMap) -> None:
        """Register a file the runner has already parsed (no second parse)."""
        path = self.real(path)
        if path not in self._summaries:
            # Summarised only if a rule asks about a name defined here.
            self._parsed[path] = (module, imports)
            # an outline read from the disk may not be this text (stdin, a fix round): made from the tree
            # when next asked, so that the summary that copies it (see _summary) is this tree's
            self._outlines.pop(path, None)

    def release(self, path: Path) -> None:
        """Forget what was learnt from a parsed file once its analysis is done.

        Keeps memory flat over large runs and keeps the next analysis of the same
        file (a later fix round, with new text) from seeing stale facts.
        """
        path = self.real(path)
        self._parsed.pop(path, None)
        self._trees.pop(path, None)
        self._texts.pop(path, None)
        self._summaries.pop(path, None)
        self._outlines.pop(path, None)
        self._digests.pop(path, None)
        self._memo = {key: value for key, value in self._memo.items() if key[-1][0] != path}
        if self._flow is not None:
            self._flow.forget(path)

    def keep(self, path: Path, text: str, module: cst.Module, digest: str) -> None:
        """Keep an analysed file's tree for the rest of the run instead of releasing it: ``text`` is the
        file as on disk (a check, never a fix round), so the tree is the one :meth:`tree` would parse.
        Another file's question that leads here is answered without a second parse, and the flow
        model's answers, which hold its nodes, stay valid (a release starts them all again).

        Released all the same when a question asked during the analysis parsed the file a second
        time (another file's context over it): answers may hold nodes of either tree."""
        path = self.real(path)
        if self._trees.get(path, module) is not module:
            self.release(path)
            return
        self._trees[path] = module
        self._texts[path] = text
        self._digests[path] = digest

    def summary(self, path: Path) -> FileSummary | None:
        path = self.real(path)
        result = self._summary(path)
        if self._recording:
            self._record({path: self._digests.get(path)})
        return result

    def _summary(self, path: Path) -> FileSummary | None:
        if path in self._summaries:
            return self._summaries[path]
        if path in self._parsed:
            module, imports = self._parsed.pop(path)
            self._summaries[path] = summarise(module, imports, self.summarisers, self._outlines.get(path))
            return self._summaries[path]
        self._summaries[path] = None  # guard against cycles while loading
        result = self._load(path)
        self._summaries[path] = result
        return result

    def outline(self, path: Path) -> FileSummary | None:
        """What ``path`` imports and defines, as :meth:`summary` says, but perhaps without the summarisers'
        facts: what lookups, lineages and :meth:`reaches` read. Made from CPython's parser
        (:mod:`rnnlint.static.outline`) unless the file's summary or tree is at hand, so a question that only
        passes through a file never parses it with libcst."""
        path = self.real(path)
        result = self._summaries.get(path) or self._outline(path)
        if self._recording:
            self._record({path: self._digests.get(path)})
        return result

    def _outline(self, path: Path) -> FileSummary | None:
        if path not in self._outlines:
            if path in self._parsed:
                self._outlines[path] = summarise(*self._parsed[path])
            else:
                self._outlines[path] = self._read_outline(path)
        return self._outlines[path]

    def _read_outline(self, path: Path) -> FileSummary | None:
        text = self._texts.get(path)
        if text is None or path not in self._digests:
            try:
                data = read_file_bytes(path)
                text, _ = decode(data, path)
            except SourceError:
                return None
            self._digests[path] = digest_bytes(data)
        key = self._digests[path]
        file = self._cache_file(key, "outline")
        document = seal.read_json(file) if file is not None else None
        if document is not None:
            try:
                return FileSummary.from_json(document)
            except (ValueError, KeyError, TypeError):
                pass
        found = _outline_module.outline(text)
        if found is None:
            return None
        imports, stars, definitions = found
        result = FileSummary(imports, stars, {name: Definition(**d) for name, d in definitions.items()})
        if file is not None:
            seal.write_json(self.cache_dir, file, result.to_json())  # type: ignore[arg-type]
        return result

    def _load(self, path: Path) -> FileSummary | None:
        try:
            data = read_file_bytes(path)  # not a FIFO (would hang), not 10 MB of generated code
        except SourceError:
            return None
        key = digest_bytes(data)
        outlined = self._outlines.get(path) if self._digests.get(path) == key else None  # of this very text
        self._digests[path] = key
        cached = self._cache_read(key)
        if cached is not None:
            return cached
        module = self._parse(path, data)
        if module is None:
            return None
        summary = summarise(module, summarisers=self.summarisers, outline=outlined)
        self._cache_write(key, summary)
        return summary

    def cached_tree(self, path: Path) -> cst.Module | None:
        """The tree :meth:`tree` already holds for ``path``, if any (never reads or parses)."""
        return self._trees.get(self.real(path))

    def tree(self, path: Path) -> cst.Module | None:
        """The parsed tree of a project file, read and parsed once per run (shared with the flow model)."""
        path = self.real(path)
        if path not in self._trees:
            try:
                data = read_file_bytes(path)
            except SourceError:
                return None
            self._digests[path] = digest_bytes(data)
            self._parse(path, data)
        if self._recording:
            self._record({path: self._digests.get(path)})
        return self._trees.get(path)

    def holds(self, path: Path, word: str) -> bool:
        """Does the text of the project file ``path`` hold ``word``? Answered from the tree's text when the
        run parsed the file, else from its bytes, without a parse (a question that needs a call only
        ``word`` can name, ``enable_padding``, skips the files that cannot hold one). Recorded like
        :meth:`tree`: a cached result that relied on the answer goes when the file changes."""
        path = self.real(path)
        text = self._texts.get(path)
        if text is not None:
            found = word in text
        else:
            try:
                data = read_file_bytes(path)
            except SourceError:
                return False
            self._digests[path] = digest_bytes(data)
            found = word.encode("utf-8") in data
        if self._recording:
            self._record({path: self._digests.get(path)})
        return found

    def _parse(self, path: Path, data: bytes) -> cst.Module | None:
        if path not in self._trees:
            try:
                text, _ = decode(data, path)
                self._texts[path] = text
                # not cst.parse_module: it crashes on deep nesting
                self._trees[path] = parse_python(text, self._digests.get(path) in self.accepted)
            except (SourceError, cst.ParserSyntaxError, SyntaxError, RecursionError, MemoryError, ValueError):
                self._trees[path] = None
        return self._trees[path]

    def text(self, path: Path) -> str | None:
        """The decoded text of a file :meth:`tree` parsed."""
        return self._texts.get(self.real(path))

    def parsed(self, path: Path, text: str) -> cst.Module | None:
        """The tree of ``text`` if this run already parsed the file with exactly that text (no second parse)."""
        path = self.real(path)
        if self._texts.get(path) == text:
            return self._trees.get(path)
        return None

    def _cache_file(self, key: str, kind: str = "index") -> Path | None:
        """Where the summary (``kind`` "index") or the outline of the content ``key`` is cached."""
        if self.cache_dir is None:
            return None
        sources = [Path(__file__)] + ([Path(inspect.getfile(s)) for s in self.summarisers] if kind == "index" else [
            Path(_outline_module.__file__), Path(_outline_module.__file__).with_name("projectmap.py")])
        code = seal.code_digest(*sources)
        return self.cache_dir / f"{kind}-{__version__}-{_SUMMARY_VERSION}-{code}" / f"{key}.json"

    def _cache_read(self, key: str) -> FileSummary | None:
        file = self._cache_file(key)
        document = seal.read_json(file) if file is not None else None
        if document is None:
            return None  # no entry, or one not sealed with this user's key (see rnnlint.seal): a miss
        try:
            return FileSummary.from_json(document)
        except (ValueError, KeyError, TypeError):
            return None

    def _cache_write(self, key: str, summary: FileSummary) -> None:
        file = self._cache_file(key)
        if file is not None:  # a read-only tree still gets correct (uncached) answers
            seal.write_json(self.cache_dir, file, summary.to_json())  # type: ignore[arg-type]

    # -- module resolution -------------------------------------------------

    def resolve_module(self, importer: Path, module: str) -> Path | None:
        """The project file that ``import <module>`` in ``importer`` loads, if any."""
        key = (importer, module)
        if key not in self._modules:
            with self.recording() as probes:
                found = self._resolve_module(self.real(importer), module)
            self._modules[key] = (found, probes)
        found, probes = self._modules[key]
        self._record(probes)
        return found

    def _resolve_module(self, importer: Path, module: str) -> Path | None:
        for candidate in module_candidates(str(importer), module, str(self.root)):
            if self._probe(Path(candidate)):
                return Path(candidate)
        return None

    def _probe(self, file: Path) -> bool:
        found = file.is_file()
        self._record({file: EXISTS if found else None})
        return found

    def lookup(self, importer: Path, name: str, depth: int = 0,
               origin: Path | None = None) -> tuple[Path, str] | None:
        """Where the dotted ``name`` used in ``importer`` is defined in the project.

        Returns ``(file, definition name)`` or None when it is not project code.
        ``name`` may start with a local definition (``Seq2Seq``), an imported
        module (``models.seq2seq.Seq2Seq``) or a relative import (``.enc.Encoder``).
        ``origin`` is the file whose import led here: Python resolves every absolute
        import of a process against the same ``sys.path``, whose first entry is the
        script's folder, so a shared ``utils.py`` one folder up that does
        ``from parameters import *`` loads the ``parameters.py`` beside the script.
        """
        if depth > _MAX_DEPTH:
            return None
        summary = self.outline(importer)
        if summary is None:
            return None
        if "." not in name.lstrip(".") and not name.startswith("."):
            if name in summary.definitions:
                return self.real(importer), name
            origin = origin or importer
            target = summary.imports.get(name)
            if target is not None and target != name:
                return self._lookup_dotted(importer, target, depth + 1, origin)
            for star in summary.star_modules:
                found = self._resolve_from(importer, star, origin)
                if found is not None:
                    hit = self.lookup(found, name, depth + 1, origin)
                    if hit:
                        return hit
            return None
        head, _, rest = name.partition(".")
        if head and head in summary.imports and not name.startswith("."):
            return self._lookup_dotted(importer, f"{summary.imports[head]}.{rest}", depth + 1, origin)
        return self._lookup_dotted(importer, name, depth + 1, origin)

    def _resolve_from(self, importer: Path, module: str, origin: Path | None) -> Path | None:
        """``resolve_module`` from ``importer``, else (an absolute import) from the folders of the file
        whose import chain reached it (see :meth:`lookup`)."""
        found = self.resolve_module(importer, module)
        if found is None and origin is not None and not module.startswith(".") and origin.parent != importer.parent:
            found = self.resolve_module(origin, module)
        return found

    def _lookup_dotted(self, importer: Path, name: str, depth: int,
                       origin: Path | None = None) -> tuple[Path, str] | None:
        # Longest module prefix that is a project file wins: models.seq2seq.Seq2Seq
        parts = name.split(".")
        lead = len(name) - len(name.lstrip("."))
        if lead:
            parts = ["." * lead + parts[lead]] + parts[lead + 1 :]
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if lead and cut == 1 and module == "." * lead:
                continue
            file = self._resolve_from(importer, module, origin)
            remainder = ".".join(parts[cut:])
            found = self.lookup(file, remainder, depth + 1, origin) if file is not None else None
            if found is None and not lead and "." not in module:
                # ``from solver import Solver`` run with the module's own folder on PYTHONPATH:
                # the project's one file of that name, if there is exactly one
                alone = self._by_basename().get(module + ".py", [])
                if len(alone) == 1 and alone[0] != file:
                    found = self.lookup(alone[0], remainder, depth + 1)
            if file is not None or found is not None:
                return found
        return None

    def files(self) -> list[Path]:
        """The Python files the flow model scans project-wide (the callers of a function, of a model's
        forward): the files that can matter when ``scope`` says which (see :mod:`rnnlint.static.projectmap`;
        a caller elsewhere hands nothing to a recurrent model), else every file of the project."""
        scoped = self.scope() if self.scope is not None else None
        if scoped is not None:
            return [path for path in self.all_files() if path in scoped]
        return self.all_files()

    def relevant_to(self, words: tuple[str, ...] | None) -> frozenset[Path] | None:
        """The project files that can matter to a rule with relevance words ``words`` (a subset of
        :meth:`files`), or None when the run does not know which: then :meth:`files` are all there is."""
        return self.relevance(words) if self.relevance is not None and words is not None else None

    def all_files(self) -> list[Path]:
        """Every Python file of the project (walked once, skipping virtual environments and caches)."""
        if self._files is None:
            self._files = walk_project(self.root, self.folders)
        return self._files

    def _by_basename(self) -> dict[str, list[Path]]:
        if self._basenames is None:
            self._basenames = {}
            for path in self.all_files():
                self._basenames.setdefault(path.name, []).append(path)
        return self._basenames

    # -- questions rules ask ----------------------------------------------

    def lineage(self, file: Path, class_name: str, depth: int = 3) -> Iterator[tuple[Path, str, Definition]]:
        """The class ``class_name`` defined in ``file``, then its bases defined in the project, theirs in
        turn, depth first in the order they are written, at most ``depth`` bases up: ``(file, name,
        definition)`` of each. The one walk up a class's project bases (what a class inherits: whether it
        builds a recurrent layer, what its ``forward`` hands back, whether it enables padding); a base
        reached again no closer to the class is not walked twice (diamonds, cycles)."""
        seen: dict[tuple[Path, str], int] = {}

        def walk(file: Path, name: str, level: int):
            summary = self.outline(file)
            definition = summary.definitions.get(name) if summary else None
            if definition is None or definition.kind != "class" or level > depth:
                return
            key = (self.real(file), name)
            if seen.get(key, depth + 1) <= level:
                return
            seen[key] = level
            yield file, name, definition
            for base in definition.bases:
                hit = self.lookup(file, base)
                if hit is not None:
                    yield from walk(*hit, level + 1)

        return walk(file, class_name, 0)

    def is_recurrent(self, importer: Path, name: str) -> bool:
        """Does calling ``name`` (as written in ``importer``) build a recurrent model?"""
        return self.reaches(importer, name, self.recurrent_names, through_calls=False)

    def reaches(self, importer: Path, name: str, targets: frozenset[str], through_calls: bool = True) -> bool:
        """Does ``name`` lead to one of ``targets`` through project definitions?

        A class reaches a target when a base or a call in its body does
        (inheritance, composition); a module-level assignment when its value
        does; a function when what it returns does (a model factory) or, with
        ``through_calls``, when any call in its body does (a clipping helper).
        Following every call of every function would walk the whole import
        closure of a large package for each question.
        """
        return self._reaches(self.real(importer), name, targets, through_calls, 0, set())

    def import_map(self, path: Path) -> ImportMap | None:
        """The import map of a file: from its parse when it is being analysed, else its summary."""
        if path in self._parsed:
            return self._parsed[path][1]
        summary = self.outline(path)
        return ImportMapView(summary) if summary is not None else None

    def _reaches(self, importer: Path, name: str, targets: frozenset[str], through_calls: bool, depth: int,
                 stack: set) -> bool:
        imports = self.import_map(importer)
        resolved = imports.resolve_dotted(name) if imports is not None else canonical(name)
        if resolved in targets:
            return True
        head = resolved.split(".")[0]
        if depth > _MAX_DEPTH or head in EXTERNAL_ROOTS or head in _NEVER_MODULES:
            return False
        hit = self.lookup(importer, name)
        if hit is None:
            return False
        key = (targets, through_calls, hit)
        if key in self._memo:
            result, deps = self._memo[key]
            self._record(deps)
            return result
        if key in stack:
            return False
        stack.add(key)
        file, definition_name = hit
        with self.recording() as deps:
            definition = self.outline(file).definitions.get(definition_name)  # type: ignore[union-attr]
            result = False
            if definition is not None:
                if definition.kind == "function" and not through_calls:
                    names = definition.returns
                elif through_calls:
                    names = definition.bases + definition.calls + definition.returns
                else:  # composition: constructors (capitalised names) build submodules
                    names = definition.bases + [n for n in definition.calls if _constructor(n)] + definition.returns
                result = any(self._reaches(file, n, targets, through_calls, depth + 1, stack) for n in names if n)
        stack.discard(key)
        self._memo[key] = (result, deps)
        return result


def _constructor(name: str) -> bool:
    """``nn.LSTM``, ``Encoder``, ``layers.Block``: a class is being instantiated (by convention)."""
    return name.rsplit(".", 1)[-1][:1].isupper()


def _rank(digest: str | None) -> int:
    return 0 if digest is None else 1 if digest == EXISTS else 2
