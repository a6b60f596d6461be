"""MixTraining's own figures for ``mixkit report`` and a run's ``plots/`` (its registration's
``figures``): each arm's phases on its training clock, and the two objectives' losses."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mixkit.plots import DPI, SIZE, colour, figure, mean_by_epoch
from mixkit.run_reader import Run

PHASE_COLOURS = {"ssl": "#CC79A7", "mix": "#56B4E9", "sl": "#009E73"}


def phases(run: Run) -> Figure:
    """Each arm's phases against its own training clock: where MixTraining saves time."""
    fig, ax = figure("Phase timeline per arm", "training time (s)", "")
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
        ssl = mean_by_epoch(runs, arm, lambda r: r["train_loss"] if r["phase"] == "ssl"
                             else r.get("ssl_loss", float("nan")))
        sl = mean_by_epoch(runs, arm, lambda r: r["train_loss"] if r["phase"] == "sl"
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
