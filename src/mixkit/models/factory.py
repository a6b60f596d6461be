"""The model core: timm models by name, random init, adapted to small inputs.

A model is a timm backbone (``num_classes=0``) plus one linear head per task, wrapped in
:class:`Classifier`, which keeps timm's seam: ``forward_features`` returns the last feature map
(NCHW for CNNs, ``[B, prefix + L, D]`` tokens for ViT, NHWC for Swin) and ``forward_head`` pools
it and applies a task's head. Split propagation (mixTrain §4.1.1) and MAE (MixTraining) use that
seam; nothing here re-implements a timm model.

Small-image adaptation (inputs <= 64 px), as the CIFAR literature does it:

* ResNet: 3x3 stride-1 stem convolution, no max-pool -> total stride 8 (4x4 grid at 32 px).
* MobileNetV2: stride 1 in the stem and in the first stride-2 block -> total stride 8.
* ViT: ``img_size`` and ``patch_size``; pooling is the average of the patch tokens (MAE's
  fine-tuning choice), the class token stays in the sequence. The default patch grid is
  16x16, but never finer than half the data's stored resolution (:func:`default_patch`):
  patch 2 at 32 px and 4 at 64 px, the MixTraining paper's settings, and a 4x4 grid for the
  8x8 digits (16 tokens, each 2x2 stored pixels) rather than 256 tokens of interpolation.
* Swin: ``img_size``, ``patch_size`` (same default) and a window that fits the grid.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Callable

import timm
import torch
from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet, make_blocks
from torch import nn

from mixkit.errors import UserError

SMALL_INPUT_MAX = 64


@dataclass(frozen=True)
class Family:
    name: str
    pattern: str
    kind: str          # "cnn" | "vit" | "swin"
    adaptation: str    # what mixkit changes, for `mixkit models`


FAMILIES = (
    Family("resnet", r"^resnet(18|26|34|50|101|152)$", "cnn",
           "<=64 px: 3x3 stride-1 stem conv, no max-pool (total stride 8)"),
    Family("resnet-narrow", r"^resnet(10|18)_w(16|32)$", "cnn",
           "BasicBlock ResNet, widths w..8w (mixkit's); <=64 px: as resnet"),
    Family("mobilenetv2", r"^mobilenetv2_\d+$", "cnn",
           "<=64 px: stride 1 in the stem and first stride-2 block (total stride 8)"),
    Family("vit", r"^(vit|deit)_(tiny|small|base)_patch\d+_\d+$", "vit",
           "img_size, patch_size (16x16 grid, at most native/2); class token + patch tokens"),
    Family("swin", r"^swin_(tiny|small|base)_patch4_window7_224$", "swin",
           "img_size, patch_size (as ViT), window fitted to the grid"),
)


@dataclass(frozen=True)
class ModelInfo:
    """What methods need to know about a backbone's last feature map."""

    name: str
    family: str
    kind: str
    layout: str                 # "nchw" | "tokens" (ViT: [B, prefix + H*W, D]) | "nhwc"
    grid: tuple[int, int]       # (H, W) of the last feature map / patch-token grid
    num_features: int
    num_prefix_tokens: int = 0  # ViT class/register tokens in front of the patch tokens
    patch_size: int | None = None

    def input_stride(self, img_size: int) -> tuple[int, int]:
        """Input pixels per feature-grid cell (what a grid-aligned CutMix box snaps to)."""
        return img_size // self.grid[0], img_size // self.grid[1]


class Classifier(nn.Module):
    """A timm backbone with one linear classification head per task.

    ``CLASSIFIER_PARTS`` / ``SSL_PARTS`` name the modules only the supervised / self-supervised
    path uses (timm's pooling head lives inside the backbone: ``fc_norm``, ``attn_pool``), so a
    phase that does not use one can freeze it (and DDP then neither waits for nor reduces it).
    """

    CLASSIFIER_PARTS = ("heads.", "backbone.fc_norm.", "backbone.attn_pool.", "backbone.head.")
    SSL_PARTS = ("ssl_head.",)

    def __init__(self, backbone: nn.Module, num_classes: list[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(backbone.num_features, n) for n in num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def pre_logits(self, feats: torch.Tensor) -> torch.Tensor:
        """timm's pooling (avg for CNN/Swin, class token for ViT) and pre-logit norm."""
        return self.backbone.forward_head(feats, pre_logits=True)

    def forward_head(self, feats: torch.Tensor, task: int = 0) -> torch.Tensor:
        return self.heads[task](self.pre_logits(feats))

    def forward(self, x: torch.Tensor, task: int = 0) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), task)


