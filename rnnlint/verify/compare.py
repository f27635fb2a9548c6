"""From runs' step records to one summary per arm, and from two arms to a verdict.

An *arm* is one copy of the project (the original, the fixed copy, a copy with
one fix) run once per seed. :func:`arms` summarises every arm over one
*horizon* (the steps that every run without a failure or a non-finite value
completed), and both the table and the verdict read those summaries: the
numbers in the reason are the numbers in the table.

The verdict is one of:

- ``confirmed``: the fixed arm is healthier by one of these criteria, checked
  in this order: the original could not train (crashed, exited, never
  updated its weights) and the fixed script trains; the original hit a
  non-finite loss, gradient or parameter and the fixed runs stayed finite for
  at least as many steps; the largest gradient norm fell at least 10x (every
  fixed seed's largest below a tenth of every original seed's) with an end
  loss no more than 10% worse; the end loss fell at least 20% and by more than
  seed noise; the saturated share of recurrent / tanh / sigmoid units fell at
  least by half from 20% or more, end loss no more than 10% worse.
- ``regressed``: the mirror image: the fixed script cannot train, turns
  non-finite where the original did not, or ends with a loss more than 10%
  worse, by more than seed noise.
- ``inconclusive``: anything else, including two identical arms and a
  difference in loss that seed noise could explain; the reason says what a
  trial this short can and cannot show.
- ``error``: neither arm reached a step, so nothing was measured.

*Seed noise*: with ``--seeds N`` (N >= 2) a loss difference counts only when
the seeds' end losses do not overlap (every fixed seed ends below, or above,
every original seed). With one seed the spread is unknown, so only a
difference of half the loss or more counts, and a smaller one is reported as
inconclusive with that said.

The "end loss" of a run is the mean of the last tenth of its losses up to the
horizon (at least 1, at most 10 steps), so one noisy batch does not decide.
"""

from __future__ import annotations

import math
import statistics

from rnnlint.verify.trial import TrialRun, finite, status

GRAD_FACTOR = 10.0
LOSS_TOLERANCE = 0.10
LOSS_GAIN = 0.20
ONE_SEED_EFFECT = 0.50  # with one seed, a smaller relative difference in end loss may be seed noise
SATURATION_FLOOR = 0.20
WARMUP_MAX = 10  # steps/s skips the first quarter of a run's steps, at most this many

VERDICTS = ("confirmed", "inconclusive", "regressed", "error")


