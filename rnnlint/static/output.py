"""Output formats: text for people, json/sarif/github for machines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path, PurePath
from typing import Iterable
from urllib.parse import quote

import click

from rnnlint import __version__
from rnnlint.diagnostics import Applicability, Diagnostic, Position, Severity
from rnnlint.rule import Rule

FORMATS = ("text", "json", "sarif", "github")
HOMEPAGE = "https://github.com/rnnlint/rnnlint"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def location(d: Diagnostic) -> str:
    if d.cell is not None:
        return f"{d.path}:cell {d.cell}:{d.cell_line}:{d.column}"
    return f"{d.path}:{d.line}:{d.column}"


def text_line(d: Diagnostic, color: bool) -> str:
    marker = ""
    if d.fix is not None and d.fix.applicability is not Applicability.DISPLAY_ONLY:
        marker = " [*]" if d.fix.applicability is Applicability.SAFE else " [-]"
    where = click.style(location(d), bold=True) if color else location(d)
    code_color = "red" if d.severity is Severity.ERROR else ("yellow" if d.severity is Severity.WARNING else "cyan")
    code = click.style(d.code, fg=code_color, bold=True) if color else d.code
    return f"{where}: {code}{marker} {d.message}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(diagnostics: list[Diagnostic], stage: str | None = None) -> str:
    """The last line of a text report: what was found, what ``fix`` can do about it, and the notes;
    ``stage``: what the graph stage did (``graph stage: 3 models built in 4.2 s``)."""
    notes = sum(1 for d in diagnostics if d.severity is Severity.INFO)
    findings = len(diagnostics) - notes
    noted = f"{plural(notes, 'note')} (info: the exit code is unaffected)"
    tail = "".join(f"; {part}" for part in (noted if notes else "", stage) if part)
    if not findings:
        return f"No findings{tail}."
    safe, unsafe = _fixable(diagnostics)
    if safe:
        line = f"{plural(findings, 'finding')}, {safe} fixable with `rnnlint fix --apply`"
        line += f" ({unsafe} more with `--unsafe-fixes`)" if unsafe else ""
    elif unsafe:
        line = f"{plural(findings, 'finding')}, {unsafe} fixable with `rnnlint fix --apply --unsafe-fixes`"
    else:
        line = f"{plural(findings, 'finding')}, none with an automatic fix"
    return line + tail + "."


def _fixable(diagnostics: list[Diagnostic]) -> tuple[int, int]:
    """How many findings have a safe fix, and how many an unsafe one."""
    kinds = Counter(d.fix.applicability for d in diagnostics if d.fix is not None)
    return kinds[Applicability.SAFE], kinds[Applicability.UNSAFE]


def statistics(diagnostics: list[Diagnostic]) -> list[dict]:
    """Findings per rule, most frequent first: code, name, count, whether ``fix --apply`` fixes
    some of them (``fixable``, a boolean as in Ruff's JSON statistics) and how many."""
    counts = Counter((d.code, d.name) for d in diagnostics)
    fixable = Counter(d.code for d in diagnostics if d.fix and d.fix.applicability is Applicability.SAFE)
    return [{"code": code, "name": name, "count": count, "fixable": fixable[code] > 0, "fixable_count": fixable[code]}
            for (code, name), count in counts.most_common()]


def statistics_lines(diagnostics: list[Diagnostic]) -> list[str]:
    lines = []
    for row in statistics(diagnostics):
        fixable = f"  [*] {row['fixable_count']} fixable" if row["fixable"] else ""
        lines.append(f"{row['count']:5d}  {row['code']}  {row['name']}{fixable}")
    return lines


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


class StoredPositions:
    """Findings' positions in their files as stored, for tools that only know files.

    A notebook finding is located by cell and line in cell; GitHub annotations
    and SARIF regions need a line and column of the ``.ipynb`` itself (its JSON).
    Each notebook is read once, when one of its findings is first asked about;
    ``notebooks`` gives the ones already in memory (stdin). ``None`` when the
    notebook cannot be read now: the finding is then reported on the file alone.
    """

    def __init__(self, notebooks: dict | None = None) -> None:
        self._notebooks = dict(notebooks or {})

    def region(self, d: Diagnostic) -> tuple[Position, Position] | None:
        if d.cell is None:
            return d.start, d.end
        if d.path not in self._notebooks:
            from rnnlint.notebook import read_notebook
            from rnnlint.source import SourceError

            try:
                self._notebooks[d.path] = read_notebook(Path(d.path))
            except (SourceError, OSError):
                self._notebooks[d.path] = None
        notebook = self._notebooks[d.path]
        if notebook is None or not any(c.number == d.cell for c in notebook.cells):
            return None
        return notebook.stored_position(d.cell, d.start), notebook.stored_position(d.cell, d.end)


def to_github(diagnostics: Iterable[Diagnostic], stored: StoredPositions | None = None) -> str:
    """GitHub Actions workflow commands: one annotation per finding, at a line of the file as stored."""
    stored = stored or StoredPositions()
    lines = []
    for d in diagnostics:
        level = {"error": "error", "warning": "warning", "info": "notice"}[d.severity.value]
        props = f"file={_escape_property(d.path)}"
        region = stored.region(d)
        if region is not None:
            start, end = region
            props += f",line={start.line},col={start.column},endLine={end.line},endColumn={end.column}"
        title = f"{d.code} {d.name}" + (f" (cell {d.cell}, line {d.cell_line})" if d.cell is not None else "")
        lines.append(f"::{level} {props},title={_escape_property(title)}::{_escape_data(d.code + ' ' + d.message)}")
    return "\n".join(lines)


def _artifact(path: str) -> dict:
    """A SARIF artifactLocation: a relative, percent-encoded URI under %SRCROOT%.

    Paths outside the working directory are absolute ``file://`` URIs. Either
    way the result is a valid URI reference even with spaces or ``#`` in names.
    """
    pure = PurePath(path)
    if pure.is_absolute():
        return {"uri": pure.as_uri()}
    return {"uri": quote(pure.as_posix()), "uriBaseId": "%SRCROOT%"}


def _region(start, end) -> dict:
    return {"startLine": start.line, "startColumn": start.column, "endLine": end.line, "endColumn": end.column}


def _sarif_result(d: Diagnostic, rule_index: int, stored: StoredPositions) -> dict:
    """One SARIF result. A notebook finding names its cell in a logical location and in
    ``properties``; its region is in the stored JSON, and its fix is described there rather
    than given as ``fixes``: a cell edit is not a replacement of the JSON's text."""
    physical = {"artifactLocation": _artifact(d.path)}
    region = stored.region(d)
    if region is not None:
        physical["region"] = _region(*region)
    location = {"physicalLocation": physical}
    result = {
        "ruleId": d.code,
        "ruleIndex": rule_index,
        "level": _SARIF_LEVEL[d.severity],
        "message": {"text": d.message},
        "locations": [location],
    }
    if d.related:
        result["relatedLocations"] = [
            {"id": i, "physicalLocation": {"artifactLocation": _artifact(r.path), "region": {"startLine": r.line}},
             "message": {"text": r.message}}
            for i, r in enumerate(d.related, 1)
        ]
    if d.cell is not None:
        location["logicalLocations"] = [
            {"name": f"cell {d.cell}", "fullyQualifiedName": f"{d.path}:cell {d.cell}", "kind": "notebookCell"}
        ]
        result["properties"] = {"cell": d.cell, "cellLine": d.cell_line, "cellColumn": d.column,
                                "cellEndLine": d.end.line, "cellEndColumn": d.end.column}
        if d.fix is not None:
            result["properties"]["fix"] = f"{d.fix.message} ({d.fix.applicability.value}; `rnnlint fix` applies it)"
    elif d.fix is not None:
        result["fixes"] = [
            {
                "description": {"text": f"{d.fix.message} ({d.fix.applicability.value})"},
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(d.path),
                        "replacements": [
                            {"deletedRegion": _region(e.start, e.end), "insertedContent": {"text": e.content}}
                            for e in d.fix.edits
                        ],
                    }
                ],
            }
        ]
    return result


