"""One reader per on-disk format, written against the formats themselves.

Each reader returns :class:`Split` objects (uint8 images ``[N, C, H, W]`` and int64 labels) and
reads the bytes directly (not through torchvision's dataset classes), so a user's re-packed copy
works without torchvision's md5 lists. Layouts are torchvision's:

* CIFAR-10  ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (pickles)
* CIFAR-100 ``ROOT/cifar-100-python/{train, test}`` (pickles)
* SVHN      ``ROOT/train_32x32.mat``, ``ROOT/test_32x32.mat`` (MATLAB v5)
* TinyImageNet ``ROOT/tiny-imagenet-200/`` with ``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
  ``val/images/*.JPEG`` and ``val/val_annotations.txt``

CIFAR pickles are loaded through :class:`RestrictedUnpickler`, which resolves only the handful
of globals the format uses; a hostile pickle cannot run code.
"""

from __future__ import annotations

import io
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mixkit.errors import UserError


@dataclass
class Split:
    """One split held in memory: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _corrupt(path: Path, what: str) -> UserError:
    return UserError(
        f"{path} is corrupt or truncated ({what}).",
        hint="Delete it and download it again (re-run with --download), or point --data-dir "
        "at an intact copy.")


# ------------------------------------------------------------------------------------------
# CIFAR pickles
# ------------------------------------------------------------------------------------------


def _numpy_core(name: str) -> Any:
    """numpy.core / numpy._core attribute, whichever this numpy has."""
    import importlib

    for mod in ("numpy._core.multiarray", "numpy.core.multiarray", "numpy._core.numeric",
                "numpy.core.numeric"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(name)


_SAFE_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    **{(m, "_reconstruct"): (lambda: _numpy_core("_reconstruct"))
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): (lambda: _numpy_core("_frombuffer"))
       for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: only numpy arrays, dicts, lists, str/bytes and numbers.

    Any other global (``os.system``, ``builtins.eval``, ...) is refused before it is looked up.
    """

    def find_class(self, module: str, name: str) -> Any:
        factory = _SAFE_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR "
                                         "batch")
        return factory()


def load_cifar_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys (the originals are Python 2 pickles)."""
    if not path.is_file():
        raise UserError(f"{path} is missing.", hint="The CIFAR folder is incomplete: download it "
                        "again with --download or restore the file.")
    try:
        raw = RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise _corrupt(path, str(exc)) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise _corrupt(path, "not a dict of arrays")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}


def _cifar_split(paths: list[Path], label_key: str) -> Split:
    images, labels = [], []
    for path in paths:
        batch = load_cifar_batch(path)
        if "data" not in batch or label_key not in batch:
            raise _corrupt(path, f"no 'data'/'{label_key}' entries")
        data = np.asarray(batch["data"], dtype=np.uint8)
        lab = np.asarray(batch[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != lab.shape[0]:
            raise _corrupt(path, f"data of shape {data.shape} with {lab.shape[0]} labels")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return Split(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def read_cifar10(root: Path) -> tuple[Split, Split]:
    base = root / "cifar-10-batches-py"
    train = _cifar_split([base / f"data_batch_{i}" for i in range(1, 6)], "labels")
    return train, _cifar_split([base / "test_batch"], "labels")


def read_cifar100(root: Path) -> tuple[Split, Split]:
    base = root / "cifar-100-python"
    return (_cifar_split([base / "train"], "fine_labels"),
            _cifar_split([base / "test"], "fine_labels"))


# ------------------------------------------------------------------------------------------
# SVHN .mat
# ------------------------------------------------------------------------------------------


def _svhn_split(path: Path) -> Split:
    import scipy.io
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise UserError(f"{path} is missing.", hint="Download SVHN again with --download.")
    try:
        mat = scipy.io.loadmat(str(path))
        x, y = mat["X"], mat["y"]
    except (MatReadError, ValueError, KeyError, OSError, TypeError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise _corrupt(path, f"X of shape {x.shape} with {y.size} labels")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8))
    labels = torch.from_numpy(y.reshape(-1).astype(np.int64) % 10)  # SVHN stores digit 0 as 10
    return Split(images, labels)


def read_svhn(root: Path) -> tuple[Split, Split]:
    return _svhn_split(root / "train_32x32.mat"), _svhn_split(root / "test_32x32.mat")


# ------------------------------------------------------------------------------------------
# TinyImageNet folder
# ------------------------------------------------------------------------------------------


def decode_image(path: Path, size: int | None = None) -> np.ndarray:
    """One image file as uint8 ``[3, H, W]`` (RGB), optionally resized to ``size``x``size``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _corrupt(path, f"cannot decode image: {exc}") from None