def number(value, digits: int = 4) -> str:
    """A measured number as the table and the verdict both print it."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.{digits}g}"


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


def warmup(steps: int) -> int:
    """Steps left out of steps/s: the first quarter, at most :data:`WARMUP_MAX` (caches, allocators, JIT)."""
    return min(WARMUP_MAX, steps // 4)


def steps_per_second(times: list[float]) -> float | None:
    """1 / the median time between two steps after the warm-up: the same measure for every run."""
    times = times[warmup(len(times)):]
    gaps = [b - a for a, b in zip(times, times[1:])]
    if not gaps:
        return None
    middle = statistics.median(gaps)
    return 1.0 / middle if middle > 0 else None


def metrics(run: TrialRun) -> dict:
    """The JSON-ready summary of one run (non-finite floats are left as floats here)."""
    losses = [r.get("loss") for r in run.records]
    grads = [r.get("grad_norm") for r in run.records]
    finite_losses = [v for v in losses if finite(v)]
    finite_grads = [v for v in grads if finite(v)]
    nonfinite = next((r["step"] for r in run.records if r.get("nonfinite")), None)
    state, problem = status(run)
    return {
        "seed": run.seed,
        "status": state,
        "problem": problem,
        "stopped": run.stopped,
        "steps": run.steps,
        "updates": run.updates,
        "first_nonfinite_step": nonfinite,
        "losses": losses,
        "grad_norms": grads,
        # one run on its own, over all its steps (rnnlint watch); verify's table reads arm() instead
        "start_loss": _first(losses),
        "final_loss": _first(reversed(losses)),
        "best_loss": min(finite_losses) if finite_losses else None,
        "median_grad_norm": statistics.median(finite_grads) if finite_grads else None,
        "max_grad_norm": _worst(grads),
        "param_norms": [r.get("param_norm") for r in run.records],
        "update_norms": [r.get("update_norm") for r in run.records],
        "saturations": [r.get("saturation") for r in run.records],
        "steps_per_second": steps_per_second([r["time"] for r in run.records if "time" in r]),
        "device": run.device,
        "peak_memory_bytes": run.peak_memory_bytes,
        "peak_memory_kind": run.peak_memory_kind,
        "wall_seconds": round(run.wall_seconds, 3),
        "error": run.error,
        "stderr_tail": run.stderr_tail if state != "ok" else None,
        "blocked_writes": run.blocked,
        "left_processes_running": run.leftovers,
    }


def end_window(steps: int) -> int:
    return max(1, min(10, steps // 10))


def end_loss(losses: list, horizon: int) -> float | None:
    window = [v for v in losses[:horizon] if v is not None]
    if not window:
        return None
    k = end_window(len(window))
    return sum(window[-k:]) / k


def horizon(runs: list[dict]) -> int | None:
    """The steps every run that neither failed nor turned non-finite completed (None: there is no such run)."""
    healthy = [m["steps"] for m in runs if m["status"] == "ok" and not m["first_nonfinite_step"] and m["steps"]]
    return min(healthy) if healthy else None


def _spread(values: list[float]) -> dict:
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "sd": None, "min": None, "max": None}
    if not all(finite(v) for v in present):
        worst = _worst(present)
        return {"mean": worst, "sd": None, "min": worst, "max": worst}
    return {"mean": statistics.fmean(present), "sd": statistics.stdev(present) if len(present) > 1 else None,
            "min": min(present), "max": max(present)}


def arm(runs: list[dict], steps_horizon: int | None) -> dict:
    """One arm (its runs, one per seed) summarised over ``steps_horizon`` steps: what the table shows."""
    failing = next((m for m in runs if m["status"] != "ok"), runs[0])
    bad = [m["first_nonfinite_step"] for m in runs if m["first_nonfinite_step"]]

    def upto(m: dict) -> int:
        return min(m["steps"], steps_horizon) if steps_horizon else m["steps"]

    ends = [end_loss(m["losses"], upto(m)) for m in runs]
    spread = _spread(ends)
    grads = [[v for v in m["grad_norms"][:upto(m)]] for m in runs]
    finite_grads = [v for g in grads for v in g if finite(v)]
    maxima = [_worst(g) for g in grads if g]
    saturation = [v for m in runs for v in m["saturations"][:upto(m)] if v is not None]
    rates = [m["steps_per_second"] for m in runs if m["steps_per_second"]]
    memory = [m["peak_memory_bytes"] for m in runs if m["peak_memory_bytes"] is not None]
    return {
        "seeds": [m["seed"] for m in runs],
        "status": failing["status"],
        "problem": failing["problem"],
        "stopped": failing["stopped"],
        "failed_seeds": sum(m["status"] != "ok" for m in runs),
        "steps": min(m["steps"] for m in runs),
        "steps_max": max(m["steps"] for m in runs),
        "horizon": steps_horizon,
        "updates": _first(m["updates"] for m in runs),
        "first_nonfinite_step": min(bad) if bad else None,
        "nonfinite_seeds": len(bad),
        "start_loss": _spread([_first(m["losses"]) for m in runs])["mean"],
        "end_loss": spread["mean"],
        "end_loss_sd": spread["sd"],
        "end_loss_min": spread["min"],
        "end_loss_max": spread["max"],
        "end_losses": ends,
        "best_loss": min((v for m in runs for v in m["losses"] if finite(v)), default=None),
        "median_grad_norm": statistics.median(finite_grads) if finite_grads else None,
        "max_grad_norm": _worst(maxima),
        "max_grad_norm_least": min((v for v in maxima if v is not None), default=None),
        "saturation": sum(saturation) / len(saturation) if saturation else None,
        "steps_per_second": statistics.median(rates) if rates else None,
        "device": _first(m["device"] for m in runs),
        "peak_memory_bytes": max(memory) if memory else None,
        "peak_memory_kind": _first(m["peak_memory_kind"] for m in runs),
        "wall_seconds": round(sum(m["wall_seconds"] for m in runs), 3),
        "error": failing["error"],
        "stderr_tail": failing["stderr_tail"],
        "blocked_writes": sorted({b for m in runs for b in m["blocked_writes"]}),
        "left_processes_running": any(m["left_processes_running"] for m in runs),
        "losses": runs[0]["losses"],  # the first seed's curves (the plot)
        "grad_norms": runs[0]["grad_norms"],
        "runs": runs,
    }


def arms(columns: list[tuple[str, list[dict]]]) -> list[tuple[str, dict]]:
    """Every arm of the table summarised over the same horizon."""
    shared = horizon([m for _, runs in columns for m in runs])
    return [(name, arm(runs, shared)) for name, runs in columns]


def end_text(a: dict) -> str:
    """An arm's end loss as the table shows it: ``2.31``, or ``2.31 ± 0.04`` over several seeds."""
    if a["end_loss_sd"] is None:
        return number(a["end_loss"])
    return f"{number(a['end_loss'])} ± {number(a['end_loss_sd'], 2)}"


