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

from mixkit.models.factory import Classifier, ModelInfo


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


def pooled_to_logits(model: Classifier, pooled: torch.Tensor, info: ModelInfo,
                     task: int = 0) -> torch.Tensor:
    """What the model does after its pooling: ViT's ``fc_norm``/``head_drop``, then the head."""
    if info.layout == "tokens":
        backbone = model.backbone
        pooled = backbone.head_drop(backbone.fc_norm(pooled))
    return model.heads[task](pooled)


def region_logits(model: Classifier, feats: torch.Tensor, info: ModelInfo,
                  masks: list[torch.Tensor], task: int = 0) -> list[torch.Tensor]:
    """Logits of each region in ``masks`` (each ``[B, H, W]`` bool), with one head call."""
    grid = grid_features(feats, info)
    pooled = torch.cat([region_mean(grid, m) for m in masks])
    return list(pooled_to_logits(model, pooled, info, task).chunk(len(masks)))
