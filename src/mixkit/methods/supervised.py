"""Plain supervised training (:class:`Baseline`) and the cost-matched controls built on it:
random mini-batch skipping (:class:`Skip`) and the shortened schedule (:func:`short_epochs`).

It is the baseline of ``mixkit mixtrain`` (arm ``baseline``) and the SL baseline of
``mixkit mixtraining`` (arm ``sl``): both commands measure their method against this arm, run
side by side in the same invocation with the same seed, data, model and epochs.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mixkit.data.plan import EpochPlan, shuffled
from mixkit.data.sources import Batch
from mixkit.engine.optim import Recipe
from mixkit.methods.method import Method, MethodArm, UsageError


def task_mean(values: torch.Tensor, task: torch.Tensor | None, num_tasks: int) -> torch.Tensor:
    """The batch mean of per-row ``values``; with multi-task rows, the *sum over tasks* of each
    task's mean (the tasks' objectives summed, MixTraining §2.2.3). Vectorised, no host sync."""
    if task is None:
        return values.mean()
    onehot = F.one_hot(task, num_tasks).to(values.dtype)                # [B, T]
    return ((onehot.T @ values) / onehot.sum(0).clamp_min(1)).sum()


def smoothed(ce: torch.Tensor, logits: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label smoothing applied to per-row cross-entropies ``ce`` of ``logits``: torch's (and
    timm's) definition ``(1 − s)·CE + s·mean_c(−log p_c)``, written so that the plain
    cross-entropy can be recorded beside the loss the arm trains with (mixTrain's selection,
    InfoBatch's scores) from the same forward. The uniform term does not depend on the label,
    so a mixed row's ``r·CE1 + (1 − r)·CE2`` is smoothed the same way (each label smoothed)."""
    if smoothing == 0.0:
        return ce
    uniform = -F.log_softmax(logits.float(), dim=-1).mean(-1)
    return (1.0 - smoothing) * ce + smoothing * uniform.to(ce.dtype)


def supervised_loss_from_features(model: torch.nn.Module, feats: torch.Tensor,
                                  batch: Batch, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of each row through its task's head (one head: plain cross-entropy)."""
    pooled = model.pre_logits(feats)
    if batch.task is None:
        return F.cross_entropy(model.heads[0](pooled), batch.y, label_smoothing=smoothing)
    per_row = torch.zeros_like(batch.y, dtype=torch.float32)
    for t, head in enumerate(model.heads):       # heads are tiny: score every row with each
        mine = batch.task == t
        ce = F.cross_entropy(head(pooled).float(), torch.where(mine, batch.y, 0),
                             reduction="none", label_smoothing=smoothing)
        per_row = torch.where(mine, ce, per_row)
    return task_mean(per_row, batch.task, len(model.heads))


def cross_entropy_loss(model: torch.nn.Module, batch: Batch,
                       smoothing: float = 0.0) -> torch.Tensor:
    """The supervised step's loss (with ``smoothing``: timm's ``--smoothing``)."""
    if batch.task is None:
        return F.cross_entropy(model(batch.x), batch.y, label_smoothing=smoothing)
    return supervised_loss_from_features(model, model.forward_features(batch.x), batch,
                                         smoothing)


class Baseline(Method):
    """Plain supervised training: every sample once per epoch, shuffled, cross-entropy.

    ``budget`` makes it **random mini-batch skipping** (mixTrain §5.3, :class:`Skip`): epoch
    ``e`` trains on a random ``budget[e]`` of the samples, i.e. the shuffled epoch with its
    remaining batches skipped, on the same learning-rate curve (a function of progress)."""

    name = "baseline"

    def __init__(self, num_samples: int, *, budget: Sequence[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(num_samples, **kwargs)
        if budget is not None and (self.epochs is not None and len(budget) < self.epochs):
            raise ValueError(f"budget has {len(budget)} epochs; epochs is {self.epochs}")
        self.budget = None if budget is None else [int(b) for b in budget]

    def plan(self, epoch: int) -> EpochPlan:
        plan = shuffled(self.num_samples, self.plan_generator)
        if self.budget is not None:
            if epoch >= len(self.budget):
                raise UsageError(f"Skip's budget covers {len(self.budget)} epochs; this is "
                                 f"epoch {epoch + 1}")
            plan = EpochPlan(plan.first[: max(1, self.budget[epoch])])
        return plan

    def compute_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return cross_entropy_loss(model, batch, self.smoothing)


class Skip(Baseline):
    """Random mini-batch skipping (mixTrain §5.3), matched to another run's cost: epoch ``e``
    trains on a random ``budget[e]`` samples (e.g. a mixTrain run's ``inputs`` per epoch), or
    on a random ``fraction`` of them every epoch."""

    name = "skip"

    def __init__(self, num_samples: int, *, budget: Sequence[int] | None = None,
                 fraction: float | None = None, epochs: int | None = None,
                 **kwargs: Any) -> None:
        if (budget is None) == (fraction is None):
            raise ValueError("Skip needs budget= (inputs per epoch) or fraction=, not both")
        if fraction is not None:
            if not 0.0 < fraction <= 1.0 or epochs is None:
                raise ValueError("fraction= must lie in (0, 1] and needs epochs=")
            budget = [max(1, round(fraction * num_samples))] * epochs
        super().__init__(num_samples, budget=budget, epochs=epochs, **kwargs)


def short_epochs(num_samples: int, inputs: int) -> int:
    """The ``short`` arm's length (§5.3, early termination done right): a run's total inputs
    in whole epochs, rounded to the nearest (at least 1). Train :class:`Baseline` for that many
    epochs with the whole schedule compressed into them."""
    return max(1, round(inputs / num_samples))


class SupervisedArm(MethodArm):
    """The CLI's plain supervised arms (``baseline``, ``sl``, ``short``; with ``budget``,
    ``skip``): :class:`Baseline` over ``epochs`` epochs of ``recipe``."""

    def __init__(self, name: str, epochs: int, num_samples: int, recipe: Recipe,
                 plan_generator: torch.Generator, budget: list[int] | None = None,
                 smoothing: float = 0.0) -> None:
        method = Baseline(num_samples, budget=budget, epochs=epochs, smoothing=smoothing,
                          generator=plan_generator)
        super().__init__(name, method, epochs, recipe)
