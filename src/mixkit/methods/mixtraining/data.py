"""The mixed dataset of Eq. (2): ``x_mix = lam * x_sl + (1 - lam) * x_ssl``, label ``y_sl``.

When the SSL data differ from the SL data, each SL sample of a mix-phase batch is mixed with an
SSL sample drawn uniformly at random (with replacement, afresh for every batch) from D_ssl.
Partners are drawn batch by batch, so a run resumed mid-epoch draws the same ones. Both
images are augmented and normalised by their own dataset's pipeline first, so the mix is taken in
model-input units. With the same data, D_mix = D_sl and no wrapper is used.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch


def mix_inputs(x_sl: torch.Tensor, x_ssl: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. (2) on a batch."""
    return torch.lerp(x_ssl, x_sl, lam)


class MixedSource:
    """D_mix = g(D_ssl, D_sl): SL batches along the plan, each row mixed with a random SSL row."""

    def __init__(self, sl: Any, ssl: Any, lam: float, generator: torch.Generator) -> None:
        self.sl, self.ssl, self.lam, self.generator = sl, ssl, lam, generator

    def __len__(self) -> int:
        return len(self.sl)

    def batches(self, plan: EpochPlan, batch_size: int, start: int = 0,
                epoch: int = 0) -> Iterator[Batch]:
        for b_sl in self.sl.batches(plan, batch_size, start, epoch):
            partners = EpochPlan(torch.randint(len(self.ssl), (b_sl.size,),
                                               generator=self.generator,
                                               device=self.generator.device))
            b_ssl = next(iter(self.ssl.batches(partners, b_sl.size, 0, epoch)))
            yield Batch(mix_inputs(b_sl.x, b_ssl.x, self.lam), b_sl.y, b_sl.ids, task=b_sl.task)
