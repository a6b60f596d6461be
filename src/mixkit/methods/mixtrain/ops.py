"""Mixing operators as pure tensor functions (timm's ``mixup.py`` shape: functions first).

Everything here is vectorised over the batch and takes its randomness from an explicit
generator, or takes the box / ratio as an argument so tests can inject it (Composer's
``cutmix_batch(..., bbox=...)``).

* CutMix (mixTrain §3, §4.1.1): the box is made of whole cells of the backbone's final feature
  grid, so each constituent owns a known region of the last feature map (split propagation).
* MixUp (Eq. 1/3): ``X = r·x1 + (1−r)·x2``.
* Eq. (2): the ratio-weighted cross-entropy of a mixed input against both labels.
* Eq. (5), our reading: ``r = L_a / (L_a + L_b)`` (the printed ``L_a / L_b`` is not in [0, 1]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def box_shapes(grid: tuple[int, int], area: float) -> list[tuple[int, int]]:
    """The (rows, cols) cell boxes whose area fraction is closest to ``area``.

    A 4x4 grid at area 0.5 gives [(2, 4), (4, 2)]: exactly half, in either orientation.
    """
    gh, gw = grid
    cells = gh * gw
    shapes = [(h, w) for h in range(1, gh + 1) for w in range(1, gw + 1) if h * w < cells]
    best = min(abs(h * w / cells - area) for h, w in shapes)
    return [(h, w) for h, w in shapes if abs(h * w / cells - area) == best]


def sample_cell_boxes(n: int, grid: tuple[int, int], shapes: torch.Tensor,
                      generator: torch.Generator, edge: bool = False) -> torch.Tensor:
    """``n`` random boxes as ``[n, 4]`` int64 rows ``(y0, x0, h, w)`` in grid cells.

    ``shapes`` is ``torch.tensor(box_shapes(grid, area))`` on the device (built once): each box
    takes one of them at random, at a uniformly random position that keeps it on the grid (the
    paper). ``edge`` (``--cutmix-anchor edge``, beyond the paper): each coordinate is the first
    or the last that fits, so the box touches two borders — at area 0.5 on a 4x4 grid always a
    half-image (a 2x4 box at rows 0-1 or 2-3), never a middle band that leaves the first image
    two border strips (a third of the free positions).
    """
    device = shapes.device
    pick = torch.randint(0, shapes.shape[0], (n,), generator=generator, device=device)
    hw = shapes[pick]
    room = torch.stack([grid[0] - hw[:, 0] + 1, grid[1] - hw[:, 1] + 1], dim=1)
    if edge:
        end = torch.randint(0, 2, (n, 2), generator=generator, device=device)
        return torch.cat([end * (room - 1), hw], dim=1)
    yx = (torch.rand(n, 2, generator=generator, device=device) * room).long()
    return torch.cat([yx, hw], dim=1)


def cell_mask(boxes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``[n, H, W]`` bool: True on the cells inside each box (the pasted constituent's region)."""
    gy = torch.arange(grid[0], device=boxes.device).view(1, -1, 1)
    gx = torch.arange(grid[1], device=boxes.device).view(1, 1, -1)
    y0, x0, h, w = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (gy >= y0) & (gy < y0 + h) & (gx >= x0) & (gx < x0 + w)


def pixel_mask(cells: torch.Tensor, stride: tuple[int, int]) -> torch.Tensor:
    """Grid-cell mask ``[n, H, W]`` -> pixel mask ``[n, H*sy, W*sx]`` (each cell = one stride)."""
    return cells.repeat_interleave(stride[0], 1).repeat_interleave(stride[1], 2)


def cutmix(x1: torch.Tensor, x2: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``x2`` inside the box, ``x1`` outside: ``pixels`` is ``[B, H, W]`` bool."""
    return torch.where(pixels.unsqueeze(1), x2, x1)


def mixup(x1: torch.Tensor, x2: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Eq. (1)/(3): ``X = r·x1 + (1−r)·x2`` with a per-row ratio ``r`` [B]."""
    r = r.to(x1.dtype).view(-1, 1, 1, 1)
    return torch.lerp(x2, x1, r)


def adaptive_ratio(loss_a: torch.Tensor, loss_b: torch.Tensor) -> torch.Tensor:
    """Eq. (5), read as ``r = L_a / (L_a + L_b)``: the harder input gets the larger weight.

    Two zero losses, or a loss not yet observed (``inf``), give 0.5.
    """
    total = loss_a + loss_b
    ok = (total > 0) & torch.isfinite(total)
    return torch.where(ok, loss_a / total.clamp_min(1e-12), torch.full_like(total, 0.5))


def mixed_cross_entropy(logits: torch.Tensor, y1: torch.Tensor, y2: torch.Tensor,
                        r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. (2) per row, and Eq. (4)'s per-constituent estimates ``CE(f(X), y1)``, ``CE(f(X), y2)``.

    Returns ``(r·CE1 + (1−r)·CE2, CE1, CE2)``, all ``[B]``.
    """
    ce1 = F.cross_entropy(logits, y1, reduction="none")
    ce2 = F.cross_entropy(logits, y2, reduction="none")
    r = r.to(ce1.dtype)
    return r * ce1 + (1 - r) * ce2, ce1, ce2


def split_propagation_loss(ce_a: torch.Tensor, ce_b: torch.Tensor, paired: torch.Tensor,
                           share_b: torch.Tensor | None = None) -> torch.Tensor:
    """§4.1.1's loss for a batch of split-propagated CutMix inputs: every constituent is its own
    training sample, so the loss is the mean over *samples* — each row's own cross-entropy
    ``ce_a`` plus, for the paired rows, the pasted constituent's ``ce_b`` — divided by the
    number of samples (rows + pairs), as an unmixed batch of the same samples would average.

    ``share_b`` (beyond the paper, ``--split-loss share``): the pasted constituent's share of
    the grid per row; each constituent's loss is weighted by the share of the image it owns and
    the mean is over *inputs*, so a mixed input weighs what one unmixed input does (Eq. 2's
    weighting, applied to the split logits)."""
    paired = paired.to(ce_b.dtype)
    if share_b is None:
        return (ce_a.sum() + (ce_b * paired).sum()) / (ce_a.shape[0] + paired.sum())
    w_b = share_b.to(ce_b.dtype) * paired
    return ((1 - w_b) * ce_a + w_b * ce_b).sum() / ce_a.shape[0]
