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

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch
from mixkit.engine.distributed import Dist, all_reduce_sum
from mixkit.engine.optim import Recipe
from mixkit.methods.method import Method, MethodArm
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


class ScoredMethod(Method):
    """The per-sample bookkeeping InfoBatch and SeTa share: each sample's *score* is its
    cross-entropy from the last epoch it was trained in, recorded from the training forward
    itself (no extra pass) into device tensors indexed by sample id; a sample not trained in
    an epoch keeps its old score; under torchrun the epoch's new scores are all-reduced (each
    sample is trained on one rank). Subclasses call :meth:`begin_scores` when an epoch starts
    and :meth:`end_scores` when it ends; :meth:`scored_ce` records."""

    SCORE_KEYS = ("score", "score_new", "seen")

    def init_scores(self, initial: float) -> None:
        f32 = dict(device=self.device, dtype=torch.float32)
        self.score = torch.full((self.num_samples,), float(initial), **f32)
        self.score_new = torch.zeros(self.num_samples, **f32)    # this epoch's losses
        self.seen = torch.zeros(self.num_samples, device=self.device, dtype=torch.bool)

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

    def shuffled_plan(self, ids: torch.Tensor) -> EpochPlan:
        """The epoch's plan: ``ids`` shuffled by the plan generator."""
        return EpochPlan(ids[torch.randperm(ids.numel(), generator=self.plan_generator)])

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


class InfoBatch(ScoredMethod):
    """InfoBatch's pruning and rescaling (see the module doc). ``prune_ratio`` is the official
    fixed ``r`` (0.5); ``targets`` (samples to prune per epoch, :func:`prune_targets`) sets
    ``r`` per epoch instead, to match another run's cost (the CLI's comparison arm)."""

    name = "infobatch"

    def __init__(self, num_samples: int, epochs: int, *, prune_ratio: float = 0.5,
                 delta: float = 0.875, targets: Sequence[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(num_samples, epochs=epochs, **kwargs)
        if not 0.0 <= prune_ratio <= R_MAX or not 0.0 < delta <= 1.0:
            raise ValueError(f"prune_ratio must lie in [0, {R_MAX}] and delta in (0, 1]")
        if targets is not None and len(targets) < epochs:
            raise ValueError(f"targets has {len(targets)} epochs; epochs is {epochs}")
        self.prune_ratio, self.delta, self.targets = prune_ratio, delta, targets
        self.init_scores(1.0)                                   # InfoBatch initialises to 1
        self.weight = torch.ones(num_samples, device=self.device)  # 1/(1 - r), kept low scorers
        self.ratio, self.below, self.pruned = 0.0, 0, 0

    def note(self) -> str:
        return f"pruned {self.pruned / self.num_samples:.0%}"

    def own_state(self) -> dict[str, Any]:
        return {**self.score_state(), "weight": self.weight.clone(),
                "stats": [self.ratio, self.below, self.pruned]}

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.load_score_state(state)
        self.weight = state["weight"].to(self.weight.device)
        self.ratio, self.below, self.pruned = state["stats"]

    def _ratio(self, epoch: int) -> float:
        if self.targets is not None:
            return min(self.targets[epoch] / self.below, R_MAX) if self.below else 0.0
        return self.prune_ratio if pruning_epoch(epoch, self.epochs, self.delta) else 0.0

    def plan(self, epoch: int) -> EpochPlan:
        self.begin_scores()
        n = self.num_samples
        below = (self.score < self.score.mean()).cpu()       # the epoch's one host read
        self.below = int(below.sum())
        self.ratio = self._ratio(epoch)
        drop = below & (torch.rand(n, generator=self.plan_generator) < self.ratio)
        keep = torch.nonzero(~drop).flatten()
        self.pruned = n - int(keep.numel())
        weight = torch.where(below & ~drop, torch.tensor(1.0 / (1.0 - self.ratio)),
                             torch.tensor(1.0))
        self.weight = weight.to(self.weight.device)
        return self.shuffled_plan(keep)

    def compute_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Cross-entropy rescaled per row by ``weight[id]``; the rows' plain cross-entropies
        (as mixTrain records them) become scores."""
        logits, ce = self.scored_ce(model, batch)
        return (smoothed(ce, logits, self.smoothing) * self.weight[batch.ids]).mean()

    def close_epoch(self, epoch: int) -> dict[str, Any]:
        """Trained samples take their new score; pruned ones keep the old one (InfoBatch)."""
        self.end_scores()
        return {"prune_ratio": self.ratio, "below_mean": self.below, "pruned": self.pruned}


class InfoBatchArm(MethodArm):
    """The CLI's ``infobatch`` comparison arm: :class:`InfoBatch` matched to ``targets``."""

    def __init__(self, name: str, epochs: int, num_samples: int, recipe: Recipe,
                 plan_generator: torch.Generator, targets: list[int], device: torch.device,
                 dist: Dist = Dist(), smoothing: float = 0.0) -> None:
        method = InfoBatch(num_samples, epochs, targets=targets, device=device, dist=dist,
                           smoothing=smoothing, generator=plan_generator)
        super().__init__(name, method, epochs, recipe)
