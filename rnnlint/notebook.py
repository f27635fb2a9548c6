"""Jupyter notebooks: their code cells seen as one Python module, and written back.

The rules only know Python text, so a notebook is turned into a *virtual* module:
its code cells one after the other, each followed by a boundary comment line. One
module means the project index sees a class defined in one cell and trained in
another, as the kernel does. The boundary line is what lets a fix that appends
to the end of a cell stay in that cell (``insert_after`` the last statement
lands on the boundary line, before it) rather than slide into the next one.

IPython syntax that is not Python (``%magic``, ``%%cell magic``, ``!shell``,
``x = !cmd``, ``obj?``) is replaced by placeholder lines with the same line
count, so line numbers stay those of the cell. Each placeholder carries a
numbered marker: writing back restores the user's original line, and refuses
when a fix changed or removed one. Cells that parse as Python are never masked,
so a ``%`` inside a docstring is left alone.

Writing back edits the raw JSON in place: only the ``source`` values of the cells
whose code changed are re-serialised, in the style the file already uses (list
of lines or one string, indentation, ASCII escapes); outputs, metadata, key
order and everything else keep their exact bytes.

Cells are numbered from 1 among *all* cells of the notebook (markdown included),
so ``cell N`` is ``nb["cells"][N - 1]``. Neither ``nbformat`` nor torch is used.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from functools import cached_property
from json.decoder import scanstring
from pathlib import Path

from rnnlint.diagnostics import Diagnostic, Position
from rnnlint.source import SourceError, SourceFile, digest_bytes, read_file

BOUNDARY = "# -- rnnlint: end of cell --"
_MARKER = "rnnlint-ipython-line-"
_MARKER_RE = re.compile(r"#\s*" + _MARKER + r"(\d+)\s*$")
# Cell magics whose body is ordinary Python that the kernel runs.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})
_HELP = re.compile(r"^\s*(\?{1,2}[\w.*]+|[\w.*]+\?{1,2})\s*$")
_ASSIGN_MAGIC = re.compile(r"^\s*[\w.]+(\s*,\s*[\w.]+)*\s*=\s*[!%]")
_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


@dataclass
class Cell:
    """Where one code cell sits in the virtual text."""

    number: int  # 1-based among all cells
    first_line: int  # virtual line of the cell's first line
    lines: int  # lines the cell occupies (its boundary line excluded)
    final_newline: bool  # did the cell's own source end with a newline?
    markers: list[int] = field(default_factory=list)


@dataclass
class Notebook:
    path: Path
    source: SourceFile  # the raw JSON: what write_atomic checks and replaces
    text: str  # the virtual Python module
    cells: list[Cell]
    placeholders: dict[int, tuple[str, str]]  # marker -> (placeholder line, original line)
    _starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._starts = [cell.first_line for cell in self.cells]

    # -- positions ------------------------------------------------------------

    def locate(self, line: int) -> tuple[int, int]:
        """``(cell number, line in cell)`` of a virtual line.

        A cell's boundary line maps to the line after its last: where text
        appended to the cell goes.
        """
        if not self.cells:
            return 1, line
        i = max(0, bisect_right(self._starts, line) - 1)
        cell = self.cells[i]
        return cell.number, line - cell.first_line + 1

    def virtual_line(self, cell_number: int, cell_line: int) -> int:
        for cell in self.cells:
            if cell.number == cell_number:
                return cell.first_line + cell_line - 1
        raise KeyError(f"no code cell {cell_number}")

    def _position(self, position: Position, cell_number: int) -> Position:
        """``position`` relative to ``cell_number`` (clamped when it lies past that cell)."""
        number, line = self.locate(position.line)
        if number != cell_number:
            cell = next(c for c in self.cells if c.number == cell_number)
            return Position(cell.lines + 1, 1) if number > cell_number else Position(1, 1)
        return Position(line, position.column)

    def stored_position(self, cell_number: int, position: Position) -> Position:
        """Where a cell-relative ``position`` lies in the notebook file as stored: a line and column of its JSON.

        What tools that only know files need (GitHub annotations, SARIF
        regions). A cell's ``source`` is a JSON list of lines or one string,
        with escapes (``\\"``, ``\\n``, ``\\u00e9``): the position is found in the
        decoded code, then in the string literal that holds it. A position past
        the cell's end maps to the end of its ``source``; the column of a line
        masked as IPython is clamped to the line.
        """
        raw = self.source.text
        start, end = self._spans[cell_number - 1]
        literals = list(_items(raw, start)) if raw[start] == "[" else [(start, end)]
        code = _joined(json.loads(raw[start:end]))
        lines = _split_lines(code)
        if position.line > len(lines):
            offset = len(code)
        else:
            width = len(lines[position.line - 1].rstrip("\n"))
            offset = sum(map(len, lines[: position.line - 1])) + min(position.column - 1, width)
        at = end - 1  # past everything: before the closing bracket or quote
        seen = 0
        for literal_start, literal_end in literals:
            raw_offsets = _decoded_offsets(raw, literal_start, literal_end)
            if offset < seen + len(raw_offsets):
                at = raw_offsets[offset - seen]
                break
            seen += len(raw_offsets)
            at = literal_end - 1
        number = bisect_right(self._line_starts, at)
        return Position(number, at - self._line_starts[number - 1] + 1)

    @cached_property
    def _spans(self) -> dict[int, tuple[int, int]]:
        return _source_spans(self.source.text)

    @cached_property
    def _line_starts(self) -> list[int]:
        """Offsets in the raw JSON where its lines start (outputs can make it megabytes long)."""
        return [0, *(match.end() for match in re.finditer("\n", self.source.text))]

    # -- the document members Session uses (see rnnlint.source.SourceFile) ------

    @property
    def digest(self) -> str:
        return self.source.digest

    @property
    def file(self) -> SourceFile:
        """What a fix overwrites: the notebook's JSON."""
        return self.source

    def render(self, text: str) -> str:
        """The notebook's new JSON once its virtual module is ``text`` (checked: see :meth:`rebuild`)."""
        return self.rebuild(text)[0]

    def for_output(self, diagnostic: Diagnostic) -> Diagnostic:
        """The finding located by cell and line in cell, for output.

        ``line``/``end_line`` become lines within the cell (as Ruff reports
        them); fix edits are made cell-relative and name their own cell, since
        an import a fix needs may go to another cell than the finding.
        """
        cell, cell_line = self.locate(diagnostic.start.line)
        fix = diagnostic.fix
        if fix is not None:
            edits = []
            for edit in fix.edits:
                edit_cell, _ = self.locate(edit.start.line)
                edits.append(
                    replace(
                        edit,
                        start=self._position(edit.start, edit_cell),
                        end=self._position(edit.end, edit_cell),
                        cell=edit_cell,
                    )
                )
            fix = replace(fix, edits=tuple(edits))
        return replace(
            diagnostic,
            start=Position(cell_line, diagnostic.start.column),
            end=self._position(diagnostic.end, cell),
            cell=cell,
            cell_line=cell_line,
            fix=fix,
        )

    # -- writing back ---------------------------------------------------------

    def split(self, text: str) -> list[str]:
        """The code of each cell in a (fixed) virtual text, IPython lines restored.

        Raises :class:`SourceError` when a fix crossed a cell boundary or changed
        a masked IPython line: such a result cannot be put back into cells.
        """
        chunks: list[list[str]] = [[]]
        for line in _split_lines(text):
            if line.rstrip("\r\n") == BOUNDARY:
                chunks.append([])
            else:
                chunks[-1].append(line)
        if chunks[-1]:
            raise SourceError("a fix added code after the last cell; not written")
        chunks.pop()
        if len(chunks) != len(self.cells):
            raise SourceError("a fix changed the cell boundaries; not written")
        codes = []
        for cell, lines in zip(self.cells, chunks):
            seen = []
            for i, line in enumerate(lines):
                match = _MARKER_RE.search(line)
                if not match:
                    continue
                marker = int(match.group(1))
                placeholder, original = self.placeholders.get(marker, (None, ""))
                body = line.rstrip("\r\n")
                if body != placeholder:
                    raise SourceError(f"a fix would edit an IPython line in cell {cell.number}; not written")
                lines[i] = original + line[len(body):]
                seen.append(marker)
            if seen != cell.markers:
                raise SourceError(f"a fix would move or remove an IPython line in cell {cell.number}; not written")
            code = "".join(lines)
            if not cell.final_newline and code.endswith("\n"):
                code = code[:-1]
            codes.append(code)
        return codes

    def rebuild(self, text: str) -> tuple[str, list[int]]:
        """The notebook's raw JSON with the cells' code taken from ``text``.

        Returns the new JSON text and the numbers of the cells that changed. The
        result is checked: it must load as JSON and read back to exactly ``text``.
        """
        raw = self.source.text
        data = json.loads(raw)
        for number, cell in enumerate(data["cells"], start=1):  # nbformat requires both; never guess
            if not isinstance(cell, dict):
                raise SourceError(f"not a valid notebook: cell {number} is not a JSON object")
            if cell.get("cell_type") == "code" and "source" not in cell:
                raise SourceError(f'not a valid notebook: code cell {number} has no "source"')
        spans = _source_spans(raw)
        new_codes = self.split(text)
        ascii_only = raw.isascii()
        pieces = []
        last = 0
        changed = []
        for cell, code in zip(self.cells, new_codes):
            old = data["cells"][cell.number - 1]["source"]
            if _joined(old) == code:
                continue
            changed.append(cell.number)
            start, end = spans[cell.number - 1]
            pieces += [raw[last:start], _serialise(raw, start, end, old, code, ascii_only)]
            last = end
        new_raw = "".join(pieces) + raw[last:]
        check = parse_notebook(self.path, new_raw, self.source.encoding)
        if check.text != text:
            raise SourceError("internal check failed: the rewritten notebook does not read back as fixed; not written")
        return new_raw, changed

    def diff(self, text: str, display: str) -> str:
        """A unified diff per changed cell (``a/nb.ipynb:cell 3``)."""
        out = []
        for cell, old, new in zip(self.cells, self.split(self.text), self.split(text)):
            if old == new:
                continue
            name = f"{display}:cell {cell.number}"
            out += difflib.unified_diff(_lines(old), _lines(new), fromfile=f"a/{name}", tofile=f"b/{name}")
        return "".join(out)


def _split_lines(text: str) -> list[str]:
    """Lines with their ends, split at ``\\n`` only (as cells count them)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _lines(code: str) -> list[str]:
    lines = _split_lines(code)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _joined(source) -> str:
    return "".join(source) if isinstance(source, list) else source


# -- reading ------------------------------------------------------------------


def read_notebook(path: Path, data: bytes | None = None) -> Notebook:
    """Read ``path`` (or ``data``, its content given on stdin) as a notebook; :class:`SourceError`
    (reported as RNN900) says why not."""
    # no size limit: outputs make notebooks big, not their code
    data, identity = read_file(path, limit=None) if data is None else (data, None)
    encoding = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"
    try:
        raw = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"not a valid notebook: not UTF-8 (byte 0x{data[exc.start]:02x} on line {line})"
        raise SourceError(message, line) from None
    notebook = parse_notebook(path, raw, encoding)
    notebook.source.digest = digest_bytes(data)
    notebook.source.data = data
    notebook.source.identity = identity
    return notebook


def parse_notebook(path: Path, raw: str, encoding: str = "utf-8") -> Notebook:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"not a valid notebook: invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise SourceError(message, exc.lineno) from None
    except RecursionError:
        raise SourceError("not a valid notebook: JSON nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        version = data.get("nbformat") if isinstance(data, dict) else None
        hint = ""
        if version == 3:
            hint = "; nbformat 3 notebooks are not supported: `jupyter nbconvert --to notebook` upgrades them"
        raise SourceError(f'not a valid notebook: no "cells" list{hint}')
    source = SourceFile(path=path, text=raw, encoding=encoding, digest=digest_bytes(raw.encode(encoding)))
    if not _is_python(data):
        return Notebook(path, source, "", [], {})
    parts: list[str] = []
    cells: list[Cell] = []
    placeholders: dict[int, tuple[str, str]] = {}
    line = 1
    for number, cell in enumerate(data["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        code = cell.get("source", "")
        if isinstance(code, list) and all(isinstance(s, str) for s in code):
            code = "".join(code)
        if not isinstance(code, str):
            raise SourceError(f"not a valid notebook: cell {number} has a source that is not text")
        final_newline = code.endswith("\n") or code == ""
        if not final_newline:
            code += "\n"
        masked = Cell(number, line, code.count("\n"), final_newline)
        code = _mask(code, masked, placeholders)
        cells.append(masked)
        parts += [code, BOUNDARY + "\n"]
        line += masked.lines + 1
    return Notebook(path, source, "".join(parts), cells, placeholders)


def _is_python(data: dict) -> bool:
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    for key in ("language_info", "kernelspec"):
        info = metadata.get(key)
        if isinstance(info, dict):
            language = info.get("name" if key == "language_info" else "language")
            if isinstance(language, str) and language:
                return language.lower() == "python"
    return True


def _mask(code: str, cell: Cell, placeholders: dict[int, tuple[str, str]]) -> str:
    """Replace the cell's IPython-only lines by numbered placeholders (same line count)."""
    try:
        ast.parse(code)
        return code  # valid Python: nothing to mask
    except (SyntaxError, ValueError):
        pass
    lines = _split_lines(code)
    stripped = [line.lstrip() for line in lines]
    # line index -> "statement" (becomes ``pass``) or "comment" (a continuation)
    kinds: dict[int, str] = {}
    first = next((i for i, s in enumerate(stripped) if s.strip()), None)
    if first is not None and stripped[first].startswith("%%"):
        words = stripped[first][2:].split(None, 1)
        kinds[first] = "statement"
        if not words or words[0] not in PYTHON_CELL_MAGICS:
            kinds.update((i, "comment") for i in range(first + 1, len(lines)))
    continued = False
    for i, (line, s) in enumerate(zip(lines, stripped)):
        if i in kinds:
            continue
        body = line.rstrip("\r\n")
        if continued:
            kinds[i] = "comment"
        elif s.startswith(("%", "!")) or _HELP.match(body) or _ASSIGN_MAGIC.match(body):
            kinds[i] = "statement"
        else:
            continue
        continued = body.endswith("\\")
    for i in sorted(kinds):
        body = lines[i].rstrip("\r\n")
        marker = len(placeholders)
        if kinds[i] == "statement":
            placeholder = f"{body[: len(body) - len(body.lstrip())]}pass  # {_MARKER}{marker}"
        else:
            placeholder = f"# {_MARKER}{marker}"
        placeholders[marker] = (placeholder, body)
        cell.markers.append(marker)
        lines[i] = placeholder + lines[i][len(body):]
    return "".join(lines)


# -- raw JSON surgery -----------------------------------------------------------


def _skip(raw: str, pos: int) -> int:
    return _WS.match(raw, pos).end()


def _members(raw: str, pos: int):
    """``(key, value start, value end)`` of the JSON object starting at ``raw[pos] == '{'``."""
    pos = _skip(raw, pos + 1)
    if raw[pos] == "}":
        return
    while True:
        key, pos = scanstring(raw, pos + 1)
        pos = _skip(raw, _skip(raw, pos) + 1)  # past ':'
        _, end = _DECODER.raw_decode(raw, pos)
        yield key, pos, end
        pos = _skip(raw, end)
        if raw[pos] == "}":
            return
        pos = _skip(raw, pos + 1)


def _items(raw: str, pos: int):
    """``(start, end)`` of each element of the JSON array starting at ``raw[pos] == '['``."""
    pos = _skip(raw, pos + 1)
    if raw[pos] == "]":
        return
    while True:
        _, end = _DECODER.raw_decode(raw, pos)
        yield pos, end
        pos = _skip(raw, end)
        if raw[pos] == "]":
            return
        pos = _skip(raw, pos + 1)


def _source_spans(raw: str) -> dict[int, tuple[int, int]]:
    """Character span of every cell's ``source`` value in the raw JSON, by cell index."""
    spans: dict[int, tuple[int, int]] = {}
    cells_at = None
    for key, start, _ in _members(raw, _skip(raw, 0)):
        if key == "cells":
            cells_at = start  # the last one wins, as in json.loads
    for index, (start, _) in enumerate(_items(raw, cells_at)):
        if raw[start] != "{":
            continue  # not a cell rebuild() can write
        for key, value_start, value_end in _members(raw, start):
            if key == "source":
                spans[index] = (value_start, value_end)
    return spans


def _decoded_offsets(raw: str, start: int, end: int) -> list[int]:
    """The offset in ``raw`` of each character that the JSON string literal ``raw[start:end]`` decodes to."""
    offsets = []
    i = start + 1
    while i < end - 1:
        offsets.append(i)
        if raw[i] != "\\":
            i += 1
        elif raw[i + 1] != "u":
            i += 2
        elif 0xD800 <= _hex(raw, i) < 0xDC00 and raw.startswith("\\u", i + 6) and 0xDC00 <= _hex(raw, i + 6) < 0xE000:
            i += 12  # a surrogate pair: one character
        else:
            i += 6
    return offsets


def _hex(raw: str, i: int) -> int:
    """The code unit of the ``\\uXXXX`` escape at ``raw[i]``."""
    return int(raw[i + 2 : i + 6], 16)


def _serialise(raw: str, start: int, end: int, old, code: str, ascii_only: bool) -> str:
    """The new ``source`` value for ``code``, written like the old one was."""
    if isinstance(old, str):
        return json.dumps(code, ensure_ascii=ascii_only)
    new_lines = _split_lines(code)
    if not new_lines:
        return "[]"
    items = list(_items(raw, start))
    reuse = {old[i]: raw[a:b] for i, (a, b) in enumerate(items)}  # unchanged lines keep their exact escapes
    if items:
        prefix = raw[start + 1 : items[0][0]]
        suffix = raw[items[-1][1] : end - 1]
        separator = raw[items[0][1] : items[1][0]] if len(items) > 1 else "," + prefix
    else:  # an empty list: indent one level deeper than the "source" key's line
        line_start = raw.rfind("\n", 0, start) + 1
        indent = re.match(r"[ \t]*", raw[line_start:]).group()
        unit = re.match(r"\{\s*?\n([ \t]*)", raw)
        unit_text = unit.group(1) if unit and unit.group(1) else " "
        prefix, suffix = "\n" + indent + unit_text, "\n" + indent
        separator = "," + prefix
    body = separator.join(reuse.get(line) or json.dumps(line, ensure_ascii=ascii_only) for line in new_lines)
    return "[" + prefix + body + suffix + "]"

