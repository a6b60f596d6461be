"""The one training loop. It knows no method: a method (an *arm*) gives it, epoch by epoch,
an :class:`EpochSpec` (phase name, epoch plan, optimiser recipe, per-batch loss), and the
engine does the rest: batching the plan, autocast, backward, optimiser and LR schedule,
device-synced timing, validation and the metrics row (Composer's split between trainer and
algorithms). What happens around a step — progress, metrics files, loggers, checkpoints,
stops — is done by callbacks observing the engine's events (:mod:`mixkit.engine.events`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import torch

from mixkit.data.sources import Batch
from mixkit.engine import distributed as D
from mixkit.engine.arm import Arm, EpochSpec, LossFn
from mixkit.engine.ema import ModelEma
from mixkit.engine import snapshot
from mixkit.engine.events import Callback, Event, TrainState, fire
from mixkit.engine.optim import Recipe, build_optimizer, is_fused, set_lr
from mixkit.engine.runtime import Runtime
from mixkit.engine.signals import STOP, Interrupted
from mixkit.engine.timing import DeviceMeter, EpochTimer
from mixkit.errors import UserError


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

    The engine owns the step (autocast, backward, the optimiser and its schedule, the device
    flag of a non-finite loss, the EMA update), the epoch (plan, batches, device-synced timing,
    the method's end-of-epoch work, the metrics row) and evaluation. Everything around a step
    is a callback (:mod:`mixkit.runio.callbacks`): the live view, ``metrics.jsonl``, loggers,
    the checkpoint saver, stop-on-signal and the non-finite guard; :meth:`fit` with no
    callbacks trains and returns, nothing logged or saved (the untimed warm-up, benchmarks).

    A non-finite loss sets a device flag; the fused optimiser step reads it as ``found_inf``
    and skips the update on the device (no host sync), so every update from that step on is
    skipped; the flag is read once per epoch, with the loss, into ``state.nonfinite``.
    """

    def __init__(self, model: torch.nn.Module, runtime: Runtime, train, val, *,
                 batch_size: int, eval_batch_size: int | None = None,
                 dist: D.Dist = D.Dist(), ema: tuple[float, bool] | None = None) -> None:
        # ``ema``: (decay, warm-up) of the weights' EMA, or None (--model-ema off)
        self.ema = None if ema is None else ModelEma(runtime.prepare(model, compile=False),
                                                     *ema)
        self.model = runtime.prepare(model)
        self.runtime, self.train_source = runtime, train
        # ``val``: one source, or ``[(task, source), ...]`` with one entry per head
        self.val_tasks = val if isinstance(val, list) else [("val", val)]
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or max(batch_size, 256)
        self.scaler = runtime.grad_scaler()
        self._bad = torch.zeros((), device=runtime.device)    # 1.0 once a loss was non-finite
        self.dist = dist
        self._step_module = _Step(self.model)
        self._ddp: torch.nn.Module | None = None
        self._frozen: tuple[str, ...] | None = None
        self.state: TrainState | None = None        # the arm in progress
        self._callbacks: list[Callback] = []

    def new_state(self, arm: Arm, **position: Any) -> TrainState:
        """A fresh :class:`TrainState` for ``arm`` on this engine's model."""
        return TrainState(arm.name, arm.epochs, self.model, arm, scaler=self.scaler,
                          ema=self.ema, bad=self._bad,
                          streams={"augment": self.train_source.generator, **arm.generators},
                          **position)

    # --- optimiser -----------------------------------------------------------------------
    def optimizer_for(self, recipe: Recipe) -> torch.optim.Optimizer:
        """The optimiser of ``recipe``: a fresh one whenever the recipe changes."""
        state = self.state
        assert state is not None, "optimizer_for() needs an arm in progress"
        if state.optimizer is None or recipe != state.recipe:
            state.optimizer, state.recipe = build_optimizer(self.model, recipe), recipe
        return state.optimizer

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
        torch.maximum(self._bad, (~torch.isfinite(loss.detach())).float(), out=self._bad)
        if self.dist.enabled:
            D.all_reduce_max(self._bad)         # every rank skips together (async on NCCL)
        if not self.scaler.is_enabled() and is_fused(opt):   # fp16's GradScaler owns found_inf
            opt.found_inf = self._bad           # fused step: skip the update on the device
        self.scaler.scale(loss).backward()
        if self._callbacks:
            fire(self._callbacks, Event.AFTER_BACKWARD, self.state)
        if self.scaler.is_enabled() or is_fused(opt) or not bool(self._bad):
            self.scaler.step(opt)               # (a plain AdamW, e.g. an older torch on MPS,
        self.scaler.update()                    # cannot skip on the device: one read a step)
        opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach()

    def train_epoch(self, arm: Arm, epoch: int) -> dict[str, Any]:
        """One epoch with no callbacks (benchmarks, tests): returns its metrics row."""
        if self.state is None or self.state.method is not arm:
            self.state = self.new_state(arm)
        self._callbacks = []
        return self._train_epoch(arm, epoch)[0]

    def _begin_epoch(self, arm: Arm, epoch: int, resume: dict[str, Any] | None,
                     resume_from: str) -> tuple[EpochSpec, int, DeviceMeter, float]:
        """The epoch's spec, first batch, loss meter and seconds already spent (on resume)."""
        meter = DeviceMeter(self.runtime.device)
        if resume is None:
            return arm.epoch(epoch), 0, meter, 0.0
        with snapshot.restoring(resume_from):
            spec, start, before = snapshot.resume_epoch(self.state, epoch, resume, meter,
                                                        self.dist.rank, self.train_source)
        return spec, start, meter, before

    def _train_epoch(self, arm: Arm, epoch: int, resume: dict[str, Any] | None = None,
                     resume_from: str = "the checkpoint", limit: int | None = None
                     ) -> tuple[dict[str, Any] | None, EpochSpec]:
        """One epoch (or its first ``limit`` steps, untimed work: no row then)."""
        state, callbacks = self.state, self._callbacks
        self.model.train()
        with EpochTimer(self.runtime) as timer:
            spec, start, meter, before = self._begin_epoch(arm, epoch, resume, resume_from)
            opt = self.optimizer_for(spec.recipe)
            plan = spec.plan if not self.dist.enabled else D.shard_plan(
                spec.plan, self.dist.rank, self.dist.world, self.batch_size)
            nb = plan.num_batches(self.batch_size)
            if start > nb:
                raise UserError(f"the checkpoint {resume_from} puts arm `{arm.name}` at batch "
                                f"{start} of epoch {epoch + 1}, which has {nb} batches.",
                                hint="Restore it from a backup, or start a new run.")
            state.phase, state.epoch, state.batch, state.batches = spec.phase, epoch, start, nb
            state.note, state.phased, state.meter, state.inputs = spec.note, arm.phased, meter, 0
            state.plan, state.row, state.nonfinite = spec.plan, None, False
            fire(callbacks, Event.EPOCH_START, state)
            source = spec.source if spec.source is not None else self.train_source
            waited = _Waited()
            batches = _stoppable(source.batches(plan, self.batch_size, start, epoch), waited)
            try:
                for k, batch in enumerate(batches, start=start):
                    loss = self._step(spec, batch, opt, epoch + (k + 0.5) / nb)
                    meter.add(loss, batch.size)
                    if callbacks:
                        state.batch, state.loss = k + 1, loss
                        state.inputs += batch.size
                        state.batch_data = batch
                        state.steps += 1
                        fire(callbacks, Event.AFTER_STEP, state)
                        if state.stop is not None:
                            self._interrupt(arm, timer, before)
                    if k + 1 == limit:
                        return None, spec
            except _SourceStopped:
                if not callbacks:
                    raise Interrupted(int(STOP.signum or 15), "stopped") from None
                state.stop = STOP.signum
                self._interrupt(arm, timer, before)
            method_metrics = arm.end_epoch(epoch)  # the method's per-epoch work is timed too
        train_loss, state.nonfinite = self._epoch_loss(meter)   # the epoch's one read
        inputs = spec.plan.inputs
        seconds = before + timer.seconds
        row = {"arm": arm.name, "phase": spec.phase, "epoch": epoch + 1,      # from 1
               "train_loss": train_loss, "epoch_seconds": seconds, "inputs": inputs,
               "samples": spec.plan.samples, "img_per_s": inputs / max(seconds, 1e-9),
               "lr": epoch_lr(spec.recipe, epoch, nb), "lr_end": spec.recipe.lr_at(epoch + 1.0),
               "data_seconds": waited.seconds, "data_share": waited.seconds / max(seconds, 1e-9),
               **method_metrics}
        if self.runtime.compile:
            row["compile_seconds"] = timer.compile_seconds
        return row, spec

    def _interrupt(self, arm: Arm, timer: EpochTimer, before: float) -> None:
        """Save at the current step (the saver and the other callbacks act on INTERRUPT),
        then stop."""
        state = self.state
        state.seconds = before + timer.elapsed()
        fire(self._callbacks, Event.INTERRUPT, state)
        raise Interrupted(state.stop, _stopped(arm.name, state.epoch, state.batch))

    def fit(self, arm: Arm, callbacks: Sequence[Callback] = (), *,
            resume: dict[str, Any] | None = None, resume_from: str = "the checkpoint",
            steps: int | None = None) -> ArmResult | None:
        """Train ``arm`` from its first epoch, or from a checkpoint's position (``resume``,
        a ``last.pt`` dict read from ``resume_from``), firing ``callbacks`` at each event.

        ``steps``: only the first ``steps`` steps of the first epoch, then return None — no
        evaluation, no result (the untimed warm-up).
        """
        rows: list[dict[str, Any]] = [] if resume is None else list(resume["rows"])
        first = 0 if resume is None else resume["epoch"]
        state = self.state = self.new_state(arm, epoch=first, rows=rows)
        self._callbacks = callbacks = list(callbacks)
        if resume is not None and (not 0 <= first <= arm.epochs or
                                   (first == arm.epochs and resume["batch"] != 0)):
            raise UserError(f"the checkpoint {resume_from} puts arm `{arm.name}` at epoch "
                            f"{first}, batch {resume['batch']}: outside its {arm.epochs} "
                            "epochs.", hint="Restore it from a backup, or start a new run.")
        if resume is not None:
            with snapshot.restoring(resume_from):
                snapshot.restore_training(state, resume, self.optimizer_for)
        if steps is not None:
            self._train_epoch(arm, 0, limit=steps)
            return None
        fire(callbacks, Event.FIT_START, state)
        for epoch in range(first, arm.epochs):
            row, spec = self._train_epoch(arm, epoch, resume if epoch == first else None,
                                          resume_from)
            state.row = row
            fire(callbacks, Event.EPOCH_END, state)     # the non-finite guard stops here
            if spec.evaluate:
                self._evaluate(row)
            rows.append(row)
            fire(callbacks, Event.EVAL_END, state)  # live view, metrics, loggers, checkpoint
            if state.stop is not None:
                raise Interrupted(state.stop, _stopped(arm.name, epoch + 1, 0))
        state.result = ArmResult.from_rows(arm.name, arm.epochs, rows, arm.finish(self.model))
        fire(callbacks, Event.FIT_END, state)
        return state.result

    def _evaluate(self, row: dict[str, Any]) -> None:
        """``val_acc`` (and each task's, and the EMA's) into the epoch's row."""
        row["val_acc"], per_task = evaluate_tasks(self.model, self.val_tasks, self.runtime,
                                                  self.eval_batch_size)
        if len(per_task) > 1:
            row["task_accuracy"] = per_task
        if self.ema is not None:
            if self.dist.enabled:               # rank 0's average (its BatchNorm statistics)
                D.broadcast(list(self.ema.module.state_dict().values()))
            row["val_acc_ema"] = evaluate_tasks(self.ema.module, self.val_tasks,
                                                self.runtime, self.eval_batch_size)[0]

    def _epoch_loss(self, meter: DeviceMeter) -> tuple[float, bool]:
        """The epoch's mean loss over every rank and the NaN flag: one read."""
        t = torch.stack([meter.total, torch.tensor(float(meter.weight), dtype=torch.float64,
                                                   device=meter.total.device),
                         self._bad.to(torch.float64)])
        if self.dist.enabled:
            D.all_reduce_sum(t)
        total, weight, bad = t.tolist()
        return total / max(weight, 1.0), bad > 0


