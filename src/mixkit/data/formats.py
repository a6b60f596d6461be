"""One reader per on-disk format, written against the formats themselves.

Each reader returns :class:`Split` objects (uint8 images ``[N, C, H, W]`` and int64 labels) and
reads the bytes directly (not through torchvision's dataset classes), so a user's re-packed copy
works without torchvision's md5 lists. Layouts are torchvision's:

* CIFAR-10  ``ROOT/cifar-10-batches-py/{data_batch_1..5, test_batch}`` (pickles)
* CIFAR-100 ``ROOT/cifar-100-python/{train, test}`` (pickles)
* SVHN      ``ROOT/train_32x32.mat``, ``ROOT/test_32x32.mat`` (MATLAB v5)
* TinyImageNet ``ROOT/tiny-imagenet-200/`` with ``wnids.txt``, ``train/<wnid>/images/*.JPEG``,
  ``val/images/*.JPEG`` and ``val/val_annotations.txt``
* MNIST / Fashion-MNIST: the four IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``
  (raw or ``.gz``) in one folder: torchvision's ``ROOT/MNIST/raw``, ``ROOT/FashionMNIST/raw``
  or the upstream ``mnist/``, ``fashion-mnist/``

CIFAR pickles are loaded through :class:`RestrictedUnpickler`, which resolves only the handful
of globals the format uses; a hostile pickle cannot run code.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
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


DOWNLOAD_HINT = ("Delete it and download it again (re-run with --download), or point --data-dir "
                 "at an intact copy.")
IMAGE_HINT = "Remove or replace that image file (or point --data-dir at an intact copy)."


def _corrupt(path: Path, what: str, hint: str = DOWNLOAD_HINT) -> UserError:
    return UserError(f"{path} is corrupt or truncated ({what}).", hint=hint)


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


def _nbytes(shape: Any, dtype: Any) -> float:
    """Bytes an array of ``shape`` and ``dtype`` would take (inf if they are not sane)."""
    try:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            return float("inf")
        return float(np.prod(dims, dtype=np.float64)) * np.dtype(dtype).itemsize
    except (TypeError, ValueError):
        return float("inf")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: only numpy arrays, dicts, lists, str/bytes and numbers.

    Any other global (``os.system``, ``builtins.eval``, ...) is refused before it is looked up.
    The array constructors it does allow are bounded: an array may not be larger than
    ``max_bytes`` (the file's size: real CIFAR arrays carry their bytes in the pickle), so a
    few hundred crafted bytes cannot make it allocate gigabytes.
    """

    def __init__(self, file: Any, *, max_bytes: int, **kw: Any) -> None:
        super().__init__(file, **kw)
        self.max_bytes = max_bytes

    def _check(self, shape: Any, dtype: Any) -> None:
        if _nbytes(shape, dtype) > self.max_bytes:
            raise pickle.UnpicklingError(f"an array of shape {str(shape)[:60]} is larger than "
                                         f"the {self.max_bytes}-byte file")

    def find_class(self, module: str, name: str) -> Any:
        factory = _SAFE_GLOBALS.get((module, name))
        if factory is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR "
                                         "batch")
        if name == "ndarray":                  # called: ndarray(shape, dtype=float64, ...)
            return _BoundedNDArray(self._check)
        if name == "_reconstruct":             # _reconstruct(subtype, shape, dtype)
            reconstruct = factory()

            def checked(subtype: Any, shape: Any, dtype: Any) -> Any:
                self._check(shape, dtype)
                if isinstance(subtype, _BoundedNDArray):
                    subtype = np.ndarray
                return reconstruct(subtype, shape, dtype)
            return checked
        return factory()


