"""Experiment loggers as callbacks (:mod:`mixkit.engine.events`): TensorBoard and Weights &
Biases, each logging every arm's per-epoch metrics and the run's final summary.

* ``--log-tensorboard``: event files under ``RUN_DIR/tb/<arm>/`` (one TensorBoard "run" per
  arm, so the arms overlay in each chart), written by ``torch.utils.tensorboard``'s
  ``SummaryWriter`` (the ``tensorboard`` package's event format); scalars per epoch (step = the
  epoch, from 1), the phase as text, the summary as scalars and a text table.
* ``--log-wandb`` (``--wandb-project``, ``--wandb-mode``): one W&B run per mixkit run, its files
  under ``RUN_DIR/wandb/``; metrics ``<arm>/<key>`` against ``<arm>/epoch``; the summary in the
  run's summary. ``--wandb-mode auto`` is offline unless ``WANDB_API_KEY`` or ``WANDB_MODE`` says
  otherwise (no network is needed; ``wandb sync RUN_DIR/wandb/offline-run-*`` uploads later).

Both are optional dependencies (``pip install -e ".[tensorboard]"``, ``".[wandb]"``); a
missing one is an exit-2 message before anything trains (:func:`check_loggers`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mixkit.engine.events import Callback, TrainState
from mixkit.errors import UserError


def scalars(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row, nested counts flattened (``region_counts/r1``)."""
    out: dict[str, float] = {}
    for k, v in row.items():
        if isinstance(v, bool) or k in ("arm", "phase"):
            continue
        if isinstance(v, (int, float)):
            out[k] = float(v)
        elif isinstance(v, dict):
            out.update({f"{k}/{kk}": float(vv) for kk, vv in v.items()
                        if isinstance(vv, (int, float)) and not isinstance(vv, bool)})
    return out


def check_loggers(cfg: Any) -> None:
    """The optional packages the chosen loggers need, before the run dir exists."""
    for on, module, extra in ((cfg.log_tensorboard, "tensorboard", "tensorboard"),
                              (cfg.log_wandb, "wandb", "wandb")):
        if not on:
            continue
        try:
            __import__(module)
        except ImportError:
            raise UserError(f"--log-{extra} needs the `{module}` package, which is not "
                            "installed.", hint=f'Install it with `pip install -e ".[{extra}]"` '
                            f"(or `pip install {module}`), or drop --log-{extra}.") from None


class TensorBoardLogger(Callback):
    def __init__(self, run_dir: Path) -> None:
        self.root = run_dir / "tb"
        self.writers: dict[str, Any] = {}
        self._phase: dict[str, str] = {}

    def _writer(self, arm: str):
        if arm not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            self.writers[arm] = SummaryWriter(str(self.root / arm))
        return self.writers[arm]

    def eval_end(self, state: TrainState) -> None:
        row = state.row or {}
        w, step = self._writer(state.arm), int(row.get("epoch", state.epoch + 1))
        for k, v in scalars(row).items():
            if k != "epoch":
                w.add_scalar(k, v, step)
        if row.get("phase") and self._phase.get(state.arm) != row["phase"]:
            self._phase[state.arm] = row["phase"]
            w.add_text("phase", f"{row['phase']} from epoch {step}", step)
        w.flush()

    def run_end(self, summary: dict[str, Any]) -> None:
        lines = ["| arm | accuracy | train s | speedup |", "| --- | --- | --- | --- |"]
        for arm, a in summary.get("arms", {}).items():
            w = self._writer(arm)
            for k in ("accuracy", "accuracy_ema", "train_seconds", "speedup", "accuracy_delta"):
                if isinstance(a.get(k), (int, float)):
                    w.add_scalar(f"summary/{k}", float(a[k]), 0)
            speed = a.get("speedup")
            lines.append(f"| {arm} | {100 * a['accuracy']:.2f}% | {a['train_seconds']:.1f} | "
                         + (f"{speed:.2f}x" if isinstance(speed, (int, float)) else "—") + " |")
            w.add_text("summary", "\n".join(lines), 0)
            w.flush()

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
        self.writers.clear()


class WandbLogger(Callback):
    def __init__(self, run_dir: Path, project: str, mode: str, config: dict[str, Any]) -> None:
        import wandb

        if mode == "auto":
            mode = os.environ.get("WANDB_MODE") or (
                "online" if os.environ.get("WANDB_API_KEY") else "offline")
        (run_dir / "wandb").mkdir(exist_ok=True)
        self.run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir),
                              mode=mode, config=config, reinit="finish_previous")
        self._defined: set[str] = set()

    def eval_end(self, state: TrainState) -> None:
        row = state.row or {}
        if state.arm not in self._defined:
            self.run.define_metric(f"{state.arm}/epoch")
            self.run.define_metric(f"{state.arm}/*", step_metric=f"{state.arm}/epoch")
            self._defined.add(state.arm)
        values = {f"{state.arm}/{k}": v for k, v in scalars(row).items()}
        if row.get("phase"):
            values[f"{state.arm}/phase"] = row["phase"]
        self.run.log(values)

    def run_end(self, summary: dict[str, Any]) -> None:
        for arm, a in summary.get("arms", {}).items():
            for k in ("accuracy", "accuracy_ema", "train_seconds", "speedup", "accuracy_delta",
                      "inputs"):
                if isinstance(a.get(k), (int, float)):
                    self.run.summary[f"{arm}/{k}"] = a[k]
        for k in ("speedup", "accuracy_delta", "speedup_median"):
            if isinstance(summary.get(k), (int, float)):
                self.run.summary[k] = summary[k]

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def build_loggers(cfg: Any, run_dir: Path | None) -> list[Callback]:
    """The loggers ``cfg`` asks for (rank 0 only: ``run_dir`` is None elsewhere)."""
    if run_dir is None:
        return []
    from mixkit.config import recipe_dict

    out: list[Callback] = []
    if cfg.log_tensorboard:
        out.append(TensorBoardLogger(run_dir))
    if cfg.log_wandb:
        out.append(WandbLogger(run_dir, cfg.wandb_project, cfg.wandb_mode, recipe_dict(cfg)))
    return out
