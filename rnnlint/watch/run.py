"""The parent side of ``rnnlint watch SCRIPT``: one contained run, read back as findings.

The run reuses the verifier's machinery whole: the project is copied
(:func:`rnnlint.verify.trial.copy_project`, data directories linked), the
script runs in the copy under the verifier's bootstrap (seeded, stopped after
N optimizer steps, time and memory limits, its process group killed at the
end, writes into the user's project refused), and the bootstrap loads the
watch observers (:mod:`rnnlint.watch.child`) as an extension. Nothing here
imports torch.

What comes back is mapped to the user's own files: observed findings become
:class:`~rnnlint.diagnostics.Diagnostic` objects with the static rules' codes,
names, severities and fixes (display-only: what was observed is not an edit).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rnnlint.config import Config
from rnnlint.diagnostics import Applicability, Diagnostic, Fix, Position, Severity
from rnnlint.verify.trial import Options, Progress, TrialRun, _working_dir, copy_project, run_trial
from rnnlint.watch.observe import NAMES, fix_text

CHILD = Path(__file__).with_name("child.py")
WHY = "watch runs your script on a copy of the project and never changes your files"

# crash messages that a watched failure explains: code -> pattern in the script's traceback
CRASHES = {
    "RNN030": re.compile(r"backward through the graph a second time|modified by an inplace operation|"
                         r"Trying to backward", re.I),
    "RNN011": re.compile(r"'lengths' argument should be a 1D CPU int64 tensor", re.I),
    "RNN001": re.compile(r"\b(nan|inf|non-?finite)\b", re.I),
    "RNN020": re.compile(r"\b(nan|inf|non-?finite)\b", re.I),
}


@dataclass
class Observed:
    diagnostic: Diagnostic
    finding: dict  # what the watcher recorded, its paths mapped to the user's files
    inferred: bool = False  # the static stage reports the same code at the same line

    def to_json(self) -> dict:
        data = self.diagnostic.to_json()
        data["observed"] = True
        data["inferred"] = self.inferred
        data["step"] = self.finding.get("step")
        data["module"] = self.finding.get("module")
        data["call_site"] = self.finding.get("site")
        data["details"] = self.finding.get("details", {})
        return data


@dataclass
class Watched:
    options: Options
    root: Path
    run: TrialRun
    findings: list[Observed] = field(default_factory=list)
    measured: dict = field(default_factory=dict)
    explanation: str | None = None  # how a crash follows from a finding
    explained_by: str | None = None
    inferred: list[Diagnostic] = field(default_factory=list)  # static findings the run did not show


def static_findings(config: Config, script: Path) -> list[Diagnostic]:
    """What ``rnnlint check --static`` reports in the script and the project files it imports."""
    from dataclasses import replace

    from rnnlint.static.runner import Session
    from rnnlint.verify.trial import imported_files

    session = Session(replace(config, graph=False), use_cache=False)
    found = []
    for path in imported_files(session, script.resolve()):
        found.extend(session.check(path).diagnostics)
    return sorted(found, key=lambda d: d.sort_key())


def merge_static(watched: "Watched", static: list[Diagnostic]) -> None:
    """A static finding at the place of an observed one marks it inferred too; the others are listed apart."""
    observed = {(o.diagnostic.code, o.diagnostic.path, o.diagnostic.line): o for o in watched.findings}
    for d in static:
        match = observed.get((d.code, d.path, d.line))
        if match is not None:
            match.inferred = True
        else:
            watched.inferred.append(d)


def watch_script(options: Options, config: Config, progress: Progress | None = None,
                 severities: dict[str, Severity] | None = None) -> Watched:
    """Run the script once, contained, under the observers; never writes the user's files."""
    progress = progress or Progress()
    script = options.script.resolve()
    root = config.root.resolve()
    if not (script == root or root in script.parents):
        root = script.parent
    workdir = Path(tempfile.mkdtemp(prefix="rnnlint-watch-"))
    try:
        copy_root = workdir / "run"
        copy_project(root, copy_root)
        events = workdir / "watch.findings.jsonl"
        relative = script.relative_to(root)
        result = run_trial("watch", copy_root / relative, _working_dir(root, script, copy_root), options, workdir,
                           progress.step, (copy_root, root),
                           extra={"extensions": [str(CHILD)], "watch_events": str(events), "why": WHY})
        progress.done("watch", result)
        raw, measured = read_watch_events(events)
        mapping = (str(copy_root.resolve()) + os.sep, str(root) + os.sep)
        watched = Watched(options, root, result, measured=_map_paths(measured, mapping))
        for finding in raw:
            finding = _map_paths(finding, mapping)
            watched.findings.append(Observed(to_diagnostic(finding, script, severities or {}), finding))
        watched.findings.sort(key=lambda o: (o.finding.get("step") or 0, o.diagnostic.sort_key()))
        watched.explained_by, watched.explanation = explain_crash(result, watched.findings)
        return watched
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # symlinks are unlinked, never followed


