"""The ``rnnlint`` command line.

Exit codes (stable): 0 nothing found or everything fixed, 1 findings remain,
2 usage, config or internal error. ``--exit-zero`` turns 1 into 0.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from rnnlint import __version__, output
from rnnlint.config import ConfigError, load_config
from rnnlint.diagnostics import Severity
from rnnlint.discovery import discover
from rnnlint.registry import RuleLoadError, load_rules
from rnnlint.runner import FileOutcome, Session, run

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
            raise Failure(f"{option}: unknown rule code or prefix {code!r}; `rnnlint rules` lists them")
    return codes or None


def _color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


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
        click.secho(f"rnnlint: note: --no-project-code: not running {' and '.join(enabled)} enabled by "
                    f"{config.source}", err=True, fg="yellow")
    return config.without_project_code() if no_project_code else config


def _prepare(paths, select, extend_select, ignore, config_file, no_project_code=False):
    paths = list(paths) or [Path(".")]
    try:
        config = _trusted_config(paths, config_file, no_project_code)
        known = load_rules(config.rule_folders)
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
    files, problems = discover(paths, session.config)
    for problem in problems:
        click.secho(f"rnnlint: warning: {problem}", err=True, fg="yellow")
    if not files and problems and all("no such file" in p for p in problems):
        raise Failure("nothing to check: " + "; ".join(problems))
    return session, files


def _emit(diagnostics, fmt: str, rules, color: bool, quiet_summary: bool = False) -> None:
    if fmt == "json":
        click.echo(output.to_json(diagnostics))
    elif fmt == "sarif":
        click.echo(output.to_sarif(diagnostics, rules))
    elif fmt == "github":
        text = output.to_github(diagnostics)
        if text:
            click.echo(text)
    else:
        for d in diagnostics:
            click.echo(output.text_line(d, color), color=color)
        if not quiet_summary:
            click.echo(output.summary(diagnostics))


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


class _Commands(click.Group):
    """A group whose ``verify`` is imported only when asked for (or listed by --help).

    verify's trial machinery costs several milliseconds to import, and
    ``check --static`` (run by pre-commit on every commit) never needs it.
    """

    # command name -> module defining it under that name
    lazy = {"verify": "rnnlint.verify.command", "watch": "rnnlint.watch.command"}

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
@click.option("--graph", is_flag=True,
              help="Also run the graph stage: build the models found (this runs project code, in a child process).")
@click.option("--statistics", is_flag=True, help="Print the number of findings per rule instead of each finding.")
@click.option("--add-noqa", is_flag=True,
              help="Add `# noqa: CODE` to the line of every finding (to adopt rnnlint now and fix later); exit 0.")
def check(paths, select, extend_select, ignore, output_format, exit_zero, static, no_project_code, config_file,
          no_cache, jobs, graph, statistics, add_noqa):
    """Report recurrent-training mistakes in PATHS (default: the current directory).

    Runs nothing from the checked tree unless asked: the graph stage (which
    builds the project's models) runs with --graph or `graph = true` in config.
    """
    if graph and (static or no_project_code):
        raise Failure(f"--graph contradicts {'--static' if static else '--no-project-code'}")
    session, files = _prepare(paths, select, extend_select, ignore, config_file, no_project_code)
    outcomes = run(files, session.config, "check", jobs=jobs, use_cache=not no_cache, session=session)
    internal = _report_messages(outcomes)
    diagnostics = _sorted(d for o in outcomes for d in o.diagnostics)
    if graph or (session.config.graph and not static):
        from rnnlint.graph.stage import run_graph_stage  # lazily: --static never loads the graph stage

        try:
            diagnostics = _sorted([*diagnostics, *session.final.settle_files(run_graph_stage(files, session))])
        except ConfigError as exc:
            raise Failure(str(exc)) from None
    elif not static and not no_project_code:
        _note_unbuilt(files, session)
    if add_noqa:
        _add_noqa(diagnostics, internal)
    color = _color()
    if statistics and output_format == "text":
        for line in output.statistics(diagnostics):
            click.echo(line)
        click.echo(output.summary(diagnostics))
    else:
        _emit(diagnostics, output_format, session.rules, color)
    _exit(diagnostics, internal, exit_zero)


def _note_unbuilt(files, session) -> None:
    """One line when the graph stage is off but has models to build (found statically: nothing runs)."""
    from rnnlint.graph.finder import count_models  # no torch, no project code: the index answers

    try:
        count = count_models(files, session)
    except Exception:  # a hint must never cost the user their findings
        return
    if count:
        click.secho(
            f"note: {output.plural(count, 'model')} not built by the graph stage (it runs project code); "
            "use --graph or graph = true to enable it", err=True, fg="yellow",
        )


def _add_noqa(diagnostics, internal: bool) -> None:
    from rnnlint.add_noqa import add_noqa

    result = add_noqa(diagnostics)
    for line in result.skipped:
        click.secho(f"rnnlint: warning: {line}", err=True, fg="yellow")
    for line in result.errors:
        click.secho(f"rnnlint: error: {line}", err=True, fg="red")
    click.echo(f"Added {output.plural(result.added, 'noqa directive')} in {output.plural(result.files, 'file')}.")
    sys.exit(EXIT_ERROR if internal or result.errors else EXIT_OK)


@main.command()
@common_options
@click.option("--apply", "apply_", is_flag=True, help="Write the fixes to the files (default: print a diff).")
@click.option("--unsafe-fixes", is_flag=True,
              help="Also apply fixes that change how the model trains (e.g. lowering a learning rate).")
def fix(paths, select, extend_select, ignore, output_format, exit_zero, static, no_project_code, config_file,
        no_cache, jobs, apply_, unsafe_fixes):
    """Fix what can be fixed in PATHS: print a diff, or write it with --apply.

    Safe fixes are applied by default; unsafe ones need --unsafe-fixes. Every
    fixed file is re-parsed before it is written, writes are atomic, and a file
    changed on disk meanwhile is left alone. Exit 1 when findings remain.
    """
    session, files = _prepare(paths, select, extend_select, ignore, config_file, no_project_code)
    outcomes = run(files, session.config, "fix", write=apply_, unsafe=unsafe_fixes, jobs=jobs,
                   use_cache=not no_cache, session=session)
    internal = _report_messages(outcomes)
    color = _color()
    fixed = [d for o in outcomes for d in o.fixed]
    changed = [o for o in outcomes if o.diff]
    remaining = _sorted(d for o in outcomes for d in o.diagnostics)
    if not apply_:
        for outcome in changed:
            click.echo(outcome.diff, nl=False)
        if changed:
            click.echo(
                f"Would fix {output.plural(len(fixed), 'finding')} in {output.plural(len(changed), 'file')}; "
                "run with --apply to write the changes.",
                err=True,
            )
        else:
            click.echo("Nothing to fix.", err=True)
        _exit(remaining or fixed, internal, exit_zero)
    written = [o for o in outcomes if o.written]
    if written:
        click.echo(
            f"Fixed {output.plural(len(fixed), 'finding')} in {output.plural(len(written), 'file')}.", err=True
        )
    _emit(remaining, output_format, session.rules, color)
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
        return load_rules(config.rule_folders)
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
        import json

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


def entry() -> None:  # pragma: no cover - exercised through subprocess tests
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