# ------------------------------------------------------------------------------------------
# Narrow ResNets: the mixTrain paper's model family (BasicBlock ResNet-18) at a width a CPU can
# train. timm's ResNet takes ``channels`` and ``stem_width``; these are registered with timm, so
# ``timm.create_model("resnet18_w16")`` builds the same network outside mixkit. Widths 16-128
# (``_w16``) cost ~1/16 of ResNet-18's multiply-adds and keep its depth, its stride-8
# small-input stem and its 4x4 final grid at 32 px (which split propagation needs).
# ------------------------------------------------------------------------------------------

NARROW_RESNETS: dict[str, tuple[tuple[int, ...], int]] = {
    "resnet18_w16": ((2, 2, 2, 2), 16),     # ResNet-18's blocks, widths 16/32/64/128
    "resnet18_w32": ((2, 2, 2, 2), 32),     # widths 32/64/128/256
    "resnet10_w16": ((1, 1, 1, 1), 16),     # one BasicBlock per stage, widths 16-128
}


def _narrow_resnet(name: str, layers: tuple[int, ...], width: int) -> Callable[..., ResNet]:
    def build(pretrained: bool = False, **kwargs) -> ResNet:
        if pretrained:
            raise UserError(f"`{name}` has no pretrained weights.", hint="Train it from scratch.")
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        channels = tuple(width << i for i in range(4))
        model = ResNet(BasicBlock, list(layers), channels=channels, **kwargs)
        # timm's single-conv stem is 64 wide whatever ``stem_width`` says; a narrow ResNet's
        # stem has its first stage's width (as ResNet-18's 64 feeds its 64-wide first stage),
        # so the stem and the stages after it are rebuilt at that width
        model.conv1 = nn.Conv2d(kwargs.get("in_chans", 3), width, 7, 2, 3, bias=False)
        model.bn1 = nn.BatchNorm2d(width)
        stages, info = make_blocks((BasicBlock,) * 4, channels, tuple(layers), width)
        for stage_name, stage in stages:
            setattr(model, stage_name, stage)
        model.feature_info = [dict(num_chs=width, reduction=2, module="act1"), *info]
        model.init_weights(zero_init_last=True)
        return model

    build.__name__ = name
    build.__qualname__ = name
    build.__doc__ = f"BasicBlock ResNet {list(layers)}, widths {width}-{width * 8} (mixkit)."
    return build


for _name, (_layers, _width) in NARROW_RESNETS.items():
    if _name not in timm.list_models():
        register_model(_narrow_resnet(_name, _layers, _width))


def supported_models() -> list[str]:
    names = timm.list_models()
    return sorted(n for n in names if family_of(n) is not None)


def family_of(name: str) -> Family | None:
    return next((f for f in FAMILIES if re.match(f.pattern, name)), None)


def _unknown_model(name: str) -> UserError:
    close = difflib.get_close_matches(name, supported_models(), n=5, cutoff=0.5)
    hint = f"Closest supported: {', '.join(close)}. " if close else ""
    return UserError(f"unknown or unsupported model `{name}` (--model).",
                     hint=f"{hint}`mixkit models` lists the supported families.")


