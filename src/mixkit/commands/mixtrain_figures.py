"""mixTrain's own figures for ``mixkit report`` and a run's ``plots/`` (its registration's
``figures``): the share mixed by region (Figs. 7, 9A), the selection thresholds (Eq. 7) and the
samples by loss region, each mean over seeds."""

from __future__ import annotations

from matplotlib.figure import Figure

from mixkit.plots import figure, mean_by_epoch
from mixkit.run_reader import Run


def mixing(runs: list[Run], arm: str = "mixtrain") -> Figure:
    """Share of the dataset trained mixed in each epoch, by why it was mixed (Region 1: easy,
    Region 3: hard and rising; the paper's Figs. 7 and 9A), mean over seeds."""
    n = max(r["samples"] for r in runs[0].rows)
    share = lambda key: mean_by_epoch(  # noqa: E731
        runs, arm, lambda row: 100 * row.get("mixed_counts", {}).get(key, 0) / n)
    r1, r3 = share("r1"), share("r3")
    fig, ax = figure("Share of the dataset mixed, by region", "epoch",
                      "samples trained mixed (% of the dataset)")
    epochs = list(range(1, len(r1) + 1))        # epochs count from 1, as metrics.jsonl
    ax.bar(epochs, r1, color="#0072B2", label="mixed for Region 1 (easy)")
    ax.bar(epochs, r3, bottom=r1, color="#D55E00", label="mixed for Region 3 (hard, rising)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left")
    return fig


def thresholds(runs: list[Run], arm: str = "mixtrain") -> Figure:
    """The loss thresholds that choose each next epoch's mix: L_corr, L_incorr, L_mid (Eq. 7)."""
    fig, ax = figure("Selection thresholds over training", "epoch", "cross-entropy (nats)")
    for key, c, label in (("l_corr", "#009E73", "L_corr (correct, unmixed)"),
                          ("l_incorr", "#D55E00", "L_incorr (incorrect, unmixed)"),
                          ("l_mid", "#0072B2", "L_mid = (L_corr + L_incorr) / 2")):
        ys = mean_by_epoch(runs, arm, lambda row, k=key: row.get(k, float("nan")))
        ax.plot(range(1, len(ys) + 1), ys, color=c, label=label, marker="o", markersize=3)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)          # headroom: the legend sits above the curves
    ax.legend(loc="upper right", ncol=2, fontsize="small")
    return fig


def regions(runs: list[Run], arm: str = "mixtrain") -> Figure:
    """Where every sample's loss fell each epoch: Region 1 / 2 / 3 shares of the dataset."""
    n = max(r["samples"] for r in runs[0].rows)
    fig, ax = figure("Samples by loss region", "epoch", "samples (% of the dataset)")
    shares = [mean_by_epoch(runs, arm, lambda row, k=k: 100 * row.get("region_counts", {})
                             .get(k, 0) / n) for k in ("r1", "r2", "r3")]
    ax.stackplot(range(1, len(shares[0]) + 1), *shares, colors=["#0072B2", "#F0E442", "#D55E00"],
                 labels=["Region 1 (< L_mid)", "Region 2", "Region 3 (> L_incorr)"])
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right")
    return fig
