"""From a run's step records to metrics, and from two runs to a verdict.

The verdict is one of:

- ``confirmed``: the fixed run is healthier by one of these criteria, checked
  in this order: the original could not train (crashed, exited, never stepped)
  and the fixed script trains; the original hit a non-finite loss, gradient or
  parameter and the fixed run stayed finite for at least as many steps; the
  maximum gradient norm fell at least 10x with an end loss no more than 10%
  worse; the end loss fell at least 20%; the saturated share of recurrent /
  tanh / sigmoid units fell at least by half from 20% or more, end loss no more
  than 10% worse.
- ``regressed``: the mirror image: the fixed script cannot train, turns
  non-finite where the original did not, or ends with a loss more than 10%
  worse.
- ``inconclusive``: anything else, including two identical runs.
- ``error``: neither run reached an optimizer step, so nothing was measured.

Losses and gradient norms are compared over the steps both runs completed;
the "end loss" is the mean of the last tenth of them (at least 1, at most 10
steps), so one noisy batch does not decide.
"""

from __future__ import annotations

import math
import statistics

from rnnlint.verify.trial import Run, finite

GRAD_FACTOR = 10.0
LOSS_TOLERANCE = 0.10
LOSS_GAIN = 0.20
SATURATION_FLOOR = 0.20

VERDICTS = ("confirmed", "inconclusive", "regressed", "error")


def _first(values):
    return next((v for v in values if v is not None), None)


