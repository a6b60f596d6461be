"""The plain supervised arm: every sample once per epoch, cross-entropy, one recipe.

It is the baseline of ``mixkit mixtrain`` (arm ``baseline``) and the SL baseline of
``mixkit mixtraining`` (arm ``sl``): both commands measure their method against this arm, run
side by side in the same invocation with the same seed, data, model and epochs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mixkit.data.plan import shuffled
from mixkit.data.sources import Batch
from mixkit.engine.loop import EpochSpec
from mixkit.engine.optim import Recipe


def cross_entropy_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(model(batch.x), batch.y)


class SupervisedArm:
    """``epochs`` shuffled passes over the training set with one AdamW recipe."""

    def __init__(self, name: str, epochs: int, num_samples: int, recipe: Recipe,
                 plan_generator: torch.Generator, phase: str = "sl") -> None:
        self.name, self.epochs, self.num_samples = name, epochs, num_samples
        self.recipe, self.generator, self.phase = recipe, plan_generator, phase

    def epoch(self, epoch: int) -> EpochSpec:
        return EpochSpec(self.phase, shuffled(self.num_samples, self.generator), self.recipe,
                         cross_entropy_loss)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {}