class _BoundedNDArray:
    """``numpy.ndarray`` as a CIFAR pickle may use it: as ``_reconstruct``'s subtype argument,
    or called with a shape, which is checked against the file's size before allocating."""

    def __init__(self, check: Callable[[Any, Any], None]) -> None:
        self._checked = check

    def __call__(self, shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> Any:
        self._checked(shape, dtype)
        return np.ndarray(shape, dtype, *args, **kwargs)


def load_cifar_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle as a dict with str keys (the originals are Python 2 pickles)."""
    if not path.is_file():
        raise UserError(f"{path} is missing.", hint="The CIFAR folder is incomplete: download it "
                        "again with --download or restore the file.")
    data = path.read_bytes()
    try:
        raw = RestrictedUnpickler(io.BytesIO(data), max_bytes=len(data), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise _corrupt(path, str(exc)) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, OverflowError, RecursionError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(raw, dict):
        raise _corrupt(path, "not a dict of arrays")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in raw.items()}


def pixels_uint8(path: Path, data: Any) -> np.ndarray:
    """Stored pixels as uint8, refusing what a cast would silently ruin (floats in 0..1 would
    all become 0; 300 would wrap to 44)."""
    arr = np.asarray(data) if isinstance(data, (np.ndarray, list)) else None
    if arr is None or arr.dtype.kind not in "ui":
        kind = type(data).__name__ if arr is None else f"{arr.dtype} values"
        raise _corrupt(path, f"pixels must be integers 0..255 (uint8), found {kind}")
    if arr.dtype != np.uint8 and arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
        raise _corrupt(path, f"pixel values {int(arr.min())}..{int(arr.max())} are outside "
                             "0..255")
    return arr.astype(np.uint8, copy=False)


def label_array(path: Path, labels: Any) -> np.ndarray:
    """Labels as a 1-D int64 array; strings, None, floats or 2-D arrays are a clear error."""
    arr = np.asarray(labels) if isinstance(labels, (np.ndarray, list)) else None
    if arr is None or arr.dtype.kind not in "ui" or arr.ndim != 1:
        what = type(labels).__name__ if arr is None else f"{arr.dtype} array of shape {arr.shape}"
        raise _corrupt(path, f"labels must be a flat list of integers, found {what}")
    return arr.astype(np.int64)


def _cifar_split(paths: list[Path], label_key: str, num_classes: int) -> Split:
    images, labels = [], []
    for path in paths:
        batch = load_cifar_batch(path)
        if "data" not in batch or label_key not in batch:
            raise _corrupt(path, f"no 'data'/'{label_key}' entries")
        data = pixels_uint8(path, batch["data"])
        lab = label_array(path, batch[label_key])
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != lab.shape[0]:
            raise _corrupt(path, f"data of shape {data.shape} with {lab.shape[0]} labels")
        check_labels(path, lab, num_classes)
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(lab)
    return Split(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)))


def read_cifar10(root: Path) -> tuple[Split, Split]:
    base = root / "cifar-10-batches-py"
    train = _cifar_split([base / f"data_batch_{i}" for i in range(1, 6)], "labels", 10)
    return train, _cifar_split([base / "test_batch"], "labels", 10)


def read_cifar100(root: Path) -> tuple[Split, Split]:
    base = root / "cifar-100-python"
    return (_cifar_split([base / "train"], "fine_labels", 100),
            _cifar_split([base / "test"], "fine_labels", 100))


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
    except NotImplementedError:
        raise UserError(f"{path} is a MATLAB v7.3 (HDF5) file; mixkit reads the MATLAB v5 "
                        "files that SVHN is distributed as.",
                        hint="Download the original train_32x32.mat / test_32x32.mat "
                        "(--download), or re-save it as v5 (scipy.io.savemat).") from None
    except (MatReadError, ValueError, KeyError, OSError, TypeError, MemoryError) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise _corrupt(path, "X and y must be arrays")
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise _corrupt(path, f"X of shape {x.shape} with {y.size} labels")
    x = pixels_uint8(path, x)
    y = label_array(path, y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y)
    if y.size and (int(y.min()) < 1 or int(y.max()) > 10):      # SVHN's labels are 1..10
        bad = int(y.min()) if int(y.min()) < 1 else int(y.max())
        raise _corrupt(path, f"label {bad} is outside SVHN's 1..10 (10 stands for digit 0)")
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return Split(images, torch.from_numpy(y % 10))     # SVHN stores digit 0 as 10


def read_svhn(root: Path) -> tuple[Split, Split]:
    return _svhn_split(root / "train_32x32.mat"), _svhn_split(root / "test_32x32.mat")


# ------------------------------------------------------------------------------------------
# TinyImageNet folder
# ------------------------------------------------------------------------------------------


def decode_image(path: Path, size: int | None = None, decode=None) -> np.ndarray:
    """One image file as uint8 ``[3, H, W]`` RGB through ``decode(path)`` (default: the whole
    image, resized to ``size`` x ``size``; :mod:`mixkit.data.transforms` has the ImageNet
    crops). Whatever the file is — not an image, truncated, zero bytes, a header declaring
    50,000 x 50,000 pixels (refused before decoding), 16-bit pixels — the error is one
    paragraph naming it."""
    from PIL import Image, UnidentifiedImageError

    from mixkit.data.transforms import decode_squash

    try:
        return decode(path) if decode is not None else decode_squash(path, size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError,
            Image.DecompressionBombError) as exc:
        raise _corrupt(path, f"cannot decode image: {str(exc)[:200]}", hint=IMAGE_HINT) from None


def decode_many(paths: list[Path], size: int, threads: int = 8) -> torch.Tensor:
    """Decode files in a thread pool (PIL releases the GIL) into uint8 ``[N, 3, size, size]``."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        out[i] = decode_image(paths[i], size)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(len(paths))))
    return torch.from_numpy(out)


TINYIMAGENET_CLASSES = 200


def read_tinyimagenet(root: Path) -> tuple[Split, Split]:
    base = root / "tiny-imagenet-200"
    wnids_file = base / "wnids.txt"
    if not wnids_file.is_file():
        raise UserError(f"{wnids_file} is missing.",
                        hint="The tiny-imagenet-200 folder is incomplete; unpack the official "
                        "zip again (or re-run with --download).")
    wnids = [w.strip() for w in wnids_file.read_text().split() if w.strip()]
    if len(wnids) > TINYIMAGENET_CLASSES or len(set(wnids)) != len(wnids):
        raise _corrupt(wnids_file, f"it lists {len(wnids)} class ids ({len(set(wnids))} "
                                   f"distinct); TinyImageNet has {TINYIMAGENET_CLASSES} "
                                   "distinct ones")
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
# IDX (MNIST, Fashion-MNIST)
# ------------------------------------------------------------------------------------------

IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "val_images": "t10k-images-idx3-ubyte", "val_labels": "t10k-labels-idx1-ubyte"}
IDX_IMAGES, IDX_LABELS = 0x00000803, 0x00000801    # big-endian magic: 0, 0, dtype 0x08, ndim
GZIP_MAX_RATIO = 1100                                # deflate cannot expand beyond ~1032:1


