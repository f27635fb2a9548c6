"""Findings and the edits that fix them.

Everything a stage reports is a :class:`Diagnostic`; everything a fix does is a
list of :class:`Edit` objects (plain text replacements between two positions).
Text edits, rather than syntax-tree rewrites, are what we store because they can
be printed as a diff, serialised to JSON/SARIF, checked for overlap and applied to
the exact bytes the user wrote without re-generating the rest of the file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Applicability(str, enum.Enum):
    """How much a fix may be trusted (Ruff's convention).

    ``safe`` fixes are applied by ``fix --apply``; ``unsafe`` ones change how the
    model trains and need ``--unsafe-fixes``; ``display-only`` ones are shown and
    never written.
    """

    SAFE = "safe"
    UNSAFE = "unsafe"
    DISPLAY_ONLY = "display-only"


@dataclass(frozen=True, order=True)
class Position:
    """1-based line, 1-based column (in characters, as editors count)."""

    line: int
    column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text between ``start`` (inclusive) and ``end`` (exclusive)."""

    start: Position
    end: Position
    content: str
    # In a notebook's output, the cell the (cell-relative) positions refer to.
    cell: int | None = None

    def to_json(self) -> dict:
        data = {
            "start": {"line": self.start.line, "column": self.start.column},
            "end": {"line": self.end.line, "column": self.end.column},
            "content": self.content,
        }
        if self.cell is not None:
            data["cell"] = self.cell
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Edit":
        return cls(
            Position(data["start"]["line"], data["start"]["column"]),
            Position(data["end"]["line"], data["end"]["column"]),
            data["content"],
            data.get("cell"),
        )


@dataclass(frozen=True)
class Fix:
    message: str
    applicability: Applicability
    edits: tuple[Edit, ...]

    def to_json(self) -> dict:
        return {
            "message": self.message,
            "applicability": self.applicability.value,
            "edits": [e.to_json() for e in self.edits],
        }

    @classmethod
    def from_json(cls, data: dict) -> "Fix":
        return cls(data["message"], Applicability(data["applicability"]), tuple(Edit.from_json(e) for e in data["edits"]))


@dataclass(frozen=True)
class Related:
    """A place a finding's value passed through (where an lr was defined, the file that padded a batch)."""

    path: str
    line: int
    message: str

    def to_json(self) -> dict:
        return {"path": self.path, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    name: str
    severity: Severity
    path: str
    start: Position
    end: Position
    message: str
    fix: Fix | None = None
    # Where the finding sits in a notebook (cell number, line in cell); None for .py.
    cell: int | None = None
    cell_line: int | None = None
    #: where the value the finding is about came from, source first (JSON ``related``, SARIF relatedLocations)
    related: tuple[Related, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def line(self) -> int:
        return self.start.line

    @property
    def column(self) -> int:
        return self.start.column

    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.start.line, self.start.column, self.code)

    def to_json(self) -> dict:
        data = {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "path": self.path,
            "line": self.start.line,
            "column": self.start.column,
            "end_line": self.end.line,
            "end_column": self.end.column,
            "message": self.message,
            "fix": self.fix.to_json() if self.fix else None,
        }
        if self.cell is not None:
            data["cell"] = self.cell
            data["cell_line"] = self.cell_line
        if self.related:
            data["related"] = [r.to_json() for r in self.related]
        return data

    @classmethod
    def from_json(cls, data: dict, path: str | None = None) -> "Diagnostic":
        """The inverse of :meth:`to_json` (used by the results cache); ``path`` replaces the stored one."""
        return cls(
            code=data["code"],
            name=data["name"],
            severity=Severity(data["severity"]),
            path=data["path"] if path is None else path,
            start=Position(data["line"], data["column"]),
            end=Position(data["end_line"], data["end_column"]),
            message=data["message"],
            fix=Fix.from_json(data["fix"]) if data["fix"] else None,
            cell=data.get("cell"),
            cell_line=data.get("cell_line"),
            related=tuple(Related(r["path"], r["line"], r["message"]) for r in data.get("related", [])),
        )


SYNTAX_ERROR = ("RNN900", "syntax-error")


def syntax_error(path: str, message: str, line: int = 1, column: int = 1) -> Diagnostic:
    """The RNN900 finding: a file that cannot be read or parsed, at ``line``:``column``."""
    code, name = SYNTAX_ERROR
    return Diagnostic(
        code=code,
        name=name,
        severity=Severity.ERROR,
        path=path,
        start=Position(line, column),
        end=Position(line, column),
        message=message,
    )
