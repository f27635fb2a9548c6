"""Applying fixes: edits checked before anything is written.

Round by round: analyse, take the allowed fixes whose edits do not overlap
(identical edits, such as the same ``import torch`` needed by two fixes, are
shared), apply them, and re-parse. A fix whose result does not parse is dropped
and reported; overlapping fixes wait for the next round, when they are computed
afresh on the new text. The loop ends when nothing more is fixable, so running
``fix`` again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import libcst as cst

from rnnlint.diagnostics import Applicability, Diagnostic, Edit, Fix
from rnnlint.static.noqa import split_lines

MAX_ROUNDS = 10


class EditError(Exception):
    pass


def apply_edits(text: str, edits: list[Edit]) -> str:
    """Apply non-overlapping edits given in line/column positions."""
    starts = [0]
    for line in _line_lengths(text):
        starts.append(starts[-1] + line)

    def offset(line: int, column: int) -> int:
        if line - 1 >= len(starts):
            raise EditError(f"edit position {line}:{column} is past the end of the file")
        return starts[line - 1] + column - 1

    spans = sorted(
        ((offset(e.start.line, e.start.column), offset(e.end.line, e.end.column), e.content) for e in set(edits)),
        reverse=True,
    )
    out = text
    previous_start = None
    for begin, end, content in spans:
        if previous_start is not None and end > previous_start:
            raise EditError("overlapping edits")
        out = out[:begin] + content + out[end:]
        previous_start = begin
    return out


def _line_lengths(text: str) -> list[int]:
    lengths = []
    position = 0
    lines = split_lines(text)
    for line in lines[:-1]:
        # find the real newline length after this line
        position += len(line)
        newline = 2 if text.startswith("\r\n", position) else 1
        lengths.append(len(line) + newline)
        position += newline
    lengths.append(len(lines[-1]))
    return lengths


def _overlaps(a: Fix, taken: list[Edit]) -> bool:
    for edit in a.edits:
        for other in taken:
            if edit == other:
                continue
            # touching insertions at the same point are ambiguous: wait a round
            if edit.start < other.end and other.start < edit.end:
                return True
            if edit.start == other.start:
                return True
    return False


def allowed(fix: Fix | None, unsafe: bool) -> bool:
    if fix is None:
        return False
    if fix.applicability is Applicability.SAFE:
        return True
    return unsafe and fix.applicability is Applicability.UNSAFE


@dataclass
class FixOutcome:
    text: str
    applied: list[Diagnostic] = field(default_factory=list)
    remaining: list[Diagnostic] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # messages about fixes that could not be applied


def fix_text(text: str, analyse: Callable[[str], list[Diagnostic]], unsafe: bool) -> FixOutcome:
    """Fix ``text`` as far as allowed; ``analyse`` reports findings for a text."""
    outcome = FixOutcome(text=text)
    rejected: set[tuple[str, str]] = set()
    diagnostics = analyse(text)
    for _ in range(MAX_ROUNDS):
        candidates = [
            d for d in diagnostics if allowed(d.fix, unsafe) and (d.code, d.message) not in rejected
        ]
        if not candidates:
            break
        chosen: list[Diagnostic] = []
        taken: list[Edit] = []
        for diagnostic in candidates:
            if not _overlaps(diagnostic.fix, taken):
                chosen.append(diagnostic)
                taken.extend(diagnostic.fix.edits)
        new_text = _try(text, taken)
        if new_text is None:
            # find the culprits one by one, keep the fixes that work
            chosen_ok = []
            taken = []
            for diagnostic in chosen:
                attempt = _try(text, taken + list(diagnostic.fix.edits))
                if attempt is None:
                    rejected.add((diagnostic.code, diagnostic.message))
                    outcome.dropped.append(
                        f"{diagnostic.path}:{diagnostic.line}: fix for {diagnostic.code} dropped: "
                        "the result would not parse (please report this)"
                    )
                else:
                    chosen_ok.append(diagnostic)
                    taken.extend(diagnostic.fix.edits)
            chosen = chosen_ok
            new_text = _try(text, taken) if taken else None
            if new_text is None:
                continue
        if new_text == text:
            break
        outcome.applied.extend(chosen)
        text = new_text
        diagnostics = analyse(text)
    outcome.text = text
    outcome.remaining = diagnostics
    return outcome


def _try(text: str, edits: list[Edit]) -> str | None:
    try:
        new_text = apply_edits(text, edits)
        cst.parse_module(new_text)
    except (EditError, cst.ParserSyntaxError, RecursionError):
        return None
    return new_text
