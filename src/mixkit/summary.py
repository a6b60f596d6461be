"""``summary.json``: the run's final figures, a public interface (``docs/run-dir.md``).

One function builds it from the arms' results, for every command: which arm is the method,
which the baseline, the per-arm figures, the command's own entries and the speedup.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

import torch

import mixkit
from mixkit.engine.loop import ArmResult
from mixkit.engine.timing import speedup
from mixkit.runio.rundir import RunDir

if TYPE_CHECKING:
    from mixkit.command import CommandSpec, RunContext


def summarize(command: "CommandSpec", ctx: "RunContext", results: dict[str, ArmResult],
              rundir: RunDir) -> dict[str, Any]:
    method = results.get(command.method_arm or "")
    base = results.get(command.baseline_arm)
    both = method is not None and base is not None
    return {
        "command": command.name,
        "status": "completed",
        "experiment": rundir.path.name,
        "run_dir": str(rundir.path),
        "data": ctx.cfg.data,
        "model": ctx.cfg.model,
        "seed": ctx.cfg.seed,
        "world_size": ctx.dist.world,
        "device": ctx.runtime.describe(),
        "method_arm": command.method_arm,
        "baseline_arm": command.baseline_arm,
        "compare_arms": [a for a in (command.compare_arms or (command.baseline_arm,))
                         if a in results],
        "arms": {n: _arm_summary(r, base) for n, r in results.items()},
        **(command.describe(ctx) if command.describe is not None else {}),
        "speedup": speedup(base.train_seconds, method.train_seconds) if both else None,
        "accuracy_delta": method.accuracy - base.accuracy if both else None,
        "speedup_median": robust_speedup(base, method) if both else None,
        "best_at_method_cost": best_at_cost(results, method, command.cost),
        "versions": {"mixkit": mixkit.__version__, "torch": torch.__version__,
                     "timm": __import__("timm").__version__},
    }


COST_TOLERANCE = 0.02    # "at or below the method's cost": inputs within 2 % above it


def seconds_per_input(r: ArmResult) -> float:
    """Median over the arm's epochs of epoch seconds / epoch inputs: its cost per input, robust
    to an epoch slowed by something else on the machine."""
    return statistics.median(row["epoch_seconds"] / max(row["inputs"], 1) for row in r.rows)


def timing_spread(r: ArmResult) -> float:
    """Median absolute deviation of the per-input epoch cost, relative to its median: the
    arm's timing noise (a clean CPU run is a few %; above ``NOISY`` a ratio is suspect)."""
    costs = [row["epoch_seconds"] / max(row["inputs"], 1) for row in r.rows]
    med = statistics.median(costs)
    return statistics.median(abs(c - med) for c in costs) / med if med > 0 else 0.0


NOISY = 0.10


def robust_speedup(base: ArmResult, arm: ArmResult) -> float:
    """The speedup from per-input median costs: ``base inputs * base cost`` over ``arm inputs *
    arm cost``. Equal to the ratio of totals when every epoch ran undisturbed."""
    return (base.inputs * seconds_per_input(base)) / max(arm.inputs * seconds_per_input(arm),
                                                          1e-12)


def best_at_cost(results: dict[str, ArmResult], method: ArmResult | None,
                 by: str = "inputs") -> dict | None:
    """The most accurate arm whose cost is at or below the method's (within
    ``COST_TOLERANCE``), the method included: the user's question "for this compute, what
    should I run?". ``by``: ``inputs`` (mixTrain: its arms' steps cost alike, and inputs are free
    of timing noise) or ``train_seconds`` (MixTraining: an SSL, mix and SL epoch cost
    differently, so only measured seconds compare its arms)."""
    if method is None:
        return None
    cost = (lambda r: r.inputs) if by == "inputs" else (lambda r: r.train_seconds)
    limit = cost(method) * (1 + COST_TOLERANCE)
    name, r = max(((n, r) for n, r in results.items() if cost(r) <= limit),
                  key=lambda nr: nr[1].accuracy)
    return {"arm": name, "accuracy": r.accuracy, "inputs": r.inputs,
            "train_seconds": r.train_seconds, "by": by,
            "method_accuracy": method.accuracy}


def _arm_summary(r: ArmResult, base: ArmResult | None) -> dict[str, Any]:
    vals = [row["val_acc"] for row in r.rows if "val_acc" in row]
    out = {"accuracy": r.accuracy, "best_accuracy": max(vals) if vals else None,
           "train_seconds": r.train_seconds, "inputs": r.inputs,
           "samples": r.samples, "epochs": r.epochs,
           "speedup": speedup(base.train_seconds, r.train_seconds) if base is not None else None,
           "speedup_median": robust_speedup(base, r) if base is not None else None,
           "accuracy_delta": r.accuracy - base.accuracy if base is not None else None,
           "timing_spread": timing_spread(r) if r.rows else None,
           "phase_seconds": _phase_seconds(r.rows), **data_wait(r.rows)}
    if r.task_accuracy:
        out["task_accuracy"] = r.task_accuracy
    if r.accuracy_ema is not None:
        out["accuracy_ema"] = r.accuracy_ema
    if any("compile_seconds" in row for row in r.rows):
        out["compile_seconds"] = sum(row.get("compile_seconds", 0.0) for row in r.rows)
    return out


INPUT_BOUND = 0.2   # a data share above which the run is called input-bound (docs/run-dir.md)


def data_wait(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where an arm's time went: ``data_seconds`` (host seconds waiting for batches) and
    ``data_share`` of its training seconds; empty for rows without it."""
    if not rows or any("data_seconds" not in row for row in rows):
        return {}
    waited = sum(row["data_seconds"] for row in rows)
    return {"data_seconds": waited,
            "data_share": waited / max(sum(row["epoch_seconds"] for row in rows), 1e-9)}


def input_bound_line(summary: dict[str, Any]) -> str | None:
    """In words, when an arm waited for its data more than :data:`INPUT_BOUND` of its time:
    mixTrain saves forward passes, not loads, so there its speedup falls toward the samples
    ratio; arms that load fewer samples keep theirs.

    Why 0.2: with a share ``w`` of the epoch spent loading (which mixing does not reduce) and
    inputs ratio ``r`` (0.62-0.73 measured), the speedup is ``1 / (w + (1 - w) r)``: at
    ``r = 0.65`` it is 1.54x at ``w = 0``, 1.39x at 0.2 and 1.27x at 0.4; from 0.2 on the
    difference is larger than this machine's timing noise (~10 %)."""
    arms = summary.get("arms", {})
    bound = {n: a["data_share"] for n, a in arms.items()
             if (a.get("data_share") or 0) > INPUT_BOUND}
    if not bound:
        return None
    worst = max(bound, key=bound.get)
    method = summary.get("method_arm")
    line = (f"Input-bound: {worst} spent {bound[worst]:.0%} of its training time waiting for "
            "batches (data_share in summary.json).")
    if method in arms and arms[method]["samples"] > arms[method]["inputs"]:  # it mixes pairs
        m = arms[method]
        line += (f" {method} saves forward passes, not loads ({m['samples']:,} samples loaded "
                 f"for {m['inputs']:,} inputs), so on an input-bound pipeline its speedup falls "
                 "toward the samples ratio; skip, short, infobatch and seta load fewer samples "
                 "and keep theirs. Add --workers, or keep the data in memory.")
    return line


def _phase_seconds(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Training seconds per phase (``sl``, ``ssl``, ``mix``): where an arm's time went."""
    out: dict[str, float] = {}
    for r in rows:
        out[r["phase"]] = out.get(r["phase"], 0.0) + r["epoch_seconds"]
    return out
