"""``# noqa`` comments, as Ruff and flake8 users expect them.

* ``# noqa: RNN001, RNN020`` on a finding's line suppresses those codes there
  (prefixes work too: ``# noqa: RNN0``);
* a bare ``# noqa`` suppresses every finding on the line;
* ``# rnnlint: noqa: RNN001`` on a line of its own suppresses the code in the
  whole file, and ``# rnnlint: noqa`` suppresses the whole file (after code on
  the same line, they act on that line only).

``check``, ``fix`` and ``--add-noqa`` all go through :class:`Suppressions`, so a
finding is suppressed identically everywhere.
"""

from __future__ import annotations

import re

# Codes are matched in any case (``# noqa: rnn020``): a lower-case code must not
# turn into a bare ``# noqa`` that silences every rule on the line.
_CODES = r"(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+|\s+[A-Z]+[0-9]+)*)"
# ``# rnnlint: noqa`` after code on the same line acts on that line only.
_LINE = re.compile(r"#\s*(?:rnnlint\s*:\s*)?noqa(?::\s*" + _CODES + ")?", re.IGNORECASE)
_FILE = re.compile(r"^\s*#\s*rnnlint\s*:\s*noqa(?::\s*" + _CODES + r")?\s*$", re.MULTILINE | re.IGNORECASE)
_SPLIT = re.compile(r"[\s,]+")
ALL = "*"


def _codes(group: str | None) -> frozenset[str]:
    if not group:
        return frozenset({ALL})
    return frozenset(c.upper() for c in _SPLIT.split(group.strip()) if c)


class Suppressions:
    """The ``noqa`` comments of one file's text."""

    def __init__(self, text: str) -> None:
        self.file_codes: frozenset[str] = frozenset()
        self._by_line: dict[int, frozenset[str]] = {}
        if "noqa" not in text.lower():
            return
        file_codes: set[str] = set()
        for match in _FILE.finditer(text):
            file_codes |= _codes(match.group("codes"))
        self.file_codes = frozenset(file_codes)
        for number, line in enumerate(split_lines(text), start=1):
            if "#" not in line:
                continue
            for match in _LINE.finditer(line):
                if _FILE.match(line):
                    continue
                self._by_line[number] = self._by_line.get(number, frozenset()) | _codes(match.group("codes"))

    def suppressed(self, code: str, line: int) -> bool:
        for codes in (self.file_codes, self._by_line.get(line, frozenset())):
            if ALL in codes or any(code.startswith(c) for c in codes):
                return True
        return False


_NEWLINE = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines as Python's tokenizer (and libcst) count them, without newlines."""
    return _NEWLINE.split(text)
