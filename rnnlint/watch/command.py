"""The ``rnnlint watch`` command. Never imports torch: the child process does.

Exit codes: 1 the run showed findings; 0 it showed none; 2 a usage or config
error, or a run that could not be watched (the script crashed, exited, hung or
never stepped, with no finding to explain it).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from rnnlint.static import output
from rnnlint.config import ConfigError, load_config
from rnnlint.diagnostics import Severity
from rnnlint.static.registry import RuleLoadError, load_rules
from rnnlint.verify import compare, report
from rnnlint.verify.command import TerminalProgress, _Failure
from rnnlint.verify.trial import Options, TrialError
from rnnlint.watch.run import Watched, merge_static, static_findings, watch_script

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("script", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True,
              help="Stop the run after this many optimizer steps.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the findings and the measurements as JSON to this file.")
@click.option("--output-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json: the list of findings, each with \"observed\": true.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for Python, NumPy and torch.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: the script's own choice; cpu hides CUDA; cuda makes it the default device.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True,
              help="Time limit for the run, in seconds.")
@click.option("--allow-network", is_flag=True,
              help="Let the script open network connections (refused by default: downloads, telemetry).")
@click.option("--memory-limit", type=click.FloatRange(min=0.1), metavar="GIB",
              help="Stop the run when its processes together use more resident memory than this, in GiB.")
@click.option("--static/--no-static", "with_static", default=True, show_default=True,
              help="Also report the static rules' findings in the script and the project files it imports "
                   "(\"observed\": false in JSON).")
def watch(script, script_args, steps, json_path, output_format, seed, device, timeout, allow_network, memory_limit,
          with_static):
    """Run SCRIPT once under rnnlint's observers and report what the run shows.

    The script runs in a child process on a copy of its project (your files are
    not modified) until --steps optimizer steps, its end or its crash. Findings
    carry the static rules' codes and fixes, at your source lines: the module,
    where it is built, and the call in your code. Pass the script's own
    arguments after `--`:

    \b
      rnnlint watch train.py --steps 50 -- --epochs 1

    Exit 1 when the run showed findings, 0 when it showed none, 2 on a usage
    error or when the run could not be watched (it crashed, hung or never
    stepped, and no finding explains why).
    """
    if not script.is_file():
        raise _Failure(f"{script}: no such file")
    if script.suffix != ".py":
        raise _Failure(f"{script}: watch runs a Python script (.py)")
    options = Options(script, list(script_args), steps, seed, device, float(timeout),
                      memory_limit=int(memory_limit * 2**30) if memory_limit else None, network=allow_network)
    try:
        config = load_config([script])
        rules = load_rules(config.rule_folders)
        severities = {code: rule.severity for code, rule in rules.items()}
        progress = TerminalProgress(steps, sys.stderr.isatty())
        watched = watch_script(options, config, progress, severities)
        if with_static:
            merge_static(watched, static_findings(config, script))
    except (ConfigError, RuleLoadError, TrialError) as exc:
        raise _Failure(str(exc)) from None
    sys.exit(_report(watched, json_path, output_format))


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def measurements(watched: Watched) -> dict:
    """What the run measured: the bootstrap's step records and the watcher's own summary."""
    m = compare.metrics(watched.run)
    own = watched.measured or {}
    return {
        "steps": m["steps"], "stopped": m["stopped"], "status": m["status"], "problem": m["problem"],
        "device": m["device"], "loss_start": m["start_loss"], "loss_end": m["final_loss"], "loss_best": m["best_loss"],
        # the watcher's largest finite norm (before clipping); the step records' when it saw none
        "grad_norm_max": own.get("grad_norm_max") if own.get("grad_norm_max") is not None else m["max_grad_norm"],
        "grad_norm_median": m["median_grad_norm"],
        "grad_norm_max_step": own.get("grad_norm_max_step"),
        "first_nonfinite_step": m["first_nonfinite_step"],
        "first_nonfinite": own.get("first_nonfinite"),
        "clipping_seen": own.get("clipping_seen"),
        "saturation_max": own.get("saturation_max"),
        "steps_per_second": m["steps_per_second"], "wall_seconds": m["wall_seconds"],
        "error": m["error"], "stderr_tail": m["stderr_tail"], "blocked_writes": m["blocked_writes"],
        "checks_disabled": own.get("checks_disabled", []),
    }


def _summary_lines(watched: Watched, measured: dict) -> list[str]:
    stopped = {"steps": f"after --steps {watched.options.steps}", "finished": "the script ended",
               "error": "the script crashed", "exit": "the script exited", "time": "time limit",
               "killed": "killed: it hung", "memory": "memory limit",
               "nonfinite": "the parameters became NaN/Inf"}.get(measured["stopped"], measured["stopped"])
    parts = [f"Watched {output.plural(measured['steps'], 'optimizer step')} on {measured['device'] or 'cpu'} "
             f"(stopped: {stopped})"]
    parts.append(f"loss {_number(measured['loss_start'])} -> {_number(measured['loss_end'])}")
    grad = f"grad-norm max {_number(measured['grad_norm_max'], 3)}"
    if measured.get("grad_norm_max_step"):
        grad += f" at step {measured['grad_norm_max_step']}"
    parts.append(grad)
    first = measured.get("first_nonfinite")
    if first:
        where = f" in {', '.join(first['parameters'][:3])}" if first.get("parameters") else ""
        parts.append(f"first non-finite {first['what']} at step {first['step']}{where}")
    elif measured["first_nonfinite_step"]:
        parts.append(f"first non-finite value at step {measured['first_nonfinite_step']}")
    else:
        parts.append("no non-finite values")
    parts.append("clipping seen" if measured.get("clipping_seen") else "no clipping seen")
    return ["; ".join(parts) + "."]


def _report(watched: Watched, json_path: Path | None, output_format: str) -> int:
    measured = measurements(watched)
    findings = [o.to_json() for o in watched.findings]
    findings += [{**d.to_json(), "observed": False, "inferred": True} for d in watched.inferred]
    if output_format == "json":
        click.echo(report.to_json(findings))
    else:
        color = sys.stdout.isatty()
        from rnnlint.source import display_path

        for observed in watched.findings:
            d, f = observed.diagnostic, observed.finding
            click.echo(output.text_line(d, color).replace(f"{d.code} ", f"{d.code} [observed at step {f.get('step')}] ",
                                                          1))
            module = f.get("module")
            if module:
                built = f" built at {display_path(Path(module['file']))}:{module['line']}" if module.get("file") else ""
                name = f" `{module['name']}`" if module.get("name") else ""
                click.echo(f"    module: {module.get('describe') or module['class']}{name}{built}")
            site = f.get("site")
            if site:
                click.echo(f"    call:   {display_path(Path(site['file']))}:{site['line']} in {site['function']}")
            click.echo(f"    fix:    {d.fix.message}")
        for d in watched.inferred:
            click.echo(output.text_line(d, color).replace(f"{d.code}", f"{d.code} [static]", 1))
        for line in _summary_lines(watched, measured):
            click.echo(line)
        if watched.explanation:
            click.echo(f"The script crashed; {watched.explanation}")
        elif measured["status"] != "ok":
            click.echo(f"The script {measured['problem']}.")
            detail = measured["error"] or measured["stderr_tail"]
            if detail:
                click.echo("    " + detail.replace("\n", "\n    "))
        observed, inferred = len(watched.findings), len(watched.inferred)
        counts = [output.plural(observed, "observed finding")] if observed else []
        counts += [output.plural(inferred, "static finding")] if inferred else []
        click.echo(" and ".join(counts) + "." if counts else "No observed findings.")
    if measured["blocked_writes"]:
        click.secho(f"rnnlint: warning: the run tried to {measured['blocked_writes'][0]} in your project; rnnlint "
                    "refused (watch never changes your files).", err=True, fg="yellow")
    if json_path is not None:
        json_path.write_text(report.to_json({
            "script": str(watched.options.script), "args": watched.options.args,
            "steps_requested": watched.options.steps, "findings": findings, "measured": measured,
            "crash_explained_by": watched.explained_by, "crash_explanation": watched.explanation,
        }) + "\n", "utf-8")
    if watched.findings or any(d.severity is not Severity.INFO for d in watched.inferred):
        return EXIT_FINDINGS
    return EXIT_OK if measured["status"] == "ok" else EXIT_ERROR
