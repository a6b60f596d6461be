"""InfoBatch (Qin et al., ICLR 2024): unbiased dynamic data pruning, as a comparison arm.

What a user would most likely run instead of mixTrain to train on fewer inputs. Per epoch:

* every sample's *score* is its loss from the last epoch it was trained in (recorded from the
  training forward itself, no extra pass; 1.0 before the first, as the authors initialise);
* samples scoring below the mean score are "well learned"; a random fraction ``r`` of them is
  pruned from the epoch;
* the kept well-learned samples' losses are scaled by ``1 / (1 - r)``, so the expected gradient
  equals the full epoch's (the "unbiased" part);
* the last ``1 - delta`` of the epochs (annealing, ``delta = 0.875``) train on the full data
  (from epoch ``floor(delta * epochs)``, as the official sampler counts).

Matched cost (``docs/mixtrain.md``): InfoBatch's own ``r`` is a fixed 0.5, and its saving then
follows from how many samples score below the mean. Here ``r`` is set *per epoch* so that the
epoch prunes its share of the inputs the mixtrain arm saved in the same run: the total saving
is spread over the pruning epochs in proportion to mixtrain's per-epoch savings, and
``r_e = min(target_e / below_e, r_max)``. The per-sample state is device tensors indexed by
sample id (no host sync per batch); the plan is built with one host read per epoch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch
from mixkit.engine.arm import Arm, EpochSpec
from mixkit.engine.distributed import Dist, all_reduce_sum
from mixkit.engine.optim import Recipe
from mixkit.methods.supervised import smoothed

R_MAX = 0.9        # 1 / (1 - r) = 10: beyond it the rescaled losses' variance explodes


def pruning_epoch(epoch: int, epochs: int, delta: float) -> bool:
    """Whether ``epoch`` (from 0) may prune: the official samplers of InfoBatch and SeTa prune
    while ``iterations <= delta * epochs`` with iterations counted from 1, i.e. while
    ``epoch < floor(delta * epochs)``, and anneal after."""
    return epoch + 1 <= delta * epochs


def prune_targets(epochs: int, num_samples: int, method_inputs: list[int],
                  delta: float) -> list[int]:
    """Samples to prune in each epoch so that the whole run trains on ``sum(method_inputs)``
    inputs, with no pruning in epoch 0 (no scores yet) nor in the annealing epochs (from
    ``floor(delta * epochs)`` on, :func:`pruning_epoch`); the saving is spread in proportion
    to the method's own per-epoch savings (uniformly if it saved nothing in those epochs)."""
    saving = max(0, epochs * num_samples - sum(method_inputs))
    window = [e for e in range(1, epochs) if pruning_epoch(e, epochs, delta)]
    if not window or saving == 0:
        return [0] * epochs
    weights = [max(0, num_samples - method_inputs[e]) for e in window]
    if sum(weights) == 0:
        weights = [1] * len(window)
    out = [0] * epochs
    for e, w in zip(window, weights):
        out[e] = round(saving * w / sum(weights))
    return out


