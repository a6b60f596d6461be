"""The one training loop. It knows no method: a method (an *arm*) gives it, epoch by epoch,
an :class:`EpochSpec` (phase name, epoch plan, optimiser recipe, per-batch loss), and the
engine does the rest: batching the plan, autocast, backward, optimiser and LR schedule,
device-synced timing, validation, metrics rows and the per-epoch checkpoint (Composer's split
between trainer and algorithms).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch
from mixkit.engine.checkpoint import rng_state, save_checkpoint
from mixkit.engine.optim import Recipe, build_optimizer, set_lr
from mixkit.engine.progress import TrainingProgress
from mixkit.engine.rundir import RunDir
from mixkit.engine.runtime import Runtime
from mixkit.engine.timing import DeviceMeter, EpochTimer

LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass
class EpochSpec:
    """What one epoch trains: ``loss(model, batch)`` returns the batch's mean loss (scalar)."""

    phase: str
    plan: EpochPlan
    recipe: Recipe
    loss: LossFn
    evaluate: bool = True
    note: str = ""          # shown beside the progress bar (e.g. "mixed 42%")
    source: Any = None      # the epoch's data source, if not the training split (SSL data)


class Arm(Protocol):
    """A method as the engine sees it."""

    name: str
    epochs: int

    def epoch(self, epoch: int) -> EpochSpec: ...

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """The method's end-of-epoch work and metrics for the row (may read the device once).

        Runs inside the timed region: per-epoch bookkeeping is part of the method's cost.
        An arm may also define ``finish(model) -> dict`` (untimed, after its last epoch) for
        artifacts such as MixTraining's reconstructions.
        """
        ...


@dataclass
class ArmResult:
    name: str
    accuracy: float
    train_seconds: float
    inputs: int
    samples: int
    epochs: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    task_accuracy: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)   # from ``arm.finish(model)``


def evaluate_tasks(model: torch.nn.Module, tasks: list[tuple[str, Any]], runtime: Runtime,
                   batch_size: int) -> tuple[float, dict[str, float]]:
    """Each task's accuracy through its own head, and their mean (multi-task reports both)."""
    accs = {name: evaluate(model, source, runtime, batch_size, t)
            for t, (name, source) in enumerate(tasks)}
    return sum(accs.values()) / len(accs), accs


