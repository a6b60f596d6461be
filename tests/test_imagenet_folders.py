"""ImageNet-style streamed folders (#29): RandomResizedCrop boxes by their definition, the
evaluation crop pixel for pixel against torchvision, crops keyed by (seed, epoch, sample) so a
resume and every rank see the same ones, the batched in-memory crop, CutMix end to end on a
streamed folder, and the ImageNet layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from conftest import run_cli
from mixkit.data import transforms as T
from mixkit.data.augment import resized_crop, sample_rrc
from mixkit.data.folder import FileList, scan_image_folder
from mixkit.data.sources import FileDataset

SIZES = [(500, 375), (375, 500), (640, 480), (90, 300), (301, 77)]


def _photo(path: Path, w: int, h: int, seed: int, fmt: str = "JPEG") -> Path:
    """A picture with structure in it (gradients + noise), so crops differ from each other."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                    (x + y) % 256], -1).astype(np.int32)
    img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for c in range(2):
        for k, (w, h) in enumerate(SIZES):
            _photo(root / "train" / f"c{c}" / f"{k}.JPEG", w, h, 10 * c + k)
            _photo(root / "val" / f"c{c}" / f"{k}.png", w, h, 100 + 10 * c + k, "PNG")
    return root


def test_rrc_box_lies_inside_and_has_the_drawn_scale_and_ratio() -> None:
    rng = np.random.default_rng(0)
    for w, h in SIZES * 40:
        top, left, bh, bw = T.rrc_box(w, h, T.SCALE, T.RATIO, rng)
        assert 0 <= top and top + bh <= h and 0 <= left and left + bw <= w
        if (bw, bh) not in {(w, h)} and not (bw == w or bh == h):   # not the fallback
            assert T.SCALE[0] - 0.02 <= bw * bh / (w * h) <= 1.0
            assert math.log(bw / bh) == pytest.approx(
                min(max(math.log(bw / bh), math.log(3 / 4) - 0.1), math.log(4 / 3) + 0.1))


def test_rrc_box_is_torchvisions_rule_for_a_replayed_draw() -> None:
    """Replay the draws by hand: area = A * U(scale), aspect = exp(U(log ratio))."""
    w, h = 500, 375
    box = T.rrc_box(w, h, (0.2, 0.6), (0.5, 2.0), np.random.default_rng(7))
    r = np.random.default_rng(7)
    while True:                                   # the first draw that fits, as torchvision
        area = w * h * r.uniform(0.2, 0.6)
        aspect = math.exp(r.uniform(math.log(0.5), math.log(2.0)))
        bw, bh = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < bw <= w and 0 < bh <= h:
            break
    top, left = int(r.integers(0, h - bh + 1)), int(r.integers(0, w - bw + 1))
    assert box == (top, left, bh, bw)


def test_the_fallback_is_the_central_crop_of_the_clamped_ratio() -> None:
    # scale 1 and a ratio range that a 4:1 image cannot meet: every draw fails
    assert T.rrc_box(400, 100, (1.0, 1.0), (0.75, 1.333), np.random.default_rng(0)) == (
        0, (400 - 133) // 2, 100, 133)


@pytest.mark.parametrize("w,h,crop_pct", [(500, 375, 0.875), (90, 300, 0.875), (301, 77, 0.95)])
def test_eval_centre_crop_equals_torchvision(tmp_path: Path, w: int, h: int,
                                             crop_pct: float) -> None:

    path = _photo(tmp_path / "x.png", w, h, 3, "PNG")
    ours = T.decode_eval(path, 64, crop_pct)
    img = Image.open(path).convert("RGB")
    ref = TF.center_crop(TF.resize(img, math.floor(64 / crop_pct)), [64, 64])
    assert np.array_equal(ours, np.asarray(ref).transpose(2, 0, 1))


def test_rrc_decode_is_the_box_resized_and_uses_draft_mode_on_big_jpegs(tmp_path: Path) -> None:
    path = _photo(tmp_path / "big.JPEG", 1600, 1200, 4)
    out = T.decode_rrc(path, 64, np.random.default_rng(1))
    top, left, bh, bw = T.rrc_box(1600, 1200, T.SCALE, T.RATIO, np.random.default_rng(1))
    ref = Image.open(path).convert("RGB").resize((64, 64), Image.BILINEAR,
                                                 box=(left, top, left + bw, top + bh))
    assert out.shape == (3, 64, 64)
    # draft mode decodes the DCT at 1/8 .. 1/2 scale: the same picture, not the same bits
    assert np.abs(out.astype(int) - np.asarray(ref).transpose(2, 0, 1)).mean() < 12


def test_crops_depend_on_seed_epoch_and_sample_only(folder: Path) -> None:
    """Resume and DDP: the crop of (seed, epoch, i) is the same whoever decodes it, in any
    order; another epoch or seed gives another crop."""
    tree = scan_image_folder(folder, 0.2)
    a = FileDataset(*tree.train, 48, "rrc", seed=5)
    b = FileDataset(*tree.train, 48, "rrc", seed=5)
    order = list(range(len(a)))
    first = {i: a[(i, 3)][0] for i in order}
    again = {i: b[(i, 3)][0] for i in reversed(order)}          # another "rank", other order
    assert all(torch.equal(first[i], again[i]) for i in order)
    assert not torch.equal(a[(0, 3)][0], a[(0, 4)][0])
    assert not torch.equal(a[(0, 3)][0], FileDataset(*tree.train, 48, "rrc", seed=6)[(0, 3)][0])
    assert a[0][0].shape == (3, 48, 48) and torch.equal(a[0][0], b[0][0])   # eval: fixed


def test_file_list_is_compact_and_gives_the_paths_back(folder: Path) -> None:
    tree = scan_image_folder(folder, 0.2)
    files, labels = tree.train
    assert isinstance(files, FileList) and len(files) == len(labels) == 2 * len(SIZES)
    assert files[0] == folder / "train" / "c0" / "0.JPEG"
    assert files.nbytes / len(files) < 200
    sub = files.take([3, 1])
    assert sub[0] == files[3] and sub[1] == files[1]


def test_batched_rrc_boxes_fit_and_a_whole_box_is_the_identity() -> None:
    g = torch.Generator().manual_seed(0)
    boxes = sample_rrc(500, 64, 48, T.SCALE, T.RATIO, g, torch.device("cpu"))
    top, left, h, w = boxes.unbind(1)
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 64) & (left + w <= 48)).all())
    assert bool((h * w >= 0.07 * 64 * 48).all())
    x = torch.randint(0, 256, (2, 3, 8, 8), generator=g).to(torch.uint8)
    whole = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2)
    out = resized_crop(x, whole, 8, torch.tensor([False, True]))
    assert torch.allclose(out[0], x[0].float(), atol=1e-3)
    assert torch.allclose(out[1], x[1].float().flip(-1), atol=1e-3)     # the flip
    half = resized_crop(x, torch.tensor([[0.0, 0.0, 4.0, 4.0]] * 2), 4,
                        torch.tensor([False, False]))
    assert torch.allclose(half, x[:, :, :4, :4].float(), atol=1e-3)    # a box, not resized


