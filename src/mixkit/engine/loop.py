"""The one training loop. It knows no method: a method (an *arm*) gives it, epoch by epoch,
an :class:`EpochSpec` (phase name, epoch plan, optimiser recipe, per-batch loss), and the
engine does the rest: batching the plan, autocast, backward, optimiser and LR schedule,
device-synced timing, validation, metrics rows and the per-epoch checkpoint (Composer's split
between trainer and algorithms).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from mixkit.data.sources import Batch
from mixkit.engine import distributed as D
from mixkit.engine.arm import Arm, EpochSpec, LossFn
from mixkit.engine.ema import ModelEma
from mixkit.engine.events import Callback, Event, TrainState, fire
from mixkit.engine.resume import Checkpointer
from mixkit.engine.optim import Recipe, build_optimizer, is_fused, set_lr
from mixkit.engine.rundir import RunDir
from mixkit.engine.runtime import Runtime
from mixkit.engine.signals import STOP, Interrupted
from mixkit.engine.timing import DeviceMeter, EpochTimer
from mixkit.errors import RunFailed


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
    accuracy_ema: float | None = None       # the weights' EMA (--model-ema), last evaluation

    @classmethod
    def from_rows(cls, name: str, epochs: int, rows: list[dict[str, Any]],
                  artifacts: dict[str, Any] | None = None) -> "ArmResult":
        """An arm's result from its metrics rows (the last evaluated epoch's accuracy)."""
        last = next((r for r in reversed(rows) if "val_acc" in r), {})
        return cls(name, last.get("val_acc", float("nan")),
                   sum(r["epoch_seconds"] for r in rows), sum(r["inputs"] for r in rows),
                   sum(r["samples"] for r in rows), epochs, rows,
                   dict(last.get("task_accuracy", {})), artifacts or {},
                   last.get("val_acc_ema"))

    def to_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of a finished arm (enough to rebuild it on resume)."""
        return {"epochs": self.epochs, "rows": self.rows, "artifacts": self.artifacts}


class NonFiniteLoss(RunFailed):
    """A NaN/Inf loss: the update was skipped on the device and the run stops (exit 1)."""


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


