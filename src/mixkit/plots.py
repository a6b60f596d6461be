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
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mixkit.run_reader import Run  # noqa: E402

OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7"]
ARM_COLOURS = {"baseline": "#000000", "sl": "#000000", "mixtrain": "#0072B2",
               "mixtraining": "#0072B2", "ssl+sl": "#E69F00", "short": "#E69F00",
               "skip": "#009E73", "infobatch": "#D55E00", "seta": "#CC79A7"}
PHASE_COLOURS = {"ssl": "#CC79A7", "mix": "#56B4E9", "sl": "#009E73"}
SIZE, DPI = (7.0, 4.2), 110


def colour(arm: str) -> str:
    spare = ["#CC79A7", "#56B4E9", "#009E73"]        # Okabe-Ito's yellow is unreadable on white
    return ARM_COLOURS.get(arm, spare[sum(map(ord, arm)) % len(spare)])


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Any]:
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
    fig, ax = _figure(f"Accuracy vs training time ({seeds})", "training time (s)",
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
    fig, ax = _figure("Final accuracy vs total training time", "total training time (s)",
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


def _mean_by_epoch(runs: list[Run], arm: str, get) -> list[float]:
    per = [[get(row) for row in r.arm_rows(arm)] for r in runs]
    n = min((len(p) for p in per), default=0)
    return [statistics.mean(p[i] for p in per) for i in range(n)]


def mixing(runs: list[Run], arm: str = "mixtrain") -> Figure:
    """Share of the dataset trained mixed in each epoch, by why it was mixed (Region 1: easy,
    Region 3: hard and rising; the paper's Figs. 7 and 9A), mean over seeds."""
    n = max(r["samples"] for r in runs[0].rows)
    share = lambda key: _mean_by_epoch(  # noqa: E731
        runs, arm, lambda row: 100 * row.get("mixed_counts", {}).get(key, 0) / n)
    r1, r3 = share("r1"), share("r3")
    fig, ax = _figure("Share of the dataset mixed, by region", "epoch",
                      "samples trained mixed (% of the dataset)")
    epochs = list(range(1, len(r1) + 1))        # epochs count from 1, as metrics.jsonl
    ax.bar(epochs, r1, color="#0072B2", label="mixed for Region 1 (easy)")
    ax.bar(epochs, r3, bottom=r1, color="#D55E00", label="mixed for Region 3 (hard, rising)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left")
    return fig


def thresholds(runs: list[Run], arm: str = "mixtrain") -> Figure:
    """The loss thresholds that choose each next epoch's mix: L_corr, L_incorr, L_mid (Eq. 7)."""
    fig, ax = _figure("Selection thresholds over training", "epoch", "cross-entropy (nats)")
    for key, c, label in (("l_corr", "#009E73", "L_corr (correct, unmixed)"),
                          ("l_incorr", "#D55E00", "L_incorr (incorrect, unmixed)"),
                          ("l_mid", "#0072B2", "L_mid = (L_corr + L_incorr) / 2")):
        ys = _mean_by_epoch(runs, arm, lambda row, k=key: row.get(k, float("nan")))
        ax.plot(range(1, len(ys) + 1), ys, color=c, label=label, marker="o", markersize=3)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)          # headroom: the legend sits above the curves
    ax.legend(loc="upper right", ncol=2, fontsize="small")
    return fig


def regions(runs: list[Run], arm: str = "mixtrain") -> Figure:
    """Where every sample's loss fell each epoch: Region 1 / 2 / 3 shares of the dataset."""
    n = max(r["samples"] for r in runs[0].rows)
    fig, ax = _figure("Samples by loss region", "epoch", "samples (% of the dataset)")
    shares = [_mean_by_epoch(runs, arm, lambda row, k=k: 100 * row.get("region_counts", {})
                             .get(k, 0) / n) for k in ("r1", "r2", "r3")]
    ax.stackplot(range(1, len(shares[0]) + 1), *shares, colors=["#0072B2", "#F0E442", "#D55E00"],
                 labels=["Region 1 (< L_mid)", "Region 2", "Region 3 (> L_incorr)"])
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right")
    return fig


def phases(run: Run) -> Figure:
    """Each arm's phases against its own training clock: where MixTraining saves time."""
    fig, ax = _figure("Phase timeline per arm", "training time (s)", "")
    arms = run.arms
    for i, arm in enumerate(arms):
        start = 0.0
        for row in run.arm_rows(arm):
            ax.barh(i, row["epoch_seconds"], left=start, color=PHASE_COLOURS.get(row["phase"],
                                                                                 "#999999"),
                    edgecolor="white", linewidth=0.3)
            start += row["epoch_seconds"]
    ax.set_yticks(range(len(arms)), arms)
    ax.invert_yaxis()
    handles = [Patch(color=c, label={"ssl": "SSL (MAE)", "mix": "mix (Eq. 3)", "sl": "SL"}[p])
               for p, c in PHASE_COLOURS.items()]
    ax.legend(handles=handles, loc="lower right")
    return fig


def losses(runs: list[Run]) -> Figure:
    """The two objectives over each arm's epochs: MAE loss (SSL epochs, and Eq. 3's l_ssl in the
    mix phase) and cross-entropy (SL epochs, and l_sl in the mix phase)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=SIZE, dpi=DPI, sharex=True,
                                      layout="constrained")
    top.set_title("Training losses of the two objectives")
    for arm in runs[0].arms:
        ssl = _mean_by_epoch(runs, arm, lambda r: r["train_loss"] if r["phase"] == "ssl"
                             else r.get("ssl_loss", float("nan")))
        sl = _mean_by_epoch(runs, arm, lambda r: r["train_loss"] if r["phase"] == "sl"
                            else r.get("sl_loss", float("nan")))
        top.plot(range(1, len(ssl) + 1), ssl, color=colour(arm), label=arm)
        bottom.plot(range(1, len(sl) + 1), sl, color=colour(arm), label=arm)
    top.set_ylabel("MAE loss (MSE)")
    bottom.set_ylabel("cross-entropy (nats)")
    bottom.set_xlabel("epoch of the arm")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    top.legend(loc="upper right", fontsize="small")
    return fig


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
