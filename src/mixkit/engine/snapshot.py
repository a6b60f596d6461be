"""``last.pt`` for one engine: what a checkpoint holds, and how it is put back exactly.

The loop (:mod:`mixkit.engine.loop`) calls :meth:`Checkpointer.save` after every epoch and at a
signal stop, and, on ``--resume``, :meth:`Checkpointer.restore_training` once and
:meth:`Checkpointer.resume_epoch` for the interrupted epoch. What is saved, and why each part is
needed for a bit-for-bit continuation, is in ``docs/reliability.md``; the keys are in
``docs/run-dir.md``.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import torch

from mixkit.data.plan import EpochPlan
from mixkit.engine import distributed as D
from mixkit.engine.arm import Arm, EpochSpec
from mixkit.engine.checkpoint import CHECKPOINT_FORMAT, rng_state, set_rng_state
from mixkit.engine.optim import Recipe
from mixkit.engine.timing import DeviceMeter
from mixkit.errors import UserError

if TYPE_CHECKING:
    from mixkit.engine.loop import Engine


class Checkpointer:
    """Saves and restores one :class:`~mixkit.engine.loop.Engine`'s run (rank 0 writes)."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def streams(self, arm: Arm) -> dict[str, torch.Generator]:
        """Every random stream of the arm in progress: data augmentation and the arm's own."""
        return {"augment": self.engine.train_source.generator, **arm.generators}

    # --- save ---------------------------------------------------------------------------------
    def save(self, arm: Arm, epoch: int, batch: int, rows: list[dict[str, Any]],
             plan: EpochPlan | None = None, meter: DeviceMeter | None = None,
             seconds: float = 0.0) -> None:
        """``last.pt``: everything needed to continue at (``epoch``, ``batch``) (atomic)."""
        e = self.engine
        mine = {"rng": rng_state(self.streams(arm)),          # per rank: each draws its own
                "arm_state": arm.state_dict(),
                "meter": None if meter is None else [float(meter.total), meter.weight]}
        ranks = D.all_gather_object(mine)
        if not e.dist.main or e.rundir is None:
            return
        state = {
            "format": CHECKPOINT_FORMAT, **e.meta, "world_size": e.dist.world,
            "arm": arm.name, "epoch": epoch, "batch": batch, "rows": rows, "ranks": ranks,
            "done": {n: r.to_state() for n, r in e.done.items()},
            "model": e.model.state_dict(),
            "optimizer": None if e.optimizer is None else e.optimizer.state_dict(),
            "recipe": None if e.recipe is None else dataclasses.asdict(e.recipe),
            "scaler": e.scaler.state_dict(),
            "ema": None if e.ema is None else e.ema.state_dict(),
            "plan": None if plan is None else {"first": plan.first, "second": plan.second,
                                               "num_pairs": plan.num_pairs},
            "seconds": seconds,
        }
        e.rundir.save_checkpoint(state)

    # --- restore ------------------------------------------------------------------------------
    @contextmanager
    def _restoring(self) -> Iterator[None]:
        """A checkpoint whose contents do not fit this run (crafted, or from another model) is
        an exit-2 message naming it, not a KeyError/RuntimeError from deep in a restore."""
        try:
            yield
        except (KeyError, IndexError, RuntimeError, ValueError) as exc:   # not a code bug's
            rundir = self.engine.rundir
            where = rundir.checkpoint_path if rundir is not None else "the checkpoint"
            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise UserError(f"{where} does not fit this run and cannot be restored "
                            f"({type(exc).__name__}: {detail}).",
                            hint="Restore last.pt and config.yaml from a backup, or start a "
                            "new run.") from None

    def restore_training(self, state: dict[str, Any]) -> None:
        """Model, optimiser (for its recipe), AMP scaler."""
        e = self.engine
        with self._restoring():
            e.model.load_state_dict(_mapping(state["model"], "model"))
            if state["recipe"] is not None:
                e.optimizer_for(_recipe(state["recipe"])).load_state_dict(_mapping(
                    state["optimizer"], "optimizer"))
            e.scaler.load_state_dict(_mapping(state["scaler"], "scaler"))
            if e.ema is not None:
                e.ema.load_state_dict(_mapping(state["ema"], "ema"))

    def restore_streams(self, arm: Arm, state: dict[str, Any]) -> None:
        """Every RNG and the arm's own state, as they were when the checkpoint was taken."""
        with self._restoring():
            mine = _mapping(state["ranks"][self.engine.dist.rank], "ranks")
            set_rng_state(_mapping(mine["rng"], "rng"), self.streams(arm))
            arm.load_state_dict(_mapping(mine["arm_state"], "arm_state"))

    def resume_epoch(self, arm: Arm, epoch: int, state: dict[str, Any],
                     meter: DeviceMeter) -> tuple[EpochSpec, int, float]:
        """The interrupted epoch: its spec with the saved plan, the first batch not yet trained
        and the seconds already spent; ``meter`` gets the loss sum so far.

        At an epoch boundary the streams are restored and the spec built from them; mid-epoch
        the spec is rebuilt first (consuming the streams as the original did), then the streams
        and the saved plan are put back."""
        if state["batch"] == 0:
            self.restore_streams(arm, state)
            return arm.epoch(epoch), 0, 0.0
        spec = arm.epoch(epoch)
        self.restore_streams(arm, state)
        with self._restoring():
            spec.plan = self._saved_plan(spec, state)
            mine = state["ranks"][self.engine.dist.rank]
            meter.total.fill_(float(mine["meter"][0]))
            meter.weight = mine["meter"][1]
        return spec, state["batch"], state["seconds"]

    def _saved_plan(self, spec: EpochSpec, state: dict[str, Any]) -> EpochPlan:
        """The plan of the interrupted epoch, as it was (not the one just rebuilt), checked
        against the data it indexes."""
        p = state["plan"]
        plan = EpochPlan(p["first"], p["second"], p["num_pairs"])
        source = spec.source if spec.source is not None else self.engine.train_source
        ids = plan.first if plan.second is None else torch.cat([plan.first, plan.second])
        if ids.dtype != torch.int64 or ids.numel() and not (
                -1 <= int(ids.min()) and int(ids.max()) < len(source)):
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
    if not isinstance(value, dict) or not set(value) <= known or not {
            "name", "lr", "min_lr", "weight_decay", "warmup", "total"} <= set(value):
        raise ValueError("`recipe` is not a mixkit optimiser recipe")
    return Recipe.from_state(value)
