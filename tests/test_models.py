"""Model core: feature grids after small-input adaptation, the forward_features/head seam."""

from __future__ import annotations

import pytest
import torch

from mixkit.errors import UserError
from mixkit.models import create_model

GRIDS = [
    ("resnet18", 32, None, (4, 4), "nchw", 512),
    ("resnet50", 32, None, (4, 4), "nchw", 2048),
    ("resnet18", 64, None, (8, 8), "nchw", 512),
    ("resnet18", 224, None, (7, 7), "nchw", 512),      # ImageNet-size input: stem untouched
    ("mobilenetv2_100", 32, None, (4, 4), "nchw", 1280),
    ("vit_tiny_patch16_224", 32, None, (16, 16), "tokens", 192),   # patch 2 at 32 px
    ("vit_tiny_patch16_224", 64, None, (16, 16), "tokens", 192),   # patch 4 at 64 px
    ("vit_tiny_patch16_224", 32, 4, (8, 8), "tokens", 192),
    ("swin_tiny_patch4_window7_224", 32, None, (2, 2), "nhwc", 768),
]


@pytest.mark.parametrize("name,img,patch,grid,layout,width", GRIDS)
def test_feature_grid_after_adaptation(name, img, patch, grid, layout, width) -> None:
    model, info = create_model(name, 10, img, patch)
    assert (info.grid, info.layout, info.num_features) == (grid, layout, width)
    model.eval()
    feats = model.forward_features(torch.zeros(2, 3, img, img))
    if layout == "nchw":
        assert feats.shape == (2, width, *grid)
    elif layout == "nhwc":
        assert feats.shape == (2, *grid, width)
    else:
        assert feats.shape == (2, info.num_prefix_tokens + grid[0] * grid[1], width)


def test_vit_tiny_is_192_wide_12_deep_3_heads() -> None:
    model, info = create_model("vit_tiny_patch16_224", 10, 32)
    vit = model.backbone
    assert (vit.embed_dim, len(vit.blocks), vit.blocks[0].attn.num_heads) == (192, 12, 3)
    assert info.patch_size == 2 and info.num_prefix_tokens == 1


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_head_seam_reproduces_forward_and_heads_are_per_task(name) -> None:
    torch.manual_seed(0)
    model, _ = create_model(name, [10, 3], 32)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert torch.equal(model(x), model.forward_head(feats))
    assert model(x, task=1).shape == (2, 3)
    # head is linear in the pooled features: hand-apply the weights
    pooled = model.pre_logits(feats)
    w, b = model.heads[1].weight, model.heads[1].bias
    assert torch.allclose(model.forward_head(feats, 1), pooled @ w.T + b, atol=1e-6)


def test_backward_reaches_the_stem() -> None:
    model, _ = create_model("resnet18", 10, 32)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.backbone.conv1.weight.grad is not None
    assert model.backbone.conv1.kernel_size == (3, 3) and model.backbone.conv1.stride == (1, 1)


def test_unknown_model_suggests_closest_supported() -> None:
    with pytest.raises(UserError, match="resnet18"):
        create_model("resnet19", 10, 32)


def test_patch_size_must_divide_image_and_is_vit_only() -> None:
    with pytest.raises(UserError, match="not a multiple"):
        create_model("vit_tiny_patch16_224", 10, 32, 5)
    with pytest.raises(UserError, match="--patch-size"):
        create_model("resnet18", 10, 32, 4)


@pytest.mark.parametrize("img,native,patch", [
    (32, 32, 2),      # CIFAR/SVHN: the paper's patch 2 at 32 px
    (64, 64, 4),      # TinyImageNet: patch 4 at 64 px
    (32, 8, 8),       # digits (8x8 stored): a 4x4 grid, each patch 2x2 stored pixels
    (16, 8, 4),
    (224, None, 14),  # unknown stored size (imagefolder): 16x16 grid
])
def test_default_patch_follows_the_stored_resolution(img, native, patch) -> None:
    from mixkit.models.factory import default_patch

    assert default_patch(img, native) == patch
