"""``summary.json``: the run's final figures, a public interface (SPEC §7, ``docs/run-dir.md``).

One function builds it from the arms' results, for every command: which arm is the method,
which the baseline, the per-arm figures, the command's own entries and the speedup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

import mixkit
from mixkit.engine.loop import ArmResult
from mixkit.engine.rundir import RunDir

if TYPE_CHECKING:
    from mixkit.orchestrate import CommandSpec, RunContext


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
        "arms": {n: _arm_summary(r) for n, r in results.items()},
        **(command.describe(ctx) if command.describe is not None else {}),
        "speedup": base.train_seconds / method.train_seconds if both else None,
        "accuracy_delta": method.accuracy - base.accuracy if both else None,
        "versions": {"mixkit": mixkit.__version__, "torch": torch.__version__,
                     "timm": __import__("timm").__version__},
    }


def _arm_summary(r: ArmResult) -> dict[str, Any]:
    out = {"accuracy": r.accuracy, "train_seconds": r.train_seconds, "inputs": r.inputs,
           "samples": r.samples, "epochs": r.epochs,
           "phase_seconds": _phase_seconds(r.rows)}
    if r.task_accuracy:
        out["task_accuracy"] = r.task_accuracy
    return out


def _phase_seconds(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Training seconds per phase (``sl``, ``ssl``, ``mix``): where an arm's time went."""
    out: dict[str, float] = {}
    for r in rows:
        out[r["phase"]] = out.get(r["phase"], 0.0) + r["epoch_seconds"]
    return out
