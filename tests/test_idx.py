"""MNIST / Fashion-MNIST: the IDX reader against bytes the test wrote, both layouts, the search
order (data root, then the system dataset folder), 28 -> 32 padding, and the flip rule."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_idx, write_idx_dataset
from mixkit.catalog import datasets_table
from mixkit.data import load_data
from mixkit.data.formats import IDX_IMAGES, IDX_LABELS, read_idx
from mixkit.errors import UserError
from test_data import CPU, data_cfg


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_returns_the_bytes_written(tmp_path: Path, gz: bool) -> None:
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / "x-idx3-ubyte", arr, gz)
    # the header by hand: magic 0x00000803, then 2, 3, 5 as big-endian uint32
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5])
    assert np.array_equal(read_idx(path, IDX_IMAGES), arr)


@pytest.mark.parametrize("layout,name", [
    ("FashionMNIST/raw", "fashionmnist"),     # torchvision's
    ("fashion-mnist", "fashionmnist"),        # upstream: the four files in a folder
    ("MNIST/raw", "mnist"),
    ("mnist", "mnist"),
])
@pytest.mark.parametrize("gz", [False, True])
def test_both_layouts_load_the_written_pixels_and_labels(tmp_path: Path, layout: str, name: str,
                                                         gz: bool) -> None:
    arrays = write_idx_dataset(tmp_path / layout, gz=gz)
    b = load_data(name, data_cfg(data_dir=str(tmp_path), img_size=28), CPU, "mixtrain")
    train_imgs = b.train.images                        # [N, 3, 28, 28]: grey replicated
    assert train_imgs.shape == (20, 3, 28, 28)
    for c in range(3):
        assert np.array_equal(train_imgs[:, c].numpy(), arrays["train-images-idx3-ubyte"])
    assert b.train.labels.tolist() == arrays["train-labels-idx1-ubyte"].tolist()
    assert np.array_equal(b.val.images[:, 1].numpy(), arrays["t10k-images-idx3-ubyte"])
    assert b.val.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()   # official test
    assert b.hflip is (name == "fashionmnist")         # a mirrored shirt is a shirt; a 3 is not


def test_default_size_pads_28_to_32_and_other_sizes_resize(fashionmnist_root: Path) -> None:
    b = load_data("fashionmnist", data_cfg(data_dir=str(fashionmnist_root)), CPU, "mixtrain")
    raw = load_data("fashionmnist", data_cfg(data_dir=str(fashionmnist_root), img_size=28), CPU,
                    "mixtrain")
    assert b.img_size == 32 and b.train.images.shape[-2:] == (32, 32)
    assert torch.equal(b.train.images[..., 2:30, 2:30], raw.train.images)   # pixels unchanged
    border = b.train.images.clone()
    border[..., 2:30, 2:30] = 0
    assert int(border.abs().sum()) == 0                                      # 2 px of zeros
    b64 = load_data("fashionmnist", data_cfg(data_dir=str(fashionmnist_root), img_size=64), CPU,
                    "mixtrain")
    assert b64.train.images.shape[-2:] == (64, 64)
    assert int(b64.train.images[..., :2, :].sum()) > 0                       # resized, not padded


def test_system_folder_is_searched_after_the_data_root(monkeypatch, tmp_path: Path) -> None:
    system, user = tmp_path / "system", tmp_path / "user"
    write_idx_dataset(system / "fashion-mnist", seed=1)
    monkeypatch.setenv("MIXKIT_SYSTEM_DATA_DIRS", str(system))
    monkeypatch.setenv("MIXKIT_DATA_DIR", str(user))
    b = load_data("fashionmnist", data_cfg(img_size=28), CPU, "mixtrain")     # no --data-dir
    assert b.root == system / "fashion-mnist"
    mine = write_idx_dataset(user / "FashionMNIST" / "raw", seed=2)
    b = load_data("fashionmnist", data_cfg(img_size=28), CPU, "mixtrain")
    assert b.root == user / "FashionMNIST" / "raw"                           # the root wins
    assert np.array_equal(b.train.images[:, 0].numpy(), mine["train-images-idx3-ubyte"])
    with pytest.raises(UserError) as err:   # an explicit --data-dir is the only place looked
        load_data("fashionmnist", data_cfg(data_dir=str(tmp_path / "empty")), CPU, "mixtrain")
    assert str(system) not in str(err.value)


def test_missing_message_names_every_place_and_both_ways_to_get_it(monkeypatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("MIXKIT_SYSTEM_DATA_DIRS", str(tmp_path / "sys"))
    monkeypatch.setenv("MIXKIT_DATA_DIR", str(tmp_path / "root"))
    with pytest.raises(UserError) as err:
        load_data("fashionmnist", data_cfg(), CPU, "mixtrain")
    msg = str(err.value)
    for place in (tmp_path / "root" / "FashionMNIST" / "raw", tmp_path / "root" / "fashion-mnist",
                  tmp_path / "sys" / "fashion-mnist"):
        assert str(place) in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert f"mixkit mixtrain --data fashionmnist --data-dir {tmp_path / 'root'} --download" in msg
    with pytest.raises(UserError) as err:                # no Debian package for MNIST
        load_data("mnist", data_cfg(), CPU, "mixtrain")
    assert "apt-get" not in str(err.value) and "--download" in str(err.value)


def _rendered(table, width: int = 80) -> list[list[str]]:
    """The table as printed at ``width`` columns, one list of text lines per row."""
    from rich.console import Console

    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    lines = console.export_text().splitlines()
    rows, current = [], []
    for line in lines:
        if line.startswith(("├", "└")):
            rows.append(current)
            current = []
        elif line.startswith("│"):
            current.append(line)
    return rows[1:] if rows and not rows[0] else rows


def _cells(row: list[str]) -> list[str]:
    """Each column's text of a rendered row (its lines joined)."""
    cols = [line.strip("│").split("│") for line in row]
    return [" ".join(c[i].strip() for c in cols).strip() for i in range(len(cols[0]))]


