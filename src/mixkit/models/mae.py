"""MAE (He et al. 2022) on a timm ViT: random masking, the visible-patch encoder, a light decoder.

Everything here works on timm's :class:`~timm.models.vision_transformer.VisionTransformer`
as it is (``patch_embed``, ``_pos_embed``, ``blocks``, ``norm``); nothing re-implements the
encoder. The decoder follows MAE's (``decoder_embed`` -> mask tokens -> un-shuffle -> fixed 2-D
sin-cos position embedding -> transformer blocks -> norm -> per-patch pixel prediction), at the
size MixTraining uses for ViT-Tiny (App. A.3: depth 2, width 192, 3 heads).

The encoder's final LayerNorm. MAE's ``models_mae.py`` normalises the encoder output (``norm``
after the blocks) before ``decoder_embed``; for fine-tuning with average pooling it then drops
that norm and normalises the *pooled* feature instead (``fc_norm``). timm's avg-pool ViT is built
the fine-tuning way (``norm`` is an identity, ``fc_norm`` a LayerNorm after pooling), which is
what our classifier uses. So the pre-training norm lives in the SSL head
(:attr:`MAEDecoder.encoder_norm`): the decoder sees normalised tokens exactly as in the
reference, and the classifier sees exactly what it saw before.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from timm.layers import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block


@dataclass
class Mask:
    """One batch's random masking. ``mask`` is 1 where a patch is hidden, in the original order.

    ``ids_keep`` [B, K] are the visible patches (the first ``K`` of the shuffle) and
    ``ids_restore`` [B, L] undoes the shuffle: ``shuffled.gather(1, ids_restore)`` is in the
    original patch order again.
    """

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def num_visible(num_patches: int, mask_ratio: float) -> int:
    """Patches the encoder keeps: ``floor(L * (1 - ratio))`` (MAE's ``len_keep``)."""
    return int(num_patches * (1.0 - mask_ratio))


def random_masking(batch: int, num_patches: int, mask_ratio: float, device: torch.device,
                   generator: torch.Generator | None = None) -> Mask:
    """Per-sample random masking by noise -> argsort, as MAE does it (no per-sample Python)."""
    keep = num_visible(num_patches, mask_ratio)
    noise = torch.rand(batch, num_patches, device=device, generator=generator)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    mask = torch.ones(batch, num_patches, device=device)
    mask[:, :keep] = 0
    return Mask(ids_shuffle[:, :keep], ids_restore, mask.gather(1, ids_restore))


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``tokens[b, ids[b, k]]`` for a [B, L, D] sequence."""
    return tokens.gather(1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, L, p*p*C], patches in the row-major order of timm's ``patch_embed``."""
    b, c, h, w = images.shape
    gh, gw = h // patch, w // patch
    x = images.reshape(b, c, gh, patch, gw, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, gh * gw, patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, grid: tuple[int, int],
               channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify`."""
    b = patches.shape[0]
    x = patches.reshape(b, grid[0], grid[1], patch, patch, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(b, channels, grid[0] * patch,
                                                     grid[1] * patch)


def encode_visible(vit: nn.Module, images: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """The MAE encoder: embed all patches (with positions), keep the visible ones, run the blocks.

    Prefix tokens (class/register) are always kept, as in MAE. Returns [B, prefix + K, D], the
    same tokens ``forward_features`` gives for those patches on a full pass (so the shared mix
    forward and an SSL epoch feed the decoder alike; its ``encoder_norm`` normalises them).
    """
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
    p = vit.num_prefix_tokens
    x = torch.cat([x[:, :p], gather_tokens(x[:, p:], ids_keep)], dim=1)
    return vit.norm(vit.blocks(x))


def visible_from_full(features: torch.Tensor, ids_keep: torch.Tensor,
                      num_prefix: int) -> torch.Tensor:
    """MixTraining's reuse (App. A.2): the visible tokens cut from a *full* encoder pass."""
    return torch.cat([features[:, :num_prefix],
                      gather_tokens(features[:, num_prefix:], ids_keep)], dim=1)


class MAEDecoder(nn.Module):
    """MAE's decoder: encoder tokens + mask tokens -> pixels of every patch."""

    def __init__(self, encoder_dim: int, grid: tuple[int, int], patch: int, in_chans: int,
                 num_prefix: int, dim: int = 192, depth: int = 2, heads: int = 3,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.grid, self.patch, self.in_chans, self.num_prefix = grid, patch, in_chans, num_prefix
        self.encoder_norm = nn.LayerNorm(encoder_dim)   # models_mae.py's encoder ``norm``
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        pos = build_sincos2d_pos_embed(list(grid), dim)           # fixed, as MAE's decoder
        self.register_buffer("pos_embed", pos.reshape(1, grid[0] * grid[1], dim),
                             persistent=False)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, qkv_bias=True)
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch * patch * in_chans)
        self.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, visible: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """``visible`` [B, prefix + K, D_enc] (encoder blocks' output) -> predicted patches
        [B, L, p*p*C]."""
        x = self.embed(self.encoder_norm(visible))
        p, b = self.num_prefix, x.shape[0]
        hidden = self.mask_token.expand(b, self.num_patches - (x.shape[1] - p), -1)
        patches = gather_tokens(torch.cat([x[:, p:], hidden], dim=1), ids_restore)
        x = torch.cat([x[:, :p], patches + self.pos_embed.to(x.dtype)], dim=1)
        return self.pred(self.norm(self.blocks(x)))[:, p:]


def _init_weights(m: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def patch_targets(images: torch.Tensor, patch: int, norm_pix: bool) -> torch.Tensor:
    """MAE's regression target: the patches' pixels, optionally normalised per patch."""
    target = patchify(images, patch)
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    return target


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE over the *hidden* patches only: [B]."""
    per_patch = (pred.float() - target.float()).square().mean(dim=-1)
    return (per_patch * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)