def _worst(values: list) -> float | None:
    """Largest value; NaN when any is NaN, inf when any is infinite."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if any(isinstance(v, float) and math.isnan(v) for v in present):
        return math.nan
    return max(present)


def status(run: Run) -> tuple[str, str | None]:
    """``(status, problem)``: ok, or what went wrong, said for a person."""
    steps = run.steps
    where = f"at step {steps + 1}" if steps else "before its first optimizer step"
    if run.stopped == "error":
        return "crashed", f"crashed {where}"
    if run.stopped == "exit":
        if run.exit_code == 2 and "usage:" in run.stderr_tail:
            return "needs-arguments", (
                f"exited with status 2 {where}: its argument parser rejected the command line "
                "(pass the script's arguments after `--`)"
            )
        return "exited", f"exited with status {run.exit_code} {where}"
    if run.stopped == "memory":
        limit = f"{run.memory_limit / 2**30:.3g} GiB" if run.memory_limit else "the memory limit"
        return "out-of-memory", (f"used more than {limit} of memory (with the processes it started) and was "
                                 f"stopped after {steps} optimizer steps; raise it with --memory-limit")
    if run.stopped == "killed":
        return "killed", (f"hung and was killed {run.time_limit:g}s after it started "
                          f"({steps} optimizer steps done)")
    if steps == 0:
        if run.stopped == "time":
            return "no-step", f"reached no optimizer step within the time limit ({run.time_limit:g}s)"
        return "no-step", "finished without ever calling optimizer.step()"
    return "ok", None


def metrics(run: Run) -> dict:
    """The JSON-ready summary of one run (non-finite floats are left as floats here)."""
    losses = [r.get("loss") for r in run.records]
    grads = [r.get("grad_norm") for r in run.records]
    saturation = [r["saturation"] for r in run.records if r.get("saturation") is not None]
    nonfinite = next((r["step"] for r in run.records if r.get("nonfinite")), None)
    finite_losses = [v for v in losses if finite(v)]
    finite_grads = [v for v in grads if finite(v)]
    state, problem = status(run)
    return {
        "status": state,
        "problem": problem,
        "stopped": run.stopped,
        "steps": run.steps,
        "first_nonfinite_step": nonfinite,
        "losses": losses,
        "grad_norms": grads,
        "param_norms": [r.get("param_norm") for r in run.records],
        "start_loss": _first(losses),
        "final_loss": _first(reversed(losses)),
        "best_loss": min(finite_losses) if finite_losses else None,
        "median_grad_norm": statistics.median(finite_grads) if finite_grads else None,
        "max_grad_norm": _worst(grads),
        "saturation": sum(saturation) / len(saturation) if saturation else None,
        "steps_per_second": run.steps_per_second,
        "device": run.device,
        "peak_memory_bytes": run.peak_memory_bytes,
        "peak_memory_kind": run.peak_memory_kind,
        "wall_seconds": round(run.wall_seconds, 3),
        "error": run.error,
        "stderr_tail": run.stderr_tail if state != "ok" else None,
        "blocked_writes": run.blocked,
        "left_processes_running": run.leftovers,
    }


def end_loss(losses: list, horizon: int) -> float | None:
    window = [v for v in losses[:horizon] if v is not None]
    if not window:
        return None
    k = max(1, min(10, len(window) // 10))
    return sum(window[-k:]) / k


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def verdict(before: dict, after: dict) -> tuple[str, str]:
    """``(verdict, reason)`` for the fixed run ``after`` against the original ``before``."""
    b_steps, a_steps = before["steps"], after["steps"]
    if not b_steps and not a_steps:
        reason = f"neither run reached an optimizer step: the original script {before['problem']}"
        if after["problem"] != before["problem"]:
            reason += f"; the fixed script {after['problem']}"
        return "error", reason
    if not b_steps:
        return "confirmed", f"the original script {before['problem']}; the fixed script trained for {a_steps} steps"
    if not a_steps:
        return "regressed", f"the fixed script {after['problem']}; the original trained for {b_steps} steps"
    if after["status"] != "ok" and before["status"] == "ok":
        return "regressed", f"the fixed script {after['problem']}; the original ran {b_steps} steps without failing"
    if before["status"] != "ok" and after["status"] == "ok":
        return "confirmed", f"the original script {before['problem']}; the fixed script ran {a_steps} steps"

    b_bad, a_bad = before["first_nonfinite_step"], after["first_nonfinite_step"]
    if b_bad and not a_bad:
        if a_steps < b_bad:
            return "inconclusive", (f"the original hit non-finite values at step {b_bad}, but the fixed run "
                                    f"stopped after {a_steps} steps, before that point")
        return "confirmed", (f"the original run hit non-finite values at step {b_bad}; the fixed run stayed "
                             f"finite for all {a_steps} steps (loss {_fmt(after['start_loss'])} -> "
                             f"{_fmt(after['final_loss'])})")
    if a_bad and not b_bad:
        if b_steps < a_bad:
            return "inconclusive", (f"the fixed run hit non-finite values at step {a_bad}, after the "
                                    f"original stopped ({b_steps} steps)")
        return "regressed", (f"the fixed run hit non-finite values at step {a_bad}; "
                             f"the original stayed finite for all {b_steps} steps")
    if b_bad and a_bad:
        if a_bad >= 2 * b_bad:
            return "inconclusive", (f"both runs hit non-finite values, the fixed one later (step {a_bad} "
                                    f"against {b_bad}): the fixes delay the divergence but do not prevent it")
        if 2 * a_bad <= b_bad:
            return "regressed", f"both runs hit non-finite values, the fixed one earlier (step {a_bad} against {b_bad})"
        return "inconclusive", (f"both runs hit non-finite values (steps {b_bad} and {a_bad}): "
                                "the fixes do not prevent the divergence")

    horizon = min(b_steps, a_steps)
    if before["losses"] == after["losses"] and before["grad_norms"] == after["grad_norms"]:
        return "inconclusive", f"the two runs are identical over {horizon} steps: the fixes changed nothing measured"
    b_loss, a_loss = end_loss(before["losses"], horizon), end_loss(after["losses"], horizon)
    worse_by = None
    if b_loss is not None and a_loss is not None:
        worse_by = (a_loss - b_loss) / abs(b_loss) if b_loss else (math.inf if a_loss > 0 else 0.0)
    not_worse = worse_by is None or worse_by <= LOSS_TOLERANCE
    b_grad = _worst(before["grad_norms"][:horizon])
    a_grad = _worst(after["grad_norms"][:horizon])
    losses = f"end loss {_fmt(b_loss)} -> {_fmt(a_loss)}"
    grads = f"max gradient norm {_fmt(b_grad)} -> {_fmt(a_grad)}"
    if b_grad and a_grad is not None and a_grad * GRAD_FACTOR <= b_grad and not_worse:
        factor = b_grad / a_grad if a_grad else math.inf
        return "confirmed", (f"the max gradient norm fell {factor:.3g}x ({_fmt(b_grad)} -> {_fmt(a_grad)}) "
                             f"without a worse loss ({losses})")
    if worse_by is not None and worse_by <= -LOSS_GAIN:
        return "confirmed", f"the {losses} is {-worse_by:.0%} lower over {horizon} steps ({grads})"
    b_sat, a_sat = before["saturation"], after["saturation"]
    if b_sat is not None and a_sat is not None and b_sat >= SATURATION_FLOOR and a_sat <= b_sat / 2 and not_worse:
        return "confirmed", (f"the saturated share of units fell from {b_sat:.0%} to {a_sat:.0%} "
                             f"without a worse loss ({losses})")
    if not not_worse:
        return "regressed", f"the {losses} is {worse_by:.0%} worse over {horizon} steps ({grads})"
    return "inconclusive", f"no marked difference over {horizon} steps: {losses}, {grads}"
