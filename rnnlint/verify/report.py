"""The before/after table, the verdict lines and the ``--json`` document."""

from __future__ import annotations

import json
import math

from rnnlint.verify.compare import WARMUP_MAX, end_text, end_window, number
from rnnlint.verify.trial import AppliedFix

STOPPED = {
    "steps": "step limit", "time": "time limit", "nonfinite": "params NaN/inf", "finished": "script ended",
    "error": "crashed", "exit": "exited", "killed": "killed", "memory": "memory limit",
}


def _memory(m: dict) -> str:
    if m["peak_memory_bytes"] is None:
        return "-"
    kind = "CUDA" if m["peak_memory_kind"] == "cuda" else "RSS"
    return f"{m['peak_memory_bytes'] / 2**20:.0f} MiB {kind}"


def _nonfinite(m: dict) -> str:
    if not m["first_nonfinite_step"]:
        return "-"
    seeds = len(m["seeds"])
    return str(m["first_nonfinite_step"]) + (f" ({m['nonfinite_seeds']} of {seeds} seeds)" if seeds > 1 else "")


def _steps(m: dict) -> str:
    return str(m["steps"]) if m["steps"] == m["steps_max"] else f"{m['steps']}-{m['steps_max']}"


UPDATES = {"optimizer": "optimizer.step()", "weights": "weight changes"}


def rows(several_seeds: bool) -> list[tuple[str, object]]:
    return [
        ("steps", _steps),
        ("stopped by", lambda m: STOPPED.get(m["stopped"], m["stopped"])),
        ("steps counted by", lambda m: UPDATES.get(m["updates"], "-")),
        ("first non-finite step", _nonfinite),
        ("loss start", lambda m: number(m["start_loss"])),
        ("loss end", end_text),
        *([("loss end, seed range", lambda m: f"{number(m['end_loss_min'])}–{number(m['end_loss_max'])}")]
          if several_seeds else []),
        ("loss best", lambda m: number(m["best_loss"])),
        ("grad norm median, before clipping", lambda m: number(m["median_grad_norm"], 3)),
        ("grad norm max, before clipping", lambda m: number(m["max_grad_norm"], 3)),
        ("saturated units", lambda m: "-" if m["saturation"] is None else f"{m['saturation']:.1%}"),
        ("steps/s (warm)", lambda m: number(m["steps_per_second"], 3)),
        ("device", lambda m: m["device"] or "-"),
        ("peak memory", _memory),
    ]


def table(columns: list[tuple[str, dict]]) -> str:
    """A plain-text table: one row per metric, one column per arm (:func:`rnnlint.verify.compare.arm`)."""
    shown = rows(any(len(m["seeds"]) > 1 for _, m in columns))
    cells = [[label for label, _ in shown]] + [[render(m) for _, render in shown] for _, m in columns]
    heads = [""] + [name for name, _ in columns]
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(heads, cells)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in range(len(shown)):
        lines.append("  ".join(col[row].ljust(w) for col, w in zip(cells, widths)).rstrip())
    return "\n".join(lines)


def notes(columns: list[tuple[str, dict]], workers: int) -> str:
    """How the table's numbers were measured, under the table."""
    first = columns[0][1]
    seeds = first["seeds"]
    h = first["horizon"]
    lines = []
    if len(seeds) > 1:
        lines.append(f"{len(seeds)} seeds per column ({seeds[0]}-{seeds[-1]}): each number is over all of them; "
                     "loss end is their mean ± standard deviation.")
    if h:
        k = end_window(h)
        span = f"step {h}" if k == 1 else f"steps {h - k + 1}-{h}"
        lines.append(f"loss end: mean loss of {span}, the last steps that every run without a failure completed.")
    lines.append("grad norm: the total gradient norm of each step, measured before any clipping.")
    together = f"; {workers} runs at a time shared this machine" if workers > 1 else ", one run at a time"
    lines.append(f"steps/s: 1 / median time per step, leaving out each run's first quarter of steps "
                 f"(at most {WARMUP_MAX}: warm-up){together}.")
    if any(m["updates"] == "weights" for _, m in columns):
        lines.append("steps counted by weight changes: no optimizer object; a step is a change of the weights "
                     "between one backward() and the next (the loss comes from backward()).")
    return "\n".join(lines)


def fix_line(fix: AppliedFix, path: str | None = None) -> str:
    return f"{path or fix.path}:{fix.line}: {fix.code} {fix.name}: {fix.summary}"


def _json_safe(value):
    """JSON has no NaN or infinity: they are written as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(document: dict) -> str:
    return json.dumps(_json_safe(document), indent=2, allow_nan=False)
