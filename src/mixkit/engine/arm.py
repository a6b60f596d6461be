"""The contract between the engine and a training method: :class:`Arm` and :class:`EpochSpec`.

An *arm* is one training recipe run from the same starting point as the others of its command
(mixTrain's ``baseline`` and ``mixtrain``; MixTraining's ``sl``, ``ssl+sl`` and
``mixtraining``; the comparison arms). The engine (:mod:`mixkit.engine.loop`) knows nothing
else about a method: it calls the hooks below, in this order, and only these (Composer's
``Algorithm``/``Event`` idea, at our size)::

    extend_model(model)                  once, before the engine wraps the model
    for epoch in range(epochs):
        epoch(epoch) -> EpochSpec        the epoch's plan, recipe and per-batch loss
        spec.loss(model, batch)          every step, inside autocast and the timed region
        end_epoch(epoch) -> dict         timed: the method's per-epoch bookkeeping
        state_dict(), generators         with every checkpoint
    finish(model) -> dict                untimed, after the last epoch (artifacts)

and, on ``--resume``, ``generators`` / ``load_state_dict`` before the interrupted epoch's
``epoch()`` is rebuilt. Every hook but :meth:`Arm.epoch` has a no-op default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch
from mixkit.engine.optim import Recipe

LossFn = Callable[[torch.nn.Module, Batch], torch.Tensor]


@dataclass
class EpochSpec:
    """What one epoch trains: ``loss(model, batch)`` returns the batch's mean loss (scalar)."""

    phase: str
    plan: EpochPlan
    recipe: Recipe
    loss: LossFn
    evaluate: bool = True
    note: str = ""          # shown beside the progress bar (e.g. "mixed 42%")
    source: Any = None      # the epoch's data source, if not the training split (SSL data)
    frozen: tuple[str, ...] = ()   # parameter-name prefixes this epoch does not train


class Arm:
    """A training method as the engine sees it. Subclasses set ``name`` and ``epochs`` and
    implement :meth:`epoch`; every other hook is optional."""

    name: str
    epochs: int
    phased: bool = False    # several phases (MixTraining): the live view names each epoch's phase

    def epoch(self, epoch: int) -> EpochSpec:
        """Called at the start of each epoch (inside its timed region): the plan (which samples,
        paired or not, in which order), the optimiser recipe, the loss function and what to
        freeze. May update the arm's own state (e.g. clear per-epoch tables); must draw any
        randomness from :attr:`generators` so that a resume rebuilds the same spec."""
        raise NotImplementedError

    def epoch_note(self) -> str | None:
        """The current epoch's note from the arm's state (None: the spec's own). Read once
        more after a mid-epoch resume restores that state, since the spec was rebuilt from
        the fresh arm (see :func:`~mixkit.engine.snapshot.resume_epoch`)."""
        return None

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Called after the epoch's last step, *inside* the timed region (a method's per-epoch
        bookkeeping is part of its cost). Returns extra keys for the epoch's metrics row. May
        read the device once (the epoch's one host read); under torchrun it must combine the
        ranks' state (all-reduce) so every rank builds the same next plan."""
        return {}

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The arm's random streams by name (plans, masks, boxes, partners). Saved in every
        checkpoint and restored on resume; the engine adds the data augmentation stream."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The arm's own state for a checkpoint (tensors and plain containers only: it is
        loaded with ``weights_only=True``), e.g. mixTrain's per-sample tables."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`; called on resume: at an epoch boundary before the
        epoch's :meth:`epoch` is built; mid-epoch after the interrupted epoch's spec is rebuilt
        (that rebuild consumes the streams as the original did, then streams, state and the
        saved plan are put back), so a resumed run continues bit for bit."""

    def extend_model(self, model: torch.nn.Module) -> None:
        """Called once on the fresh model, before the engine moves/compiles/wraps it: attach
        modules the arm trains beside the classifier (MixTraining's MAE decoder as
        ``model.ssl_head``), so the optimiser, checkpoints and DDP see them."""

    def finish(self, model: torch.nn.Module) -> dict[str, Any]:
        """Called once after the last epoch, untimed: artifacts for the command's report
        (MixTraining's reconstructions). Kept with the arm's result in checkpoints."""
        return {}
