"""The last step every finding passes before it is reported or fixed.

Static findings, syntax errors (RNN900) and the graph stage's findings
(``graph/stage.py``'s reporter asks a :class:`FileStep` per file) all come through
here, whichever stage made them:

* ``per-file-ignores`` drop the codes they name for the files they match;
* ``# noqa`` comments drop what they name (see :mod:`rnnlint.static.noqa`), read from
  each file's comment tokens once per text, and kept only while that file's findings
  are being finalised (:class:`FileStep`);
* a notebook's findings are placed at their cell and line in the cell.

``fix`` applies fixes only to what is left here, so a suppressed finding is
never fixed (:meth:`rnnlint.static.runner.Session.fix_document`, the one fix loop).
"""

from __future__ import annotations

from pathlib import Path

from rnnlint.config import Config, _glob_match
from rnnlint.diagnostics import Diagnostic
from rnnlint.static.noqa import Suppressions


class FinalStep:
    """The final step of a run: its configuration; :meth:`file` makes the step for one file."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def file(self, path: Path, text: str) -> "FileStep":
        """The final step for the findings of ``path`` whose text is ``text``: held while that file's
        findings are finalised, then dropped with its ``# noqa`` comments (a run keeps none of them)."""
        return FileStep(self, path, text)

    def filter(self, path: Path, text: str, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """The findings of ``text`` (lines of ``text``) that are reported."""
        step = self.file(path, text)
        return [d for d in diagnostics if step.keeps(d.code, d.line)]

    def settle(self, document, path: Path, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Filtered, then placed for output (a notebook's at their cell)."""
        return [document.for_output(d) for d in self.filter(path, document.text, diagnostics)]

    def ignored(self, path: Path, code: str) -> bool:
        """Does a ``per-file-ignores`` entry drop ``code`` in ``path``?"""
        if not self.config.per_file_ignores:
            return False
        rel = self.config.relative(path)
        return any(code.startswith(c) for pattern, codes in self.config.per_file_ignores
                   if _glob_match(rel, pattern) for c in codes)


class FileStep:
    """The final step for one file's text: its ``# noqa`` comments are read once, on the first finding
    that per-file-ignores leave."""

    def __init__(self, step: FinalStep, path: Path, text: str) -> None:
        self.step = step
        self.path = path
        self.text = text
        self._noqa: Suppressions | None = None

    def keeps(self, code: str, line: int) -> bool:
        """Is a finding ``code`` at ``line`` of this file reported?"""
        if self.step.ignored(self.path, code):
            return False
        if self._noqa is None:
            self._noqa = Suppressions(self.text)
        return not self._noqa.suppressed(code, line)
