"""The reconstruction figure (the paper's Fig. 4): does MixTraining keep MAE's reconstruction?

Rows: the original validation images, the masked inputs, then each MAE-trained arm's
reconstruction (visible patches pasted back, as MAE's own figures show). Every arm reconstructs
the *same* images under the *same* mask, drawn from ``--seed``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image


def to_pixels(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Normalised model inputs back to [0, 1] pixels."""
    std, mean = std.cpu().view(1, -1, 1, 1), mean.cpu().view(1, -1, 1, 1)
    return (x.float().cpu() * std + mean).clamp(0, 1)


def save_grid(path: Path, rows: list[torch.Tensor], mean: torch.Tensor, std: torch.Tensor,
              scale: int = 4) -> None:
    """One row per tensor [n, C, H, W], upscaled ``scale``x (nearest) so small images show."""
    n = rows[0].shape[0]
    pixels = torch.cat([to_pixels(r, mean, std) for r in rows])
    if scale > 1:
        pixels = F.interpolate(pixels, scale_factor=scale, mode="nearest")
    save_image(make_grid(pixels, nrow=n, padding=2, pad_value=1.0), str(path))
