"""``rnnlint check --add-noqa``: suppress every current finding where it is.

A large codebase adopts rnnlint in one commit this way and fixes the findings
over time: each reported line gets ``# noqa: CODE`` (merged into a ``# noqa:``
comment already there), so the next ``check`` is clean and only new mistakes
fail CI. Info-level notes (RNN901) get none: they never fail a run. The comment
goes on the finding's reported line, which is where
:class:`rnnlint.static.noqa.Suppressions` looks for it.

A line that cannot take a comment is skipped and said so: one inside a
multi-line string (the comment would become part of the string) or ending in a
backslash continuation (a comment after ``\\`` is a syntax error). Files are
written atomically, as fixes are; notebooks are written back through their cells.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from rnnlint.diagnostics import Diagnostic, Severity
from rnnlint.static.noqa import first_noqa
from rnnlint.source import SourceError, read_source, write_atomic

_LINE_AND_END = re.compile(r"(\r\n|\r|\n)")


@dataclass
class NoqaResult:
    added: int = 0  # directives (one per code and line)
    files: int = 0
    skipped: list[str] = field(default_factory=list)  # what could not be suppressed, and why
    errors: list[str] = field(default_factory=list)  # files that could not be written


def add_noqa(diagnostics: list[Diagnostic]) -> NoqaResult:
    """Add ``# noqa`` comments for ``diagnostics`` (paths as reported, relative to the cwd)."""
    result = NoqaResult()
    by_path: dict[str, list[Diagnostic]] = {}
    for d in diagnostics:
        if d.severity is Severity.INFO:
            continue  # a note (RNN901: a model not analysed) fails nothing: a noqa would only hide it
        if d.code == "RNN900":
            result.skipped.append(f"{_where(d)}: RNN900: the file does not parse; fix it rather than suppress it")
            continue
        by_path.setdefault(d.path, []).append(d)
    for path, found in by_path.items():
        try:
            added = _add_to_file(Path(path), found, result.skipped)
        except (SourceError, OSError) as exc:
            result.errors.append(f"{path}: noqa comments not added: {exc}")
            continue
        if added:
            result.added += added
            result.files += 1
    return result


def _where(d: Diagnostic) -> str:
    return f"{d.path}:cell {d.cell}:{d.cell_line}" if d.cell is not None else f"{d.path}:{d.line}"


def _add_to_file(path: Path, found: list[Diagnostic], skipped: list[str]) -> int:
    if path.suffix == ".ipynb":
        from rnnlint.notebook import read_notebook

        notebook = read_notebook(path)
        text = notebook.text
        lines = {d: notebook.virtual_line(d.cell, d.cell_line) if d.cell is not None else d.line for d in found}
    else:
        source = read_source(path)
        text = source.text
        lines = {d: d.line for d in found}
    wanted: dict[int, set[str]] = {}
    for d, line in lines.items():
        wanted.setdefault(line, set()).add(d.code)
    new_text, added, refused = insert_noqa(text, wanted)
    for d, line in lines.items():
        if line in refused:
            skipped.append(f"{_where(d)}: {d.code}: {refused[line]}; not suppressed")
    if not added:
        return 0
    if path.suffix == ".ipynb":
        new_raw, _ = notebook.rebuild(new_text)
        write_atomic(notebook.source, new_raw)
    else:
        write_atomic(source, new_text)
    return added


def insert_noqa(text: str, wanted: dict[int, set[str]]) -> tuple[str, int, dict[int, str]]:
    """Put ``# noqa: CODES`` on the given lines of ``text``.

    Returns the new text, how many codes were added, and the lines refused
    (line -> why).
    """
    in_string, comments = _scan(text)
    parts = _LINE_AND_END.split(text)  # lines at even indices, their newlines at odd ones
    added = 0
    refused: dict[int, str] = {}
    for number, codes in sorted(wanted.items()):
        if number < 1 or 2 * (number - 1) >= len(parts):
            refused[number] = "the line is past the end of the file"
            continue
        line = parts[2 * (number - 1)]
        if number in in_string:
            refused[number] = "the line is inside a multi-line string, where a comment cannot go"
            continue
        if number not in comments and line.rstrip().endswith("\\"):
            refused[number] = "the line ends with a backslash continuation, where a comment cannot go"
            continue
        new_line, count = _merge(line, comments.get(number), codes)
        parts[2 * (number - 1)] = new_line
        added += count
    return "".join(parts), added, refused


def _merge(line: str, comment_at: int | None, codes: set[str]) -> tuple[str, int]:
    """``line`` with ``codes`` added to its noqa comment (or a new one at its end)."""
    if comment_at is not None:
        found = first_noqa(line[comment_at:])
        if found is not None:
            present, end = found
            if end < 0:  # a bare ``# noqa`` already silences everything on the line
                return line, 0
            new = sorted(codes - present)
            if not new:
                return line, 0
            at = comment_at + end
            return line[:at] + ", " + ", ".join(new) + line[at:], len(new)
    stripped = line.rstrip()
    return f"{stripped}  # noqa: {', '.join(sorted(codes))}", len(codes)


def _scan(text: str) -> tuple[set[int], dict[int, int]]:
    """Lines inside multi-line strings (not the last one), and the column of each line's comment."""
    in_string: set[int] = set()
    comments: dict[int, int] = {}
    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+ splits f-strings up
    fstrings: list[int] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                in_string.update(range(token.start[0], token.end[0]))
            elif fstring_start is not None and token.type == fstring_start:
                fstrings.append(token.start[0])
            elif fstring_start is not None and token.type == tokenize.FSTRING_END:
                in_string.update(range(fstrings.pop(), token.end[0]))
            elif token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
    except (tokenize.TokenError, SyntaxError):
        pass  # the file parsed when it was checked; keep what was scanned
    return in_string, comments
