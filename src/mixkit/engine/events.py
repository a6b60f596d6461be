"""Named events and the callbacks that observe them (Composer's ``Event``/``Callback``, at our
size): a logger, an extra metric or a profiler is added without editing the loop.

The engine fires, for every arm it trains (``docs/engine.md``, "Events and callbacks")::

    fit_start     before the arm's first epoch (or the resumed one)
    epoch_start   the epoch's spec is built, its optimiser chosen, before its first step
    after_backward  every step, gradients computed, before the optimiser uses them
    after_step    after every optimiser step, *inside* the timed region
    epoch_end     the epoch's metrics row is built (training part), before evaluation
    eval_end      after evaluation: the row now holds ``val_acc`` (epochs that evaluate)
    interrupt     a callback asked to stop mid-epoch (``state.stop``): the state holds the
                  position (epoch, batch, plan, meter, seconds); the engine raises next
    fit_end       the arm's result is built

A callback reads :class:`TrainState` and must not change it, the model or the optimiser: it
observes. The one field a callback may write is ``state.stop`` (a signal number): a request to
stop, which the engine honours after the event (``interrupt`` mid-epoch, or after ``eval_end``).
``after_backward`` and ``after_step`` run in the hot loop: they must not read a device
tensor (``state.loss`` and the gradients are: reading one is a host sync per step) — accumulate
on the device and read once at ``epoch_end`` (the worked example in ``docs/engine.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Sequence

import torch


class Event(str, Enum):
    FIT_START = "fit_start"
    EPOCH_START = "epoch_start"
    AFTER_BACKWARD = "after_backward"
    AFTER_STEP = "after_step"
    EPOCH_END = "epoch_end"
    EVAL_END = "eval_end"
    INTERRUPT = "interrupt"
    FIT_END = "fit_end"


@dataclass
class TrainState:
    """One arm's training state: what a callback reads at an event and what a checkpoint saves
    and restores (:mod:`mixkit.engine.snapshot`) — model, optimiser and its recipe, AMP scaler,
    EMA, position (epoch, batch, the plan in progress), the epoch's loss meter and seconds, the
    random streams and, through ``method``, the arm's own state. The engine updates it in place.
    """

    arm: str
    epochs: int
    model: torch.nn.Module
    method: Any = None              # the Arm object (read its state, never call its hooks)
    optimizer: torch.optim.Optimizer | None = None
    recipe: Any = None              # the optimiser's Recipe (a new recipe: a new optimiser)
    scaler: Any = None              # the AMP GradScaler (disabled unless fp16)
    ema: Any = None                 # the weights' ModelEma (--model-ema), or None
    streams: dict[str, torch.Generator] = field(default_factory=dict)   # augment + the arm's
    bad: torch.Tensor | None = None  # device flag: 1.0 once a loss was non-finite (never read
                                     # per step; read at epoch end into ``nonfinite``)
    phase: str = ""
    epoch: int = 0                  # the epoch in progress, from 0
    batch: int = 0                  # steps done in this epoch
    batches: int = 0                # steps this epoch has
    steps: int = 0                  # optimiser steps of this arm in this process
    loss: torch.Tensor | None = None   # the last step's loss, on the device
    batch_data: Any = None          # the last step's Batch (ids, partners; device tensors)
    inputs: int = 0                 # inputs trained this epoch so far (this process)
    meter: Any = None               # the epoch's loss meter (``peek()`` never waits)
    note: str = ""                  # the epoch's note for the live view ("mixed 42%")
    phased: bool = False            # several phases: the live view names each epoch's
    plan: Any = None                # the epoch's EpochPlan (set at epoch_start)
    seconds: float = 0.0            # the epoch's seconds so far (set at interrupt)
    nonfinite: bool = False         # the epoch saw a non-finite loss (set at epoch_end)
    stop: int | None = None         # a stop request (signal number): the one writable field
    row: dict[str, Any] | None = None  # the epoch's metrics row (epoch_end, eval_end)
    rows: list[dict[str, Any]] = field(default_factory=list)   # the arm's finished epochs
    result: Any = None              # the arm's ArmResult (fit_end)


class Callback:
    """Override the events you need; each gets the state (read-only by contract)."""

    def fit_start(self, state: TrainState) -> None: ...
    def epoch_start(self, state: TrainState) -> None: ...
    def after_backward(self, state: TrainState) -> None: ...
    def after_step(self, state: TrainState) -> None: ...
    def epoch_end(self, state: TrainState) -> None: ...
    def eval_end(self, state: TrainState) -> None: ...
    def interrupt(self, state: TrainState) -> None: ...
    def fit_end(self, state: TrainState) -> None: ...

    def run_end(self, summary: dict[str, Any]) -> None:
        """After every arm, with ``summary.json``'s content (fired by the command layer)."""

    def close(self) -> None:
        """Release files and processes (the command layer calls it once, however it ends)."""


def fire(callbacks: Sequence[Callback], event: Event, state: TrainState) -> None:
    for cb in callbacks:
        getattr(cb, event.value)(state)
