"""``# noqa`` comments, as Ruff and flake8 users expect them.

* ``# noqa: RNN001, RNN020`` on a finding's line suppresses those codes there
  (prefixes work too: ``# noqa: RNN0``);
* a bare ``# noqa`` suppresses every finding on the line;
* ``# rnnlint: noqa: RNN001`` on a line of its own suppresses the code in the
  whole file, and ``# rnnlint: noqa`` suppresses the whole file (after code on
  the same line, they act on that line only).

Only comments count: they are read from the tokenizer's COMMENT tokens, so a
``"# noqa"`` inside a string literal (a docstring, a help text) suppresses
nothing. Every finding passes :mod:`rnnlint.static.final`, which reads a file's
comments once and applies them, so ``check``, ``fix``, the graph stage and
``--add-noqa`` suppress identically.
"""

from __future__ import annotations

import io
import re
import tokenize

# Codes are matched in any case (``# noqa: rnn020``): a lower-case code must not
# turn into a bare ``# noqa`` that silences every rule on the line.
_CODES = r"(?P<codes>[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+|\s+[A-Z]+[0-9]+)*)"
# ``# rnnlint: noqa`` after code on the same line acts on that line only.
_LINE = re.compile(r"#\s*(?:rnnlint\s*:\s*)?noqa(?::\s*" + _CODES + ")?", re.IGNORECASE)
_FILE = re.compile(r"^#\s*rnnlint\s*:\s*noqa(?::\s*" + _CODES + r")?\s*$", re.IGNORECASE)
_SPLIT = re.compile(r"[\s,]+")
ALL = "*"


def _codes(group: str | None) -> frozenset[str]:
    if not group:
        return frozenset({ALL})
    return frozenset(c.upper() for c in _SPLIT.split(group.strip()) if c)


def first_noqa(comment: str) -> tuple[frozenset[str], int] | None:
    """The first ``# noqa`` of a comment: its codes (:data:`ALL` for a bare one) and the column its
    list of codes ends at (-1 when bare), for ``--add-noqa`` to append to; None without one."""
    match = _LINE.search(comment)
    if match is None:
        return None
    return _codes(match.group("codes")), match.end("codes") if match.group("codes") else -1


def comments(text: str) -> list[tuple[int, str, bool]]:
    """``(line, comment text, alone on its line)`` for every comment of ``text``.

    A file the tokenizer gives up on (a syntax error, an unterminated string:
    still worth a ``# noqa: RNN900``) keeps the comments read up to there, and
    its later lines are read as text, as nothing better can tell there what is
    a comment.
    """
    found: list[tuple[int, str, bool]] = []
    lines = split_lines(text)
    last = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text, newline=None).readline):
            last = token.start[0]
            if token.type == tokenize.COMMENT:
                line = lines[token.start[0] - 1] if token.start[0] <= len(lines) else token.line
                found.append((token.start[0], token.string, not line[: token.start[1]].strip()))
    except (tokenize.TokenError, SyntaxError):
        seen = {number for number, _, _ in found}
        for number in range(max(last, 1), len(lines) + 1):
            line = lines[number - 1]
            at = line.find("#")
            if at >= 0 and number not in seen:
                found.append((number, line[at:], not line[:at].strip()))
    return found


class Suppressions:
    """The ``noqa`` comments of one file's text."""

    def __init__(self, text: str) -> None:
        self.file_codes: frozenset[str] = frozenset()
        self._by_line: dict[int, frozenset[str]] = {}
        if "noqa" not in text.lower():
            return
        file_codes: set[str] = set()
        for number, comment, alone in comments(text):
            whole_file = _FILE.match(comment) if alone else None
            if whole_file:
                file_codes |= _codes(whole_file.group("codes"))
                continue
            for match in _LINE.finditer(comment):
                self._by_line[number] = self._by_line.get(number, frozenset()) | _codes(match.group("codes"))
        self.file_codes = frozenset(file_codes)

    def suppressed(self, code: str, line: int) -> bool:
        for codes in (self.file_codes, self._by_line.get(line, frozenset())):
            if ALL in codes or any(code.startswith(c) for c in codes):
                return True
        return False


_NEWLINE = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines as Python's tokenizer (and libcst) count them, without newlines."""
    return _NEWLINE.split(text)
