"""The last step every finding passes before it is reported or fixed.

Static findings, syntax errors (RNN900) and the graph stage's findings
(``graph/stage.py``'s reporter asks :meth:`FinalStep.keeps`) all come through
here, whichever stage made them:

* ``per-file-ignores`` drop the codes they name for the files they match;
* ``# noqa`` comments drop what they name (see :mod:`rnnlint.static.noqa`), read from
  each file's comment tokens once per text;
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
    def __init__(self, config: Config) -> None:
        self.config = config
        self._noqa: dict[tuple[Path, int], Suppressions] = {}  # (file, hash of its text): read once per text

    def keeps(self, path: Path, text: str, code: str, line: int) -> bool:
        """Is a finding ``code`` at ``line`` of ``path`` (whose text is ``text``) reported?"""
        if self._ignored(path, code):
            return False
        key = (path, hash(text))
        if key not in self._noqa:
            self._noqa[key] = Suppressions(text)
        return not self._noqa[key].suppressed(code, line)

    def filter(self, path: Path, text: str, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """The findings of ``text`` (lines of ``text``) that are reported."""
        return [d for d in diagnostics if self.keeps(path, text, d.code, d.line)]

    def settle(self, document, path: Path, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        """Filtered, then placed for output (a notebook's at their cell)."""
        return [document.for_output(d) for d in self.filter(path, document.text, diagnostics)]

    def _ignored(self, path: Path, code: str) -> bool:
        if not self.config.per_file_ignores:
            return False
        rel = self.config.relative(path)
        return any(code.startswith(c) for pattern, codes in self.config.per_file_ignores
                   if _glob_match(rel, pattern) for c in codes)
