"""Running the static stage over many files, on every core.

A :class:`Session` holds what one process needs: the rules, the validated
config and a project index. Large runs fork one session per core and hand out
files in chunks; each worker returns plain findings, diffs and messages. Rules
are loaded from their folders, never pickled.

A large run on Linux goes: the project map on every core; which files can
matter, decided in a forked copy while the run loads libcst and the rules and
parses the seed files (:func:`_decide_beside`); then the workers fork from the
run and inherit all of that, frozen for their collector (:func:`_workers`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rnnlint import seal
from rnnlint.static.cache import ResultCache
from rnnlint.static.catalogue import rule_classes, rule_set
from rnnlint.config import Config
from rnnlint.diagnostics import Diagnostic, syntax_error
from rnnlint.static.final import FinalStep
from rnnlint.static.projectmap import ProjectMap, sorted_paths, syntax_findings, walk_project
from rnnlint.rule import Rule, triggered
from rnnlint.source import RealPaths, SourceError, display_path, SourceFile, compile_error, encode_like, read_source, write_atomic

if TYPE_CHECKING:  # libcst, the flow model and the rules load when a file reaches them (see Session.index)
    from rnnlint.static.fixer import FixOutcome
    from rnnlint.static.index import ProjectIndex

PARALLEL_THRESHOLD = 48  # below this, starting workers costs more than it saves
# "0": every file the rules' text prefilter passes reaches libcst, as before the project map: what the
# benchmarks and the relevance test compare against (the findings must be the same)
RELEVANCE_ENV = "RNNLINT_RELEVANCE"
# Mapping a file costs CPython's parse, analysing one libcst's and the rules' (20-50 times more): the
# whole project is mapped when the run checks at least 1 file in MAP_PAYS of it; below that (pre-commit)
# only the files a checked file's relevance depends on (ProjectMap.closure)
MAP_PAYS = 20
# ... unless that neighbourhood holds more than CLOSURE_LIMIT files per checked file (a module every
# package imports): then the checked files are read with libcst, as without the map, and a warm
# pre-commit run is served by the results cache
CLOSURE_LIMIT = 200
#: unmapped files from which a run on a few files maps the rest of its project on every core (see scope)
MAP_IN_PARALLEL = 200


@dataclass
class FileOutcome:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    fixed: list[Diagnostic] = field(default_factory=list)
    diff: str = ""
    written: bool = False
    messages: list[str] = field(default_factory=list)
    content: bytes | None = None  # the fixed content of data given in memory (stdin), never written
    models: int | None = None  # the models --graph would build from the file, when the worker counted them


def analyse(path: Path, display: str, text: str, rules: list[type[Rule]], config: Config, index: "ProjectIndex",
            keep: str | None = None):
    """:func:`rnnlint.static.analysis.analyse`, imported on first use (it imports libcst)."""
    from rnnlint.static.analysis import analyse as analyse_file

    return analyse_file(path, display, text, rules, config, index, keep)


def cache_dir(config: Config, enabled: bool) -> Path | None:
    if not enabled or seal.key_inside(config.root):  # a key the checked tree holds seals nothing
        return None
    if config.cache_dir is not None:
        return config.cache_dir
    if config.folders:  # no project holds the inputs: no folder of theirs is ours to write in
        return None
    return config.root / ".rnnlint_cache" if config.root.is_dir() else None


class Session:
    def __init__(self, config: Config, use_cache: bool = True, rules: dict[str, type[Rule]] | None = None) -> None:
        """``rules``: the rule pack the caller already loaded for ``config`` (the CLI does, to check codes)."""
        # what selecting rules and deciding relevance read: the catalogue's entries (see
        # rnnlint.static.catalogue), or the rule classes when the caller or rule-folders loaded them
        self.catalogue = rules if rules is not None else rule_set(config.rule_folders)
        self.config = config.with_rules(self.catalogue)
        self._rules: dict[str, type[Rule]] | None = None
        self.cache_dir = directory = cache_dir(self.config, use_cache)
        self._index: ProjectIndex | None = None
        self._files: list[Path] | None = None
        # check's findings per file; fix never reads them (it must see the file as it is now)
        self.results = ResultCache(directory, self.config) if directory is not None else None
        self._enabled: dict[tuple | None, list[type[Rule]]] = {}  # None: every file's, without per-file-ignores
        self.final = FinalStep(self.config)
        #: check's note on the models --graph would build will be printed: a run's workers count each file's as
        #: they analyse it (see rnnlint.graph.count), rather than the parent parsing those files again after
        self.note_models = False
        self.relevance = os.environ.get(RELEVANCE_ENV, "1") != "0"
        self.checked: list[Path] = []  # the run's files: the project map covers them too
        self.jobs = 1  # processes the run may use (run() sets it): mapping a large project takes them all
        self.verdicts: dict[tuple[str, tuple[str, ...]], bool] = {}  # (file, relevance words) -> can matter
        self._map: ProjectMap | None = None
        self._scope: frozenset[Path] | None = None
        self._whole = False  # relevance was decided over the whole project (not a closure: see _matters)
        self._closure: set[str] | None = None
        self.real = RealPaths()  # path.resolve(), once per path: a large run asks for each several times
        self._trigger_sets: dict[tuple[str, ...], frozenset[str]] = {}
        self._readings: dict[tuple, list[type[Rule]]] = {}
        self._present_key: tuple | None = None  # (path, hash of text) whose relevance words _present holds
        self._present: frozenset[str] = frozenset()
        self._every_word: frozenset[str] | None = None  # every rule's relevance words (see _text_has_any)
        self._rule_word_sets: dict[tuple[str, ...], set] = {}  # see _known_not_to_matter
        self._rule_words: dict[str, tuple[str, ...]] = {}

    @property
    def index(self) -> "ProjectIndex":
        """The project index (libcst, the flow model): built when a file first reaches libcst."""
        if self._index is None:
            from rnnlint.flow import SUMMARISERS
            from rnnlint.static.index import ProjectIndex

            self._index = ProjectIndex(self.config.root, self.config.recurrent_classes, self.cache_dir, SUMMARISERS,
                                       self.config.folders)
            self._index._files = self._files
            if self.relevance:  # the flow model's scans keep to the files that matter, as in a run over the
                # whole project: a run on a few files (pre-commit) maps the project when a scan first asks
                # (cached by content), rather than parsing with libcst every file a scan's words let in
                self._index.scope = self.scope
                self._index.relevance = self.relevant_to
        return self._index

    def project_files(self) -> list[Path]:
        """Every Python file of the project (the index's list, walked once)."""
        if self._files is None:
            self._files = self._index.all_files() if self._index is not None else \
                walk_project(self.config.root, self.config.folders)
        return self._files

    def classes(self, rules: list) -> list[type[Rule]]:
        """The rule classes of ``rules`` (catalogue entries until a file needs them: see
        :mod:`rnnlint.static.catalogue`)."""
        return rule_classes(rules, self.config.rule_folders)

    @property
    def rules(self) -> dict[str, type[Rule]]:
        """Every rule class by code, imported on first use (the graph stage asks what kind each rule is)."""
        if self._rules is None:
            self._rules = dict(zip(self.catalogue, self.classes(list(self.catalogue.values()))))
        return self._rules

    def disable_cache(self) -> None:
        """--no-cache: read and write nothing under the cache directory."""
        self.cache_dir = None
        if self._index is not None:
            self._index.cache_dir = None
        self.results = None

    def enabled(self, path: Path) -> list[type[Rule]]:
        # without per-file-ignores every file has the same rules: the path need not be resolved and matched,
        # nor the rules chosen again
        whole = not self.config.per_file_ignores
        if whole and None in self._enabled:
            return self._enabled[None]
        rules = self.config.enabled(self.catalogue, None if whole else path)
        found = self._enabled.setdefault(tuple(r.code for r in rules), rules)
        if whole:
            self._enabled[None] = found
        return found

    # -- relevance: which files reach libcst ------------------------------------

    def project_map(self) -> ProjectMap:
        """The map of every project file (see :mod:`rnnlint.static.projectmap`), built on first need."""
        if self._map is None:
            # the notebooks checked too: their code uses models and hands values to the project's files
            files = {*map(str, self.project_files()),
                     *(str(self.real(f)) for f in self.checked if f.suffix in (".py", ".ipynb"))}
            self._map = ProjectMap(self.config.root, sorted_paths(files), self.cache_dir)
        return self._map

    def scope(self) -> frozenset[Path]:
        """The files that can matter to some enabled rule: all the flow model scans project-wide."""
        if self._scope is None:
            project = self.project_map()
            if (self.jobs > 1 and sum(not project.mapped(path) for path in project.files) >= MAP_IN_PARALLEL
                    and not self.decided_before()):
                # a run on a few files of a large project, whose first project-wide search needs the whole map
                # (unless the cache holds the project's relevance as the files are now: nothing to map)
                with _pool(_context(), self.jobs) as pool:
                    self.map_project(pool)
            self._scope = frozenset().union(*(project.relevant(words) for words in self._word_sets()))
        return self._scope

    def _word_sets(self) -> set[tuple[str, ...]]:
        return {self._words(rule) for rule in self.config.enabled(self.catalogue) if rule.relevant_words is not None}

    def _words(self, rule: type[Rule]) -> tuple[str, ...]:
        """A rule's relevance words, and the configured recurrent classes' names (once per rule)."""
        found = self._rule_words.get(rule.code)
        if found is None:
            found = self._rule_words[rule.code] = self._with_config(rule.relevant_words or ())
        return found

    def _with_config(self, words: tuple[str, ...]) -> tuple[str, ...]:
        extra = (name.rsplit(".", 1)[-1] for name in self.config.recurrent_classes)
        return tuple(sorted({*words, *extra}))

    def relevant_to(self, words: tuple[str, ...]) -> frozenset[Path] | None:
        """The project files that can matter to the enabled rules whose relevance words are ``words``: a
        subset of :meth:`scope`. A rule's project-wide search keeps to these: a file outside could hold
        nothing the rule reports, in itself or in another file. None when the run has not worked them out
        with the scope (no enabled rule has these words; a worker that was not forked from the run, which
        is handed the scope alone): the search then keeps to the scope, as before."""
        key = self._with_config(words)
        if key not in self._word_sets():
            return None
        self.scope()  # the whole project's relevance: mapped first when a few files are checked
        return self.project_map().worked_out(key)

    def _matters(self, path: Path, text: str, rule: type[Rule]) -> bool:
        """Can ``rule`` report anything in this file? Its text decides when it holds one of the rule's
        relevance words (or is a notebook, which the map does not read); else the project map."""
        if rule.relevant_words is None or path.suffix != ".py":
            return True
        words = self._words(rule)
        if any(word in text for word in words):
            return True
        key = (str(self.real(path)), words)
        if key not in self.verdicts:
            if not self._whole and len(self.checked) * MAP_PAYS < len(self.project_files()):
                # a few files of a large project (pre-commit): their neighbourhood decides, not the project
                checked = sorted({str(f.resolve()) for f in self.checked if f.suffix == ".py"})
                if key[0] not in checked:
                    return True  # code given on stdin: the map would read the file on disk, not this text
                project = self.project_map()
                if self._closure is None:
                    self._closure = project.closure(checked, CLOSURE_LIMIT * len(checked)) or set()
                if not self._closure:
                    return True  # a neighbourhood as large as a project: reading the files costs less
                found = project.relevant(words, self._closure)
                for file in checked:
                    self.verdicts[(file, words)] = Path(file) in found
            else:
                self._whole = True  # the flow model's scans keep to the files that matter from now on
                self.verdicts[key] = self.real(path) in self.project_map().relevant(words)
        return self.verdicts[key]

    def _triggers(self, rules: list) -> frozenset[str]:
        """Every text trigger of ``rules``: each is looked for once per file, not once per rule."""
        key = tuple(rule.code for rule in rules)
        if key not in self._trigger_sets:
            self._trigger_sets[key] = frozenset(part for rule in rules for t in rule.triggers
                                                for part in ((t,) if isinstance(t, str) else t))
        return self._trigger_sets[key]

    def _known_not_to_matter(self, path: Path, text: str, rules: list) -> bool:
        """Has the map already said that none of ``rules`` (RNN900 aside) can report anything in this file?"""
        if path.suffix != ".py":
            return False
        key = tuple(rule.code for rule in rules)
        sets = self._rule_word_sets.get(key)
        if sets is None:  # the distinct relevance words of the rules (None: a rule without)
            sets = self._rule_word_sets[key] = {
                None if rule.relevant_words is None else self._words(rule) for rule in rules if rule.code != "RNN900"}
        if None in sets:
            return False
        real = str(self.real(path))
        return all(self.verdicts.get((real, words)) is False for words in sets) and not any(
            self._text_has_any(path, text, words) for words in sets)

    def _text_has_any(self, path: Path, text: str, words: tuple[str, ...]) -> bool:
        """Does ``text`` hold one of ``words``? Every rule's words are looked for once per file."""
        key = (path, hash(text))
        if self._present_key != key:
            if self._every_word is None:
                self._every_word = frozenset(
                    word for rule in self.catalogue.values() if rule.relevant_words for word in self._words(rule))
            self._present_key, self._present = key, frozenset(word for word in self._every_word if word in text)
        return not self._present.isdisjoint(words)

    def reading(self, path: Path, text: str, rules: list[type[Rule]]) -> list[type[Rule]]:
        """The rules that read this file with libcst: those its text passes the triggers of (see
        :meth:`Rule.wants`) and for which it can matter (RNN900 with them). None: CPython's parser, the
        project map's, is all the file needs."""
        if not self.relevance:
            return rules
        key = (path, hash(text), tuple(rule.code for rule in rules))  # decide() asked already, check() asks again
        if key not in self._readings:
            self._readings[key] = self._reading(path, text, rules)
        return self._readings[key]

    def _reading(self, path: Path, text: str, rules: list[type[Rule]]) -> list[type[Rule]]:
        if self._known_not_to_matter(path, text, rules):
            return []  # decided already (most files of a large run): no trigger need be looked for
        present = {trigger for trigger in self._triggers(rules) if trigger in text}
        wanted = [rule for rule in rules if rule.code != "RNN900" and _wants(rule, text, present)]
        kept = [rule for rule in wanted if self._matters(path, text, rule)]
        if not kept:
            return []
        return [rule for rule in rules if rule in kept or rule not in wanted]

    def decided_before(self) -> bool:
        """Does the cache hold the whole project's relevance as the files are now (nothing to map)?"""
        return all(self.project_map().known(words) for words in self._word_sets())

    def map_project(self, pool) -> None:
        """Map every project file not mapped yet, on ``pool``'s workers."""
        project = self.project_map()
        cache = str(project.cache_dir) if project.cache_dir is not None else None
        todo = [(str(project.root), path, cache) for path in project.files if not project.mapped(path)]
        for path, facts, digest in pool.imap_unordered(_map_file, todo, chunksize=max(1, len(todo) // 64)):
            project.add(path, facts, digest)

    def may_analyse(self) -> bool:
        """Once the project is mapped: may any file reach libcst? Not when every enabled rule has relevance
        words, no file holds one (nor is refused by CPython) and no notebook is checked."""
        rules = [rule for rule in self.config.enabled(self.catalogue) if rule.code != "RNN900"]
        return (any(path.suffix != ".py" for path in self.checked) or any(r.relevant_words is None for r in rules)
                or any(self.project_map().seeds(self._words(rule)) for rule in rules))

    def decide(self, files: list[Path], settle: Callable[[int, SourceFile], None] | None = None) -> list[int]:
        """Decide beforehand which rules read each of ``files`` (and the flow model's scope); the
        positions of the files libcst need not read. ``settle(position, document)`` is called for each as it
        is found, with the file as read (so that it is not read again)."""
        self.decide_relevance(files)
        skipped = []
        for i, path in enumerate(files):
            if path.suffix != ".py":
                continue
            try:
                document = read_source(path)
            except SourceError:
                continue
            if not self.reading(path, document.text, self.enabled(path)):
                skipped.append(i)
                if settle is not None:
                    settle(i, document)
        return skipped

    def prepare_analysis(self, until: Callable[[], bool]) -> None:
        """Load libcst, the flow model and the enabled rules, then parse the files whose map holds a
        relevance word (largest first) into the project index, until ``until()`` says to stop. A rule
        folder that fails to load is reported by the first file that needs it, as before."""
        try:
            from rnnlint.static import analysis  # noqa: F401

            index = self.index
            self.classes(self.config.enabled(self.catalogue))
        except Exception:  # noqa: BLE001
            return
        project = self.project_map()
        index.accepted = project.accepted()  # libcst need not ask CPython again (see parse_python)
        seeds = {path for words in self._word_sets() for path in project.seeds(words)}
        for path in sorted(seeds, key=lambda path: -_size(Path(path))):
            if until():
                return
            index.tree(Path(path))

    def decision(self) -> tuple:
        """What :meth:`decide` worked out, for the process this one was forked from (see :meth:`adopt`)."""
        return self.verdicts, self._scope, self.project_map().decided()

    def adopt(self, decision: tuple) -> None:
        """Take over what a forked copy of this session decided (:meth:`decision`)."""
        self.verdicts, self._scope, relevant = decision
        self._whole = True
        self.project_map().adopt(relevant)

    def decide_relevance(self, files: list[Path]) -> None:
        """Whether each of ``files`` can matter to each set of relevance words (and the flow model's scope)."""
        project = self.project_map()
        self.scope()
        self._whole = True
        for words in self._word_sets():
            relevant = project.relevant(words)
            for path in files:
                if path.suffix == ".py":
                    self.verdicts[(str(self.real(path)), words)] = self.real(path) in relevant

    def _skipped(self, path: Path, display: str, document) -> FileOutcome:
        """A file libcst need not read: RNN900 from CPython's parser (the map's), if RNN900 is on."""
        if not any(rule.code == "RNN900" for rule in self.enabled(path)):
            return FileOutcome(display)
        if self._map is None:
            return FileOutcome(display, self.final.settle(document, path, syntax_findings(display, document.text)))
        error = self._map.error(str(self.real(path)))
        found = [] if error is None else [syntax_error(display, *error)]
        return FileOutcome(display, self.final.settle(document, path, found))

    def _unreadable(self, path: Path, display: str, exc: SourceError) -> FileOutcome:
        """RNN900 for a file that cannot be read or decoded, unless RNN900 is off for it."""
        if not any(rule.code == "RNN900" for rule in self.enabled(path)):
            return FileOutcome(display)
        return FileOutcome(display, self.final.filter(path, "", [syntax_error(display, str(exc), exc.line)]))

    def _read(self, path: Path, data: bytes | None = None):
        """The file as a document (see :class:`~rnnlint.source.SourceFile`): a notebook or a source file.

        ``data``: its bytes as read from stdin rather than from ``path``.
        """
        if path.suffix == ".ipynb":
            from rnnlint.notebook import read_notebook

            return read_notebook(path, data)
        return read_source(path, data)

    def _open(self, path: Path, display: str, data: bytes | None, document: SourceFile | None = None):
        """``(document, the rules that read it)``, or the finished outcome of a file that is unreadable
        or that no rule needs to read. ``document``: the file as the caller has just read it from disk."""
        try:
            document = document or self._read(path, data)
        except SourceError as exc:
            return self._unreadable(path, display, exc)
        rules = self.reading(path, document.text, self.enabled(path))
        return (document, rules) if rules else self._skipped(path, display, document)

    def check(self, path: Path, data: bytes | None = None, document: SourceFile | None = None) -> FileOutcome:
        """Check ``path``, or ``data`` (read from stdin) as if it were that file's content; ``document``:
        the file as just read from disk (see :meth:`decide`)."""
        display = display_path(path, self.real(path))
        given = data is not None
        opened = self._open(path, display, data, document)
        if isinstance(opened, FileOutcome):
            return opened
        document, rules = opened

        # a source file as it is on disk: its tree serves the rest of the run (a notebook's code is no file's)
        keep = document.digest if not given and path.suffix == ".py" else None

        def found() -> list[Diagnostic]:
            result = analyse(path, display, document.text, self.classes(rules), self.config, self.index, keep)
            return self.final.settle(document, path, result.diagnostics)

        if self.results is None or given:
            return FileOutcome(display, found())
        # keyed by the rules that read the file: whether it matters to a rule is asked again each run
        cached = self.results.get(path, document.digest, rules, display)
        if cached is not None:
            return FileOutcome(display, cached)
        self.index.note_digest(path, document.digest)
        with self.index.recording() as deps:
            diagnostics = found()
        self.results.put(path, document.digest, rules, deps, diagnostics)
        return FileOutcome(display, diagnostics)

    def cached(self, path: Path) -> FileOutcome | None:
        """``check``'s outcome when no rule reads the file or the results cache holds its findings;
        None when the file must be analysed (the parallel run hands out only those)."""
        display = display_path(path, self.real(path))
        opened = self._open(path, display, None)
        if isinstance(opened, FileOutcome):
            return opened
        document, rules = opened
        found = self.results.get(path, document.digest, rules, display) if self.results is not None else None
        return FileOutcome(display, found) if found is not None else None

    def fix(self, path: Path, write: bool, unsafe: bool, data: bytes | None = None) -> FileOutcome:
        """Fix ``path``, or ``data`` (read from stdin: never written, see ``content``) as if it were its content."""
        display = display_path(path, self.real(path))
        given = data is not None
        opened = self._open(path, display, data)
        if isinstance(opened, FileOutcome):
            return opened  # unreadable, or nothing a rule could fix
        document, rules = opened
        outcome = self.fix_document(path, display, document.text, unsafe, rules=rules)
        result = FileOutcome(display, [document.for_output(d) for d in outcome.remaining],
                             [document.for_output(d) for d in outcome.applied], messages=list(outcome.dropped))
        if outcome.text == document.text:
            return result
        refused = self._refuses(document, outcome.text)
        if refused is not None:
            result.messages.append(f"{display}: not fixed: {refused}")
            result.diagnostics = self.final.settle(document, path, self._analyse(path, display, document.text, rules))
            result.fixed = []
            return result
        try:
            new_content = document.render(outcome.text)  # a notebook that cannot take the fix raises here
            result.diff = document.diff(outcome.text, display)
            if given:
                result.content = encode_like(document.file, new_content)
            elif write:
                write_atomic(document.file, new_content, self.config.root)
                result.written = True
        except (SourceError, OSError) as exc:
            result.messages.append(f"{display}: not written: {exc}")
            # what was "fixed" is still there
            result.diagnostics = self.final.settle(document, path, self._analyse(path, display, document.text, rules))
            result.fixed = []
        return result


    def _analyse(self, path: Path, display: str, text: str, rules: list) -> list[Diagnostic]:
        return analyse(path, display, text, self.classes(rules), self.config, self.index).diagnostics

    def fix_document(self, path: Path, display: str, text: str, unsafe: bool,
                     choose: Callable[[list[Diagnostic]], list[Diagnostic]] | None = None,
                     rules: list[type[Rule]] | None = None) -> FixOutcome:
        """Fix ``text`` (the document at ``path``) round by round: the one fix loop, for ``fix``,
        ``verify`` and the tests. Each round fixes what the final step keeps (never a suppressed
        finding); ``choose`` narrows a round's findings (verify applies one fix at a time); ``rules``:
        the rules that read this file (default: every enabled one)."""
        from rnnlint.static.fixer import fix_text

        rules = rules if rules is not None else self.enabled(path)

        def run(current: str) -> list[Diagnostic]:
            found = self._analyse(path, display, current, rules)
            found = self.final.filter(path, current, found)
            return choose(found) if choose is not None else found

        return fix_text(text, run, unsafe)

    @staticmethod
    def _refuses(document, new_text: str) -> str | None:
        """Why a fixed text must not be written: CPython refuses the file, or would refuse the fix.

        A notebook's cells are IPython, not a module CPython compiles: the JSON
        round trip checks them instead.
        """
        if not isinstance(document, SourceFile):
            return None
        error = compile_error(document.text, str(document.path))
        if error is not None:
            return f"Python {sys.version_info[0]}.{sys.version_info[1]} refuses this file ({error}); nothing is fixed"
        error = compile_error(new_text, str(document.path))
        if error is not None:
            return f"the fixed text would not compile ({error}); please report this"
        return None


def _wants(rule, text: str, present: frozenset[str] | set[str]) -> bool:
    """``rule.wants(text)``, from the triggers found in ``text`` unless the rule has its own ``wants``."""
    if getattr(rule.wants, "__func__", None) is Rule.wants.__func__ or not isinstance(rule, type):
        return triggered(rule.triggers, present)
    return rule.wants(text)


# -- parallel driver ----------------------------------------------------------

_worker: Session | None = None
_counter = None  # the worker's ModelCounter, when the run notes the models --graph would build
_prepared: Session | None = None  # the session a forked worker takes over (see _decide_beside)


def _init_worker(config: Config, use_cache: bool, parent: int | None = None, decided: tuple | None = None,
                 later=None, note_models: bool = False) -> None:
    """``decided``: what the parent's project map decided (see run), so that no worker maps again; or
    ``later``, a queue it comes through once the parent has worked it out, while the worker loads libcst,
    the flow model and the enabled rules (half a second that is then off the run's critical path).
    ``note_models``: count the models of each file checked (see :attr:`Session.note_models`)."""
    global _worker, _counter
    _die_with(parent)  # Linux: a worker never outlives the run that started it (nor writes after it)
    _worker = _prepared if _prepared is not None else Session(config, use_cache)
    if later is not None:
        try:
            from rnnlint.static import analysis  # noqa: F401  (what the first file would import)

            _worker.index  # noqa: B018
            _worker.classes(_worker.config.enabled(_worker.catalogue))
        except Exception:  # noqa: BLE001  a rule folder that fails to load: the first file reports it, as before
            pass
        decided = later.get()
    if decided is not None:
        scope, verdicts, accepted = decided
        _worker._scope = scope
        _worker.verdicts = verdicts
        _worker.index.accepted = accepted
    if note_models:
        from rnnlint.graph.count import ModelCounter, notes_models

        _counter = ModelCounter(_worker) if notes_models(_worker) else None


def _work(task: tuple[str, str, bool, bool]) -> FileOutcome:
    path, mode, write, unsafe = task
    assert _worker is not None
    try:
        if mode != "check":
            return _worker.fix(Path(path), write, unsafe)
        outcome = _worker.check(Path(path))
    except Exception as exc:  # an internal error on one file must not lose the others
        return _internal_error(Path(path), exc)
    if _counter is not None:
        try:
            outcome.models = _counter.models(Path(path))
        except Exception:  # noqa: BLE001  a hint never costs a finding: the run's parent counts the file again
            pass
    return outcome


def _map_file(task: tuple[str, str, str | None]):
    """One file's map, in a worker (see :meth:`Session.decide`), and the hash of the content it maps."""
    root, path, cache = task
    project = _mapper(root, cache)
    try:
        return path, project.map(path), project.digests.get(path)
    finally:
        project.forget(path)  # a worker keeps no map: each is sent to the run


@functools.lru_cache(maxsize=4)
def _mapper(root: str, cache: str | None) -> ProjectMap:
    """A worker's map maker for one project and cache (made once: a map per file cost more than its parse)."""
    return ProjectMap(Path(root), [], Path(cache) if cache else None)


def _internal_error(path: Path, exc: Exception) -> FileOutcome:
    display = display_path(path)
    return FileOutcome(display, messages=[f"{display}: internal error: {type(exc).__name__}: {exc}"])


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def run(
    files: list[Path],
    config: Config,
    mode: str = "check",
    write: bool = False,
    unsafe: bool = False,
    jobs: int | None = None,
    use_cache: bool = True,
    session: Session | None = None,
) -> list[FileOutcome]:
    """Check or fix ``files``; outcomes come back in the order of ``files``."""
    outcomes = _run(files, config, mode, write, unsafe, jobs, use_cache, session)
    if mode == "fix" and write and any(o.written for o in outcomes):
        _settle_remaining(files, outcomes, config)
    return outcomes


def _settle_remaining(files: list[Path], outcomes: list[FileOutcome], config: Config) -> None:
    """What remains after ``fix --apply``, checked again over the written project. A finding may depend
    on another file (a LightningModule's on the Trainer that fits it, lengths on the caller that moved
    them): fixing that file later in the run removes it, and what the run says remains must be what
    ``check`` then finds."""
    again = Session(config, False)
    again.checked = files
    for i, outcome in enumerate(outcomes):
        if outcome.diagnostics and not outcome.messages:
            try:
                outcome.diagnostics = again.check(files[i]).diagnostics
            except Exception as exc:
                outcomes[i] = _internal_error(files[i], exc)


def _run(files: list[Path], config: Config, mode: str, write: bool, unsafe: bool, jobs: int | None,
         use_cache: bool, session: Session | None) -> list[FileOutcome]:
    jobs = jobs or default_jobs()
    tasks = [(str(f), mode, write, unsafe) for f in files]
    if session is not None and not use_cache:
        session.disable_cache()  # the caller keeps using it (the graph stage, its note): --no-cache holds there too
    if jobs <= 1 or len(files) < PARALLEL_THRESHOLD:
        local = session or Session(config, use_cache)
        local.checked = files
        local.jobs = jobs
        outcomes = []
        for path, _, _, _ in tasks:
            try:
                if mode == "check":
                    outcomes.append(local.check(Path(path)))
                else:
                    outcomes.append(local.fix(Path(path), write, unsafe))
            except Exception as exc:
                outcomes.append(_internal_error(Path(path), exc))
        return outcomes
    local = session or Session(config, use_cache)
    if not use_cache:
        local.disable_cache()
    local.checked = files
    local.jobs = jobs
    context = _context()
    outcomes: list[FileOutcome | None] = [None] * len(tasks)
    skipped: list[int] = []
    pool = later = None
    beside = False  # relevance is worked out in a forked copy of this process (see _decide_beside)
    try:
        if local.relevance:
            # the project map first, on every core; then the files that cannot matter are the parent's:
            # reading them costs less than handing them out
            if not local.decided_before():
                with _pool(context, jobs) as mapping:
                    local.map_project(mapping)
                if local.may_analyse():
                    if context.get_start_method() == "fork":
                        beside = True
                    else:  # the workers load libcst and the rules while relevance is worked out
                        later = context.SimpleQueue()
                        pool = _workers(context, jobs, (config, use_cache, os.getpid(), None, later, local.note_models))

            def outcome_of(i: int, document: SourceFile) -> FileOutcome:  # a file no rule reads
                try:
                    return local.check(files[i], document=document) if mode == "check" else \
                        local.fix(files[i], write, unsafe)
                except Exception as exc:
                    return _internal_error(files[i], exc)

            def settle(i: int, document: SourceFile) -> None:
                outcomes[i] = outcome_of(i, document)

            if mode == "check" and local.results is not None and pool is None and not beside:
                # a warm run (relevance cached: nothing was mapped), or one where no file can reach libcst:
                # each file is settled by its relevance or from the results cache, on every core; only what
                # the cache lacks is analysed below
                local.decide_relevance(files)
                _settle_cached(local, files, outcomes, jobs, context)
            else:
                found = _decide_beside(local, files, outcome_of, context) if beside else None
                if found is None:
                    skipped = local.decide(files, settle)
                else:
                    skipped, settled = found
                    for i, outcome in settled.items():
                        outcomes[i] = outcome
                if mode == "check" and local.results is not None:  # what the cache holds needs no worker
                    for i, path in enumerate(files):
                        if i not in skipped:
                            outcomes[i] = _cached(local, path)
        skip = set(skipped)
        # Largest files first, a few at a time: one huge file handed out last would
        # leave the other cores idle while it is analysed.
        order = sorted((i for i in range(len(tasks)) if outcomes[i] is None and i not in skip),
                       key=lambda i: -_size(files[i]))
        chunk = max(1, min(8, len(order) // (jobs * 32)))
        decided = (local.scope(), local.verdicts, local.project_map().accepted()) if local.relevance else None
        if later is not None:
            for _ in range(jobs):
                later.put(decided)
        elif order:
            global _prepared
            _prepared = local if beside else None  # the workers fork from here: they inherit the session
            try:
                pool = _workers(context, jobs, (config, use_cache, os.getpid(), decided, None, local.note_models))
            finally:
                _prepared = None
        if order:
            for i, outcome in pool.imap_unordered(_work_indexed, [(i, tasks[i]) for i in order], chunksize=chunk):
                outcomes[i] = outcome
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return outcomes  # type: ignore[return-value]


def _workers(context, jobs: int, initargs: tuple):
    """The analysis workers (see :func:`_init_worker`). A forked worker starts with what this process
    holds, the project map and perhaps libcst's trees of the seed files, frozen (:func:`gc.freeze`): its
    collections leave it out (each full one would walk it all) and do not write to the pages it shares.
    This process gets its collector back as it was."""
    import gc

    fork = context.get_start_method() == "fork"
    if fork:
        gc.freeze()
    try:
        return _pool(context, jobs, _init_worker, initargs)
    finally:
        if fork:
            gc.unfreeze()


def _decide_beside(session: Session, files: list[Path], outcome_of: Callable[[int, SourceFile], FileOutcome],
                   context) -> tuple[list[int], dict[int, FileOutcome]] | None:
    """:meth:`Session.decide` in a forked copy of this process, while this one loads libcst, the flow
    model and the rules, and parses the files that hold a relevance word (the map's seeds), largest first,
    until the copy's answer comes. The analysis workers fork from this process next and inherit all of
    it. Each worker would otherwise load libcst itself, and the seeds are the files every worker's
    project-wide questions (the callers of a model, the modules that pack) lead to: each parsed them again.

    The positions of the files no rule reads, with their outcomes (``outcome_of``); None when the copy
    failed in any way (this process then decides itself, as a run without a fork does)."""
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_decide_child, args=(session, files, outcome_of, writer, os.getpid()),
                            daemon=True)
    with _forking():
        child.start()
    writer.close()
    try:
        session.prepare_analysis(until=reader.poll)
        skipped, settled, decision = reader.recv()
    except (EOFError, OSError):
        return None  # the copy died before it answered
    except BaseException:
        child.terminate()  # Ctrl-C (or a bug here): its answer is not wanted
        raise
    finally:
        reader.close()
        child.join()
    session.adopt(decision)
    return skipped, settled


def _decide_child(session: Session, files: list[Path], outcome_of, writer, parent: int) -> None:
    """The forked copy's side of :func:`_decide_beside`: decide, and send what was decided."""
    _die_with(parent)
    settled: dict[int, FileOutcome] = {}
    try:
        skipped = session.decide(files, lambda i, document: settled.__setitem__(i, outcome_of(i, document)))
        writer.send((skipped, settled, session.decision()))
    except Exception:  # noqa: BLE001  nothing is sent: the parent decides itself and meets the error there
        pass
    finally:
        writer.close()


def _cached(session: Session, path: Path) -> FileOutcome | None:
    try:
        return session.cached(path)
    except Exception as exc:  # an internal error on one file must not lose the others
        return _internal_error(path, exc)


_warm: tuple[Session, list[Path]] | None = None  # what the forked workers of _settle_cached read


def _settle_cached(session: Session, files: list[Path], outcomes: list, jobs: int, context) -> None:
    """Fill ``outcomes`` with :meth:`Session.cached` of every file, on ``jobs`` workers forked from this
    process (they inherit the session and its decided relevance). Reading, hashing and looking up a
    thousand files is a warm run's whole cost: on one core it is slower than Ruff's warm run on two."""
    global _warm
    if context.get_start_method() != "fork":  # a worker that is not a fork would know nothing decided
        for i, path in enumerate(files):
            outcomes[i] = _cached(session, path)
        return
    _warm = (session, files)
    try:
        parts = [list(range(start, len(files), jobs * 4)) for start in range(jobs * 4)]
        with _pool(context, jobs) as pool:
            for part in pool.imap_unordered(_cached_part, parts):
                for i, outcome in part:
                    outcomes[i] = outcome
    finally:
        _warm = None


def _die_with(parent: int | None) -> None:
    """What every process a run forks does first: die with the run (Linux), and leave Ctrl-C to it. The
    run stops its workers itself (``Pool.terminate``); a worker that took the KeyboardInterrupt too would
    print its own traceback under the run's "Aborted!". Forked with Ctrl-C held (:func:`_forking`), it
    lets it through only once it ignores it."""
    import signal

    from rnnlint.sandbox import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _forking():
    """Hold Ctrl-C while this process forks workers (POSIX): a child forked in the moment before it
    ignores Ctrl-C (see :func:`_die_with`) would otherwise take it. This process gets a Ctrl-C pressed
    meanwhile as soon as the forks are done: none is lost."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _pool(context, jobs: int, initializer: Callable = _die_with, initargs: tuple | None = None):
    """``jobs`` worker processes, forked with Ctrl-C held (:func:`_forking`). By default they do nothing
    first but die with this process and leave Ctrl-C to it (:func:`_die_with`)."""
    with _forking():
        return context.Pool(jobs, initializer=initializer, initargs=initargs or (os.getpid(),))


def _cached_part(positions: list[int]) -> list[tuple[int, FileOutcome | None]]:
    assert _warm is not None
    session, files = _warm
    return [(i, _cached(session, files[i])) for i in positions]


def _context():
    """Worker processes forked from this one where that is safe and cheap (Linux), else the platform's way."""
    import multiprocessing  # several milliseconds to import: only large runs need workers

    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)


def _work_indexed(item: tuple[int, tuple[str, str, bool, bool]]) -> tuple[int, FileOutcome]:
    return item[0], _work(item[1])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
