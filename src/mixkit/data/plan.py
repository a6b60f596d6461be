"""Epoch plans: what the engine trains on in one epoch, in order.

A plan is a list of *inputs*. Each input is one dataset sample (a single) or two samples to be
mixed into one (a pair, mixTrain §4): ``first[i]`` is always a sample id; ``second[i]`` is the
partner's id, or ``-1`` for a single. A baseline plan has no ``second`` at all. The engine cuts
a plan into batches of ``batch_size`` inputs, so a plan with ``P`` pairs over ``N`` samples has
``N - P`` inputs and proportionally fewer batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EpochPlan:
    first: torch.Tensor                  # int64 [M]
    second: torch.Tensor | None = None   # int64 [M], -1 where the input is a single
    num_pairs: int = 0                   # host-side count, fixed when the plan is built
    steps: int | None = None             # fixed batch count (a DDP shard); the last takes the rest

    def __post_init__(self) -> None:
        if self.second is not None and self.second.shape != self.first.shape:
            raise ValueError("first and second must have the same length")

    @property
    def inputs(self) -> int:
        """Forward inputs in the epoch (a mixed pair counts once)."""
        return int(self.first.shape[0])

    @property
    def samples(self) -> int:
        """Dataset samples seen in the epoch (a mixed pair counts twice)."""
        return self.inputs + self.num_pairs

    def num_batches(self, batch_size: int) -> int:
        """``ceil(inputs / batch_size)``, except that a last batch of one row is merged into the
        one before (a one-row batch breaks BatchNorm wherever the feature map is 1x1)."""
        if self.steps is not None:
            return self.steps
        n = -(-self.inputs // batch_size)
        if n > 1 and self.inputs - (n - 1) * batch_size < 2:
            n -= 1
        return n

    def to(self, device: torch.device | str) -> "EpochPlan":
        second = None if self.second is None else self.second.to(device, non_blocking=True)
        return EpochPlan(self.first.to(device, non_blocking=True), second, self.num_pairs,
                         self.steps)

    def batch(self, k: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rows of batch ``k`` (a view, no copy); the last batch takes every remaining row."""
        last = k == self.num_batches(batch_size) - 1
        s = slice(k * batch_size, None if last else (k + 1) * batch_size)
        return self.first[s], None if self.second is None else self.second[s]


def shuffled(num_samples: int, generator: torch.Generator) -> EpochPlan:
    """Every sample once, in a random order: the plan of a plain supervised epoch."""
    return EpochPlan(torch.randperm(num_samples, generator=generator))


def pair_plan(mix: torch.Tensor, generator: torch.Generator) -> EpochPlan:
    """mixTrain's epoch plan (§4.2): the samples in ``mix`` paired at random, the rest single.

    With an odd number of eligible samples, one of them stays single. Rows are shuffled, so
    pairs and singles are spread over the epoch's batches. One host read (the eligible ids).
    """
    mix = mix.cpu()
    eligible = torch.nonzero(mix).flatten()
    eligible = eligible[torch.randperm(eligible.numel(), generator=generator)]
    p = eligible.numel() // 2
    a, b = eligible[:p], eligible[p: 2 * p]
    singles = torch.cat([torch.nonzero(~mix).flatten(), eligible[2 * p:]])
    first = torch.cat([singles, a])
    second = torch.cat([torch.full_like(singles, -1), b])
    order = torch.randperm(first.numel(), generator=generator)
    return EpochPlan(first[order], second[order], p)