def evaluate(model: torch.nn.Module, source, runtime: Runtime, batch_size: int,
             task: int = 0) -> float:
    """Top-1 accuracy over a validation source; correct counts stay on the device."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=runtime.device)
    total = 0
    with torch.inference_mode(), runtime.autocast():
        for x, y in source.eval_batches(batch_size):
            correct += (model(x, task).argmax(-1) == y).sum()
            total += int(y.shape[0])
    model.train(was_training)
    return float(correct) / max(total, 1)


class Engine:
    """Runs an arm's epochs on one model: the loop every method shares."""

    def __init__(self, model: torch.nn.Module, runtime: Runtime, train, val, *,
                 batch_size: int, log_interval: int, progress: TrainingProgress,
                 rundir: RunDir | None = None, eval_batch_size: int | None = None,
                 generators: dict[str, torch.Generator] | None = None) -> None:
        self.model = runtime.prepare(model)
        self.runtime, self.train_source = runtime, train
        # ``val``: one source, or ``[(task, source), ...]`` with one entry per head
        self.val_tasks = val if isinstance(val, list) else [("val", val)]
        self.batch_size, self.log_interval = batch_size, log_interval
        self.eval_batch_size = eval_batch_size or max(batch_size, 256)
        self.progress, self.rundir = progress, rundir
        self.generators = generators or {}
        self.scaler = runtime.grad_scaler()
        self.optimizer: torch.optim.Optimizer | None = None
        self._recipe: Recipe | None = None

    # --- optimiser -----------------------------------------------------------------------
    def _optimizer_for(self, recipe: Recipe) -> torch.optim.Optimizer:
        if self.optimizer is None or recipe != self._recipe:
            self.optimizer, self._recipe = build_optimizer(self.model, recipe), recipe
        return self.optimizer

    # --- one step and one epoch ------------------------------------------------------------
    def _step(self, spec: EpochSpec, batch: Batch, opt: torch.optim.Optimizer,
              t: float) -> torch.Tensor:
        set_lr(opt, spec.recipe.lr_at(t))
        with self.runtime.autocast():
            loss = spec.loss(self.model, batch)
        self.scaler.scale(loss).backward()
        self.scaler.step(opt)
        self.scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    def train_epoch(self, arm: Arm, epoch: int) -> dict[str, Any]:
        """One epoch: plan, batches, steps; returns the metrics row (training part)."""
        return self._train_epoch(arm, epoch)[0]

    def _train_epoch(self, arm: Arm, epoch: int) -> tuple[dict[str, Any], EpochSpec]:
        meter = DeviceMeter(self.runtime.device)
        self.model.train()
        with EpochTimer(self.runtime) as timer:
            spec = arm.epoch(epoch)
            opt = self._optimizer_for(spec.recipe)
            nb = spec.plan.num_batches(self.batch_size)
            self.progress.start_epoch(arm.name, spec.phase, epoch, arm.epochs, nb, spec.note)
            tick, seen = time.perf_counter(), 0
            source = spec.source if spec.source is not None else self.train_source
            for k, batch in enumerate(source.batches(spec.plan, self.batch_size)):
                loss = self._step(spec, batch, opt, epoch + (k + 0.5) / nb)
                meter.add(loss, batch.size)
                seen += batch.size
                if (k + 1) % self.log_interval == 0:
                    now = time.perf_counter()
                    self.progress.update(k + 1, seen / max(now - tick, 1e-9), meter.peek())
                    tick, seen = now, 0
            method_metrics = arm.end_epoch(epoch)  # the method's per-epoch work is timed too
        inputs = spec.plan.inputs
        row = {"arm": arm.name, "phase": spec.phase, "epoch": epoch,
               "train_loss": meter.mean(), "epoch_seconds": timer.seconds, "inputs": inputs,
               "samples": spec.plan.samples, "img_per_s": inputs / max(timer.seconds, 1e-9),
               "lr": spec.recipe.lr_at(epoch + 1.0), **method_metrics}
        return row, spec

    def train_arm(self, arm: Arm) -> ArmResult:
        rows: list[dict[str, Any]] = []
        accuracy, per_task = float("nan"), {}
        for epoch in range(arm.epochs):
            row, spec = self._train_epoch(arm, epoch)
            if spec.evaluate:
                accuracy, per_task = evaluate_tasks(self.model, self.val_tasks, self.runtime,
                                                    self.eval_batch_size)
                row["val_acc"] = accuracy
                if len(per_task) > 1:
                    row["task_accuracy"] = per_task
            rows.append(row)
            self.progress.end_epoch(row, spec.note)
            if self.rundir is not None:
                self.rundir.log(row)
                self.save(arm, epoch)
        finish = getattr(arm, "finish", None)
        return ArmResult(arm.name, accuracy, sum(r["epoch_seconds"] for r in rows),
                         sum(r["inputs"] for r in rows), sum(r["samples"] for r in rows),
                         arm.epochs, rows, per_task if len(per_task) > 1 else {},
                         finish(self.model) if finish is not None else {})

    def save(self, arm: Arm, epoch: int) -> None:
        """``last.pt``: everything needed to continue after ``epoch`` (atomic)."""
        state = {
            "arm": arm.name, "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "recipe": None if self._recipe is None else dataclasses.asdict(self._recipe),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state({"augment": self.train_source.generator, **self.generators,
                              **getattr(arm, "generators", {})}),
        }
        save_checkpoint(state, self.rundir.checkpoint_path)
