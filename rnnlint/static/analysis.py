"""Analyse one file: parse once, walk once with every rule, report.

This is the static stage for a single source text. Positions are the expensive
part of libcst's metadata, so they are computed only for files where a rule
actually reported something (most files of a large tree report nothing).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst

from rnnlint.config import Config
from rnnlint.diagnostics import SYNTAX_ERROR, Applicability, Diagnostic, Edit, Fix, Position, syntax_error
from rnnlint.static.index import ProjectIndex
from rnnlint.nodes import Visitor, node_positions
from rnnlint.static.noqa import split_lines
from rnnlint.static.projectmap import syntax_findings
from rnnlint.rule import FileContext, NodeEdit, Report, Rule
from rnnlint.source import newline_of, parse_python

@dataclass
class Analysis:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    parsed: bool = True


class _Walker(Visitor):
    """Dispatches every node to the enabled rules' visit_/leave_ methods."""

    def __init__(self, rules: list[Rule]) -> None:
        self.visits: dict[str, list] = {}
        self.leaves: dict[str, list] = {}
        for rule in rules:
            for name in type(rule).visitor_methods():
                kind, _, node_type = name.partition("_")
                table = self.visits if kind == "visit" else self.leaves
                table.setdefault(node_type, []).append(getattr(rule, name))

    def on_visit(self, node: cst.CSTNode) -> bool:
        for method in self.visits.get(type(node).__name__, ()):
            method(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        for method in self.leaves.get(type(original_node).__name__, ()):
            method(original_node)


def parse(text: str, accepted: bool = False) -> cst.Module:
    return parse_python(text, accepted)  # CPython's parser first: libcst's crashes the process on deep nesting


def _python_syntax_error(text: str, exc: cst.ParserSyntaxError) -> tuple[str, int, int]:
    """CPython's own message for a syntax error (clearer than the CST parser's).

    ``ast.parse`` only compiles to a tree: nothing of the file runs.
    """
    try:
        ast.parse(text)
    except SyntaxError as error:
        line = error.lineno or 1
        return f"SyntaxError: {error.msg}; the file is skipped by every other rule", line, error.offset or 1
    except (ValueError, RecursionError, MemoryError):
        pass
    detail = exc.message.replace("parser error: ", "")
    return f"cannot parse: {detail}; the file is skipped by every other rule", exc.raw_line, exc.raw_column + 1


def syntax_only(display: str, text: str) -> Analysis:
    return Analysis(syntax_findings(display, text))


def analyse(
    path: Path,
    display: str,
    text: str,
    rules: list[type[Rule]],
    config: Config,
    index: ProjectIndex,
    keep: str | None = None,
) -> Analysis:
    """Run ``rules`` over one file's ``text``; findings carry ``display`` as path.

    ``keep``: the file's content hash when ``text`` is the file as it is on disk and stays so for the
    run (a check): its tree and what the flow model learnt from it then serve the rest of the run's
    questions (see :meth:`ProjectIndex.keep`). Otherwise they are forgotten once the analysis is done.

    Every finding is returned, suppressed or not: ``# noqa`` and per-file-ignores
    are applied by the final step (:mod:`rnnlint.static.final`) that all findings pass.
    """
    wanted = [r for r in rules if r.code != SYNTAX_ERROR[0] and r.wants(text)]
    syntax_rule_on = any(r.code == SYNTAX_ERROR[0] for r in rules)
    if not wanted:
        # No rule can match this file: CPython's parser (several times faster
        # than libcst's) is enough to tell whether it is valid Python.
        return syntax_only(display, text) if syntax_rule_on else Analysis()
    try:
        # another file's analysis may have parsed it; the project map's CPython parse may have accepted it
        module = index.parsed(path, text) or parse(text, keep is not None and keep in index.accepted)
    except cst.ParserSyntaxError as exc:
        diagnostics = []
        message, line, column = _python_syntax_error(text, exc)
        if syntax_rule_on:
            diagnostics.append(syntax_error(display, message, line, column))
        return Analysis(diagnostics, parsed=False)
    except SyntaxError as error:  # from CPython's parser, which libcst's waits for
        line = error.lineno or 1
        if not syntax_rule_on:
            return Analysis(parsed=False)
        message = f"SyntaxError: {error.msg}; the file is skipped by every other rule"
        return Analysis([syntax_error(display, message, line, error.offset or 1)], parsed=False)
    except (RecursionError, MemoryError, ValueError) as error:
        detail = str(error) if isinstance(error, ValueError) else "expressions nested too deeply to analyse"
        return Analysis([syntax_error(display, f"cannot parse: {detail}")] if syntax_rule_on else [], parsed=False)
    if keep is not None:  # a question that leads back here during the analysis finds this tree, not a second
        index.keep(path, text, module, keep)
    ctx = FileContext(path, text, module, index)
    reports: list[Report] = []
    instances = [rule(ctx, config.options_for(rule), reports) for rule in wanted]
    walker = _Walker(instances)
    try:
        walker.walk(module)
        for instance in instances:
            instance.finish()
    except RecursionError:
        return Analysis([syntax_error(display, "cannot analyse: expressions nested too deeply")], parsed=False)
    finally:
        if keep is None:
            index.release(path)
        else:
            index.keep(path, text, module, keep)
    if not reports:
        return Analysis()
    return Analysis(_diagnostics(display, text, module, ctx, reports))


def _diagnostics(
    display: str, text: str, module: cst.Module, ctx: FileContext, reports: list[Report]
) -> list[Diagnostic]:
    positions = node_positions(module)
    lines = split_lines(text)
    result: dict[tuple, Diagnostic] = {}
    for report in reports:
        rule = type(report.rule)
        code_range = positions.get(report.node)
        if code_range is None:
            continue
        start = Position(code_range.start.line, code_range.start.column + 1)
        end = Position(code_range.end.line, code_range.end.column + 1)
        fix = None
        if report.edits:
            edits = _resolve_edits(report.edits, positions, lines, ctx)
            if edits is not None:
                edits += _import_edits(report.imports, module, positions, lines, ctx)
                fix = Fix(
                    message=report.fix_message or "Apply the suggested fix",
                    applicability=report.applicability or Applicability.DISPLAY_ONLY,
                    edits=tuple(sorted(set(edits), key=lambda e: (e.start, e.end))),
                )
        diagnostic = Diagnostic(
            code=rule.code,
            name=rule.name,
            severity=rule.severity,
            path=display,
            start=start,
            end=end,
            message=report.message,
            fix=fix,
            related=report.related,
        )
        result.setdefault((rule.code, start, report.message), diagnostic)
    return sorted(result.values(), key=Diagnostic.sort_key)


def _resolve_edits(edits: tuple[NodeEdit, ...], positions: Any, lines: list[str], ctx: FileContext) -> list[Edit] | None:
    """Turn node-based edits into text edits; None when one cannot be placed safely."""
    newline = _newline(ctx.text)
    out: list[Edit] = []
    for edit in edits:
        code_range = positions.get(edit.node)
        if code_range is None:
            return None
        start = Position(code_range.start.line, code_range.start.column + 1)
        end = Position(code_range.end.line, code_range.end.column + 1)
        if edit.kind == "replace":
            text = edit.text  # a rendered node breaks lines with "\n": use the file's own newline
            if newline != "\n" and "\n" in text and "\r" not in text:
                text = text.replace("\n", newline)
            out.append(Edit(start, end, text))
            continue
        if edit.kind == "add_arg":
            out.append(_add_arg(edit, positions, lines, newline))
            continue
        if edit.kind == "remove_arg":
            removal = _remove_arg(edit, positions, lines)
            if removal is None:
                return None
            out.append(removal)
            continue
        first = lines[start.line - 1]
        indent = first[: start.column - 1]
        if indent.strip():  # statement does not begin its line (``a; b``): not ours to touch
            return None
        if edit.kind == "insert_before":
            body = "".join(indent + line + newline if line else newline for line in edit.text.split("\n"))
            out.append(Edit(Position(start.line, 1), Position(start.line, 1), body))
        elif edit.kind == "insert_after":
            body = "".join(indent + line + newline if line else newline for line in edit.text.split("\n"))
            if end.line >= len(lines):  # last line of a file without final newline
                out.append(Edit(Position(end.line, len(lines[-1]) + 1), Position(end.line, len(lines[-1]) + 1), newline + body.rstrip("\r\n")))
            else:
                out.append(Edit(Position(end.line + 1, 1), Position(end.line + 1, 1), body))
        elif edit.kind == "delete_statement":
            if end.line >= len(lines):
                out.append(Edit(Position(start.line, 1), Position(end.line, len(lines[end.line - 1]) + 1), ""))
            else:
                out.append(Edit(Position(start.line, 1), Position(end.line + 1, 1), ""))
        else:  # pragma: no cover - programming error in a rule
            raise ValueError(f"unknown edit kind {edit.kind}")
    return out


def _add_arg(edit: NodeEdit, positions: Any, lines: list[str], newline: str) -> Edit:
    """``f(a, b)`` -> ``f(a, b, <text>)``; a call with one argument per line gets a new line."""
    call = edit.node
    assert isinstance(call, cst.Call)
    call_range = positions[call]
    if not call.args:  # before the closing parenthesis
        at = Position(call_range.end.line, call_range.end.column)
        return Edit(at, at, edit.text)
    last = positions[call.args[-1]]
    at = Position(last.end.line, last.end.column + 1)
    prefix = lines[last.start.line - 1][: last.start.column]
    if last.start.line > call_range.start.line and not prefix.strip():
        return Edit(at, at, "," + newline + prefix + edit.text)
    return Edit(at, at, ", " + edit.text)


def _remove_arg(edit: NodeEdit, positions: Any, lines: list[str]) -> Edit | None:
    """Delete one argument and one comma, touching no other line of the call.

    An argument on lines of its own (one argument per line) loses those lines,
    with its comment. Otherwise ``f(a, x=1, b)`` loses ``x=1, `` (up to the
    next argument); the last argument ``f(a, x=1)`` loses ``, x=1`` (from the
    end of the one before, so a trailing comma and the layout of the closing
    parenthesis stay); a lone argument loses itself and its comma.
    """
    call, arg = edit.node, edit.part
    assert isinstance(call, cst.Call) and isinstance(arg, cst.Arg)
    index = next((i for i, a in enumerate(call.args) if a is arg), None)
    if index is None:
        return None

    def at(node: cst.CSTNode, end: bool) -> Position | None:
        code_range = positions.get(node)
        if code_range is None:
            return None
        point = code_range.end if end else code_range.start
        return Position(point.line, point.column + 1)

    first = at(arg, False)
    own_end = at(arg.comma, True) if isinstance(arg.comma, cst.Comma) else at(arg, True)
    if first is None or own_end is None:
        return None
    before = lines[first.line - 1][: first.column - 1]
    after = lines[own_end.line - 1][own_end.column - 1:].strip()
    if not before.strip() and (not after or after.startswith("#")) and own_end.line < len(lines):
        return Edit(Position(first.line, 1), Position(own_end.line + 1, 1), "")
    if index + 1 < len(call.args):
        start, end = at(arg, False), at(call.args[index + 1], False)
    elif index > 0:
        start, end = at(call.args[index - 1], True), at(arg, True)
    else:
        start = at(arg, False)
        end = at(arg.comma, True) if isinstance(arg.comma, cst.Comma) else at(arg, True)
    if start is None or end is None:
        return None
    return Edit(start, end, "")


def _import_edits(imports: tuple[str, ...], module: cst.Module, positions: Any, lines: list[str], ctx: FileContext) -> list[Edit]:
    """Edits adding ``import`` lines the fix needs, after the file's top imports."""
    present = {line.strip() for line in lines}
    missing = [imp for imp in imports if imp not in present]
    if not missing:
        return []
    newline = _newline(ctx.text)
    anchor_line = 0
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) or _is_docstring(s) for s in stmt.body
        ):
            anchor_line = positions[stmt].end.line
            continue
        break
    text = "".join(imp + newline for imp in missing)
    if anchor_line >= len(lines):
        return [Edit(Position(anchor_line, len(lines[-1]) + 1), Position(anchor_line, len(lines[-1]) + 1), newline + text.rstrip("\r\n"))]
    return [Edit(Position(anchor_line + 1, 1), Position(anchor_line + 1, 1), text)]


def _is_docstring(node: cst.BaseSmallStatement) -> bool:
    return isinstance(node, cst.Expr) and isinstance(node.value, (cst.SimpleString, cst.ConcatenatedString))


def _newline(text: str) -> str:
    return newline_of(text)  # CR-only files too: an inserted line must not bring an LF into one