class ScoredArm(Arm):
    """The per-sample bookkeeping InfoBatch and SeTa share: each sample's *score* is its
    cross-entropy from the last epoch it was trained in, recorded from the training forward
    itself (no extra pass) into device tensors indexed by sample id; a sample not trained in
    an epoch keeps its old score; under torchrun the epoch's new scores are all-reduced (each
    sample is trained on one rank). Subclasses call :meth:`begin_scores` when an epoch starts,
    :meth:`record` in their loss and :meth:`end_scores` when it ends."""

    SCORE_KEYS = ("score", "score_new", "seen")

    def init_scores(self, num_samples: int, device: torch.device, initial: float,
                    dist: Dist) -> None:
        f32 = dict(device=device, dtype=torch.float32)
        self.score = torch.full((num_samples,), float(initial), **f32)
        self.score_new = torch.zeros(num_samples, **f32)    # this epoch's losses
        self.seen = torch.zeros(num_samples, device=device, dtype=torch.bool)
        self.dist = dist

    def begin_scores(self) -> None:
        self.score_new.zero_()
        self.seen.zero_()

    def record(self, ids: torch.Tensor, ce: torch.Tensor) -> None:
        """The rows' plain cross-entropies become their samples' new scores."""
        self.score_new[ids] = ce.detach().float()
        self.seen[ids] = True

    def end_scores(self) -> None:
        if self.dist.enabled:
            seen = self.seen.to(torch.int32)
            all_reduce_sum(self.score_new, seen)
            self.seen = seen > 0
        self.score = torch.where(self.seen, self.score_new, self.score)

    def spec(self, ids: torch.Tensor, note: str) -> EpochSpec:
        """The epoch's spec: ``ids`` shuffled by the plan generator into the plan."""
        plan = EpochPlan(ids[torch.randperm(ids.numel(), generator=self.generator)])
        return EpochSpec("sl", plan, self.recipe, self.loss, note=note)

    def scored_ce(self, model: torch.nn.Module,
                  batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward: logits and per-row cross-entropies, recorded as the new scores."""
        logits = model(batch.x)
        ce = F.cross_entropy(logits, batch.y, reduction="none")
        self.record(batch.ids, ce)
        return logits, ce

    def score_state(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).clone() for k in self.SCORE_KEYS}

    def load_score_state(self, state: dict[str, Any]) -> None:
        for k in self.SCORE_KEYS:
            setattr(self, k, state[k].to(getattr(self, k).device))


class InfoBatchArm(ScoredArm):
    """Supervised training with InfoBatch's pruning and rescaling (see the module doc)."""

    def __init__(self, name: str, epochs: int, num_samples: int, recipe: Recipe,
                 plan_generator: torch.Generator, targets: list[int], device: torch.device,
                 dist: Dist = Dist()) -> None:
        self.name, self.epochs, self.n, self.recipe = name, epochs, num_samples, recipe
        self.generator, self.targets = plan_generator, targets
        self.init_scores(num_samples, device, 1.0, dist)     # InfoBatch initialises them to 1
        self.weight = torch.ones(num_samples, device=device)  # 1 / (1 - r) on kept low scorers
        self.ratio, self.below, self.pruned = 0.0, 0, 0

    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"plan": self.generator}

    def state_dict(self) -> dict[str, Any]:
        return {**self.score_state(), "weight": self.weight.clone(),
                "stats": [self.ratio, self.below, self.pruned]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_score_state(state)
        self.weight = state["weight"].to(self.weight.device)
        self.ratio, self.below, self.pruned = state["stats"]

    def epoch(self, epoch: int) -> EpochSpec:
        self.begin_scores()
        below = (self.score < self.score.mean()).cpu()       # the epoch's one host read
        self.below = int(below.sum())
        self.ratio = min(self.targets[epoch] / self.below, R_MAX) if self.below else 0.0
        drop = below & (torch.rand(self.n, generator=self.generator) < self.ratio)
        keep = torch.nonzero(~drop).flatten()
        self.pruned = self.n - int(keep.numel())
        weight = torch.where(below & ~drop, torch.tensor(1.0 / (1.0 - self.ratio)),
                             torch.tensor(1.0))
        self.weight = weight.to(self.weight.device)
        return self.spec(keep, f"pruned {self.pruned / self.n:.0%}")

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Cross-entropy rescaled per row by ``weight[id]``; the rows' plain cross-entropies
        (as mixTrain records them) become scores."""
        logits, ce = self.scored_ce(model, batch)
        return (smoothed(ce, logits, self.recipe.smoothing) * self.weight[batch.ids]).mean()

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Trained samples take their new score; pruned ones keep the old one (InfoBatch)."""
        self.end_scores()
        return {"prune_ratio": self.ratio, "below_mean": self.below, "pruned": self.pruned}
