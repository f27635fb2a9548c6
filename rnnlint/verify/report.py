"""The before/after table, the verdict lines and the ``--json`` document."""

from __future__ import annotations

import json
import math

from rnnlint.verify.trial import AppliedFix

STOPPED = {
    "steps": "step limit", "time": "time limit", "nonfinite": "params NaN/inf", "finished": "script ended",
    "error": "crashed", "exit": "exited", "killed": "killed", "memory": "memory limit",
}


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.{digits}g}"


def _memory(m: dict) -> str:
    if m["peak_memory_bytes"] is None:
        return "-"
    kind = "CUDA" if m["peak_memory_kind"] == "cuda" else "RSS"
    return f"{m['peak_memory_bytes'] / 2**20:.0f} MiB {kind}"


ROWS = (
    ("steps", lambda m: str(m["steps"])),
    ("stopped by", lambda m: STOPPED.get(m["stopped"], m["stopped"])),
    ("first non-finite step", lambda m: str(m["first_nonfinite_step"] or "-")),
    ("loss start", lambda m: _number(m["start_loss"])),
    ("loss end", lambda m: _number(m["final_loss"])),
    ("loss best", lambda m: _number(m["best_loss"])),
    ("grad norm median", lambda m: _number(m["median_grad_norm"], 3)),
    ("grad norm max", lambda m: _number(m["max_grad_norm"], 3)),
    ("saturated units", lambda m: "-" if m["saturation"] is None else f"{m['saturation']:.1%}"),
    ("steps/s", lambda m: _number(m["steps_per_second"], 3)),
    ("device", lambda m: m["device"] or "-"),
    ("peak memory", _memory),
)


def table(columns: list[tuple[str, dict]]) -> str:
    """A plain-text table: one row per metric, one column per run."""
    cells = [[label for label, _ in ROWS]] + [[render(m) for _, render in ROWS] for _, m in columns]
    heads = [""] + [name for name, _ in columns]
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(heads, cells)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in range(len(ROWS)):
        lines.append("  ".join(col[row].ljust(w) for col, w in zip(cells, widths)).rstrip())
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