def test_datasets_listing_shows_where_each_was_found(monkeypatch, tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "sys" / "fashion-mnist")
    monkeypatch.setenv("MIXKIT_SYSTEM_DATA_DIRS", str(tmp_path / "sys"))
    monkeypatch.setenv("MIXKIT_DATA_DIR", str(tmp_path / "root"))
    rows = _rendered(datasets_table(None))
    assert rows and all(len(r) <= 2 for r in rows), rows       # no cell taller than 2 lines
    cells = {c[0]: c for c in map(_cells, rows)}
    assert cells["fashionmnist"][3] == "[2]/fashion-mnist"      # root 2 is the system folder
    assert cells["mnist"][3] == "no" and cells["digits"][3] == "embedded"
    assert cells["mnist"][4] == "MNIST/raw, mnist"
    verbose = {c[0]: c for c in map(_cells, _rendered(datasets_table(None, verbose=True),
                                                      width=200))}
    assert verbose["mnist"][4].split() == [str(tmp_path / p) for p in (
        "root/MNIST/raw", "root/mnist", "sys/MNIST/raw", "sys/mnist")]


def test_download_uses_torchvisions_fashionmnist(monkeypatch, tmp_path: Path) -> None:

    calls = []

    def fake(root: str, download: bool) -> None:
        calls.append((root, download))
        write_idx_dataset(Path(root) / "FashionMNIST" / "raw", gz=False)

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", fake)       # the network's seam
    b = load_data("fashionmnist", data_cfg(data_dir=str(tmp_path / "r"), download=True), CPU,
                  "mixtrain")
    assert calls == [(str(tmp_path / "r"), True)] and len(b.train) == 20


def test_a_gzip_bomb_header_is_refused_before_allocating(tmp_path: Path) -> None:
    """A header declaring 60000 x 4096 x 4096 bytes in a tiny file is an error, not a 1 TB read."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    import struct

    path.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 4096, 4096)))
    with pytest.raises(UserError, match="more than the"):
        read_idx(path, IDX_IMAGES)
    with pytest.raises(UserError, match="magic number 0x00000803, expected 0x00000801"):
        read_idx(path, IDX_LABELS)


def test_mixtraining_with_mae_runs_on_mnist_at_the_default_size(tmp_path: Path, capsys) -> None:
    import json

    from conftest import run_cli

    write_idx_dataset(tmp_path / "data" / "MNIST" / "raw", n_train=40, gz=True)
    code, _, err = run_cli(["mixtraining", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                            "--epochs-ssl", "2", "--epochs-sl", "2", "-b", "8", "--patch-size",
                            "8", "--decoder-depth", "1", "--no-baseline", "--output",
                            str(tmp_path / "runs"), "--experiment", "M"], capsys)
    assert code == 0, err
    rows = [json.loads(ln) for ln in (tmp_path / "runs" / "M" / "metrics.jsonl").open()]
    assert [r["phase"] for r in rows] == ["ssl", "mix", "sl"]
    assert (tmp_path / "runs" / "M" / "reconstruction.png").is_file()


def test_val_size_scores_a_fixed_stratified_subset_of_the_test_split(tmp_path: Path) -> None:
    """--val-size 20 of a 40-image test split with 10 balanced classes keeps 2 per class, the
    same images whatever the seed; the training split is untouched."""
    write_idx_dataset(tmp_path / "fashion-mnist", n_train=20, n_val=40)
    a = load_data("fashionmnist", data_cfg(data_dir=str(tmp_path), img_size=28, val_size=20,
                                           seed=0), CPU, "mixtrain")
    b = load_data("fashionmnist", data_cfg(data_dir=str(tmp_path), img_size=28, val_size=20,
                                           seed=5), CPU, "mixtrain")
    assert len(a.val) == 20 and a.val.labels.bincount().tolist() == [2] * 10
    assert torch.equal(a.val.images, b.val.images) and len(a.train) == 20
