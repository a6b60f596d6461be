"""What a run shows while it trains: a live view on a terminal, plain lines everywhere else.

* **Terminal** (Rich): a bar for the epoch in progress (batches, img/s, running loss, its own
  ETA) and a line for the whole job (arm k of n, elapsed, ETA across every arm still to run,
  the last validation accuracy). Each finished epoch leaves one line above them.
* **Not a terminal** (a log file, ``nohup``, a cluster's stdout): the same one line per
  finished epoch, plus a heartbeat line every ``heartbeat_s`` seconds inside an epoch, so a log
  never goes quiet for a whole epoch.
* **``log``** (the run dir's ``log.txt``): every line a non-terminal would get, except
  heartbeats.

Epochs are counted from 1 here and in ``metrics.jsonl`` alike. Values come from
:meth:`DeviceMeter.peek`, never a device wait; the job's ETA assumes each remaining arm costs
what the arms so far cost on average (mixTrain's arms are cheaper, so it errs long).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn


def clock(seconds: float | None) -> str:
    """``h:mm:ss`` (``m:ss`` under an hour); ``-`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class JobClock:
    """Elapsed time and an ETA for a job of several arms run one after another.

    The current arm's remaining time is extrapolated from its progress since it (re)started;
    each arm after it is assumed to cost the mean of the arms measured so far.
    """

    arms: list[str] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    finished: list[float] = field(default_factory=list)   # seconds of each arm run here
    current: str | None = None
    arm_start: float = 0.0
    arm_from: float = 0.0          # the arm's fraction done when it (re)started (resume)
    index: int = 0                 # 1-based position of the current arm in the job

    def begin_arm(self, arm: str, fraction: float, now: float) -> None:
        if self.current is not None:
            self.finished.append(now - self.arm_start)
        self.index += 1
        if self.index > len(self.arms):           # a caller that announced no job (or less)
            self.arms.append(arm)
        self.current, self.arm_start, self.arm_from = arm, now, fraction

    def eta(self, fraction: float, now: float) -> float | None:
        """Seconds left in the job, or None before the current arm has made progress."""
        done = fraction - self.arm_from
        if done <= 0:
            return None
        arm_total = (now - self.arm_start) / done * (1.0 - self.arm_from)
        left_in_arm = (now - self.arm_start) / done * (1.0 - fraction)
        after = max(len(self.arms) - self.index, 0)
        per_arm = sum(self.finished + [arm_total]) / (len(self.finished) + 1)
        return left_in_arm + after * per_arm


class TrainingProgress:
    def __init__(self, console: Console | None = None, enabled: bool = True,
                 log: Console | None = None, heartbeat_s: float = 10.0) -> None:
        self.console = console or Console()
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.log = log
        self.heartbeat_s = heartbeat_s
        self.job = JobClock()
        self._progress: Progress | None = None
        self._epoch_task: Any = None
        self._job_task: Any = None
        self._epoch: dict[str, Any] = {}
        self._last_beat = 0.0
        self._last_val: str = ""

    # --- the job ----------------------------------------------------------------------------
    def begin_job(self, arms: list[str]) -> None:
        """The arms this invocation will train, in order (resumed runs: those not yet done)."""
        self.job = JobClock(list(arms))

    def __enter__(self) -> "TrainingProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(bar_width=30),
                TextColumn("{task.fields[info]}"), console=self.console, transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    # --- one epoch ----------------------------------------------------------------------------
    def start_epoch(self, arm: str, phase: str, epoch: int, epochs: int, batches: int,
                    extra: str = "", phased: bool = False) -> None:
        """``epoch`` is 0-based (the engine's index); everything shown counts from 1.
        ``phased``: the arm has several phases (MixTraining), so the phase is named."""
        now = time.perf_counter()
        if arm != self.job.current or epoch < self._epoch.get("epoch", -1):   # a new arm
            self.job.begin_arm(arm, epoch / max(epochs, 1), now)
        label = f"{arm} {phase}" if phased else arm
        self._epoch = {"label": label, "epoch": epoch, "epochs": epochs, "batches": batches,
                       "start": now, "extra": extra}
        self._last_beat = now
        if self._progress is not None:
            desc = f"{label} epoch {epoch + 1}/{epochs}"
            info = self._epoch_info(0, None, None, now)
            if self._epoch_task is None:
                self._epoch_task = self._progress.add_task(desc, total=batches, info=info)
                self._job_task = self._progress.add_task(self._job_desc(), total=1.0,
                                                         info=self._job_info(0, now))
            else:
                self._progress.reset(self._epoch_task, total=batches, description=desc,
                                     info=info)

    def update(self, batches_done: int, img_per_s: float, loss: float | None) -> None:
        """Inside an epoch (the engine calls it at most every ``log_interval`` steps or half a
        second); ``loss`` is None until a first value has come back from the device."""
        if not self.enabled or not self._epoch:
            return
        now = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._epoch_task, completed=batches_done,
                                  info=self._epoch_info(batches_done, img_per_s, loss, now))
            self._progress.update(self._job_task, completed=self._fraction(batches_done),
                                  description=self._job_desc(),
                                  info=self._job_info(batches_done, now))
        elif now - self._last_beat >= self.heartbeat_s:
            self._last_beat = now
            e = self._epoch
            self.console.print(
                f"  {e['label']} epoch {e['epoch'] + 1}/{e['epochs']} batch "
                f"{batches_done}/{e['batches']} · {img_per_s:.0f} img/s · loss "
                f"{_loss(loss)} · job {self._job_info(batches_done, now)}", highlight=False,
                soft_wrap=True)

    def end_epoch(self, row: dict[str, Any], extra: str = "") -> None:
        """One line per finished epoch (kept on a terminal, in logs and in ``log.txt``)."""
        if not self.enabled:
            return
        e = self._epoch
        now = time.perf_counter()
        val = row.get("val_acc")
        if val is not None:
            self._last_val = f"val_acc {val:.4f} (epoch {e.get('epoch', 0) + 1})"
        acc = f" val_acc {val:.4f}" if val is not None else ""
        line = (f"{e.get('label', row['arm'])} epoch {e.get('epoch', 0) + 1}/"
                f"{e.get('epochs', '?')}: loss {row['train_loss']:.4f}{acc} "
                f"{row['epoch_seconds']:.2f}s {row['img_per_s']:.0f} img/s {extra}").rstrip()
        self.console.print(line, highlight=False, soft_wrap=True)     # a log line, unwrapped
        if self.log is not None:
            self.log.print(line, highlight=False)
        if self._progress is not None and self._epoch:
            self._progress.update(self._job_task, completed=self._fraction(e["batches"]),
                                  description=self._job_desc(),
                                  info=self._job_info(e["batches"], now))

    # --- formatting ---------------------------------------------------------------------------
    def _fraction(self, batches_done: int) -> float:
        """How much of the current arm is done (epochs as units, batches within one)."""
        e = self._epoch
        return (e["epoch"] + batches_done / max(e["batches"], 1)) / max(e["epochs"], 1)

    def _epoch_info(self, done: int, ips: float | None, loss: float | None, now: float) -> str:
        e = self._epoch
        spent = now - e["start"]
        eta = spent / done * (e["batches"] - done) if done else None
        rate = f"{ips:7.0f} img/s" if ips is not None else "      - img/s"
        return (f"{done}/{e['batches']} · {rate} · loss {_loss(loss)} · {clock(spent)} "
                f"elapsed, {clock(eta)} left {e['extra']}").rstrip()

    def _job_desc(self) -> str:
        return f"job: arm {self.job.index}/{len(self.job.arms)}"

    def _job_info(self, batches_done: int, now: float) -> str:
        eta = self.job.eta(self._fraction(batches_done), now)
        left = f"≈{clock(eta)} left" if eta is not None else "- left"
        return f"{clock(now - self.job.start)} elapsed, {left} {self._last_val}".rstrip()


def _loss(loss: float | None) -> str:
    return "-" if loss is None else f"{loss:.4f}"
