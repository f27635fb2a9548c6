"""The ``rnnlint verify`` command. Never imports torch: the trial processes do.

Exit codes: 0 the fixes were confirmed, the result is inconclusive, or there was
nothing to fix; 1 the fixed run (all fixes together) regressed; 2 the
trial measured nothing (neither run reached a training step: the script
crashes, hangs, needs arguments or never steps), or a usage / config error.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from rnnlint.config import ConfigError, load_config
from rnnlint.static.registry import RuleLoadError
from rnnlint.source import display_path
from rnnlint.verify import compare, report
from rnnlint.verify.trial import Job, Options, Progress, TrialRun, Trial, TrialError, run

EXIT_OK, EXIT_REGRESSED, EXIT_ERROR = 0, 1, 2


class _Failure(click.ClickException):
    exit_code = EXIT_ERROR

    def show(self, file=None) -> None:
        click.secho(f"rnnlint: error: {self.format_message()}", err=True, fg="red")


class TerminalProgress(Progress):
    """Phase lines and a live ``step k/N  loss x`` counter, on a terminal only."""

    def __init__(self, steps: int, live: bool) -> None:
        self.steps = steps
        self.live = live

    def applied(self, trial: Trial) -> None:
        """The fixes, before the (long) trial runs start."""
        where = display_path(trial.root)
        where = "the project" if where == "." else f"the project at {where}"
        click.echo(f"Fixes applied to a copy of {where} (your files are not modified):")
        for fix in trial.fixes:
            click.echo(f"  {report.fix_line(fix, display_path(trial.root / fix.path))}")

    def phase(self, text: str) -> None:
        if self.live:
            click.echo(text, err=True)

    def step(self, label: str, records: list[dict]) -> None:
        if not self.live:
            return
        if not records:
            click.echo(f"\r\x1b[K  {label:8} starting", err=True, nl=False)
            return
        loss = records[-1].get("loss")
        shown = "-" if loss is None else f"{loss:.4g}"
        click.echo(f"\r\x1b[K  {label:8} step {len(records)}/{self.steps}  loss {shown}", err=True, nl=False)

    def done(self, label: str, result: TrialRun) -> None:
        if self.live:
            click.echo(f"\r\x1b[K  {label:8} {result.steps} steps in {result.wall_seconds:.1f}s", err=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


class TrialProgress(TerminalProgress):
    """Where the trial's runs stand, on stderr: a live line on a terminal, a line per finished run otherwise.

    ``quiet`` (-q) shows nothing. Nothing of it goes to stdout or to --json.
    """

    def __init__(self, steps: int, live: bool, quiet: bool) -> None:
        super().__init__(steps, live and not quiet)
        self.quiet = quiet
        self.seen_runs = 0

    def applied(self, trial: Trial) -> None:
        super().applied(trial)
        options = trial.options
        if self.quiet:
            return
        seeds = f"seed {options.seed}" if options.seeds == 1 else \
            f"seeds {options.seed}-{options.seed + options.seeds - 1}"
        click.echo(f"Trial runs of {options.steps} steps, {seeds}, device {options.device}", err=True)

    def runs(self, jobs: list[Job], steps: dict[str, int], elapsed: float) -> None:
        if not self.live:
            return
        if not steps:  # nothing running: leave the terminal line clean for the table
            click.echo("\r\x1b[K", err=True, nl=False)
            return
        done = sum(job.run is not None for job in jobs)
        active = [f"{job.arm} seed {job.seed} step {max(0, steps[job.label])}/{self.steps}"
                  for job in jobs if job.label in steps]
        line = f"run {min(done + 1, len(jobs))}/{len(jobs)}: " + ", ".join(active) if len(active) < 2 else \
            f"{done}/{len(jobs)} runs done: " + ", ".join(active)
        click.echo(f"\r\x1b[K  {line}  [{_clock(elapsed)}]", err=True, nl=False)

    def finished(self, job: Job, total: int, elapsed: float) -> None:
        if self.quiet:
            return
        prefix = "\r\x1b[K" if self.live else ""
        click.echo(f"{prefix}  run {job.number}/{total} {job.arm} seed {job.seed}: {job.run.steps} steps "
                   f"in {job.run.wall_seconds:.1f}s  [{_clock(elapsed)} elapsed]", err=True)


def _codes(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(c.strip().upper() for c in value.split(",") if c.strip()) or None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True,
              help="Training steps per run (optimizer steps, or weight updates where there is no optimizer).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for Python, NumPy and torch (both runs).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per copy, with seeds --seed, --seed+1, ...: the table shows their spread, and a verdict "
                   "on the loss needs a difference larger than it.")
@click.option("--jobs", type=click.IntRange(min=1), metavar="N",
              help="Runs at a time (default: half the CPU cores; 1 with --device cuda).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: the script's own choice; cpu hides CUDA; cuda makes it the default device.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Time limit per run, in seconds.")
@click.option("--allow-network", is_flag=True,
              help="Let the script open network connections (refused by default: downloads, telemetry).")
@click.option("--memory-limit", type=click.FloatRange(min=0.1), metavar="GIB",
              help="Stop a run whose processes together use more resident memory than this, in GiB "
                   "(default: three quarters of this machine's memory, shared by the runs at a time).")
@click.option("--codes", metavar="CODES", help="Only these fixes (comma-separated codes or prefixes).")
@click.option("--each", is_flag=True, help="Also one run per individual fix, to see which one made the difference.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the measurements and the verdict as JSON to this file.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a PNG of loss and gradient norm for each run (needs matplotlib).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr (warnings and errors still show).")
def verify(script, script_args, steps, seed, seeds, jobs, device, timeout, allow_network, memory_limit, codes, each,
           json_path, plot_path, quiet):
    """Does fixing SCRIPT make training healthier? A short trial before and after.

    The script's project is copied to a temporary directory (data directories
    are linked; writes into your project are refused), the fixes that `rnnlint fix
    --unsafe-fixes` would make are applied to the copy, and the original and
    the fixed script each run for --steps training steps with the same seed
    (or seeds: --seeds).
    Pass the script's own arguments after `--`:

    \b
      rnnlint verify train.py --steps 200 -- --epochs 1 --data data/

    Exit 0 when the fixes are confirmed or the result is inconclusive (or there
    is nothing to fix), 1 when the fixed run regressed, 2 when nothing could be
    measured (the script crashes, hangs, needs arguments or never steps).
    """
    started = time.monotonic()
    if not script.is_file():
        raise _Failure(f"{script}: no such file")
    if script.suffix != ".py":
        raise _Failure(f"{script}: verify runs a Python script (.py)")
    options = Options(script, list(script_args), steps, seed, device, float(timeout), _codes(codes), each,
                      int(memory_limit * 2**30) if memory_limit else None, network=allow_network, seeds=seeds,
                      jobs=jobs)
    try:
        config = load_config([script])
        config = replace(config, graph=False)
        progress = TrialProgress(steps, sys.stderr.isatty(), quiet)
        trial = run(options, config, progress)
    except (ConfigError, RuleLoadError, TrialError) as exc:
        raise _Failure(str(exc)) from None
    for message in trial.messages:
        click.secho(f"rnnlint: warning: {message}", err=True, fg="yellow")
    if not trial.fixes:
        only = f" for {', '.join(options.codes)}" if options.codes else ""
        click.echo(f"No fixable findings{only} in {script} or the project files it imports: nothing to verify.")
        _write_json(json_path, {"script": str(script), "fixes": [], "before": None, "after": None,
                                "verdict": "nothing-to-fix", "reason": "no fixable findings"})
        sys.exit(EXIT_OK)
    sys.exit(_report(trial, json_path, plot_path, time.monotonic() - started, quiet))


def _report(trial: Trial, json_path: Path | None, plot_path: Path | None, elapsed: float, quiet: bool) -> int:
    """Summarise every arm once (:func:`compare.arms`); the table, the verdicts and the JSON all read that."""
    options = trial.options
    measured = [("before", [compare.metrics(r) for r in trial.before])]
    if trial.after is not None:
        measured.append(("after", [compare.metrics(r) for r in trial.after]))
    for number, (fix, runs) in enumerate(trial.each, 1):
        if runs is not None:
            measured.append((f"only {fix.code}#{number}", [compare.metrics(r) for r in runs]))
    columns = compare.arms(measured)
    summary = dict(columns)
    before, after = summary["before"], summary.get("after")
    each = []
    for number, (fix, runs) in enumerate(trial.each, 1):
        if runs is None:
            each.append({"fix": fix.label(), "verdict": None, "reason": "this fix could not be applied alone"})
            continue
        m = summary[f"only {fix.code}#{number}"]
        verdict, reason = compare.verdict(before, m)
        each.append({"fix": fix.label(), "verdict": verdict, "reason": reason, "metrics": m})
    if after is None:
        verdict, reason = "error", (f"the original script {before['problem']}; no fix changes a failure of this "
                                    "kind before the first step, so the fixed copy was not run")
    else:
        verdict, reason = compare.verdict(before, after)
    click.echo("")
    if any(m["steps_max"] for _, m in columns):
        click.echo(report.table(columns))
        click.echo(report.notes(columns, trial.workers))
        click.echo("")
    shown = None
    for name, m in columns:
        if m["status"] != "ok":
            detail = m["error"] or m["stderr_tail"]
            if (m["problem"], detail) == shown:
                click.echo(f"{name}: the same failure")
                continue
            shown = (m["problem"], detail)
            click.echo(f"{name}: the script {m['problem']}")
            if detail:
                click.echo("    " + detail.replace("\n", "\n    "))
    for number, ((fix, _), item) in enumerate(zip(trial.each, each), 1):
        where = f"{display_path(trial.root / fix.path)}:{fix.line}"
        click.echo(f"only {fix.code}#{number} ({where}): {item['verdict'] or 'not run'}: {item['reason']}")
    for name, m in columns:
        network = [b for b in m["blocked_writes"] if b == "use the network"]
        writes = [b for b in m["blocked_writes"] if b != "use the network"]
        if network:
            click.secho(f"rnnlint: warning: the {name} run tried to use the network; rnnlint refused (a trial "
                        "opens no connection unless asked). Pass --allow-network if the script needs it "
                        "(a dataset download, say).", err=True, fg="yellow")
        if writes:
            more = f" and {len(writes) - 1} more" if len(writes) > 1 else ""
            click.secho(f"rnnlint: warning: the {name} run tried to {writes[0]}{more} in your project; "
                        "rnnlint refused (verify never changes your files). Let the script take its output paths "
                        "as arguments and pass a scratch folder after `--`.", err=True, fg="yellow")
        if m["left_processes_running"]:
            click.secho(f"rnnlint: warning: the {name} run left processes running when it ended (data-loader "
                        "workers or subprocesses); rnnlint stopped them.", err=True, fg="yellow")
    color = {"confirmed": "green", "regressed": "red", "error": "red"}.get(verdict)
    click.secho(f"verdict: {verdict}: {reason}", fg=color, bold=True)
    runs = sum(len(m["seeds"]) for _, m in columns)
    if not quiet:
        click.echo(f"{runs} run{'s' if runs > 1 else ''} in {elapsed:.0f}s", err=True)
    _write_json(json_path, {
        "script": str(options.script), "args": options.args, "seed": options.seed, "seeds": options.seeds,
        "steps_requested": options.steps, "device_requested": options.device, "runs_at_a_time": trial.workers,
        "fixes": [{"path": f.path, "line": f.line, "code": f.code, "name": f.name, "message": f.message}
                  for f in trial.fixes],
        "before": before, "after": after, "verdict": verdict, "reason": reason, "each": each,
    })
    if plot_path is not None:
        from rnnlint.verify.plot import PlotUnavailable, write_plot

        try:
            write_plot(plot_path, columns, f"rnnlint verify {options.script.name}: {verdict}")
            click.echo(f"Plot written to {plot_path}", err=True)
        except PlotUnavailable as exc:
            click.secho(f"rnnlint: error: {exc}", err=True, fg="red")
            return EXIT_ERROR
    if verdict == "error":
        return EXIT_ERROR
    if verdict == "regressed":
        return EXIT_REGRESSED
    return EXIT_OK


def _write_json(path: Path | None, document: dict) -> None:
    if path is None:
        return
    path.write_text(report.to_json(document) + "\n", "utf-8")
