"""``--plot``: loss and gradient norm per step for each run, log scale (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path

from rnnlint.verify.trial import finite


class PlotUnavailable(Exception):
    pass


def write_plot(path: Path, columns: list[tuple[str, dict]], title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'rnnlint[plot]' (or pip install matplotlib)"
        ) from None
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.3), dpi=72)
    for (name, m), style in zip(columns, ("-", "--", ":", "-.") * 8):
        for axis, key in zip(axes, ("losses", "grad_norms")):
            steps = [i + 1 for i, v in enumerate(m[key]) if finite(v) and v > 0]
            values = [v for v in m[key] if finite(v) and v > 0]
            (line,) = axis.plot(steps, values, style, label=name, linewidth=1.4)
            bad = m["first_nonfinite_step"]
            if bad:
                axis.axvline(bad, color=line.get_color(), linestyle=":", linewidth=1)
                axis.annotate(f"{name}: NaN/inf at step {bad}", (bad, 0.93), xycoords=axis.get_xaxis_transform(),
                              fontsize=7, color=line.get_color(), xytext=(4, 0), textcoords="offset points")
    for axis, label in zip(axes, ("loss", "gradient norm (before clipping)")):
        axis.set_yscale("log")
        axis.set_xlabel("training step")
        axis.set_title(label, fontsize=10)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend(fontsize=8)
    starts = [m["start_loss"] for _, m in columns if finite(m["start_loss"]) and m["start_loss"] > 0]
    lows = [v for _, m in columns for v in m["losses"] if finite(v) and v > 0]
    if starts and lows and max(lows) > 1000 * max(starts):
        # a diverging run would squash every other curve: its blow-up leaves the chart
        axes[0].set_ylim(min(lows) / 2, 1000 * max(starts))
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
