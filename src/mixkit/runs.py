"""Finished (or unfinished) run directories as data, grouped for a report.

``mixkit report`` reads what a run wrote — ``config.yaml``, ``metrics.jsonl`` and, once it
finished, ``summary.json`` (``docs/run-dir.md``) — and groups runs that differ only in
``--seed``, so an arm's figures are means ± sd over seeds.
"""

from __future__ import annotations

import glob
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixkit.errors import UserError

# config keys that do not make two runs different experiments
NOT_THE_EXPERIMENT = {"seed", "experiment", "output", "device", "log_interval", "workers",
                      "data_dir", "download", "timing_warmup", "plots"}


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> str:
        return self.summary.get("command") or ("mixtraining" if "epochs_ssl" in self.config
                                               else "mixtrain")

    @property
    def finished(self) -> bool:
        return self.summary.get("status") == "completed"

    @property
    def arms(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r["arm"] not in seen:
                seen.append(r["arm"])
        return seen

    @property
    def baseline_arm(self) -> str:
        return self.summary.get("baseline_arm") or (
            "ssl+sl" if self.command == "mixtraining" else "baseline")

    @property
    def method_arm(self) -> str:
        return self.summary.get("method_arm") or self.command

    def arm_rows(self, arm: str) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["arm"] == arm]

    def key(self) -> tuple:
        """What makes an experiment: the config without seed and where-it-runs options."""
        return (self.command, tuple(sorted((k, json.dumps(v)) for k, v in self.config.items()
                                           if k not in NOT_THE_EXPERIMENT)))


def expand(paths: list[str]) -> list[Path]:
    """Run directories from arguments (a quoted glob is expanded here, as the shell would)."""
    out: list[Path] = []
    for p in paths:
        hits = sorted(glob.glob(p)) if any(c in p for c in "*?[") else [p]
        out += [Path(h) for h in hits]
    return out


def load_run(path: Path) -> Run:
    """One run directory; a path that is not one is a UserError naming it."""
    if not (path / "config.yaml").is_file() or not (path / "metrics.jsonl").is_file():
        raise UserError(f"{path} is not a mixkit run directory (it needs config.yaml and "
                        "metrics.jsonl).", hint="Pass OUTPUT/EXPERIMENT folders, e.g. "
                        "`mixkit report runs/*`.")
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
        rows = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x]
        summary = (json.loads((path / "summary.json").read_text())
                   if (path / "summary.json").is_file() else {})
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{path} cannot be read as a run directory ({exc}).") from None
    if not isinstance(config, dict) or not isinstance(summary, dict):
        raise UserError(f"{path}: config.yaml / summary.json are not mappings.")
    return Run(path, config, rows, summary)


def group(runs: list[Run]) -> list[list[Run]]:
    """Runs that differ only in ``--seed`` (and where they ran), in first-seen order."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.key(), []).append(r)
    return list(groups.values())


def mean_sd(xs: list[float]) -> tuple[float, float]:
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0) if xs else (
        float("nan"), float("nan"))


def final_accuracy(rows: list[dict[str, Any]]) -> float | None:
    vals = [r["val_acc"] for r in rows if "val_acc" in r]
    return vals[-1] if vals else None


def time_to(rows: list[dict[str, Any]], target: float) -> float | None:
    """Training seconds at the end of the first epoch whose accuracy reaches ``target``
    (DAWNBench's time to accuracy), or None if no epoch does."""
    spent = 0.0
    for r in rows:
        spent += r["epoch_seconds"]
        if r.get("val_acc") is not None and r["val_acc"] >= target:
            return spent
    return None


def arm_table(runs: list[Run], target: float | None) -> list[dict[str, Any]]:
    """Per arm, over the group's seeds: accuracy, seconds, inputs, speedup and Δ accuracy
    against the baseline arm (mean, sd), and time to ``target`` (default: the baseline's mean
    final accuracy minus 0.5 points)."""
    base = runs[0].baseline_arm
    base_acc = [final_accuracy(r.arm_rows(base)) for r in runs if r.arm_rows(base)]
    if target is None and base_acc:
        target = statistics.mean(a for a in base_acc if a is not None) - 0.005
    out = []
    for arm in runs[0].arms:
        per = [(r, r.arm_rows(arm), r.arm_rows(base)) for r in runs if r.arm_rows(arm)]
        acc = [final_accuracy(rows) for _, rows, _ in per]
        secs = [sum(x["epoch_seconds"] for x in rows) for _, rows, _ in per]
        inputs = [sum(x["inputs"] for x in rows) for _, rows, _ in per]
        speed = [sum(x["epoch_seconds"] for x in b) / s for (_, _, b), s in zip(per, secs) if b]
        delta = [a - final_accuracy(b) for (_, _, b), a in zip(per, acc)
                 if b and a is not None and final_accuracy(b) is not None]
        ttt = [time_to(rows, target) for _, rows, _ in per] if target is not None else []
        out.append({"arm": arm, "seeds": len(per),
                    "accuracy": mean_sd([a for a in acc if a is not None]),
                    "seconds": mean_sd(secs), "inputs": mean_sd(inputs),
                    "speedup": mean_sd(speed), "delta": mean_sd(delta),
                    "time_to_target": ttt, "target": target,
                    "finished": all(r.finished for r, _, _ in per)})
    return out