def epoch_lr(recipe: Recipe, epoch: int, num_batches: int) -> float:
    """The learning rate the epoch trained at, as timm's ``summary.csv`` means it: the mean
    of its steps' rates (each step's is ``lr_at(epoch + (k + 1/2) / nb)``, as :meth:`_step`
    sets it). A step or multistep schedule is constant inside an epoch, so this is exactly
    that epoch's rate; with warmup or cosine it is the epoch's average."""
    nb = max(num_batches, 1)
    return sum(recipe.lr_at(epoch + (k + 0.5) / nb) for k in range(nb)) / nb


class _SourceStopped(Exception):
    """The batch source failed while a stop was requested (below)."""


class _Waited:
    """Host seconds the loop spent waiting for its next batch this epoch (timm's data time)."""

    def __init__(self) -> None:
        self.seconds = 0.0


def _stoppable(batches: Iterable[Batch], waited: _Waited) -> Iterator[Batch]:
    """``batches``, timing each wait for the next one into ``waited`` (a host clock, no
    device sync: on CUDA an in-memory batch is queued work and costs the host microseconds;
    a streamed one that the workers have not decoded yet is real waiting), and where a
    failure of the source *during a requested stop* is the stop itself: a batch scheduler's
    SIGTERM reaches the whole process group, and a DataLoader worker that dies of it (the
    streamed source's workers ignore it, see :mod:`mixkit.data.sources`, but a worker may be
    killed another way) must not turn a clean, resumable stop into a traceback. Outside a
    stop, every error propagates unchanged."""
    it = iter(batches)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        except (RuntimeError, OSError):
            if STOP:
                raise _SourceStopped from None
            raise
        finally:
            waited.seconds += time.perf_counter() - t0
        yield batch


def _stopped(arm: str, epoch: int, batch: int) -> str:
    """Where a stop happened: mid-epoch (``batch`` > 0, ``epoch`` from 0) or after ``epoch``."""
    where = f"arm `{arm}`, epoch {epoch + 1}, batch {batch}" if batch else \
        f"arm `{arm}` after epoch {epoch}"
    return f"stopped at {where}"