def _seeds(a: dict, count: int) -> str:
    n = len(a["seeds"])
    return "" if n == 1 else f" in {count} of {n} seeds"


def verdict(before: dict, after: dict) -> tuple[str, str]:
    """``(verdict, reason)`` for the fixed arm ``after`` against the original ``before`` (see :func:`arm`)."""
    b_steps, a_steps = before["steps"], after["steps"]
    if not before["steps_max"] and not after["steps_max"]:
        reason = f"neither run reached a training step: the original script {before['problem']}"
        if after["problem"] != before["problem"]:
            reason += f"; the fixed script {after['problem']}"
        return "error", reason
    if not before["steps_max"]:
        return "confirmed", f"the original script {before['problem']}; the fixed script trained for {a_steps} steps"
    if not after["steps_max"]:
        return "regressed", f"the fixed script {after['problem']}; the original trained for {b_steps} steps"
    if after["status"] != "ok" and before["status"] == "ok":
        return "regressed", (f"the fixed script {after['problem']}{_seeds(after, after['failed_seeds'])}; "
                             f"the original ran {b_steps} steps without failing")
    if before["status"] != "ok" and after["status"] == "ok":
        return "confirmed", (f"the original script {before['problem']}{_seeds(before, before['failed_seeds'])}; "
                             f"the fixed script ran {a_steps} steps")

    b_bad, a_bad = before["first_nonfinite_step"], after["first_nonfinite_step"]
    if b_bad and not a_bad:
        if a_steps < b_bad:
            return "inconclusive", (f"the original hit non-finite values at step {b_bad}, but the fixed run "
                                    f"stopped after {a_steps} steps, before that point")
        return "confirmed", (f"the original run hit non-finite values at step {b_bad}"
                             f"{_seeds(before, before['nonfinite_seeds'])}; the fixed run stayed finite for all "
                             f"{a_steps} steps (loss start {number(after['start_loss'])}, end {end_text(after)})")
    if a_bad and not b_bad:
        if b_steps < a_bad:
            return "inconclusive", (f"the fixed run hit non-finite values at step {a_bad}, after the "
                                    f"original stopped ({b_steps} steps)")
        return "regressed", (f"the fixed run hit non-finite values at step {a_bad}"
                             f"{_seeds(after, after['nonfinite_seeds'])}; "
                             f"the original stayed finite for all {b_steps} steps")
    if b_bad and a_bad:
        if a_bad >= 2 * b_bad:
            return "inconclusive", (f"both runs hit non-finite values, the fixed one later (step {a_bad} "
                                    f"against {b_bad}): the fixes delay the divergence but do not prevent it")
        if 2 * a_bad <= b_bad:
            return "regressed", f"both runs hit non-finite values, the fixed one earlier (step {a_bad} against {b_bad})"
        return "inconclusive", (f"both runs hit non-finite values (steps {b_bad} and {a_bad}): "
                                "the fixes do not prevent the divergence")
    return _healthy(before, after)


