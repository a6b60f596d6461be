"""The engine's standard callbacks: the live view, the run directory's metrics rows, the
non-finite guard, stop-on-signal and the checkpoint saver.

As callbacks, the loop knows none of them
(``docs/engine.md``, "Events and callbacks"), and a caller that wants none (a benchmark, the
untimed warm-up) attaches none. Order matters where one acts on what another did: the command
layer attaches the guard first (nothing is logged or saved after a non-finite epoch) and the
stop request and the saver last (they see what every observer did this step).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import torch

from mixkit.engine import distributed as D
from mixkit.engine import snapshot
from mixkit.engine.events import Callback, TrainState
from mixkit.engine.loop import ArmResult
from mixkit.runio.progress import TrainingProgress
from mixkit.runio.rundir import RunDir
from mixkit.engine.signals import STOP
from mixkit.errors import RunFailed

REFRESH_S = 0.5     # the live view's refresh period inside an epoch (a peek, never a wait)


class ProgressCallback(Callback):
    """The live view: an epoch bar refreshed every ``log_interval`` steps or ``REFRESH_S``
    seconds from :meth:`DeviceMeter.peek` (never a device wait), and a line per epoch."""

    def __init__(self, progress: TrainingProgress, log_interval: int) -> None:
        self.progress, self.log_interval = progress, log_interval
        self._tick, self._seen = 0.0, 0

    def epoch_start(self, state: TrainState) -> None:
        self.progress.start_epoch(state.arm, state.phase, state.epoch, state.epochs,
                                  state.batches, state.note, state.phased)
        self._tick, self._seen = time.perf_counter(), 0

    def after_step(self, state: TrainState) -> None:
        if not self.progress.enabled:
            return
        now = time.perf_counter()
        if state.batch % self.log_interval == 0 or now - self._tick >= REFRESH_S:
            rate = (state.inputs - self._seen) / max(now - self._tick, 1e-9)
            self.progress.update(state.batch, rate, state.meter.peek())
            self._tick, self._seen = now, state.inputs

    def eval_end(self, state: TrainState) -> None:
        self.progress.end_epoch(state.row, state.note)


class MetricsWriter(Callback):
    """Each finished epoch's row, appended to ``metrics.jsonl`` (and ``summary.csv``)."""

    def __init__(self, rundir: RunDir) -> None:
        self.rundir = rundir

    def eval_end(self, state: TrainState) -> None:
        self.rundir.log(state.row)


class NonFiniteLoss(RunFailed):
    """A NaN/Inf loss: the update was skipped on the device and the run stops (exit 1)."""


class NonFiniteGuard(Callback):
    """Stops the run (exit 1) after an epoch that saw a non-finite loss — before its row is
    logged or a checkpoint written over the last good one — and refuses a mid-epoch checkpoint
    after one. The flag is the engine's device flag, read once per epoch with the loss."""

    def epoch_end(self, state: TrainState) -> None:
        if state.nonfinite:
            raise NonFiniteLoss(f"non-finite training loss in arm `{state.arm}`, epoch "
                                f"{state.epoch + 1} ({state.phase}): every update from that "
                                "step on was skipped; the last good checkpoint is kept.")

    def interrupt(self, state: TrainState) -> None:
        if bool(state.bad):             # one read, at a stop only
            raise NonFiniteLoss(f"non-finite training loss in arm `{state.arm}`, epoch "
                                f"{state.epoch + 1}; the last good checkpoint is kept.")


class StopOnSignal(Callback):
    """SIGTERM/SIGINT (the flag :mod:`mixkit.engine.signals` sets) become ``state.stop`` after
    the current step. Under torchrun the ranks agree (an all-reduce of the flag) every
    ``log_interval`` steps and at each epoch's end, so they stop at the same step."""

    def __init__(self, dist: D.Dist, log_interval: int, device: torch.device) -> None:
        self.dist, self.log_interval, self.device = dist, log_interval, device

    def after_step(self, state: TrainState) -> None:
        if self.dist.enabled and state.batch % self.log_interval and \
                state.batch != state.batches:
            return
        self._check(state)

    def eval_end(self, state: TrainState) -> None:
        self._check(state)

    def _check(self, state: TrainState) -> None:
        if self.dist.enabled:
            flag = torch.tensor(float(bool(STOP)), device=self.device)
            D.all_reduce_max(flag)
            if flag.item() and not STOP:
                STOP.request()
        if STOP:
            state.stop = STOP.signum


class CheckpointSaver(Callback):
    """``last.pt`` after every epoch and, at a stop, after the current step (atomic; every
    rank takes part, rank 0 writes). ``meta`` (the command and its config fingerprint) and
    ``done`` (the arms already finished) come from the command layer, which owns them."""

    def __init__(self, rundir: RunDir | None, dist: D.Dist, meta: Mapping[str, Any],
                 done: Mapping[str, ArmResult]) -> None:
        self.rundir, self.dist, self.meta, self.done = rundir, dist, meta, done

    def eval_end(self, state: TrainState) -> None:
        self._save(state, state.epoch + 1, 0, mid_epoch=False)

    def interrupt(self, state: TrainState) -> None:
        self._save(state, state.epoch, state.batch, mid_epoch=True)

    def _save(self, state: TrainState, epoch: int, batch: int, mid_epoch: bool) -> None:
        saved = snapshot.capture(state, self.dist.main and self.rundir is not None, epoch,
                                 batch, mid_epoch=mid_epoch)
        if saved is None:
            return
        saved.update(self.meta, world_size=self.dist.world,
                     done={n: r.to_state() for n, r in self.done.items()})
        self.rundir.save_checkpoint(saved)
