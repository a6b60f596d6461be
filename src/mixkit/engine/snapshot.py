"""A :class:`~mixkit.engine.events.TrainState` to and from ``last.pt``'s dictionary.

:func:`capture` is called on every rank (each contributes its own random streams, arm state and
loss meter; rank 0 gathers them) by the checkpoint saver (:class:`~mixkit.runio.callbacks.
CheckpointSaver`) after every epoch and at a stop; on ``--resume`` the engine calls
:func:`restore_training` once and :func:`resume_epoch` for the interrupted epoch. What is saved,
and why each part is needed for a bit-for-bit continuation, is in ``docs/reliability.md``; the
keys are in ``docs/run-dir.md``. This module knows the state, not the engine: the loop imports
it, never the other way round.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from mixkit.data.plan import EpochPlan
from mixkit.engine import distributed as D
from mixkit.engine.arm import EpochSpec
from mixkit.engine.events import TrainState
from mixkit.engine.rng import rng_state, set_rng_state
from mixkit.engine.optim import Recipe
from mixkit.engine.timing import DeviceMeter
from mixkit.errors import UserError


# the layout of last.pt's dictionary (``docs/run-dir.md``); a reader refuses another
CHECKPOINT_FORMAT = 1


# --- save ---------------------------------------------------------------------------------------
def capture(state: TrainState, main: bool, epoch: int, batch: int, *, mid_epoch: bool = False
            ) -> dict[str, Any] | None:
    """``last.pt``'s training part at (``epoch``, ``batch``): on rank 0 the dict, elsewhere
    None. Every rank must call it (the per-rank parts are gathered)."""
    mine = {"rng": rng_state(state.streams),               # per rank: each draws its own
            "arm_state": state.method.state_dict(),
            "meter": [float(state.meter.total), state.meter.weight] if mid_epoch else None}
    ranks = D.all_gather_object(mine)
    if not main:
        return None
    plan = state.plan if mid_epoch else None
    return {
        "format": CHECKPOINT_FORMAT,
        "arm": state.arm, "epoch": epoch, "batch": batch, "rows": state.rows, "ranks": ranks,
        "model": state.model.state_dict(),
        "optimizer": None if state.optimizer is None else state.optimizer.state_dict(),
        "recipe": None if state.recipe is None else dataclasses.asdict(state.recipe),
        "scaler": state.scaler.state_dict(),
        "ema": None if state.ema is None else state.ema.state_dict(),
        "plan": None if plan is None else {"first": plan.first, "second": plan.second,
                                           "num_pairs": plan.num_pairs},
        "seconds": state.seconds if mid_epoch else 0.0,
    }


# --- restore ------------------------------------------------------------------------------------
@contextmanager
def restoring(where: str) -> Iterator[None]:
    """A checkpoint whose contents do not fit this run (crafted, or from another model) is an
    exit-2 message naming it, not a KeyError/RuntimeError from deep in a restore. Only the
    errors a bad *file* raises are caught (a missing key, a wrong shape or type, a bad value),
    so a bug in mixkit is not reported as a bad checkpoint."""
    try:
        yield
    except (KeyError, IndexError, RuntimeError, ValueError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise UserError(f"{where} does not fit this run and cannot be restored "
                        f"({type(exc).__name__}: {detail}).",
                        hint="Restore last.pt and config.yaml from a backup, or start a "
                        "new run.") from None


def restore_training(state: TrainState, saved: dict[str, Any],
                     optimizer_for: Callable[[Recipe], torch.optim.Optimizer]) -> None:
    """Model, optimiser (built for the saved recipe), AMP scaler and EMA, into ``state``."""
    state.model.load_state_dict(_mapping(saved["model"], "model"))
    if saved["recipe"] is not None:
        optimizer_for(_recipe(saved["recipe"])).load_state_dict(
            _mapping(saved["optimizer"], "optimizer"))
    state.scaler.load_state_dict(_mapping(saved["scaler"], "scaler"))
    if state.ema is not None:
        state.ema.load_state_dict(_mapping(saved["ema"], "ema"))


def restore_streams(state: TrainState, saved: dict[str, Any], rank: int) -> None:
    """Every RNG and the arm's own state, as they were when the checkpoint was taken."""
    mine = _mapping(saved["ranks"][rank], "ranks")
    set_rng_state(_mapping(mine["rng"], "rng"), state.streams)
    state.method.load_state_dict(_mapping(mine["arm_state"], "arm_state"))


def resume_epoch(state: TrainState, epoch: int, saved: dict[str, Any], meter: DeviceMeter,
                 rank: int, default_source: Any) -> tuple[EpochSpec, int, float]:
    """The interrupted epoch: its spec with the saved plan, the first batch not yet trained
    and the seconds already spent; ``meter`` gets the loss sum so far.

    At an epoch boundary the streams are restored and the spec built from them; mid-epoch
    the spec is rebuilt first (consuming the streams as the original did), then the streams
    and the saved plan are put back."""
    arm = state.method
    if saved["batch"] == 0:
        restore_streams(state, saved, rank)
        return arm.epoch(epoch), 0, 0.0
    spec = arm.epoch(epoch)
    restore_streams(state, saved, rank)
    note = arm.epoch_note()
    if note is not None:                 # the note of the restored state, not the rebuilt one
        spec.note = note
    source = spec.source if spec.source is not None else default_source
    spec.plan = saved_plan(saved, len(source))
    mine = saved["ranks"][rank]
    meter.total.fill_(float(mine["meter"][0]))
    meter.weight = mine["meter"][1]
    return spec, saved["batch"], saved["seconds"]


def saved_plan(saved: dict[str, Any], data_size: int) -> EpochPlan:
    """The plan of the interrupted epoch, as it was (not the one just rebuilt), checked
    against the data it indexes."""
    p = saved["plan"]
    plan = EpochPlan(p["first"], p["second"], p["num_pairs"])
    ids = plan.first if plan.second is None else torch.cat([plan.first, plan.second])
    if ids.dtype != torch.int64 or ids.numel() and not (
            -1 <= int(ids.min()) and int(ids.max()) < data_size):
        raise ValueError("the saved epoch plan names samples this data does not have")
    return plan


def _mapping(value: Any, key: str) -> dict[str, Any]:
    """A checkpoint part that must be a state dict: anything else is "does not fit"."""
    if not isinstance(value, dict):
        raise ValueError(f"`{key}` is a {type(value).__name__}, not a state dict")
    return value


def _recipe(value: Any) -> Recipe:
    """The saved recipe, checked before it is built (a crafted one is "does not fit")."""
    known = {f.name for f in dataclasses.fields(Recipe)}
    if isinstance(value, dict):         # checkpoints before 2026-12-07 kept the loss's
        value = {k: v for k, v in value.items() if k != "smoothing"}    # smoothing here
    if not isinstance(value, dict) or not set(value) <= known or not {
            "name", "lr", "min_lr", "weight_decay", "warmup", "total"} <= set(value):
        raise ValueError("`recipe` is not a mixkit optimiser recipe")
    return Recipe.from_state(value)
