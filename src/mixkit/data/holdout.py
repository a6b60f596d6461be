"""Seeded, stratified index selection: data-limitation subsets and held-out validation sets.

MixTraining §3.1 trains on fractions of the training set; the subset must be the same for the
method and its baselines, so it is a pure function of (labels, fraction, seed).
"""

from __future__ import annotations

import torch


def stratified_indices(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted ids of a per-class random ``fraction`` of ``labels`` (at least one per class).

    Each class ``c`` with ``n_c`` samples keeps ``max(1, round(fraction * n_c))`` of them.
    """
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        k = max(1, round(fraction * idx.numel()))
        keep.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    return torch.cat(keep).sort().values


def stratified_holdout(labels: torch.Tensor, val_fraction: float,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train ids, val ids): a stratified ``val_fraction`` held out, the rest for training."""
    val = stratified_indices(labels, val_fraction, seed)
    mask = torch.ones(labels.numel(), dtype=torch.bool)
    mask[val] = False
    return torch.nonzero(mask).flatten(), val