def default_patch(img_size: int, native_size: int | None = None) -> int:
    """Patch size for a ``min(16, native_size // 2)``-cell grid (16 if the size is unknown).

    A patch then covers at least 2x2 *stored* pixels, as the paper's patch 2 does on 32-px
    CIFAR: the token count (the cost) follows the information in the image, not the upsampling.
    """
    grid = 16 if native_size is None else max(1, min(16, native_size // 2))
    return max(1, img_size // grid)


def _vit_kwargs(name: str, img_size: int, patch_size: int | None,
                native_size: int | None = None) -> dict:
    p = patch_size or default_patch(img_size, native_size)
    if img_size % p:
        raise UserError(f"--img-size {img_size} is not a multiple of --patch-size {p} for "
                        f"`{name}`.", hint="Pick a patch size that divides the image size.")
    return {"img_size": img_size, "patch_size": p}


def _swin_kwargs(name: str, img_size: int, patch_size: int | None,
                 native_size: int | None = None) -> dict:
    kw = _vit_kwargs(name, img_size, patch_size, native_size)
    grid = img_size // kw["patch_size"]
    if grid % 8:
        raise UserError(f"`{name}` at --img-size {img_size} with --patch-size "
                        f"{kw['patch_size']} has a {grid}x{grid} patch grid; Swin's 3 "
                        "patch-merging stages need a multiple of 8.",
                        hint="Choose img_size/patch_size divisible by 8 (e.g. 32 px, patch 2).")
    kw["window_size"] = 7 if grid % 28 == 0 else max(1, grid // 4)
    return kw


def _adapt_resnet(m: nn.Module, in_chans: int) -> None:
    m.conv1 = nn.Conv2d(in_chans, m.conv1.out_channels, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()


def _adapt_mobilenetv2(m: nn.Module, in_chans: int) -> None:
    m.conv_stem.stride = (1, 1)
    m.blocks[1][0].conv_dw.stride = (1, 1)


_SMALL_STEMS: dict[str, Callable[[nn.Module, int], None]] = {
    "resnet": _adapt_resnet, "resnet-narrow": _adapt_resnet, "mobilenetv2": _adapt_mobilenetv2}


def create_backbone(name: str, img_size: int, patch_size: int | None = None,
                    in_chans: int = 3, native_size: int | None = None
                    ) -> tuple[nn.Module, Family]:
    """A randomly initialised timm backbone (no head), adapted to ``img_size``.

    ``native_size`` is the data's stored resolution; it sets the default ViT/Swin patch size.
    """
    fam = family_of(name)
    if fam is None or name not in timm.list_models():
        raise _unknown_model(name)
    kw: dict = {}
    if fam.kind == "vit":
        # average of the patch tokens, as MAE fine-tunes: a region of the token grid can then
        # be pooled on its own (split propagation) and the whole grid gives the plain logits
        kw = {**_vit_kwargs(name, img_size, patch_size, native_size), "global_pool": "avg"}
    elif fam.kind == "swin":
        kw = _swin_kwargs(name, img_size, patch_size, native_size)
    elif patch_size is not None:
        raise UserError(f"--patch-size applies to ViT/Swin models, not the CNN `{name}`.",
                        hint="Drop --patch-size.")
    backbone = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **kw)
    if fam.kind == "cnn" and img_size <= SMALL_INPUT_MAX:
        _SMALL_STEMS[fam.name](backbone, in_chans)
    return backbone, fam


def describe(backbone: nn.Module, fam: Family, name: str, img_size: int,
             in_chans: int = 3) -> ModelInfo:
    """Read the last feature map's layout and grid off one dry forward pass."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        feats = backbone.forward_features(torch.zeros(1, in_chans, img_size, img_size))
    backbone.train(was_training)
    if fam.kind == "vit":
        prefix = int(getattr(backbone, "num_prefix_tokens", 1))
        gh, gw = backbone.patch_embed.grid_size
        return ModelInfo(name, fam.name, fam.kind, "tokens", (gh, gw), feats.shape[-1], prefix,
                         backbone.patch_embed.patch_size[0])
    if fam.kind == "swin":
        return ModelInfo(name, fam.name, fam.kind, "nhwc", (feats.shape[1], feats.shape[2]),
                         feats.shape[-1], 0, backbone.patch_embed.patch_size[0])
    return ModelInfo(name, fam.name, fam.kind, "nchw", (feats.shape[2], feats.shape[3]),
                     feats.shape[1])


def create_model(name: str, num_classes: int | list[int], img_size: int,
                 patch_size: int | None = None,
                 native_size: int | None = None) -> tuple[Classifier, ModelInfo]:
    """Backbone + one head per task (``num_classes`` an int, or a list for multi-task)."""
    backbone, fam = create_backbone(name, img_size, patch_size, native_size=native_size)
    info = describe(backbone, fam, name, img_size)
    heads = [num_classes] if isinstance(num_classes, int) else list(num_classes)
    return Classifier(backbone, heads), info


def create_timm_model(name: str, num_classes: int, img_size: int,
                      patch_size: int | None = None, in_chans: int = 3) -> nn.Module:
    """A plain timm classifier (timm's own class and head, ``timm.create_model(name,
    num_classes=...)``) with mixkit's small-input adaptation for ``img_size`` (the stride-8 stem
    that keeps a 4x4 final grid at 32 px, which CutMix with split propagation needs; a ViT's
    patch grid and average pooling): for your own loop with :class:`mixkit.MixTrain`."""
    backbone, _ = create_backbone(name, img_size, patch_size, in_chans)
    backbone.reset_classifier(num_classes)
    return backbone
