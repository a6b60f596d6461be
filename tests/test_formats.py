"""Each on-disk reader against the bytes the test itself wrote (independent expectation)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_WNIDS, rng_images, write_cifar_batch, write_svhn
from mixkit.data import formats
from mixkit.errors import UserError


def test_cifar10_reader_returns_the_written_pixels_and_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    written = [rng_images(rng, 4) for _ in range(6)]
    for i in range(1, 6):
        write_cifar_batch(base / f"data_batch_{i}", written[i - 1].reshape(4, -1),
                          [i, i, 0, 9], b"labels")
    write_cifar_batch(base / "test_batch", written[5].reshape(4, -1), [3, 1, 4, 1], b"labels")

    train, test = formats.read_cifar10(tmp_path)

    assert train.images.dtype == torch.uint8 and train.images.shape == (20, 3, 32, 32)
    assert torch.equal(train.images, torch.from_numpy(np.concatenate(written[:5])))
    assert train.labels.tolist() == sum(([i, i, 0, 9] for i in range(1, 6)), [])
    assert torch.equal(test.images, torch.from_numpy(written[5]))
    assert test.labels.tolist() == [3, 1, 4, 1]


def test_cifar100_reader_uses_fine_labels(cifar100_root: Path) -> None:
    train, test = formats.read_cifar100(cifar100_root)
    assert train.labels.tolist() == [k % 100 for k in range(0, 400, 10)]
    assert test.labels.tolist() == list(range(0, 100, 10))


def test_cifar_pickle_with_str_keys_is_accepted(tmp_path: Path) -> None:
    """A user's re-packed copy (Python 3 pickle, str keys) reads like the original."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    path = tmp_path / "batch"
    with open(path, "wb") as f:
        pickle.dump({"data": data, "labels": [7, 2]}, f, protocol=pickle.HIGHEST_PROTOCOL)
    batch = formats.load_cifar_batch(path)
    assert np.array_equal(batch["data"], data) and batch["labels"] == [7, 2]


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_hostile_cifar_pickle_is_refused_without_running_code(tmp_path: Path, capsys) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [1]}, protocol=2))
    with pytest.raises(UserError, match=r"print.* is not allowed"):
        formats.load_cifar_batch(path)
    assert "pwned" not in capsys.readouterr().out


def test_truncated_cifar_pickle_is_a_user_error_naming_the_file(cifar10_root: Path) -> None:
    path = cifar10_root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="data_batch_3.*corrupt or truncated"):
        formats.read_cifar10(cifar10_root)


def test_svhn_reader_transposes_and_maps_label_10_to_0(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    imgs = rng_images(rng, 5)
    labels = np.array([0, 1, 9, 0, 5])
    write_svhn(tmp_path / "train_32x32.mat", imgs, labels)
    write_svhn(tmp_path / "test_32x32.mat", imgs[:2], labels[:2])
    train, test = formats.read_svhn(tmp_path)
    assert torch.equal(train.images, torch.from_numpy(imgs))
    assert train.labels.tolist() == [0, 1, 9, 0, 5]
    assert len(test) == 2


def test_corrupt_svhn_mat_is_a_user_error(svhn_root: Path) -> None:
    (svhn_root / "test_32x32.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(UserError, match="test_32x32.mat"):
        formats.read_svhn(svhn_root)


def test_tinyimagenet_reader_labels_by_wnids_order(tinyimagenet_root: Path) -> None:
    train, val = formats.read_tinyimagenet(tinyimagenet_root)
    assert train.images.shape == (18, 3, 64, 64) and val.images.shape == (6, 3, 64, 64)
    assert train.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # solid colours survive JPEG within a few levels: red channel encodes the class (80 * c)
    red = val.images[:, 0].float().mean((1, 2))
    assert torch.allclose(red, torch.tensor([0., 0., 80., 80., 160., 160.]), atol=3)


def test_tinyimagenet_bad_annotation_line_is_reported(tinyimagenet_root: Path) -> None:
    ann = tinyimagenet_root / "tiny-imagenet-200" / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_x.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match="line 7"):
        formats.read_tinyimagenet(tinyimagenet_root)


def test_undecodable_jpeg_is_a_user_error(tinyimagenet_root: Path) -> None:
    bad = tinyimagenet_root / "tiny-imagenet-200" / "train" / TINY_WNIDS[1] / "images"
    (bad / f"{TINY_WNIDS[1]}_0.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="cannot decode"):
        formats.read_tinyimagenet(tinyimagenet_root)


def test_digits_are_sklearns_images_scaled_to_uint8() -> None:
    from sklearn.datasets import load_digits

    images, labels = formats.read_digits()
    ref = load_digits()
    assert images.shape == (1797, 3, 8, 8) and images.dtype == torch.uint8
    # 0..16 -> 0..255: value 16 is 255 and value 8 is round(127.5) = 128
    assert torch.equal(images[:, 0], torch.from_numpy(np.rint(ref.images * 255 / 16)).to(torch.uint8))
    assert torch.equal(images[:, 0], images[:, 2])
    assert labels.tolist() == ref.target.tolist()
