"""The speedup report: method vs baseline(s) in one Rich table, from ``summary.json`` data."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from mixkit.engine.summary import NOISY


def _gain(arm: dict[str, Any], ref: dict[str, Any]) -> str:
    """Accuracy gain in points, and relative to the reference (the paper's Table 1 style)."""
    pts = 100 * (arm["accuracy"] - ref["accuracy"])
    rel = 100 * (arm["accuracy"] / ref["accuracy"] - 1) if ref["accuracy"] > 0 else float("nan")
    return f"{pts:+.2f} ({rel:+.1f}%)"


def speedup_table(summary: dict[str, Any]) -> Table:
    """One row per arm: accuracy, training seconds, inputs, and ratios against the baseline(s).

    ``speedup`` is baseline seconds / arm seconds against ``summary["baseline_arm"]``; the
    accuracy gain (points, and relative) is shown against every arm in
    ``summary["compare_arms"]`` (default: the baseline arm) — for MixTraining both ``ssl+sl``
    and ``sl``, as the paper's Table 1 reads.
    """
    arms = summary["arms"]
    base_name = summary.get("baseline_arm") or ""
    base = arms.get(base_name)
    refs = [r for r in summary.get("compare_arms", [base_name]) if r in arms]
    table = Table(title=f"mixkit {summary['command']} — {summary.get('data')} / "
                  f"{summary.get('model')} on {summary.get('device')}",
                  caption=f"speedup = {base_name} train s / arm train s; Δ X = accuracy "
                  "gain over arm X in points (relative %)")
    cols = ["arm", "accuracy", "train s", "inputs", "epochs", "speedup",
            *(f"Δ {r}" for r in refs)]
    for col in cols:
        table.add_column(col, justify="left" if col == "arm" else "right")
    for name, arm in arms.items():
        speed = "—"
        if base is not None and name != base_name:
            speed = f"{base['train_seconds'] / max(arm['train_seconds'], 1e-9):.2f}x"
        gains = ["—" if r == name else _gain(arm, arms[r]) for r in refs]
        acc = f"{100 * arm['accuracy']:.2f}%"
        if arm.get("task_accuracy"):
            acc += " (" + ", ".join(f"{t} {100 * a:.1f}" for t, a in
                                    arm["task_accuracy"].items()) + ")"
        table.add_row(name, acc, f"{arm['train_seconds']:.1f}", f"{arm['inputs']:,}",
                      str(arm["epochs"]), speed, *gains)
    best = summary.get("best_at_method_cost")
    if best and len(arms) > 2:
        table.caption += (f"\nMost accurate at or below {summary['method_arm']}'s cost (inputs): "
                          f"{best['arm']} ({100 * best['accuracy']:.2f}%)")
    noisy = [n for n, a in arms.items() if (a.get("timing_spread") or 0) > NOISY]
    if noisy:
        table.caption += (f"\nTiming noise: {', '.join(noisy)} had epochs whose per-input cost "
                          f"scattered more than {NOISY:.0%}; see speedup_median in summary.json")
    return table
