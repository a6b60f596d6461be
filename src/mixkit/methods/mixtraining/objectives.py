"""The self-supervised objective MixTraining plugs in (§1: "plug and play SSL and SL components").

An :class:`SSLObjective` gives two per-sample losses: ``standalone`` for an SSL epoch (its own,
efficient forward) and ``reuse`` for the mix phase's shared forward (App. A.2: computed from the
encoder features the classifier also uses, so the backbone runs once per step). It also builds
the module it trains beside the backbone (``head``), which the arm attaches to the model as
``model.ssl_head`` so the optimiser, checkpoints and DDP see it.

MAE is the first implementation. Another objective (SimMIM, a contrastive loss...) implements the
same three members.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from mixkit.models import ModelInfo
from mixkit.models.mae import (MAEDecoder, Mask, encode_visible, masked_mse, num_visible,
                               patch_targets, random_masking, unpatchify, visible_from_full)


class SSLObjective(Protocol):
    name: str

    def head(self) -> nn.Module:
        """The SSL head to attach to the model (MAE: its decoder)."""
        ...

    def standalone(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Per-sample SSL loss [B] with the objective's own forward (SSL epochs)."""
        ...

    def reuse(self, model: nn.Module, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Per-sample SSL loss [B] from a full encoder pass ``features`` (shared mix forward)."""
        ...


class MAE:
    """Masked autoencoding (He et al. 2022) on a timm ViT backbone.

    * ``standalone``: standard, efficient MAE — the encoder sees only the visible
      ``floor(L * (1 - mask_ratio))`` patches; the decoder predicts every patch; MSE on the
      hidden ones.
    * ``reuse`` (MixTraining App. A.2): the encoder has already run on *all* patches for the
      classifier; a random ``1 - mask_ratio`` of its output patch tokens (plus the class token)
      go to the decoder, which reconstructs the others. Note the visible tokens have attended to
      the hidden patches inside the encoder, so this reconstruction is easier than standalone
      MAE's; that is the paper's design and the price of the saved forward.
    """

    name = "mae"

    def __init__(self, info: ModelInfo, in_chans: int = 3, mask_ratio: float = 0.75,
                 norm_pix: bool = False, decoder_dim: int = 192, decoder_depth: int = 2,
                 decoder_heads: int = 3, generator: torch.Generator | None = None) -> None:
        if info.kind != "vit" or info.patch_size is None:
            raise ValueError(f"MAE needs a ViT backbone, got {info.name}")
        self.info, self.in_chans = info, in_chans
        self.mask_ratio, self.norm_pix = mask_ratio, norm_pix
        self.decoder_kw = {"dim": decoder_dim, "depth": decoder_depth, "heads": decoder_heads}
        self.generator = generator

    @property
    def num_patches(self) -> int:
        return self.info.grid[0] * self.info.grid[1]

    def head(self) -> MAEDecoder:
        return MAEDecoder(self.info.num_features, self.info.grid, self.info.patch_size,
                          self.in_chans, self.info.num_prefix_tokens, **self.decoder_kw)

    def mask(self, batch: int, device: torch.device) -> Mask:
        return random_masking(batch, self.num_patches, self.mask_ratio, device, self.generator)

    def _loss(self, model: nn.Module, x: torch.Tensor, visible: torch.Tensor,
              m: Mask) -> torch.Tensor:
        pred = model.ssl_head(visible, m.ids_restore)
        return masked_mse(pred, patch_targets(x, self.info.patch_size, self.norm_pix), m.mask)

    def standalone(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        m = self.mask(x.shape[0], x.device)
        return self._loss(model, x, encode_visible(model.backbone, x, m.ids_keep), m)

    def reuse(self, model: nn.Module, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        m = self.mask(x.shape[0], x.device)
        visible = visible_from_full(features, m.ids_keep, self.info.num_prefix_tokens)
        return self._loss(model, x, visible, m)

    @torch.no_grad()
    def reconstruct(self, model: nn.Module, x: torch.Tensor, m: Mask) -> torch.Tensor:
        """Standalone MAE reconstruction of ``x`` under mask ``m``, visible patches pasted back,
        in input (normalised) units — what MAE's own visualisation shows."""
        pred = model.ssl_head(encode_visible(model.backbone, x, m.ids_keep), m.ids_restore)
        target = patch_targets(x, self.info.patch_size, False)
        if self.norm_pix:     # undo the per-patch normalisation with the true patch statistics
            pred = pred * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(-1, True)
        mixed = torch.where(m.mask.bool()[..., None], pred.float(), target)
        return unpatchify(mixed, self.info.patch_size, self.info.grid, self.in_chans)

    def masked_input(self, x: torch.Tensor, m: Mask, fill: float = 0.0) -> torch.Tensor:
        """``x`` with its hidden patches set to ``fill`` (for the figure)."""
        patches = patch_targets(x, self.info.patch_size, False)
        patches = torch.where(m.mask.bool()[..., None], torch.full_like(patches, fill), patches)
        return unpatchify(patches, self.info.patch_size, self.info.grid, self.in_chans)


def check_mae(info: ModelInfo, mask_ratio: float) -> str | None:
    """Why MAE cannot run on this backbone/ratio, or None."""
    if info.kind != "vit":
        return (f"MixTraining's MAE objective needs a ViT (patch-token) backbone; `{info.name}` "
                f"is a {info.kind.upper()}.")
    if num_visible(info.grid[0] * info.grid[1], mask_ratio) < 1:
        return (f"--mask-ratio {mask_ratio} leaves no visible patch of the "
                f"{info.grid[0]}x{info.grid[1]} patch grid.")
    return None