def idx_file(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists (raw first)."""
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            return path
    return None


def _idx_stream(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes (LeCun's format) as a uint8 array of its declared dims.

    The header is checked before anything is allocated: the magic, and a declared size that
    the file (or, gzipped, its largest possible expansion) can actually hold. The payload must
    then be exactly that size: a truncated file or trailing bytes are errors.
    """
    kind = "images" if magic == IDX_IMAGES else "labels"
    try:
        with _idx_stream(path) as f:
            head = f.read(4)
            if len(head) < 4:
                raise _corrupt(path, "shorter than an IDX header")
            found = int.from_bytes(head, "big")
            if found != magic:
                raise _corrupt(path, f"magic number 0x{found:08x}, expected 0x{magic:08x} for "
                                     f"IDX {kind} of unsigned bytes")
            ndim = head[3]
            raw_dims = f.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise _corrupt(path, "header cut short")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            size = int(np.prod(dims, dtype=np.float64))
            limit = path.stat().st_size * (GZIP_MAX_RATIO if path.suffix == ".gz" else 1)
            if size > limit:
                raise _corrupt(path, f"the header declares {'x'.join(map(str, dims))} bytes of "
                                     f"data, more than the {path.stat().st_size}-byte file holds")
            data = f.read(size + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None
    if len(data) != size:
        what = "truncated" if len(data) < size else "longer than its header says"
        raise _corrupt(path, f"{what}: {len(data)} data bytes for dims "
                             f"{'x'.join(map(str, dims))}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _idx_split(folder: Path, images_stem: str, labels_stem: str, num_classes: int) -> Split:
    paths = [idx_file(folder, s) for s in (images_stem, labels_stem)]
    if None in paths:
        missing = images_stem if paths[0] is None else labels_stem
        raise UserError(f"{folder / missing}[.gz] is missing.",
                        hint="The folder needs all four IDX files; download it again with "
                        "--download or restore the file.")
    images, labels = read_idx(paths[0], IDX_IMAGES), read_idx(paths[1], IDX_LABELS)
    if images.ndim != 3 or labels.ndim != 1:
        raise _corrupt(paths[0] if images.ndim != 3 else paths[1],
                       f"images must be N x H x W and labels N; got {images.shape} and "
                       f"{labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise _corrupt(paths[1], f"{labels.shape[0]} labels for the {images.shape[0]} images "
                                 f"of {paths[0].name}")
    check_labels(paths[1], labels, num_classes)
    grey = torch.from_numpy(images.copy())[:, None].expand(-1, 3, -1, -1).contiguous()
    return Split(grey, torch.from_numpy(labels.astype(np.int64)))


def read_idx_dataset(folder: Path, num_classes: int = 10) -> tuple[Split, Split]:
    """MNIST-format train and test splits from ``folder`` (grey replicated to 3 channels)."""
    return (_idx_split(folder, IDX_FILES["train_images"], IDX_FILES["train_labels"],
                       num_classes),
            _idx_split(folder, IDX_FILES["val_images"], IDX_FILES["val_labels"], num_classes))


def check_labels(path: Path, labels: np.ndarray, num_classes: int) -> None:
    """Every label must be a class index in ``[0, num_classes)``."""
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels.max()) if int(labels.max()) >= num_classes else int(labels.min())
        raise _corrupt(path, f"label {bad} is outside the dataset's classes 0..{num_classes - 1}")


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
