"""The ``rnnlint`` command line.

Exit codes (stable): 0 nothing found or everything fixed, 1 findings remain,
2 usage, config or internal error. ``--exit-zero`` turns 1 into 0.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import click

from rnnlint import __version__
from rnnlint.static import output
from rnnlint.config import ConfigError, load_config, unknown_code
from rnnlint.diagnostics import Applicability, Severity
from rnnlint.static.discovery import discover
from rnnlint.static.catalogue import rule_set
from rnnlint.static.registry import RuleLoadError
from rnnlint.source import display_path
from rnnlint.static.runner import FileOutcome, Session, run

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class Failure(click.ClickException):
    """A usage, config or internal error: message on stderr, exit 2."""

    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:
        click.secho(f"rnnlint: error: {self.format_message()}", err=True, fg="red")


def _codes(option: str, values: tuple[str, ...], known: dict) -> tuple[str, ...] | None:
    """Codes given to a repeatable, comma-separated option; an unknown one is an error naming the option."""
    codes = tuple(c.strip().upper() for v in values for c in v.split(",") if c.strip())
    for code in codes:
        if code != "ALL" and not any(rule_code.startswith(code) for rule_code in known):
            raise Failure(f"{option}: {unknown_code(code, known)}; `rnnlint rules` lists them")
    return codes or None


def _color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


# -- how much to say: -q prints the findings only, --silent nothing but errors -------------

QUIET, SILENT = 1, 2


def _set_quietness(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        level = QUIET if param.name == "quiet" else SILENT
        ctx.meta["rnnlint.quiet"] = max(level, ctx.meta.get("rnnlint.quiet", 0))


def _quietness() -> int:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("rnnlint.quiet", 0) if ctx is not None else 0


def _note(message: str, fg: str | None = None) -> None:
    """A message about the run (not a finding) on stderr; -q and --silent drop it (errors stay)."""
    if not _quietness():
        click.secho(message, err=True, fg=fg)


def _warning(message: str) -> None:
    _note(f"rnnlint: warning: {message}", fg="yellow")


def common_options(func):
    options = [
        click.argument("paths", nargs=-1, type=click.Path(path_type=Path)),
        click.option("--select", multiple=True, metavar="CODES",
                     help="Only these rules (codes or prefixes, comma-separated). Replaces the config's select."),
        click.option("--extend-select", multiple=True, metavar="CODES",
                     help="Add rules to the selection, e.g. off-by-default RNN021."),
        click.option("--ignore", multiple=True, metavar="CODES", help="Skip these rules (codes or prefixes)."),
        click.option("--output-format", type=click.Choice(output.FORMATS), default="text", show_default=True,
                     help="text for people; json, sarif (code scanning) or github (Actions annotations)."),
        click.option("--exit-zero", is_flag=True, help="Exit 0 even when findings remain (errors still exit 2)."),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quietness,
                     help="Print the findings (or the diff) only: no summary, notes or warnings about the run."),
        click.option("--silent", is_flag=True, expose_value=False, callback=_set_quietness,
                     help="Print nothing but errors; the exit code still says whether findings remain."),
        click.option("--show-fixes", is_flag=True,
                     help="Under each finding, the fix it has; after fixing, the fixes applied per file."),
        click.option("--stdin-filename", metavar="NAME", type=click.Path(path_type=Path, dir_okay=False),
                     help="Read the code from stdin (the path `-`) as if it were the file NAME: its config, "
                          "per-file-ignores and notebook-ness follow NAME."),
        click.option("--static", is_flag=True,
                     help="Static rules only: skip the graph stage even where config enables it; never import torch."),
        click.option("--no-project-code", is_flag=True,
                     help="Run nothing from the checked tree: refuse the graph stage and rule-folders even where "
                          "the repository's config enables them (for CI on untrusted pull requests)."),
        click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                     help="Use this pyproject.toml instead of the nearest one."),
        click.option("--no-cache", is_flag=True, help="Do not read or write the .rnnlint_cache directory."),
        click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                     help="Worker processes for large trees (default: all cores)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _trusted_config(paths, config_file, no_project_code: bool):
    """The config, with what runs project code switched off under ``--no-project-code`` (said in one line)."""
    config = load_config(paths, config_file)
    if no_project_code and (config.graph or config.rule_folders):
        enabled = [name for name, on in (("the graph stage", config.graph), ("rule-folders", config.rule_folders)) if on]
        _note(f"rnnlint: note: --no-project-code: not running {' and '.join(enabled)} enabled by "
              f"{config.source}", fg="yellow")
    return config.without_project_code() if no_project_code else config


class Inputs:
    """What to check: the files found under the paths, or code read from stdin as if it were
    the file that --stdin-filename names (``-`` without it)."""

    def __init__(self, paths: tuple[Path, ...], stdin_filename: Path | None) -> None:
        reads_stdin = Path("-") in paths or (stdin_filename is not None and not paths)
        if reads_stdin and len(paths) > 1:
            raise Failure("`-` reads the code from stdin: give it alone, without other paths")
        if stdin_filename is not None and not reads_stdin:
            raise Failure("--stdin-filename names the code read from stdin: give `-` as the path")
        self.stdin = (stdin_filename or Path("-")) if reads_stdin else None
        self.paths = [self.stdin] if self.stdin is not None else list(paths) or [Path(".")]
        self.files: list[Path] = []
        self.data = b""
        self.failed = False  # a path named on the command line does not exist

    def discover(self, config, real_paths=None) -> None:
        """The files to check (or stdin's content).

        A path that does not exist is an error, said once: the rest is still
        checked, and the run exits 2 (``failed``), so that a mistyped path can
        never pass a build; with nothing else to check it exits 2 at once.
        """
        if self.stdin is not None:
            self.data = sys.stdin.buffer.read()
            return
        self.files, problems = discover(self.paths, config, real_paths=real_paths)
        for problem in problems:
            if ": no such file or directory" in problem:
                click.secho(f"rnnlint: error: {problem}", err=True, fg="red")
                self.failed = True
            else:
                _warning(problem)
        if self.failed and not self.files:
            sys.exit(EXIT_ERROR)

    def run(self, session: Session, mode: str, write: bool = False, unsafe: bool = False, jobs=None,
            use_cache: bool = True) -> list[FileOutcome]:
        if self.stdin is None:
            return run(self.files, session.config, mode, write=write, unsafe=unsafe, jobs=jobs,
                       use_cache=use_cache, session=session)
        if not use_cache:
            session.disable_cache()
        if mode == "check":
            return [session.check(self.stdin, self.data)]
        return [session.fix(self.stdin, write, unsafe, self.data)]


def _prepare(inputs: Inputs, select, extend_select, ignore, config_file, no_project_code=False) -> Session:
    try:
        config = _trusted_config(inputs.paths, config_file, no_project_code)
        known = rule_set(config.rule_folders)
        overrides = {}
        if (codes := _codes("--select", select, known)) is not None:
            overrides["select"] = codes
        if (codes := _codes("--extend-select", extend_select, known)) is not None:
            overrides["extend_select"] = config.extend_select + codes
        if (codes := _codes("--ignore", ignore, known)) is not None:
            overrides["ignore"] = config.ignore + codes
        session = Session(replace(config, **overrides), rules=known)
    except (ConfigError, RuleLoadError) as exc:
        raise Failure(str(exc)) from None
    inputs.discover(session.config, session.real)
    return session


def _emit(diagnostics, fmt: str, rules, color: bool, show_fixes: bool = False, err: bool = False,
          stored: output.StoredPositions | None = None, statistics: bool = False, stage: str | None = None) -> None:
    """The findings in ``fmt``, or their counts per rule (``statistics``: text or json);
    on stderr with ``err``, when stdout carries fixed code; ``stage``: the graph stage's part of the summary."""
    if _quietness() >= SILENT:
        return
    if statistics and fmt == "json":
        click.echo(json.dumps(output.statistics(diagnostics), indent=2), err=err)
    elif statistics:
        for line in output.statistics_lines(diagnostics):
            click.echo(line, err=err)
        if not _quietness():
            click.echo(output.summary(diagnostics, stage), err=err)
    elif fmt == "json":
        click.echo(output.to_json(diagnostics), err=err)
    elif fmt == "sarif":
        click.echo(output.to_sarif(diagnostics, rules, stored), err=err)
    elif fmt == "github":
        text = output.to_github(diagnostics, stored)
        if text:
            click.echo(text, err=err)
    else:
        for d in diagnostics:
            click.echo(output.text_line(d, color), color=color, err=err)
            if show_fixes and d.fix is not None:
                click.echo(f"    fix: {d.fix.message} ({d.fix.applicability.value})", err=err)
        if not _quietness():
            click.echo(output.summary(diagnostics, stage), err=err)


def _stored(inputs: Inputs) -> output.StoredPositions:
    """Positions in the stored files; a notebook read from stdin is located in what was read."""
    if inputs.stdin is None or inputs.stdin.suffix != ".ipynb":
        return output.StoredPositions()
    from rnnlint.notebook import read_notebook
    from rnnlint.source import SourceError

    try:
        return output.StoredPositions({display_path(inputs.stdin): read_notebook(inputs.stdin, inputs.data)})
    except SourceError:
        return output.StoredPositions()


def _sorted(diagnostics) -> list:
    """Findings by path, line, column: the same order however the tree was walked."""
    return sorted(diagnostics, key=lambda d: d.sort_key())


def _report_messages(outcomes: list[FileOutcome]) -> bool:
    """Print per-file problems; True when one was an internal error."""
    internal = False
    for outcome in outcomes:
        for message in outcome.messages:
            internal = internal or "internal error" in message
            click.secho(f"rnnlint: error: {message}", err=True, fg="red")
    return internal


def _exit(diagnostics, internal: bool, exit_zero: bool) -> None:
    """Exit 1 for findings; info-severity notes (RNN901: a model rnnlint could not
    analyse) are shown but never fail a build: they say nothing is wrong."""
    if internal:
        sys.exit(EXIT_ERROR)
    if any(d.severity is not Severity.INFO for d in diagnostics) and not exit_zero:
        sys.exit(EXIT_FINDINGS)
    sys.exit(EXIT_OK)


def _report_fixes(changed: list[FileOutcome], verb: str, show_fixes: bool, then: str = "") -> None:
    """``Fixed 3 findings in 2 files.`` (``verb``: Fixed / Would fix; ``then``: what to do next),
    and with --show-fixes which fixes, per file."""
    fixed = sum(len(o.fixed) for o in changed)
    line = f"{verb} {output.plural(fixed, 'finding')} in {output.plural(len(changed), 'file')}"
    if not show_fixes:
        _note(f"{line}; {then}." if then else f"{line}.")
        return
    lines = [line + ":"]
    for outcome in changed:
        lines.append(f"- {outcome.path}:")
        counts = Counter((d.code, d.name) for d in outcome.fixed)
        lines += [f"    {count} × {code} ({name})" for (code, name), count in sorted(counts.items())]
    if then:
        lines.append(then[0].upper() + then[1:] + ".")
    _note("\n".join(lines))


def _nothing_to_fix(remaining, unsafe: bool) -> None:
    """``fix`` changed nothing: say so, and why when findings remain (they are listed above)."""
    if not any(d.severity is not Severity.INFO for d in remaining):
        _note("Nothing to fix.")
        return
    needs_unsafe = sum(1 for d in remaining if d.fix and d.fix.applicability is Applicability.UNSAFE)
    if needs_unsafe and not unsafe:
        have = "has" if needs_unsafe == 1 else "have"
        _note(f"Nothing to fix without --unsafe-fixes: {output.plural(needs_unsafe, 'finding')} above {have} only "
              "an unsafe fix (it changes how the model trains; preview it with `rnnlint fix --unsafe-fixes`).")
    else:
        _note("Nothing to fix: none of the findings above has an automatic fix.")


class _Commands(click.Group):
    """A group whose ``verify`` is imported only when asked for (or listed by --help).

    verify's trial machinery costs several milliseconds to import, and
    ``check --static`` (run by pre-commit on every commit) never needs it.
    """

    # command name -> module defining it under that name
    lazy = {"verify": "rnnlint.verify.command", "watch": "rnnlint.watch.command"}
    # what ``rnnlint --help`` says of each, without importing it (tests/test_speed.py keeps them in step)
    lazy_help = {"verify": "Does fixing SCRIPT make training healthier? A short trial before and after.",
                 "watch": "Run SCRIPT once under rnnlint's observers and report what the run shows."}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, the lazy commands' lines from ``lazy_help`` (nothing imported)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = [(name, _short(self.lazy_help[name], limit)
                 if name not in self.commands else self.commands[name].get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            self.add_command(getattr(importlib.import_module(self.lazy[cmd_name]), cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="rnnlint")
def main() -> None:
    """Find and fix the mistakes that make RNN, LSTM and GRU models fail to train.

    \b
      rnnlint check src/           report findings (exit 1 if any); runs none of your code
      rnnlint check --graph src/   also build the models found (runs project code, contained)
      rnnlint fix src/             show the fixes as a diff, write nothing
      rnnlint fix --apply src/     write the safe fixes
      rnnlint verify train.py      a short trial: does the fix make training healthier?
      rnnlint watch train.py       run it under observers: what the run itself shows
      rnnlint rules                list every rule
      rnnlint explain RNN001       what a rule catches, why, and how it fixes
    """


@main.command()
@common_options
@click.option("--fix", "fix_", is_flag=True,
              help="Apply the safe fixes (as `rnnlint fix --apply`), then report what remains.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix: also apply the fixes that change how the model trains.")
@click.option("--graph", is_flag=True,
              help="Also run the graph stage: build the models found (this runs project code, in a child process).")
@click.option("--statistics", is_flag=True,
              help="The number of findings per rule instead of each finding (text, or a JSON list with "
                   "--output-format json).")
@click.option("--add-noqa", is_flag=True,
              help="Add `# noqa: CODE` to the line of every finding (to adopt rnnlint now and fix later); exit 0.")
def check(paths, select, extend_select, ignore, output_format, exit_zero, show_fixes, stdin_filename, static,
          no_project_code, config_file, no_cache, jobs, fix_, unsafe_fixes, graph, statistics, add_noqa):
    """Report recurrent-training mistakes in PATHS (default: the current directory; `-`: stdin).

    Runs nothing from the checked tree unless asked: the graph stage (which
    builds the project's models) runs with --graph or `graph = true` in config.
    """
    if graph and (static or no_project_code):
        raise Failure(f"--graph contradicts {'--static' if static else '--no-project-code'}")
    if unsafe_fixes and not fix_:
        raise Failure("--unsafe-fixes applies fixes: use it with --fix "
                      "(or preview them with `rnnlint fix --unsafe-fixes`)")
    if add_noqa and fix_:
        raise Failure("--add-noqa and --fix contradict each other: fix first, then add noqa comments to what remains")
    if statistics and output_format not in ("text", "json"):
        raise Failure(f"--statistics prints text or json, not {output_format}")
    inputs = Inputs(paths, stdin_filename)
    if inputs.stdin is not None and (add_noqa or graph):
        raise Failure(f"{'--add-noqa' if add_noqa else '--graph'} works on files: it cannot take code from stdin")
    session = _prepare(inputs, select, extend_select, ignore, config_file, no_project_code)
    mode = "fix" if fix_ else "check"
    building = graph or (session.config.graph and not static)
    session.note_models = not (building or static or no_project_code or _quietness()) and inputs.stdin is None
    outcomes = inputs.run(session, mode, write=fix_, unsafe=unsafe_fixes, jobs=jobs, use_cache=not no_cache)
    internal = _report_messages(outcomes) or inputs.failed
    if fix_:
        _fixed_output(inputs, outcomes, show_fixes)
    diagnostics = _sorted(d for o in outcomes for d in o.diagnostics)
    files = inputs.files
    stage = None  # the graph stage's part of the summary line
    if inputs.stdin is not None:
        pass  # the graph stage builds models from files on disk, never from stdin
    elif building:
        from rnnlint.graph.stage import run_graph_stage  # lazily: --static never loads the graph stage

        try:
            graph_run = run_graph_stage(files, session)
        except ConfigError as exc:
            raise Failure(str(exc)) from None
        diagnostics, stage = _sorted([*diagnostics, *graph_run.diagnostics]), graph_run.summary()
    elif session.note_models:
        _note_unbuilt(files, session, [o.models for o in outcomes] if len(outcomes) == len(files) else None)
    if add_noqa:
        _add_noqa(diagnostics, internal)
    color = _color()
    to_stderr = fix_ and inputs.stdin is not None  # stdout carries the fixed code
    _emit(diagnostics, output_format, session.catalogue, color, show_fixes and not fix_, to_stderr,
          _stored(inputs), statistics, stage)
    _exit(diagnostics, internal, exit_zero)


def _fixed_output(inputs: Inputs, outcomes: list[FileOutcome], show_fixes: bool) -> None:
    """After fixes were applied: the fixed code on stdout (stdin), and what was fixed."""
    if inputs.stdin is not None:
        outcome = outcomes[0]
        sys.stdout.buffer.write(outcome.content if outcome.content is not None else inputs.data)
        sys.stdout.flush()
        changed = [o for o in outcomes if o.content is not None]
    else:
        changed = [o for o in outcomes if o.written]
    if changed:
        _report_fixes(changed, "Fixed", show_fixes)


def _note_unbuilt(files, session, counted) -> None:
    """One line when the graph stage is off but has models to build (found statically: nothing runs);
    ``counted``: each file's count where the run's workers made it."""
    from rnnlint.graph.count import count_models  # no torch, no project code: the index answers

    try:
        count = count_models(files, session, counted)
    except Exception:  # a hint must never cost the user their findings
        return
    if count:
        _note(f"note: {output.plural(count, 'model')} not built by the graph stage (it runs project code); "
              "use --graph or graph = true to enable it", fg="yellow")


def _add_noqa(diagnostics, internal: bool) -> None:
    from rnnlint.static.add_noqa import add_noqa

    result = add_noqa(diagnostics)
    for line in result.skipped:
        _warning(line)
    for line in result.errors:
        click.secho(f"rnnlint: error: {line}", err=True, fg="red")
    if _quietness() < SILENT:
        click.echo(f"Added {output.plural(result.added, 'noqa directive')} in {output.plural(result.files, 'file')}.")
    sys.exit(EXIT_ERROR if internal or result.errors else EXIT_OK)


@main.command()
@common_options
@click.option("--apply", "apply_", is_flag=True,
              help="Write the fixes to the files (default: print a diff). With `-`, print the fixed code.")
@click.option("--unsafe-fixes", is_flag=True,
              help="Also apply fixes that change how the model trains (e.g. lowering a learning rate).")
def fix(paths, select, extend_select, ignore, output_format, exit_zero, show_fixes, stdin_filename, static,
        no_project_code, config_file, no_cache, jobs, apply_, unsafe_fixes):
    """Fix what can be fixed in PATHS: print a diff, or write it with --apply.

    Safe fixes are applied by default; unsafe ones need --unsafe-fixes. Every
    fixed file is re-parsed before it is written, writes are atomic, and a file
    changed on disk meanwhile is left alone. Exit 1 when findings remain. With
    `-` as the path the code is read from stdin, and --apply prints it fixed.
    """
    inputs = Inputs(paths, stdin_filename)
    session = _prepare(inputs, select, extend_select, ignore, config_file, no_project_code)
    outcomes = inputs.run(session, "fix", write=apply_, unsafe=unsafe_fixes, jobs=jobs, use_cache=not no_cache)
    internal = _report_messages(outcomes) or inputs.failed
    color = _color()
    remaining = _sorted(d for o in outcomes for d in o.diagnostics)
    changed = [o for o in outcomes if o.diff]
    if apply_:
        _fixed_output(inputs, outcomes, show_fixes)
    elif changed:
        if _quietness() < SILENT:
            for outcome in changed:
                click.echo(outcome.diff, nl=False)
        _report_fixes(changed, "Would fix", show_fixes, "run with --apply to write the changes")
        left = sum(1 for d in remaining if d.severity is not Severity.INFO)
        if left:
            them = "it" if left == 1 else "them"
            _note(f"{output.plural(left, 'finding')} would remain; `rnnlint check` shows {them}.")
        _exit([*remaining, *(d for o in changed for d in o.fixed)], internal, exit_zero)
    _emit(remaining, output_format, session.catalogue, color, show_fixes, err=apply_ and inputs.stdin is not None,
          stored=_stored(inputs))
    if not changed:
        _nothing_to_fix(remaining, unsafe_fixes)
    _exit(remaining, internal, exit_zero)


def _catalogue_options(func):
    options = [
        click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
                     help="Use this pyproject.toml instead of the nearest one (its rule-folders are listed too)."),
        click.option("--no-project-code", is_flag=True, help="Built-in rules only: never import rule-folders."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _catalogue(config_file, no_project_code) -> dict:
    """Every rule: the built-in pack and, where the config enables them, the project's rule-folders."""
    try:
        config = _trusted_config([Path(".")], config_file, no_project_code)
        return rule_set(config.rule_folders)
    except (ConfigError, RuleLoadError) as exc:
        raise Failure(str(exc)) from None


@main.command("rules")
@click.option("--output-format", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True,
              help="markdown: the table the README shows.")
@_catalogue_options
def rules_command(output_format, config_file, no_project_code):
    """List every rule: code, name, fixable, on by default (with the project's own rules)."""
    rules = _catalogue(config_file, no_project_code)
    if output_format == "markdown":
        click.echo(output.rule_table(rules.values()))
        return
    if output_format == "json":
        click.echo(json.dumps([
            {"code": r.code, "name": r.name, "summary": r.summary(), "severity": r.severity.value,
             "fix": r.fix_applicability.value if r.fix_applicability else None, "default": r.default_enabled}
            for r in rules.values()
        ], indent=2))
        return
    click.echo(f"{'code':7}  {'name':42}  {'fix':12}  {'default':7}  summary")
    for rule in rules.values():
        fixable = rule.fix_applicability.value if rule.fix_applicability else "-"
        click.echo(
            f"{rule.code:7}  {rule.name:42}  {fixable:12}  {'on' if rule.default_enabled else 'off':7}  {rule.summary()}"
        )


@main.command()
@click.argument("code")
@_catalogue_options
def explain(code, config_file, no_project_code):
    """Explain a rule: what it catches, why it matters, its fix and options."""
    rules = _catalogue(config_file, no_project_code)
    wanted = code.strip().upper()
    rule = rules.get(wanted) or next((r for r in rules.values() if r.name == code.strip().lower()), None)
    if rule is None:
        raise Failure(f"unknown rule {code!r}; `rnnlint rules` lists them")
    fixable = rule.fix_applicability.value if rule.fix_applicability else "no fix"
    click.echo(f"{rule.code} {rule.name}  (severity: {rule.severity.value}; fix: {fixable}; "
               f"{'on' if rule.default_enabled else 'off'} by default)\n")
    click.echo(rule.doc())
    if rule.options:
        click.echo(f"\nOptions ([tool.rnnlint.{rule.name}] in pyproject.toml):")
        for key, option in rule.options.items():
            click.echo(f"  {key} = {option.default!r}  -- {option.help} ({option.allowed()})")


#: The cyclic garbage collector's thresholds during a run. A cold check builds and drops millions of small
#: objects (CPython's and libcst's trees, the flow model's values), few of them in cycles: with Python's
#: default (700, 10, 10) the collector walked the live trees again and again, a sixth of a cold run's CPU on
#: fairseq (3.69 s -> 3.07 s). mypy raises its thresholds for the same reason. (100,000, 20, 20) rather
#: than (50,000, 20, 100): 0.978x wall on fairseq cold, 0.983x on the fixtures, same peak memory (paired).
#: Forked workers inherit them. The scripts and models that the graph stage, verify and watch run never
#: run under them: those run in interpreters of their own.
GC_THRESHOLDS = (100_000, 20, 20)


def entry() -> None:  # pragma: no cover - exercised through subprocess tests
    import atexit
    import gc

    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)  # for this run only: a caller in the same process gets its own back
    # When the process ends, everything a run held (the project map, trees, the flow model's cycles) is
    # frozen first: CPython's last collection then leaves it to the operating system instead of walking it
    # all, 0.08 s of a cold fairseq run's exit (0.09 s -> 0.015 s). Only at exit: a caller in the same
    # process keeps its collector; registered once however often this runs.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    try:
        main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception:
        import traceback  # only on a crash: not worth importing on every run

        traceback.print_exc()
        click.secho("rnnlint: internal error (a bug in rnnlint; please report it with the traceback above)",
                    err=True, fg="red")
        sys.exit(EXIT_ERROR)
    finally:
        gc.set_threshold(*previous)


def _short(text: str, limit: int) -> str:
    """A command's one-line help cut to ``limit`` characters at a word, as click shows its own."""
    first = text.split(". ")[0].rstrip(".") + "."
    if len(first) <= limit:
        return first
    cut = first[: max(limit - 3, 1)].rsplit(" ", 1)[0]
    return cut + "..."

