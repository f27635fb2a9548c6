"""Output formats: text for people, json/sarif/github for machines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import PurePath
from typing import Iterable
from urllib.parse import quote

import click

from rnnlint import __version__
from rnnlint.diagnostics import Applicability, Diagnostic, Severity
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


def summary(diagnostics: list[Diagnostic]) -> str:
    if not diagnostics:
        return "No findings."
    safe = sum(1 for d in diagnostics if d.fix and d.fix.applicability is Applicability.SAFE)
    unsafe = sum(1 for d in diagnostics if d.fix and d.fix.applicability is Applicability.UNSAFE)
    notes = sum(1 for d in diagnostics if d.severity is Severity.INFO)
    findings = len(diagnostics) - notes
    line = f"{plural(findings, 'finding')}, {safe} fixable with `rnnlint fix --apply`"
    if unsafe:
        line += f" ({unsafe} more with `--unsafe-fixes`)"
    if notes:
        line += f"; {plural(notes, 'note')} (info, exit code unaffected)"
    return line + "."


def statistics(diagnostics: list[Diagnostic]) -> list[str]:
    counts = Counter((d.code, d.name) for d in diagnostics)
    fixable = Counter(d.code for d in diagnostics if d.fix and d.fix.applicability is Applicability.SAFE)
    return [
        f"{count:5d}  {code}  {name}{'  [*] ' + str(fixable[code]) + ' fixable' if fixable[code] else ''}"
        for (code, name), count in counts.most_common()
    ]


def to_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2)


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def to_github(diagnostics: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands: one annotation per finding."""
    lines = []
    for d in diagnostics:
        level = {"error": "error", "warning": "warning", "info": "notice"}[d.severity.value]
        props = (
            f"file={_escape_property(d.path)},line={d.line},col={d.column},"
            f"endLine={d.end.line},endColumn={d.end.column},title={_escape_property(d.code + ' ' + d.name)}"
        )
        lines.append(f"::{level} {props}::{_escape_data(d.code + ' ' + d.message)}")
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


def to_sarif(diagnostics: list[Diagnostic], rules: dict[str, type[Rule]]) -> str:
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
    results = []
    for d in diagnostics:
        result = {
            "ruleId": d.code,
            "ruleIndex": index_of[d.code],
            "level": _SARIF_LEVEL[d.severity],
            "message": {"text": d.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(d.path),
                        "region": _region(d.start, d.end),
                    }
                }
            ],
        }
        if d.cell is not None:
            result["properties"] = {"cell": d.cell, "cellLine": d.cell_line}
        if d.fix is not None:
            result["fixes"] = [
                {
                    "description": {"text": f"{d.fix.message} ({d.fix.applicability.value})"},
                    "artifactChanges": [
                        {
                            "artifactLocation": _artifact(d.path),
                            "replacements": [
                                {
                                    "deletedRegion": _region(e.start, e.end),
                                    "insertedContent": {"text": e.content},
                                }
                                for e in d.fix.edits
                            ],
                        }
                    ],
                }
            ]
        results.append(result)
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
