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


def count_models(files: list[Path], session) -> int:
    """About how many models the graph stage would build from ``files``: static, and cheap.

    Counts the classes :meth:`~rnnlint.graph.finder.ModelFinder.find` would
    build (``nn.Module`` subclasses that hold a recurrent module, as the
    project index answers) in the files and notebooks whose bytes name a
    recurrent module and define a ``Module`` subclass; the others are not
    parsed, so a model composed only of classes from other files is not
    counted (the number is a lower bound). Zero when no graph rule is enabled.
    """
    words = _RECURRENT_WORDS + tuple(name.rsplit(".", 1)[-1].encode() for name in session.config.recurrent_classes)
    candidates = []
    for path in (session.real(f) for f in files if f.suffix in (".py", ".ipynb")):
        try:
            data = read_file_bytes(path)
        except SourceError:
            continue
        notebook = path.suffix == ".ipynb"  # its lines are JSON strings: no anchored pattern
        if any(word in data for word in words) and (
                b"class " in data and b"Module" in data if notebook else _MODULE_CLASS.search(data)):
            candidates.append((path, digest_bytes(data)))
    if not candidates or not any(is_graph_rule(r) and r.code != "RNN901" for r in session.config.enabled(session.catalogue)):
        return 0  # the rules (libcst, the flow model) need not even be loaded
    cache = session.results
    count = 0
    finder = None
    for path, digest in candidates:
        known = cache.models(path, digest) if cache is not None else None
        if known is None:
            from rnnlint.graph.finder import ModelFinder

            finder = finder or ModelFinder(session)
            with finder.index.recording() as deps:
                known = _models_in(finder, path)
            if cache is not None:
                cache.put_models(path, digest, deps, known)
        count += known
    return count


def _models_in(finder, path: Path) -> int:
    if finder.named(path) is None:
        return 0
    summary = finder.index.summary(path)
    return sum(1 for name, definition in (summary.definitions.items() if summary else ())
               if definition.kind == "class" and finder.is_module_class(path, name)
               and finder.index.is_recurrent(path, name))
