"""How many models the graph stage would build: the note ``check`` prints when the stage is off.

Read from the files' bytes first: only a file that names a recurrent module and
defines a ``Module`` subclass is handed to the model finder (and so to libcst),
so that ``rnnlint check`` on code without a recurrent model stays as light as
``--static``. Each file's count is kept in the results cache with the files it
read, so that a warm run, whose findings all come from the cache, does not load
libcst for its note either. Nothing is imported from the project or run.
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnlint.graph.rule import is_graph_rule
from rnnlint.source import SourceError, digest_bytes, read_file_bytes

_RECURRENT_WORDS = (b"LSTM", b"GRU", b"RNN")
_MODULE_CLASS = re.compile(rb"^[ \t]*class[ \t]+\w+[ \t]*\([^)]*Module", re.MULTILINE)


def count_models(files: list[Path], session, counted: list[int | None] | None = None) -> int:
    """About how many models the graph stage would build from ``files``: static, and cheap.

    Counts the classes :meth:`~rnnlint.graph.finder.ModelFinder.find` would
    build (``nn.Module`` subclasses that hold a recurrent module, as the
    project index answers) in the files and notebooks whose bytes name a
    recurrent module and define a ``Module`` subclass; the others are not
    parsed, so a model composed only of classes from other files is not
    counted (the number is a lower bound). Zero when no graph rule is enabled.
    ``counted``: what the run's workers counted as they analysed each file
    (None where they did not), so that no tree is parsed a second time here.
    """
    if not notes_models(session):
        return 0  # the rules (libcst, the flow model) need not even be loaded
    counter = ModelCounter(session)
    return sum(counted[i] if counted is not None and counted[i] is not None else counter.models(file)
               for i, file in enumerate(files))


def notes_models(session) -> bool:
    """Is a graph rule enabled, so that the note counts models at all?"""
    return any(is_graph_rule(r) and r.code != "RNN901" for r in session.config.enabled(session.catalogue))


class ModelCounter:
    """One file's count at a time (see :func:`count_models`), from the results cache or the model finder (made
    on first need). A run's worker keeps one beside its session: it counts each file it analysed, whose tree it
    holds."""

    def __init__(self, session) -> None:
        self.session = session
        self.words = _RECURRENT_WORDS + tuple(name.rsplit(".", 1)[-1].encode()
                                              for name in session.config.recurrent_classes)
        self.finder = None

    def models(self, file: Path) -> int:
        if file.suffix not in (".py", ".ipynb"):
            return 0
        path = self.session.real(file)
        try:
            data = read_file_bytes(path)
        except SourceError:
            return 0
        notebook = path.suffix == ".ipynb"  # its lines are JSON strings: no anchored pattern
        if not any(word in data for word in self.words) or not (
                b"class " in data and b"Module" in data if notebook else _MODULE_CLASS.search(data)):
            return 0
        cache, digest = self.session.results, digest_bytes(data)
        known = cache.models(path, digest) if cache is not None else None
        if known is None:
            if self.finder is None:
                from rnnlint.graph.finder import ModelFinder

                self.finder = ModelFinder(self.session)
            with self.finder.index.recording() as deps:
                known = _models_in(self.finder, path)
            if cache is not None:
                cache.put_models(path, digest, deps, known)
        return known


def _models_in(finder, path: Path) -> int:
    if finder.named(path) is None:
        return 0
    summary = finder.index.summary(path)
    return sum(1 for name, definition in (summary.definitions.items() if summary else ())
               if definition.kind == "class" and finder.is_module_class(path, name)
               and finder.index.is_recurrent(path, name))
