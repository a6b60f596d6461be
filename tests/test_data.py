"""Data core: stratified subsets, crop/flip by hand, normalisation, plans and both sources."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mixkit.commands.mixtrain import MixtrainConfig
from mixkit.options import build_config
from mixkit.data import DataOptions, EpochPlan, load_data, shuffled
from mixkit.data.augment import crop_flip, normalize, resize_uint8, sample_crop_flip
from mixkit.data.holdout import stratified_holdout, stratified_indices
from mixkit.errors import UserError

CPU = torch.device("cpu")


def data_cfg(**kw) -> DataOptions:
    """The data part of a real, validated config (defaults, then ``kw``)."""
    return DataOptions.from_options(build_config(MixtrainConfig, kw, "test"))


# --- stratified selection -----------------------------------------------------------------

def test_stratified_fraction_keeps_round_p_n_per_class() -> None:
    labels = torch.tensor([0] * 10 + [1] * 30 + [2] * 3)
    idx = stratified_indices(labels, 0.2, seed=1)
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert counts == [2, 6, 1]  # round(2.0), round(6.0), max(1, round(0.6))
    assert idx.unique().numel() == idx.numel()


def test_stratified_fraction_is_seeded_and_seed_dependent() -> None:
    labels = torch.arange(200) % 4
    a, b = stratified_indices(labels, 0.5, 7), stratified_indices(labels, 0.5, 7)
    assert torch.equal(a, b)
    assert not torch.equal(a, stratified_indices(labels, 0.5, 8))


def test_holdout_is_a_disjoint_cover() -> None:
    labels = torch.arange(50) % 5
    tr, va = stratified_holdout(labels, 0.2)
    assert sorted(tr.tolist() + va.tolist()) == list(range(50))
    assert torch.bincount(labels[va]).tolist() == [2] * 5


def test_data_fraction_is_identical_for_every_load() -> None:
    cfg = data_cfg(data_fraction=0.25, seed=3)
    a = load_data("digits", cfg, CPU, "mixtrain")
    b = load_data("digits", cfg, CPU, "mixtrain")
    full = load_data("digits", data_cfg(), CPU, "mixtrain")
    assert torch.equal(a.train.images, b.train.images)
    assert len(a.train) == pytest.approx(0.25 * len(full.train), abs=10)
    assert torch.bincount(a.train.labels).min() >= 30  # every digit kept (~36 each)


# --- augmentation ---------------------------------------------------------------------------

def test_crop_with_injected_offsets_matches_hand_indexing() -> None:
    img = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    dy, dx = torch.tensor([0, 2]), torch.tensor([1, 2])
    out = crop_flip(img, 1, dy, dx, torch.tensor([False, False]))
    # sample 0: padded by 1, crop starts at padded (0, 1): row 0 is padding -> zeros
    assert out[0, 0, 0].tolist() == [0, 0, 0, 0]
    assert out[0, 0, 1].tolist() == img[0, 0, 0].tolist()          # dx=1 undoes the pad
    # sample 1: crop starts at padded (2, 2): original shifted up-left by one, zero edge
    assert out[1, 0, :3, :3].tolist() == img[1, 0, 1:, 1:].tolist()
    assert out[1, 0, 3].tolist() == [0, 0, 0, 0] and out[1, 0, :, 3].tolist() == [0] * 4


def test_centre_crop_without_flip_is_identity_and_flip_mirrors() -> None:
    img = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    p = 4
    centre = torch.full((3,), p)
    assert torch.equal(crop_flip(img, p, centre, centre, torch.zeros(3, dtype=torch.bool)), img)
    flipped = crop_flip(img, p, centre, centre, torch.tensor([True, False, True]))
    assert torch.equal(flipped[0], img[0].flip(-1)) and torch.equal(flipped[1], img[1])


def test_sampled_offsets_stay_in_range_and_flip_off_means_never() -> None:
    g = torch.Generator().manual_seed(0)
    dy, dx, flips = sample_crop_flip(1000, 4, False, g, CPU)
    assert dy.min() == 0 and dy.max() == 8 and dx.min() == 0 and dx.max() == 8
    assert not flips.any()
    _, _, flips = sample_crop_flip(1000, 4, True, g, CPU)
    assert 400 < int(flips.sum()) < 600


def test_normalize_hand_values() -> None:
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    mean, std = torch.tensor([0.0, 0.2, 0.5]), torch.tensor([1.0, 0.5, 0.25])
    out = normalize(x, mean, std).flatten()
    assert torch.allclose(out, torch.tensor([0.0, (0.2 - 0.2) / 0.5, (1.0 - 0.5) / 0.25]), atol=1e-6)


def test_resize_upsamples_digits_to_32() -> None:
    img = torch.full((1, 3, 8, 8), 200, dtype=torch.uint8)
    out = resize_uint8(img, 32)
    assert out.shape == (1, 3, 32, 32) and bool((out == 200).all())


# --- plans ------------------------------------------------------------------------------------

def test_paired_plan_counts_inputs_and_samples() -> None:
    plan = EpochPlan(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, -1, 6, -1, 7]), 3)
    assert (plan.inputs, plan.samples, plan.num_batches(3)) == (5, 8, 2)
    first, second = plan.batch(1, 3)
    assert first.tolist() == [3, 4] and second.tolist() == [-1, 7]


def test_a_one_row_last_batch_is_merged_into_the_one_before() -> None:
    """A one-row batch breaks BatchNorm on a 1x1 feature map: 5 rows in batches of 2 are
    [0, 1], [2, 3, 4], not [0, 1], [2, 3], [4]; 6 rows in 4s stay [4 rows], [2 rows]."""
    plan = EpochPlan(torch.arange(5))
    assert plan.num_batches(2) == 2
    assert [plan.batch(k, 2)[0].tolist() for k in range(2)] == [[0, 1], [2, 3, 4]]
    assert EpochPlan(torch.arange(6)).num_batches(4) == 2
    assert EpochPlan(torch.arange(1)).num_batches(4) == 1


def test_shuffled_plan_is_a_permutation() -> None:
    plan = shuffled(100, torch.Generator().manual_seed(0))
    assert sorted(plan.first.tolist()) == list(range(100)) and plan.second is None


# --- sources ------------------------------------------------------------------------------

def test_digits_bundle_sizes_and_no_flip() -> None:
    b = load_data("digits", data_cfg(), CPU, "mixtrain")
    assert (len(b.train), len(b.val), b.num_classes, b.img_size) == (1438, 359, 10, 32)
    assert b.train.images.shape[1:] == (3, 32, 32) and not b.hflip


def test_tensor_source_batches_follow_the_plan_and_pairs() -> None:
    b = load_data("synthetic", data_cfg(crop_padding=0, hflip=False), CPU, "mixtrain")
    plan = EpochPlan(torch.tensor([3, 1, 4]), torch.tensor([9, -1, 2]), 2)
    (batch,) = list(b.train.batches(plan, 8))
    assert batch.ids.tolist() == [3, 1, 4] and batch.ids2.tolist() == [9, 1, 2]
    assert batch.paired.tolist() == [True, False, True]
    assert torch.equal(batch.y2, b.train.labels[torch.tensor([9, 1, 2])])
    # no augmentation: the input is exactly the normalised stored image
    assert torch.allclose(batch.x2[0], b.train.prep.eval(b.train.images[9:10])[0])


def test_stream_source_matches_the_files_and_fetches_each_id_once(imagefolder_root: Path) -> None:
    b = load_data("imagefolder", data_cfg(data_dir=str(imagefolder_root), img_size=16,
                                           crop_padding=0, hflip=False), CPU, "mixtrain")
    assert (len(b.train), len(b.val), b.num_classes) == (20, 6, 2)
    plan = EpochPlan(torch.tensor([0, 12, 5]), torch.tensor([12, -1, 19]), 2)
    (batch,) = list(b.train.batches(plan, 4))
    assert batch.y.tolist() == [0, 1, 0] and batch.y2.tolist() == [1, 1, 1]
    # class 'dog' (label 1) is red 200 -> after un-normalising, the red channel is 200/255
    red = batch.x2[:, 0] * b.train.prep.std[0] + b.train.prep.mean[0]
    assert torch.allclose(red.mean((1, 2)), torch.full((3,), 200 / 255), atol=0.01)
    evals = list(b.val.eval_batches(4))
    assert [y.tolist() for _, y in evals] == [[0, 0, 0, 1], [1, 1]]


def test_missing_dataset_says_where_it_looked_and_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load_data("cifar10", data_cfg(data_dir=str(tmp_path)), CPU, "mixtrain")
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg
    assert f"mixkit mixtrain --data cifar10 --data-dir {tmp_path} --download" in msg


def test_data_root_precedence(monkeypatch, tmp_path: Path, cifar10_root: Path) -> None:
    monkeypatch.setenv("MIXKIT_DATA_DIR", str(cifar10_root))
    b = load_data("cifar10", data_cfg(), CPU, "mixtrain")   # found through the env var
    assert b.root == cifar10_root and len(b.train) == 40
    with pytest.raises(UserError, match="from --data-dir"):  # the flag wins over the env var
        load_data("cifar10", data_cfg(data_dir=str(tmp_path / "empty")), CPU, "mixtrain")


def test_unknown_dataset_suggests_the_closest() -> None:
    with pytest.raises(UserError, match="Did you mean cifar10"):
        load_data("cifar-10", data_cfg(), CPU, "mixtrain")


def test_stream_source_workers_follow_a_new_plan_each_pass(imagefolder_root: Path) -> None:
    b = load_data("imagefolder", data_cfg(data_dir=str(imagefolder_root), img_size=8,
                                           workers=2), CPU, "mixtrain")
    for seed in (0, 1):   # the same persistent workers serve two different plans
        plan = shuffled(len(b.train), torch.Generator().manual_seed(seed))
        ids = torch.cat([batch.ids for batch in b.train.batches(plan, 6)])
        ys = torch.cat([batch.y for batch in b.train.batches(plan, 6)])
        assert torch.equal(ids, plan.first) and torch.equal(ys, b.train.labels[plan.first])


def test_download_uses_torchvisions_downloader_into_the_data_root(monkeypatch, tmp_path) -> None:
    """--download calls torchvision's CIFAR10(root, download=True), then reads what it wrote."""
    import numpy as np

    from conftest import rng_images, write_cifar_batch

    calls = []

    def fake_cifar10(root: str, download: bool) -> None:
        calls.append((root, download))
        base = Path(root) / "cifar-10-batches-py"
        base.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            write_cifar_batch(base / name, rng_images(rng, 2).reshape(2, -1), [0, 1], b"labels")

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)   # the network's seam
    b = load_data("cifar10", data_cfg(data_dir=str(tmp_path / "root"), download=True), CPU,
                  "mixtrain")
    assert calls == [(str(tmp_path / "root"), True)] and len(b.train) == 10