def _healthy(before: dict, after: dict) -> tuple[str, str]:
    """Both arms trained without failing or turning non-finite: compare losses, gradients, saturation."""
    h = before["horizon"] or min(before["steps"], after["steps"])
    pairs = list(zip(before["runs"], after["runs"]))
    if all(b["losses"][:h] == a["losses"][:h] and b["grad_norms"][:h] == a["grad_norms"][:h] for b, a in pairs):
        return "inconclusive", f"the two runs are identical over {h} steps: the fixes changed nothing measured"
    b_loss, a_loss = before["end_loss"], after["end_loss"]
    rel = None
    if b_loss is not None and a_loss is not None:
        rel = (a_loss - b_loss) / abs(b_loss) if b_loss else (math.inf if a_loss > 0 else 0.0)
    not_worse = rel is None or rel <= LOSS_TOLERANCE
    seeds = len(before["seeds"])
    losses = f"end loss {end_text(before)} -> {end_text(after)}"
    if seeds > 1:
        losses += f" (mean ± sd of {seeds} seeds)"
    b_grad, a_grad = before["max_grad_norm"], after["max_grad_norm"]
    grads = f"max gradient norm before clipping {number(b_grad, 3)} -> {number(a_grad, 3)}"
    least = before["max_grad_norm_least"]
    if least and a_grad is not None and a_grad * GRAD_FACTOR <= least and not_worse:
        factor = b_grad / a_grad if a_grad else math.inf
        every = " in every seed" if seeds > 1 else ""
        return "confirmed", (f"the max gradient norm before clipping fell {factor:.3g}x{every} "
                             f"({number(b_grad, 3)} -> {number(a_grad, 3)}) without a worse loss ({losses})")
    b_sat, a_sat = before["saturation"], after["saturation"]
    if b_sat is not None and a_sat is not None and b_sat >= SATURATION_FLOOR and a_sat <= b_sat / 2 and not_worse:
        return "confirmed", (f"the saturated share of units fell from {b_sat:.0%} to {a_sat:.0%} "
                             f"without a worse loss ({losses})")
    if rel is None or -LOSS_GAIN < rel <= LOSS_TOLERANCE:
        return "inconclusive", f"no marked difference over {h} steps: {losses}, {grads}{_stability(before, after, h)}"
    direction = "lower" if rel < 0 else "higher"
    size = f"the {losses} is {abs(rel):.0%} {'lower' if rel < 0 else 'worse'} over {h} steps"
    if seeds > 1:
        separated = (after["end_loss_max"] < before["end_loss_min"] if rel < 0
                     else after["end_loss_min"] > before["end_loss_max"])
        if not separated:
            return "inconclusive", (
                f"{size}, but within the spread of {seeds} seeds (original {number(before['end_loss_min'])}"
                f"–{number(before['end_loss_max'])}, fixed {number(after['end_loss_min'])}"
                f"–{number(after['end_loss_max'])}): not an effect larger than seed noise"
                f"{_stability(before, after, h)}")
        noise = f"; every fixed seed ended {direction} than every original seed"
    else:
        if abs(rel) < ONE_SEED_EFFECT:
            return "inconclusive", (f"{size}, but with one seed a difference this size cannot be told from "
                                    f"seed noise (run with --seeds 3 or more){_stability(before, after, h)}")
        noise = ""
    if rel < 0:
        return "confirmed", f"{size} ({grads}){noise}"
    return "regressed", f"{size} ({grads}){noise}{_stability(before, after, h)}"


def _stability(before: dict, after: dict, h: int) -> str:
    """What a short trial cannot show when the fixed arm learns slower and the original never diverged."""
    if after["end_loss"] is None or before["end_loss"] is None or after["end_loss"] <= before["end_loss"]:
        return ""
    return (f"; the fixed run learns slower in {h} steps and the original did not diverge in that time: "
            "no evidence either way about stability (a longer trial, --steps, can show it)")
