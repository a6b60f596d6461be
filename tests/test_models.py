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
    ("resnet18_w16", 32, None, (4, 4), "nchw", 128),   # ResNet-18 at widths 16-128
    ("resnet10_w16", 32, None, (4, 4), "nchw", 128),
    ("resnet18_w32", 64, None, (8, 8), "nchw", 256),
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


def test_narrow_resnets_are_timm_models_with_resnet18s_blocks_at_a_quarter_width() -> None:
    """Registered with timm (usable outside mixkit): ResNet-18's BasicBlock [2, 2, 2, 2] with
    every width divided by 4 (16/32/64/128 from 64/128/256/512), so about 1/16 of the weights
    of each convolution: 11.2 M parameters -> about 0.7 M."""
    import timm

    narrow = timm.create_model("resnet18_w16", num_classes=10)
    full = timm.create_model("resnet18", num_classes=10)
    assert [len(getattr(narrow, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    assert [getattr(narrow, f"layer{i}")[0].conv1.out_channels for i in range(1, 5)] == [
        16, 32, 64, 128]
    assert narrow.conv1.out_channels == 16
    n_narrow = sum(p.numel() for p in narrow.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    assert 0.05 < n_narrow / n_full < 0.08
    assert [len(getattr(timm.create_model("resnet10_w16"), f"layer{i}"))
            for i in range(1, 5)] == [1, 1, 1, 1]
