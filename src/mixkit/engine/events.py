"""Named events and the callbacks that observe them (Composer's ``Event``/``Callback``, at our
size): a logger, an extra metric or a profiler is added without editing the loop.

The engine fires, for every arm it trains (``docs/engine.md``, "Events and callbacks")::

    fit_start     before the arm's first epoch (or the resumed one)
    epoch_start   the epoch's spec is built, its optimiser chosen, before its first step
    after_backward  every step, gradients computed, before the optimiser uses them
    after_step    after every optimiser step, *inside* the timed region
    epoch_end     the epoch's metrics row is built (training part), before evaluation
    eval_end      after evaluation: the row now holds ``val_acc`` (epochs that evaluate)
    fit_end       the arm's result is built

A callback reads :class:`TrainState` and must not change it, the model or the optimiser: it
observes. ``after_backward`` and ``after_step`` run in the hot loop: they must not read a device
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
    FIT_END = "fit_end"


@dataclass
class TrainState:
    """What a callback may read at an event; the engine updates it in place."""

    arm: str
    epochs: int
    model: torch.nn.Module
    method: Any = None              # the Arm object (read its state, never call its hooks)
    optimizer: torch.optim.Optimizer | None = None
    recipe: Any = None
    ema: Any = None
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
    def fit_end(self, state: TrainState) -> None: ...

    def run_end(self, summary: dict[str, Any]) -> None:
        """After every arm, with ``summary.json``'s content (fired by the command layer)."""

    def close(self) -> None:
        """Release files and processes (the command layer calls it once, however it ends)."""


def fire(callbacks: Sequence[Callback], event: Event, state: TrainState) -> None:
    for cb in callbacks:
        getattr(cb, event.value)(state)
