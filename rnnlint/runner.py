"""Running the static stage over many files, on every core.

A :class:`Session` holds what one process needs: the rules, the validated
config and a project index. Large runs fork one session per core and hand out
files in chunks; each worker returns plain findings, diffs and messages. Rules
are loaded by each worker from their folders, never pickled.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rnnlint import seal
from rnnlint.analysis import analyse, syntax_error
from rnnlint.cache import ResultCache
from rnnlint.config import Config
from rnnlint.diagnostics import Diagnostic
from rnnlint.final import FinalStep
from rnnlint.fixer import FixOutcome, fix_text
from rnnlint.index import ProjectIndex
from rnnlint.registry import load_rules
from rnnlint.rule import Rule
from rnnlint.source import SourceError, SourceFile, compile_error, encode_like, read_source, write_atomic

PARALLEL_THRESHOLD = 48  # below this, starting workers costs more than it saves


@dataclass
class FileOutcome:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    fixed: list[Diagnostic] = field(default_factory=list)
    diff: str = ""
    written: bool = False
    messages: list[str] = field(default_factory=list)
    content: bytes | None = None  # the fixed content of data given in memory (stdin), never written


def display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def cache_dir(config: Config, enabled: bool) -> Path | None:
    if not enabled or seal.key_inside(config.root):  # a key the checked tree holds seals nothing
        return None
    if config.cache_dir is not None:
        return config.cache_dir
    return config.root / ".rnnlint_cache" if config.root.is_dir() else None


class Session:
    def __init__(self, config: Config, use_cache: bool = True, rules: dict[str, type[Rule]] | None = None) -> None:
        """``rules``: the rule pack the caller already loaded for ``config`` (the CLI does, to check codes)."""
        self.rules = rules if rules is not None else load_rules(config.rule_folders)
        self.config = config.with_rules(self.rules)
        directory = cache_dir(self.config, use_cache)
        self.index = ProjectIndex(self.config.root, self.config.recurrent_classes, directory)
        # check's findings per file; fix never reads them (it must see the file as it is now)
        self.results = ResultCache(directory, self.config) if directory is not None else None
        self._enabled: dict[tuple, list[type[Rule]]] = {}
        self.final = FinalStep(self.config)

    def disable_cache(self) -> None:
        """--no-cache: read and write nothing under the cache directory."""
        self.index.cache_dir = None
        self.results = None

    def enabled(self, path: Path) -> list[type[Rule]]:
        rules = self.config.enabled(self.rules, path)
        key = tuple(r.code for r in rules)
        return self._enabled.setdefault(key, rules)

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

    def check(self, path: Path, data: bytes | None = None) -> FileOutcome:
        """Check ``path``, or ``data`` (read from stdin) as if it were that file's content."""
        display = display_path(path)
        given = data is not None
        try:
            document = self._read(path, data)
        except SourceError as exc:
            return self._unreadable(path, display, exc)
        rules = self.enabled(path)

        def found() -> list[Diagnostic]:
            result = analyse(path, display, document.text, rules, self.config, self.index)
            return self.final.settle(document, path, result.diagnostics)

        if self.results is None or given:
            return FileOutcome(display, found())
        cached = self.results.get(path, document.digest, rules, display)
        if cached is not None:
            return FileOutcome(display, cached)
        self.index.note_digest(path, document.digest)
        with self.index.recording() as deps:
            diagnostics = found()
        self.results.put(path, document.digest, rules, deps, diagnostics)
        return FileOutcome(display, diagnostics)

    def fix(self, path: Path, write: bool, unsafe: bool, data: bytes | None = None) -> FileOutcome:
        """Fix ``path``, or ``data`` (read from stdin: never written, see ``content``) as if it were its content."""
        display = display_path(path)
        given = data is not None
        try:
            document = self._read(path, data)
        except SourceError as exc:
            return self._unreadable(path, display, exc)
        outcome = self.fix_document(path, display, document.text, unsafe)
        result = FileOutcome(display, [document.for_output(d) for d in outcome.remaining],
                             [document.for_output(d) for d in outcome.applied], messages=list(outcome.dropped))
        if outcome.text == document.text:
            return result
        refused = self._refuses(document, outcome.text)
        if refused is not None:
            result.messages.append(f"{display}: not fixed: {refused}")
            result.diagnostics = self.final.settle(document, path, self._analyse(path, display, document.text))
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
            result.diagnostics = self.final.settle(document, path, self._analyse(path, display, document.text))
            result.fixed = []
        return result


    def fix_document(self, path: Path, display: str, text: str, unsafe: bool,
                     choose: Callable[[list[Diagnostic]], list[Diagnostic]] | None = None) -> FixOutcome:
        """Fix ``text`` (the document at ``path``) round by round: the one fix loop, for ``fix``,
        ``verify`` and the tests. Each round fixes what the final step keeps (never a suppressed
        finding); ``choose`` narrows a round's findings (verify applies one fix at a time)."""

        def run(current: str) -> list[Diagnostic]:
            found = self.final.filter(path, current, self._analyse(path, display, current))
            return choose(found) if choose is not None else found

        return fix_text(text, run, unsafe)

    def _analyse(self, path: Path, display: str, text: str) -> list[Diagnostic]:
        return analyse(path, display, text, self.enabled(path), self.config, self.index).diagnostics

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


# -- parallel driver ----------------------------------------------------------

_worker: Session | None = None


def _init_worker(config: Config, use_cache: bool, parent: int | None = None) -> None:
    global _worker
    from rnnlint.sandbox import die_with_parent

    die_with_parent(parent)  # Linux: a worker never outlives the run that started it (nor writes after it)
    _worker = Session(config, use_cache)


def _work(task: tuple[str, str, bool, bool]) -> FileOutcome:
    path, mode, write, unsafe = task
    assert _worker is not None
    try:
        if mode == "check":
            return _worker.check(Path(path))
        return _worker.fix(Path(path), write, unsafe)
    except Exception as exc:  # an internal error on one file must not lose the others
        return _internal_error(Path(path), exc)


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
    jobs = jobs or default_jobs()
    tasks = [(str(f), mode, write, unsafe) for f in files]
    if session is not None and not use_cache:
        session.disable_cache()  # the caller keeps using it (the graph stage, its note): --no-cache holds there too
    if jobs <= 1 or len(files) < PARALLEL_THRESHOLD:
        local = session or Session(config, use_cache)
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
    import multiprocessing  # several milliseconds to import: only large runs need workers

    method = "fork" if sys.platform.startswith("linux") else None
    context = multiprocessing.get_context(method)
    # Largest files first, a few at a time: one huge file handed out last would
    # leave the other cores idle while it is analysed.
    order = sorted(range(len(tasks)), key=lambda i: -_size(files[i]))
    chunk = max(1, min(8, len(tasks) // (jobs * 32)))
    outcomes: list[FileOutcome | None] = [None] * len(tasks)
    with context.Pool(jobs, initializer=_init_worker, initargs=(config, use_cache, os.getpid())) as pool:
        for i, outcome in pool.imap_unordered(_work_indexed, [(i, tasks[i]) for i in order], chunksize=chunk):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]


def _work_indexed(item: tuple[int, tuple[str, str, bool, bool]]) -> tuple[int, FileOutcome]:
    return item[0], _work(item[1])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
