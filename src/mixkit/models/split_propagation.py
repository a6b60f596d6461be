"""Split propagation (mixTrain §4.1.1): pool each constituent's region of the last feature map
on its own and pass each through the head.

A CutMix box aligned to the backbone's final feature grid gives each constituent of a mixed
input a known set of grid cells. Averaging the features over each set separately, instead of
over the whole map, keeps the two inputs apart after the last spatial layer, so each gets its
own logits and its own loss; the backward of both branches meets in the one shared feature map.

Layouts (:class:`~mixkit.models.factory.ModelInfo.layout`):

* ``nchw`` (CNNs): ``[B, C, H, W]``.
* ``tokens`` (ViT): ``[B, P + H*W, D]``; the ``P`` prefix (class) tokens are left out of every
  region, exactly as the ViT's average pooling leaves them out of the whole-grid mean.
* ``nhwc`` (Swin): ``[B, H, W, C]``.

With a region that covers the whole grid, :func:`region_logits` equals the plain model's logits
(tests pin this for CNN, ViT and Swin).
"""

from __future__ import annotations

import torch

from torch import nn

from mixkit.models.factory import ModelInfo


def grid_features(feats: torch.Tensor, info: ModelInfo) -> torch.Tensor:
    """Any layout -> ``[B, H, W, C]`` (a view where the layout allows)."""
    if info.layout == "nchw":
        return feats.permute(0, 2, 3, 1)
    if info.layout == "tokens":
        h, w = info.grid
        return feats[:, info.num_prefix_tokens:].unflatten(1, (h, w))
    return feats


def region_mean(grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``grid`` [B, H, W, C] over the cells where ``mask`` [B, H, W] is True.

    An empty region gives zeros (its logits are then ignored by the caller).
    """
    m = mask.to(grid.dtype).unsqueeze(-1)
    count = m.sum((1, 2)).clamp_min(1.0)
    return (grid * m).sum((1, 2)) / count


def one_cell_map(pooled: torch.Tensor, info: ModelInfo) -> torch.Tensor:
    """Pooled features ``[B, C]`` laid out as a last feature map of one cell (one patch token
    behind zeroed prefix tokens for a ViT), so the model's own ``forward_head`` pools it to
    exactly ``pooled`` (a mean over one cell) and applies whatever follows its pooling: a
    CNN's dropout and classifier, a ViT's ``fc_norm``, ``head_drop`` and head, Swin's head.
    Split propagation thus needs no knowledge of the head's modules."""
    if info.layout == "nchw":
        return pooled[:, :, None, None]
    if info.layout == "tokens":
        prefix = pooled.new_zeros(pooled.shape[0], info.num_prefix_tokens, pooled.shape[1])
        return torch.cat([prefix, pooled.unsqueeze(1)], dim=1)
    return pooled[:, None, None, :]


def region_logits(model: nn.Module, feats: torch.Tensor, info: ModelInfo,
                  masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Logits of each region in ``masks`` (each ``[B, H, W]`` bool), with one head call
    through timm's ``forward_head`` seam (any timm CNN, ViT with average pooling or Swin, or
    mixkit's :class:`~mixkit.models.factory.Classifier`)."""
    grid = grid_features(feats, info)
    pooled = torch.cat([region_mean(grid, m) for m in masks])
    return list(model.forward_head(one_cell_map(pooled, info)).chunk(len(masks)))


def _timm_core(model: nn.Module) -> nn.Module:
    """The timm model inside ``model``: DDP's ``.module``, mixkit's Classifier ``.backbone``."""
    model = getattr(model, "module", model)
    return getattr(model, "backbone", model)


def infer_info(model: nn.Module, x: torch.Tensor, regions: bool = True) -> ModelInfo:
    """The last feature map's layout and grid, read off one dry forward of ``x[:1]`` (eval
    mode, no grad: no BatchNorm statistic changes) — for a model built outside mixkit, which
    carries no :class:`ModelInfo`. Raises :class:`ValueError` where split propagation cannot
    work, saying which op works instead (``regions=False``: a ViT's pooling is not checked,
    as MAE does not pool)."""
    core = _timm_core(model)
    seam = getattr(model, "module", model)
    if not (hasattr(seam, "forward_features") and hasattr(seam, "forward_head")):
        raise ValueError(f"{type(seam).__name__} has no forward_features/forward_head: "
                         "CutMix with split propagation needs timm's seam; use op='mixup' "
                         "(any model) or a timm model")
    was_training = seam.training
    seam.eval()
    with torch.no_grad():
        feats = seam.forward_features(x[:1])
    seam.train(was_training)
    name = type(core).__name__
    if feats.ndim == 3:
        if not hasattr(core, "patch_embed") or (
                regions and getattr(core, "global_pool", "avg") != "avg"):
            raise ValueError(f"{name} pools its tokens with {getattr(core, 'global_pool', '?')!r}"
                             ": split propagation pools regions of the patch tokens, so build "
                             "the ViT with global_pool='avg', or use op='mixup'")
        gh, gw = core.patch_embed.grid_size
        return ModelInfo(name, "user", "vit", "tokens", (gh, gw), feats.shape[-1],
                         int(getattr(core, "num_prefix_tokens", 1)),
                         int(core.patch_embed.patch_size[0]))
    if feats.ndim != 4:
        raise ValueError(f"{name}.forward_features returns a {feats.ndim}-d tensor, not a "
                         "spatial feature map: CutMix with split propagation needs one; use "
                         "op='mixup'")
    if str(getattr(core, "output_fmt", "NCHW")).upper() == "NHWC":
        return ModelInfo(name, "user", "swin", "nhwc", (feats.shape[1], feats.shape[2]),
                         feats.shape[-1])
    return ModelInfo(name, "user", "cnn", "nchw", (feats.shape[2], feats.shape[3]),
                     feats.shape[1])