class _Step(torch.nn.Module):
    """``loss_fn(model, batch)`` as a module's forward, so DDP sees (and syncs) the whole step:
    methods call any part of the model (``forward_features``, heads, the SSL head) freely."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, loss_fn: LossFn, batch: Batch) -> torch.Tensor:
        return loss_fn(self.model, batch)


class Engine:
    """Runs an arm's epochs on one model: the loop every method shares.

    Reliability lives here, for every arm of both commands (SPEC §6):

    * ``last.pt`` after every epoch and, on SIGTERM/SIGINT, after the current step — with the
      model, optimiser, recipe, AMP scaler, every RNG, the epoch plan in progress, the running
      epoch loss and seconds, the arm's own state (mixTrain's per-sample state) and the results
      of the arms already finished. ``resume=`` continues from it exactly.
    * A non-finite loss sets a device flag; the fused AdamW step reads it as ``found_inf`` and
      skips the update on the device (no host sync), so every update from that step on is
      skipped; the flag is read once per epoch and stops the run with :class:`NonFiniteLoss`.
    """

    def __init__(self, model: torch.nn.Module, runtime: Runtime, train, val, *,
                 batch_size: int, log_interval: int, rundir: RunDir | None = None, eval_batch_size: int | None = None,
                 done: dict[str, ArmResult] | None = None, resume_hint: str = "",
                 meta: dict[str, Any] | None = None, dist: D.Dist = D.Dist(),
                 ema: tuple[float, bool] | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        # ``ema``: (decay, warm-up) of the weights' EMA, or None (--model-ema off)
        self.ema = None if ema is None else ModelEma(runtime.prepare(model, compile=False),
                                                     *ema)
        self.model = runtime.prepare(model)
        self.runtime, self.train_source = runtime, train
        # ``val``: one source, or ``[(task, source), ...]`` with one entry per head
        self.val_tasks = val if isinstance(val, list) else [("val", val)]
        self.batch_size, self.log_interval = batch_size, log_interval
        self.eval_batch_size = eval_batch_size or max(batch_size, 256)
        self.rundir = rundir          # where the checkpoint goes (rank 0; None: not saved)
        self.done = done if done is not None else {}
        self.resume_hint, self.meta = resume_hint, meta or {}
        self._rows: list[dict[str, Any]] = []       # the current arm's finished epochs
        self.scaler = runtime.grad_scaler()
        self.optimizer: torch.optim.Optimizer | None = None
        self.recipe: Recipe | None = None                      # the optimiser's recipe
        self._bad = torch.zeros((), device=runtime.device)    # 1.0 once a loss was non-finite
        self.dist = dist
        self._step_module = _Step(self.model)
        self._ddp: torch.nn.Module | None = None
        self._frozen: tuple[str, ...] | None = None
        self.checkpoints = Checkpointer(self)
        self.callbacks = list(callbacks)
        self.state: TrainState | None = None        # the arm in progress, for callbacks

    # --- optimiser -----------------------------------------------------------------------
    def optimizer_for(self, recipe: Recipe) -> torch.optim.Optimizer:
        """The optimiser of ``recipe``: a fresh AdamW whenever the recipe changes."""
        if self.optimizer is None or recipe != self.recipe:
            self.optimizer, self.recipe = build_optimizer(self.model, recipe), recipe
        return self.optimizer

    # --- what trains this epoch ---------------------------------------------------------------
    def _train_module(self, frozen: tuple[str, ...]) -> torch.nn.Module:
        """The step module for an epoch whose spec freezes ``frozen`` (name prefixes).

        Frozen parameters get ``requires_grad=False``; under torchrun the DDP wrapper is rebuilt
        when the trainable set changes (MixTraining's SSL -> mix -> SL), so DDP never waits for
        a gradient a phase does not produce and never all-reduces one.
        """
        if frozen != self._frozen:
            for name, p in self.model.named_parameters():
                p.requires_grad_(not name.startswith(frozen) if frozen else True)
            self._frozen, self._ddp = frozen, None
            gc.collect()                    # drop the old reducer's hooks before a new one
        if not self.dist.enabled:
            return self._step_module
        if self._ddp is None:
            from torch.nn.parallel import DistributedDataParallel as DDP

            dev = self.runtime.device
            self._ddp = DDP(self._step_module,
                            device_ids=[dev.index] if dev.type == "cuda" else None)
        return self._ddp

    # --- one step and one epoch ------------------------------------------------------------
    def _step(self, spec: EpochSpec, batch: Batch, opt: torch.optim.Optimizer,
              t: float) -> torch.Tensor:
        set_lr(opt, spec.recipe.lr_at(t))
        module = self._train_module(spec.frozen)
        with self.runtime.autocast():
            loss = module(spec.loss, batch)
        self._bad = torch.maximum(self._bad, (~torch.isfinite(loss.detach())).float())
        if self.dist.enabled:
            D.all_reduce_max(self._bad)         # every rank skips together (async on NCCL)
        if not self.scaler.is_enabled() and is_fused(opt):   # fp16's GradScaler owns found_inf
            opt.found_inf = self._bad           # fused AdamW: skip the update on the device
        self.scaler.scale(loss).backward()
        if self.callbacks and self.state is not None:
            fire(self.callbacks, Event.AFTER_BACKWARD, self.state)
        if self.scaler.is_enabled() or is_fused(opt) or not bool(self._bad):
            self.scaler.step(opt)               # (a plain AdamW, e.g. an older torch on MPS,
        self.scaler.update()                    # cannot skip on the device: one read a step)
        opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach()

    def warm_up(self, arm: Arm, steps: int) -> None:
        """Up to ``steps`` untimed steps of the arm's first epoch; nothing is logged or saved."""
        spec = arm.epoch(0)
        opt = self.optimizer_for(spec.recipe)
        plan = spec.plan if not self.dist.enabled else D.shard_plan(
            spec.plan, self.dist.rank, self.dist.world, self.batch_size)
        steps = min(steps, plan.num_batches(self.batch_size))
        source = spec.source if spec.source is not None else self.train_source
        for k, batch in enumerate(source.batches(plan, self.batch_size)):
            if k >= steps:
                break
            self._step(spec, batch, opt, 0.0)
        self.runtime.synchronize()

    def train_epoch(self, arm: Arm, epoch: int) -> dict[str, Any]:
        """One epoch: plan, batches, steps; returns the metrics row (training part)."""
        return self._train_epoch(arm, epoch)[0]

    def _begin_epoch(self, arm: Arm, epoch: int, resume: dict[str, Any] | None
                     ) -> tuple[EpochSpec, int, DeviceMeter, float]:
        """The epoch's spec, first batch, loss meter and seconds already spent (on resume)."""
        meter = DeviceMeter(self.runtime.device)
        if resume is None:
            return arm.epoch(epoch), 0, meter, 0.0
        spec, start, before = self.checkpoints.resume_epoch(arm, epoch, resume, meter)
        return spec, start, meter, before

    def _train_epoch(self, arm: Arm, epoch: int, resume: dict[str, Any] | None = None
                     ) -> tuple[dict[str, Any], EpochSpec]:
        self.model.train()
        with EpochTimer(self.runtime) as timer:
            spec, start, meter, before = self._begin_epoch(arm, epoch, resume)
            opt = self.optimizer_for(spec.recipe)
            plan = spec.plan if not self.dist.enabled else D.shard_plan(
                spec.plan, self.dist.rank, self.dist.world, self.batch_size)
            nb = plan.num_batches(self.batch_size)
            if self.state is None or self.state.arm != arm.name:     # train_epoch() alone
                self.state = TrainState(arm.name, arm.epochs, self.model, arm, ema=self.ema)
            state = self.state
            state.optimizer, state.recipe, state.phase = opt, spec.recipe, spec.phase
            state.epoch, state.batch, state.batches, state.row = epoch, start, nb, None
            state.note, state.phased, state.meter, state.inputs = spec.note, arm.phased, meter, 0
            fire(self.callbacks, Event.EPOCH_START, state)
            source = spec.source if spec.source is not None else self.train_source
            for k, batch in enumerate(source.batches(plan, self.batch_size, start, epoch),
                                      start=start):
                loss = self._step(spec, batch, opt, epoch + (k + 0.5) / nb)
                meter.add(loss, batch.size)
                if self.callbacks:
                    state.batch, state.loss, state.inputs = k + 1, loss, state.inputs + batch.size
                    state.batch_data = batch
                    state.steps += 1
                    fire(self.callbacks, Event.AFTER_STEP, state)
                if self._stop_requested(k + 1, nb):
                    self._interrupt(arm, epoch, k + 1, spec, meter, before + timer.elapsed())
            method_metrics = arm.end_epoch(epoch)  # the method's per-epoch work is timed too
        train_loss, bad = self._epoch_loss(meter)       # the epoch's one read (+ the NaN flag)
        if bad:
            raise NonFiniteLoss(f"non-finite training loss in arm `{arm.name}`, epoch "
                                f"{epoch + 1} ({spec.phase}): every update from that step on "
                                "was skipped; the last good checkpoint is kept.")
        inputs = spec.plan.inputs
        seconds = before + timer.seconds
        row = {"arm": arm.name, "phase": spec.phase, "epoch": epoch + 1,      # from 1
               "train_loss": train_loss, "epoch_seconds": seconds, "inputs": inputs,
               "samples": spec.plan.samples, "img_per_s": inputs / max(seconds, 1e-9),
               "lr": spec.recipe.lr_at(epoch + 1.0), **method_metrics}
        if self.runtime.compile:
            row["compile_seconds"] = timer.compile_seconds
        return row, spec

    def train_arm(self, arm: Arm, resume: dict[str, Any] | None = None) -> ArmResult:
        """Train ``arm`` from its first epoch, or from a checkpoint's position (``resume``)."""
        rows: list[dict[str, Any]] = []
        first = 0
        if resume is not None:
            self.checkpoints.restore_training(resume)
            rows, first = list(resume["rows"]), resume["epoch"]
        self._rows = rows
        state = self.state = TrainState(arm.name, arm.epochs, self.model, arm, ema=self.ema,
                                        epoch=first, rows=rows)
        fire(self.callbacks, Event.FIT_START, state)
        for epoch in range(first, arm.epochs):
            row, spec = self._train_epoch(arm, epoch, resume if epoch == first else None)
            state.row = row
            fire(self.callbacks, Event.EPOCH_END, state)
            if spec.evaluate:
                row["val_acc"], per_task = evaluate_tasks(self.model, self.val_tasks,
                                                          self.runtime, self.eval_batch_size)
                if len(per_task) > 1:
                    row["task_accuracy"] = per_task
                if self.ema is not None:
                    if self.dist.enabled:       # rank 0's average (its BatchNorm statistics)
                        D.broadcast(list(self.ema.module.state_dict().values()))
                    row["val_acc_ema"] = evaluate_tasks(self.ema.module, self.val_tasks,
                                                        self.runtime, self.eval_batch_size)[0]
            rows.append(row)
            fire(self.callbacks, Event.EVAL_END, state)   # progress line, metrics.jsonl, loggers
            if self.rundir is not None or self.dist.enabled:   # every rank: RNGs are gathered
                self.checkpoints.save(arm, epoch + 1, 0, rows)
            if self._stop_requested(0, 0):
                raise Interrupted(STOP.signum or 15,
                                  self._stopped_message(arm, epoch + 1, 0))
        state.result = ArmResult.from_rows(arm.name, arm.epochs, rows, arm.finish(self.model))
        fire(self.callbacks, Event.FIT_END, state)
        return state.result

    def _interrupt(self, arm: Arm, epoch: int, batch: int, spec: EpochSpec,
                   meter: DeviceMeter, seconds: float) -> None:
        """Save a mid-epoch checkpoint after the current step, then stop."""
        if bool(self._bad):     # never save over the last good checkpoint after a NaN
            raise NonFiniteLoss(f"non-finite training loss in arm `{arm.name}`, epoch "
                                f"{epoch + 1}; the last good checkpoint is kept.")
        if self.rundir is not None or self.dist.enabled:
            self.checkpoints.save(arm, epoch, batch, self._rows, spec.plan, meter, seconds)
        raise Interrupted(STOP.signum or 15, self._stopped_message(arm, epoch, batch))

    def _stop_requested(self, done_steps: int, steps: int) -> bool:
        """Has a stop been asked for? One process: the flag. Under torchrun the ranks agree
        (all-reduce of the flag) every ``log_interval`` steps and at epoch ends, so they stop
        at the same step."""
        if not self.dist.enabled:
            return bool(STOP)
        if done_steps % self.log_interval and done_steps != steps:
            return False
        flag = torch.tensor(float(bool(STOP)), device=self.runtime.device)
        D.all_reduce_max(flag)
        if flag.item() and not STOP:
            STOP.request()
        return bool(flag.item())

    def _epoch_loss(self, meter: DeviceMeter) -> tuple[float, bool]:
        """The epoch's mean loss over every rank and the NaN flag: one read."""
        t = torch.stack([meter.total, torch.tensor(float(meter.weight), dtype=torch.float64,
                                                   device=meter.total.device),
                         self._bad.to(torch.float64)])
        if self.dist.enabled:
            D.all_reduce_sum(t)
        total, weight, bad = t.tolist()
        return total / max(weight, 1.0), bad > 0

    def _stopped_message(self, arm: Arm, epoch: int, batch: int) -> str:
        where = f"arm `{arm.name}`, epoch {epoch + 1}, batch {batch}" if batch else \
            f"arm `{arm.name}` after epoch {epoch}"
        return f"stopped at {where}; a resumable checkpoint is saved. {self.resume_hint}"
