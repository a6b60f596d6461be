"""The engine's standard callbacks: the live view and the run directory's metrics rows.

They used to be welded into the loop; as callbacks the loop knows neither (``docs/engine.md``,
"Events and callbacks"), and a caller that wants neither (a benchmark, the untimed warm-up)
attaches none.
"""

from __future__ import annotations

import time

from mixkit.engine.events import Callback, TrainState
from mixkit.engine.progress import TrainingProgress
from mixkit.engine.rundir import RunDir

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
