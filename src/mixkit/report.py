"""The speedup report: method vs baseline(s) in one Rich table, from ``summary.json`` data."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def speedup_table(summary: dict[str, Any]) -> Table:
    """One row per arm: accuracy, training seconds, inputs, and ratios against the baseline.

    ``speedup`` is baseline seconds / arm seconds and ``Δ acc`` is arm - baseline accuracy in
    percentage points, both against ``summary["baseline_arm"]`` (SPEC §7).
    """
    arms = summary["arms"]
    base = arms.get(summary.get("baseline_arm") or "")
    table = Table(title=f"mixkit {summary['command']} — {summary.get('data')} / "
                  f"{summary.get('model')} on {summary.get('device')}")
    for col in ("arm", "accuracy", "train s", "inputs", "epochs", "speedup", "Δ acc (pts)"):
        table.add_column(col, justify="left" if col == "arm" else "right")
    for name, arm in arms.items():
        speed = delta = "—"
        if base is not None and name != summary.get("baseline_arm"):
            speed = f"{base['train_seconds'] / max(arm['train_seconds'], 1e-9):.2f}x"
            delta = f"{100 * (arm['accuracy'] - base['accuracy']):+.2f}"
        table.add_row(name, f"{100 * arm['accuracy']:.2f}%", f"{arm['train_seconds']:.1f}",
                      f"{arm['inputs']:,}", str(arm["epochs"]), speed, delta)
    return table