def decode_many(paths: list[Path], size: int, threads: int = 8) -> torch.Tensor:
    """Decode files in a thread pool (PIL releases the GIL) into uint8 ``[N, 3, size, size]``."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = decode_image(paths[i], size)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(len(paths))))
    return torch.from_numpy(out)


def read_tinyimagenet(root: Path) -> tuple[Split, Split]:
    base = root / "tiny-imagenet-200"
    wnids_file = base / "wnids.txt"
    if not wnids_file.is_file():
        raise UserError(f"{wnids_file} is missing.",
                        hint="The tiny-imagenet-200 folder is incomplete; unpack the official "
                        "zip again (or re-run with --download).")
    wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    index = {w: i for i, w in enumerate(wnids)}
    train_paths, train_labels = [], []
    for wnid in wnids:
        files = sorted((base / "train" / wnid / "images").glob("*.JPEG"))
        train_paths += files
        train_labels += [index[wnid]] * len(files)
    val_paths, val_labels = _tinyimagenet_val(base, index)
    if not train_paths or not val_paths:
        raise UserError(f"{base} has no training or no validation images.",
                        hint="Expected train/<wnid>/images/*.JPEG and val/images/*.JPEG.")
    train = Split(decode_many(train_paths, 64), torch.tensor(train_labels, dtype=torch.int64))
    val = Split(decode_many(val_paths, 64), torch.tensor(val_labels, dtype=torch.int64))
    return train, val


def _tinyimagenet_val(base: Path, index: dict[str, int]) -> tuple[list[Path], list[int]]:
    ann = base / "val" / "val_annotations.txt"
    if not ann.is_file():
        raise UserError(f"{ann} is missing.", hint="Unpack the official tiny-imagenet-200 zip "
                        "again (or re-run with --download).")
    paths, labels = [], []
    for n, line in enumerate(ann.read_text().splitlines(), 1):
        parts = line.split("\t")
        if not line.strip():
            continue
        if len(parts) < 2 or parts[1] not in index:
            raise _corrupt(ann, f"line {n} does not read '<file>\\t<wnid in wnids.txt>...'")
        paths.append(base / "val" / "images" / parts[0])
        labels.append(index[parts[1]])
    return paths, labels


# ------------------------------------------------------------------------------------------
# digits (scikit-learn) and synthetic
# ------------------------------------------------------------------------------------------


def read_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 real 8x8 digits as uint8 ``[N, 3, 8, 8]`` (grey replicated)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.rint(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # values are 0..16
    images = torch.from_numpy(grey)[:, None].expand(-1, 3, -1, -1).contiguous()
    return images, torch.from_numpy(d.target.astype(np.int64))


def make_synthetic(n: int, num_classes: int, size: int, seed: int) -> Split:
    """Procedural images whose class is a colour/stripe pattern plus noise (smoke tests only)."""
    labels = torch.arange(n) % num_classes
    # class prototypes are fixed (shared by every split); only the noise depends on ``seed``
    base = torch.rand(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(0)) * 200
    g = torch.Generator().manual_seed(seed)
    freq = torch.arange(1, num_classes + 1).float()[:, None, None, None]
    xs = torch.arange(size).float()[None, None, None, :]
    pattern = 40 * torch.sin(xs * freq[labels] * 3.14159 / size)
    noise = torch.randn(n, 3, size, size, generator=g) * 20
    images = (base[labels] + pattern + noise).clamp(0, 255).round().to(torch.uint8)
    return Split(images, labels)
