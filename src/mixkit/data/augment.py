"""Batched, on-device augmentation of uint8 images (airbench style).

Random crop with zero padding plus an optional horizontal flip, done for a whole batch with one
gather: no per-sample Python, no PIL, and the same code on CPU, CUDA and MPS. The parameters are
drawn separately (:func:`sample_crop_flip`) so tests can inject offsets and check pixels by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_crop_flip(n: int, padding: int, flip: bool | torch.Tensor,
                     generator: torch.Generator, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample crop offsets ``dy, dx`` in ``[0, 2*padding]`` and flip flags, on ``device``.

    ``flip`` is one flag for the batch, or a bool tensor [n] saying which rows may be flipped.
    """
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flips = torch.rand(n, generator=generator, device=device) < 0.5
    return dy, dx, flips & flip


def crop_flip(images: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor,
              flips: torch.Tensor) -> torch.Tensor:
    """Crop ``images`` [B, C, H, W] from their zero-padded copy at ``(dy, dx)``, then flip.

    Output pixel ``(i, j)`` of sample ``b`` is padded pixel ``(dy[b] + i, dx[b] + j')`` with
    ``j' = W-1-j`` where ``flips[b]``: the crop and the flip are one gather.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4) if padding > 0 else images
    rows = dy[:, None] + torch.arange(h, device=images.device)            # [B, H]
    cols = dx[:, None] + torch.arange(w, device=images.device)            # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=images.device)[:, None, None, None]
    ci = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def augment(images: torch.Tensor, padding: int, flip: bool | torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding ``padding`` px) and random horizontal flip, batched."""
    if padding == 0 and flip is False:
        return images
    dy, dx, flips = sample_crop_flip(images.shape[0], padding, flip, generator, images.device)
    if padding == 0:            # the flip alone (streamed crops): a select, not a 4-d gather
        return torch.where(flips.view(-1, 1, 1, 1), images.flip(-1), images)
    return crop_flip(images, padding, dy, dx, flips)


def sample_rrc(n: int, height: int, width: int, scale: tuple[float, float],
               ratio: tuple[float, float], generator: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """RandomResizedCrop boxes for a batch, vectorised: ``[n, 4]`` float ``(top, left, h, w)``.

    torchvision's rule drawn for every sample at once: 10 candidate (area, log-ratio) draws, the
    first whose rounded box fits is taken; a sample with none keeps the whole image."""
    tries = 10
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(
        n, tries, generator=generator, device=device))
    lr = torch.log(torch.tensor(ratio, device=device))
    aspect = torch.exp(lr[0] + (lr[1] - lr[0]) * torch.rand(n, tries, generator=generator,
                                                             device=device))
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)         # first fitting draw
    any_ok = ok.any(dim=1)
    w = torch.where(any_ok, w.gather(1, first)[:, 0], torch.full_like(w[:, 0], width))
    h = torch.where(any_ok, h.gather(1, first)[:, 0], torch.full_like(h[:, 0], height))
    u = torch.rand(n, 2, generator=generator, device=device)
    top = torch.floor(u[:, 0] * (height - h + 1))
    left = torch.floor(u[:, 1] * (width - w + 1))
    return torch.stack([top, left, h, w], dim=1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, flips: torch.Tensor,
                 interpolation: str = "bilinear") -> torch.Tensor:
    """Each image's box resampled to ``size`` x ``size`` (and flipped where ``flips``) in one
    ``grid_sample``: an affine grid per row, no per-sample Python."""
    b, _, hgt, wid = images.shape
    top, left, h, w = boxes.unbind(1)
    sx, sy = w / wid, h / hgt
    cx, cy = (2 * left + w) / wid - 1, (2 * top + h) / hgt - 1
    sx = torch.where(flips, -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1)
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    mode = "bicubic" if interpolation == "bicubic" else ("nearest" if interpolation == "nearest"
                                                           else "bilinear")
    out = F.grid_sample(images.float(), grid, mode=mode, padding_mode="border",
                        align_corners=False)
    return out.clamp_(0, 255)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
              channels_last: bool = False) -> torch.Tensor:
    """uint8 [B, C, H, W] -> float32 ``(x/255 - mean) / std`` in one fused multiply-add."""
    scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1)
    shift = (mean / std).view(1, -1, 1, 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return torch.addcmul(-shift, images.float(), scale).contiguous(memory_format=fmt)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 batch once at load time (bilinear, antialiased when shrinking)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrink = images.shape[-1] > size
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                        antialias=shrink)
    return out.round_().clamp_(0, 255).to(torch.uint8)
