"""Rich progress for a terminal, plain lines for logs (stdout that is not a TTY).

Shows arm, phase, epoch, batch, img/s, ETA and loss, plus whatever a method adds (e.g. the
fraction of the dataset mixed). Values come from :meth:`DeviceMeter.peek`, never a device wait.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeRemainingColumn)


class TrainingProgress:
    def __init__(self, console: Console | None = None, enabled: bool = True) -> None:
        self.console = console or Console()
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> "TrainingProgress":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[ips]:>7.0f} img/s"),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TextColumn("{task.fields[extra]}"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    def start_epoch(self, arm: str, phase: str, epoch: int, epochs: int, batches: int,
                    extra: str = "") -> None:
        desc = f"{arm} {phase} {epoch + 1}/{epochs}"
        if self._progress is not None:
            self._task = self._progress.add_task(desc, total=batches, ips=0.0, loss=0.0,
                                                 extra=extra)

    def update(self, batches_done: int, img_per_s: float, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=batches_done, ips=img_per_s, loss=loss)

    def end_epoch(self, row: dict[str, Any], extra: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self._progress.tasks[-1].total,
                                  loss=row["train_loss"], ips=row["img_per_s"], extra=extra)
        elif self.enabled:
            val = row.get("val_acc")
            acc = f" val_acc {val:.4f}" if val is not None else ""
            self.console.print(
                f"{row['arm']} {row['phase']} epoch {row['epoch'] + 1}: loss "
                f"{row['train_loss']:.4f}{acc} {row['epoch_seconds']:.2f}s "
                f"{row['img_per_s']:.0f} img/s {extra}".rstrip(), highlight=False)