def test_cutmix_trains_end_to_end_on_a_streamed_folder(folder: Path, tmp_path: Path, capsys,
                                                       syncing_ops) -> None:
    code, _, err = run_cli(["mixtrain", "--data", "imagefolder", "--data-dir", str(folder),
                            "--img-size", "32", "--model", "mobilenetv2_035", "--op", "cutmix",
                            "--epochs", "3", "-b", "4", "--workers", "0", "--output",
                            str(tmp_path / "runs"), "--experiment", "f"], capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:5])
    rows = [json.loads(x) for x in (tmp_path / "runs" / "f" / "metrics.jsonl").read_text()
            .splitlines()]
    assert any(r["arm"] == "mixtrain" and r["inputs"] < r["samples"] for r in rows)
    cfg = (tmp_path / "runs" / "f" / "config.yaml").read_text()
    assert "train_transform: auto" in cfg and "crop_pct: 0.875" in cfg


def test_in_memory_rrc_trains(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["mixtrain", "--data", "digits", "--data-fraction", "0.1",
                            "--val-fraction", "0.05", "--img-size", "16", "--model",
                            "mobilenetv2_035", "--epochs", "1", "-b", "32", "--train-transform",
                            "rrc", "--scale", "0.25,1", "--output", str(tmp_path),
                            "--experiment", "r"], capsys)
    assert code == 0, err


def test_imagenet_is_listed_and_found_in_the_data_root(tmp_path: Path, capsys) -> None:
    from mixkit.data.registry import find, get_spec

    (tmp_path / "imagenet" / "train" / "n01440764").mkdir(parents=True)
    assert find(get_spec("imagenet"), str(tmp_path)) == (tmp_path / "imagenet").resolve()
    code, out, _ = run_cli(["datasets", "--data-dir", str(tmp_path)], capsys)
    assert code == 0 and "imagenet" in out and "1000" in out


def test_a_cmyk_jpeg_decodes_as_pils_rgb_conversion(tmp_path: Path) -> None:
    """ImageNet's train set holds a few CMYK JPEGs: they are images, not bad input. The crop
    and evaluation paths give what PIL's own CMYK -> RGB conversion of the file gives."""
    rgb = Image.open(_photo(tmp_path / "rgb.JPEG", 120, 90, 7))
    path = tmp_path / "cmyk.JPEG"
    rgb.convert("CMYK").save(path, "JPEG", quality=95)
    assert Image.open(path).mode == "CMYK"
    ref = Image.open(path).convert("RGB")
    ours = T.decode_eval(path, 64, 1.0)
    expect = TF.center_crop(TF.resize(ref, 64), [64, 64])
    assert np.array_equal(ours, np.asarray(expect).transpose(2, 0, 1))
    out = T.decode_rrc(path, 32, np.random.default_rng(3))
    top, left, bh, bw = T.rrc_box(120, 90, T.SCALE, T.RATIO, np.random.default_rng(3))
    crop = ref.resize((32, 32), Image.BILINEAR, box=(left, top, left + bw, top + bh))
    assert out.shape == (3, 32, 32)
    assert np.abs(out.astype(int) - np.asarray(crop).transpose(2, 0, 1)).mean() < 4