def to_sarif(diagnostics: list[Diagnostic], rules: dict[str, type[Rule]], stored: StoredPositions | None = None) -> str:
    """SARIF 2.1.0 (the format GitHub code scanning reads)."""
    used = sorted({d.code for d in diagnostics} | set(rules))
    rule_list = []
    index_of = {}
    for code in used:
        rule = rules.get(code)
        index_of[code] = len(rule_list)
        entry = {"id": code}
        if rule is not None:
            doc = rule.doc()
            entry.update(
                name=rule.name,
                shortDescription={"text": rule.summary()},
                fullDescription={"text": doc},
                help={"text": doc, "markdown": doc},
                helpUri=f"{HOMEPAGE}#rules",
                defaultConfiguration={"level": _SARIF_LEVEL[rule.severity], "enabled": rule.default_enabled},
                properties={"fixable": rule.fixable()},
            )
        rule_list.append(entry)
    stored = stored or StoredPositions()
    results = [_sarif_result(d, index_of[d.code], stored) for d in diagnostics]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "rnnlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": HOMEPAGE,
                        "rules": rule_list,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2)


def rule_table(rules: Iterable[type[Rule]]) -> str:
    """The rules as a Markdown table (``rnnlint rules --output-format markdown``).

    The README's rule table is this text, so it cannot drift from the rules
    (tests/test_readme.py compares them).
    """
    rows = ["| code | name | what it catches | fix | default |", "|---|---|---|---|---|"]
    for rule in rules:
        fix = rule.fix_applicability.value if rule.fix_applicability else "—"
        summary = rule.summary().replace("``", "`").replace("|", "\\|")  # docstrings are reStructuredText
        rows.append(f"| {rule.code} | {rule.name} | {summary} | {fix} | {'on' if rule.default_enabled else 'off'} |")
    return "\n".join(rows)