def read_watch_events(path: Path) -> tuple[list[dict], dict]:
    findings, measured = [], {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError:
        return findings, measured
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if "finding" in item:
            findings.append(item["finding"])
        elif "measured" in item:
            measured = item["measured"]
    return findings, measured


def _map_paths(value, mapping: tuple[str, str]):
    """Every string that names a file in the copy names the user's file instead."""
    copy_prefix, user_prefix = mapping
    if isinstance(value, str):
        return user_prefix + value[len(copy_prefix):] if value.startswith(copy_prefix) else value
    if isinstance(value, dict):
        return {k: _map_paths(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_paths(v, mapping) for v in value]
    return value


def _line_span(path: Path, line: int) -> tuple[int, int]:
    """The first and one past the last column of the code on ``line`` (1-based)."""
    try:
        text = path.read_text("utf-8", errors="replace").splitlines()[line - 1]
    except (OSError, IndexError):
        return 1, 1
    stripped = text.rstrip()
    return len(stripped) - len(stripped.lstrip()) + 1, len(stripped) + 1


def location(finding: dict) -> dict | None:
    """Where a finding is reported: the module's construction line for RNN106 (as the graph stage does),
    otherwise the call site in the user's code, else the module's line."""
    module, site = finding.get("module") or {}, finding.get("site") or {}
    order = (module, site) if finding["code"] == "RNN106" else (site, module)
    return next(({"file": p["file"], "line": p["line"]} for p in order if p.get("file") and p.get("line")), None)


def to_diagnostic(finding: dict, script: Path, severities: dict[str, Severity]) -> Diagnostic:
    from rnnlint.source import display_path

    where = location(finding) or {"file": str(script), "line": 1}
    path = Path(where["file"])
    start, end = _line_span(path, where["line"])
    code = finding["code"]
    return Diagnostic(
        code=code, name=NAMES.get(code, finding.get("name", "")), severity=severities.get(code, Severity.WARNING),
        path=display_path(path), start=Position(where["line"], start), end=Position(where["line"], end),
        message=finding["message"], fix=Fix(finding.get("fix") or fix_text(code), Applicability.DISPLAY_ONLY, ()),
        extra={"observed": True},
    )


def explain_crash(run: TrialRun, findings: list[Observed]) -> tuple[str | None, str | None]:
    """``(code, sentence)`` when the script crashed and a finding observed before explains it."""
    if run.stopped != "error" or not run.error:
        return None, None
    last_line = run.error.strip().splitlines()[-1] if run.error.strip() else ""
    for observed in findings:
        code = observed.finding["code"]
        pattern = CRASHES.get(code)
        if pattern is not None and pattern.search(last_line):
            d = observed.diagnostic
            kind, _, text = last_line.strip().partition(": ")
            sentence = re.match(r".*?\.(?=\s|$)", text)  # the message's first sentence
            crash = f"{kind}: {(sentence.group(0) if sentence else text).rstrip('.')}"
            return code, (f"the crash ({crash}) follows from {code} {d.name}, observed at step "
                          f"{observed.finding.get('step')} ({d.path}:{d.line}); fix: {d.fix.message}")
    return None, None
