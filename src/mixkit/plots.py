"""The report's figures, one message each, from run directories (``docs/report.md``).

Headless (Agg), PNG, 7 x 4.2 in at 110 dpi (770 x 462 px: reads on a laptop screen), labelled
axes with units, and the Okabe-Ito colour-blind-safe palette with the same colour for the same
arm in every figure. Each function returns its Figure, so tests can read what it plots.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mixkit.run_reader import Run  # noqa: E402

SIZE, DPI = (7.0, 4.2), 110


def colour(arm: str) -> str:
    """An arm's colour in every figure: what its registration says (``CommandSpec.colours``,
    ``register_comparison(colour=)``), else one of a spare set, stable per name."""
    from mixkit.command import COMMANDS, COMPARISONS

    for spec in COMMANDS.values():
        if arm in spec.colours:
            return spec.colours[arm]
    if arm in COMPARISONS and COMPARISONS[arm].colour:
        return str(COMPARISONS[arm].colour)
    spare = ["#CC79A7", "#56B4E9", "#009E73"]        # Okabe-Ito's yellow is unreadable on white
    return spare[sum(map(ord, arm)) % len(spare)]


def figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=SIZE, dpi=DPI, layout="constrained")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if xlabel.startswith("epoch"):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


def _curves(runs: list[Run], arm: str) -> tuple[list[float], list[float], list[float],
                                                 list[float]]:
    """Per evaluated epoch, over seeds: mean cumulative training seconds, and the mean, min and
    max validation accuracy (%)."""
    per = []
    for r in runs:
        spent, pts = 0.0, []
        for row in r.arm_rows(arm):
            spent += row["epoch_seconds"]
            if row.get("val_acc") is not None:
                pts.append((spent, 100 * row["val_acc"]))
        per.append(pts)
    n = min((len(p) for p in per), default=0)
    xs = [statistics.mean(p[i][0] for p in per) for i in range(n)]
    ys = [[p[i][1] for p in per] for i in range(n)]
    return xs, [statistics.mean(y) for y in ys], [min(y) for y in ys], [max(y) for y in ys]


def accuracy_vs_time(runs: list[Run], target: float | None = None) -> Figure:
    """Time to accuracy: each arm's validation accuracy against its training seconds (mean
    over seeds; the band spans the seeds)."""
    seeds = (f"mean of {len(runs)} seeds, band: min–max" if len(runs) > 1 else "1 seed")
    fig, ax = figure(f"Accuracy vs training time ({seeds})", "training time (s)",
                      "validation accuracy (%)")
    for arm in runs[0].arms:
        xs, mean, lo, hi = _curves(runs, arm)
        if not xs:
            continue
        ax.plot(xs, mean, color=colour(arm), label=arm, marker="o", markersize=3)
        if len(runs) > 1:
            ax.fill_between(xs, lo, hi, color=colour(arm), alpha=0.15, linewidth=0)
    if target is not None:
        ax.axhline(100 * target, color="#666666", linestyle="--", linewidth=1,
                   label=f"target {100 * target:.1f}%")
    ax.legend(loc="lower right")
    return fig


def pareto(groups: list[list[Run]]) -> Figure:
    """Accuracy against total training time, one point per arm (mean ± sd over seeds): up and
    to the left is better (MixTraining's Fig. 1 shape)."""
    fig, ax = figure("Final accuracy vs total training time", "total training time (s)",
                      "final validation accuracy (%)")
    for g, runs in enumerate(groups):
        for arm in runs[0].arms:
            secs = [sum(x["epoch_seconds"] for x in r.arm_rows(arm)) for r in runs]
            accs = [100 * v[-1] for r in runs
                    if (v := [x["val_acc"] for x in r.arm_rows(arm) if "val_acc" in x])]
            if not accs:
                continue
            sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
            label = arm if len(groups) == 1 else f"{arm} ({runs[0].path.name})"
            x, y = statistics.mean(secs), statistics.mean(accs)
            ax.errorbar(x, y, xerr=sd(secs), yerr=sd(accs), fmt="o", color=colour(arm),
                        label=label, capsize=3)
            ax.annotate(label, (x, y), xytext=(6, 6), textcoords="offset points",
                        fontsize="small", color=colour(arm))    # read without the legend
    ax.margins(x=0.12, y=0.15)             # no point on the frame, room for the labels
    ax.legend(loc="best", fontsize="small")
    return fig


def mean_by_epoch(runs: list[Run], arm: str, get) -> list[float]:
    per = [[get(row) for row in r.arm_rows(arm)] for r in runs]
    n = min((len(p) for p in per), default=0)
    return [statistics.mean(p[i] for p in per) for i in range(n)]


def figures_for(runs: list[Run], target: float | None,
                own: Callable[[list[Run]], dict[str, Figure]] | None = None
                ) -> dict[str, Figure]:
    """Every figure that applies to one group of runs, by file stem: the accuracy-vs-time one
    every command has, and the command's ``own`` (its registration's ``figures``)."""
    return {"accuracy_vs_time": accuracy_vs_time(runs, target), **(own(runs) if own else {})}


def save(fig: Figure, path: Path) -> Path:
    """Write the figure atomically (temp file + rename: a link planted at ``path`` is replaced,
    never written through)."""
    import io

    from mixkit.runio.files import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path
