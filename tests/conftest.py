"""Fixtures that write small datasets in their real on-disk formats (nothing is downloaded)."""

from __future__ import annotations

import pickle
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mixkit.cli import main


def _share_the_cores() -> None:
    """Under ``pytest -n N`` (pytest-xdist) each worker gets its share of this process's CPUs
    for torch's intra-op threads, and so do the training processes a test launches (through
    ``OMP_NUM_THREADS``): N workers x all cores each would oversubscribe the machine."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        torch.set_num_threads(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))


_share_the_cores()


def run_cli(args: list[str], capsys, callbacks=()) -> tuple[int, str, str]:
    """Run ``mixkit ARGS`` in-process: (exit code, stdout, stderr); ``callbacks``: factories of
    engine callbacks attached to every arm (``mixkit.cli.main``'s public seam)."""
    try:
        main(args, callbacks=callbacks)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def write_cifar_batch(path: Path, data: np.ndarray, labels: list[int], label_key: bytes) -> None:
    """A CIFAR batch as the originals are: a dict with bytes keys, pickled (protocol 2)."""
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"test", label_key: labels, b"data": data}, f, protocol=2)


def rng_images(rng: np.random.Generator, n: int, size: int = 32) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for i in range(1, 6):
        imgs = rng_images(rng, 8)
        write_cifar_batch(base / f"data_batch_{i}", imgs.reshape(8, -1),
                          [(i + k) % 10 for k in range(8)], b"labels")
    imgs = rng_images(rng, 10)
    write_cifar_batch(base / "test_batch", imgs.reshape(10, -1), list(range(10)), b"labels")
    return tmp_path


@pytest.fixture
def cifar100_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    write_cifar_batch(base / "train", rng_images(rng, 40).reshape(40, -1),
                      [k % 100 for k in range(0, 400, 10)], b"fine_labels")
    write_cifar_batch(base / "test", rng_images(rng, 10).reshape(10, -1),
                      list(range(0, 100, 10)), b"fine_labels")
    return tmp_path


def write_svhn(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """SVHN's .mat layout: X [32, 32, 3, N] uint8, y [N, 1] with digit 0 stored as 10."""
    import scipy.io

    y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
    scipy.io.savemat(str(path), {"X": images.transpose(2, 3, 1, 0), "y": y})


@pytest.fixture
def svhn_root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(2)
    write_svhn(tmp_path / "train_32x32.mat", rng_images(rng, 30), np.arange(30) % 10)
    write_svhn(tmp_path / "test_32x32.mat", rng_images(rng, 10), np.arange(10))
    return tmp_path


def solid_jpeg(path: Path, colour: tuple[int, int, int], size: int = 64) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, quality=95)


TINY_WNIDS = ["n01443537", "n01629819", "n01641577"]


@pytest.fixture
def tinyimagenet_root(tmp_path: Path) -> Path:
    base = tmp_path / "tiny-imagenet-200"
    base.mkdir()
    (base / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    lines = []
    for c, wnid in enumerate(TINY_WNIDS):
        for k in range(6):
            solid_jpeg(base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", (80 * c, 40, 200))
        for k in range(2):
            name = f"val_{c * 2 + k}.JPEG"
            solid_jpeg(base / "val" / "images" / name, (80 * c, 40, 200))
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def solid_png(path: Path, colour: tuple[int, int, int], size: int = 20) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path)


@pytest.fixture
def imagefolder_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    for c, name in enumerate(["cat", "dog"]):
        for k in range(10):
            solid_png(root / "train" / name / f"{k}.png", (200 * c, 30 + k, 90))
        for k in range(3):
            solid_png(root / "val" / name / f"{k}.png", (200 * c, 30 + k, 90))
    return root


@pytest.fixture(autouse=True)
def no_system_datasets(monkeypatch, tmp_path_factory) -> None:
    """Tests never see datasets installed on the machine (/usr/share/datasets)."""
    monkeypatch.setenv("MIXKIT_SYSTEM_DATA_DIRS",
                       str(tmp_path_factory.mktemp("no-system-datasets")))


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """LeCun's IDX format by hand: 0, 0, dtype 0x08 (ubyte), ndim, big-endian dims, bytes."""
    import gzip
    import struct

    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_idx_dataset(folder: Path, n_train: int = 20, n_val: int = 10, size: int = 28,
                      gz: bool = True, seed: int = 3) -> dict[str, np.ndarray]:
    """The four MNIST-format files in ``folder``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_val, size, size), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_val)[::-1] % 10).astype(np.uint8),
    }
    for stem, arr in arrays.items():
        write_idx(folder / stem, arr, gz)
    return arrays


@pytest.fixture
def fashionmnist_root(tmp_path: Path) -> Path:
    """torchvision's layout: ROOT/FashionMNIST/raw/*-ubyte.gz."""
    write_idx_dataset(tmp_path / "FashionMNIST" / "raw")
    return tmp_path


@pytest.fixture
def host_reads(monkeypatch) -> dict[str, int]:
    """Counts device->host reads made *by mixkit's code* (``.item()``, ``.tolist()``, ``float()``,
    ``int()``, ``bool()``, ``.cpu()`` on a tensor; torch.optim internals are not counted):
    ``host_reads["n"]``, reset it to 0 before the part to measure."""
    import sys

    reads = {"n": 0}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "cpu"):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, **k):
            reads["n"] += sys._getframe(1).f_globals.get("__name__", "").startswith("mixkit")
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


# aten ops after which a CUDA host waits for the device (what torch.cuda.set_sync_debug_mode
# rejects), recognisable on any device: the data-dependent shapes and the scalar reads
SYNCING_OPS = {"_local_scalar_dense": "a scalar read (.item(), float(), int(), bool(), if t:)",
               "nonzero": "nonzero / torch.where(cond) / argwhere",
               "masked_select": "masked_select", "_unique": "unique", "_unique2": "unique",
               "unique_dim": "unique", "unique_consecutive": "unique_consecutive",
               "bincount": "bincount (its length is data-dependent)",
               "equal": "torch.equal", "is_nonzero": "a truth test of a tensor"}
INDEXING_OPS = {"index", "index_put", "index_put_", "_index_put_impl_"}


def _sync_reason(func, args: tuple, kwargs: dict) -> str | None:
    """Why ``func(*args, **kwargs)`` would block the host on CUDA, or None."""
    name = func.overloadpacket.__name__
    if name in SYNCING_OPS:
        return SYNCING_OPS[name]
    if name == "repeat_interleave" and func._overloadname == "Tensor" \
            and kwargs.get("output_size") is None:
        return "repeat_interleave with tensor repeats and no output_size"
    if name in INDEXING_OPS and any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool,
                                                                                 torch.uint8)
                                    for i in args[1] if i is not None):
        return "boolean-mask indexing (a hidden nonzero)"
    if name in ("lift_fresh", "lift_fresh_copy") and args[0].dim() > 0:
        return "a tensor built from Python data (a blocking host-to-device copy on CUDA)"
    return None


class SyncDetector(TorchDispatchMode):
    """A dispatch mode that appends to ``found`` each op :func:`_sync_reason` names, with the
    mixkit frames it came from (``with SyncDetector(found): ...``)."""

    def __init__(self, found: list[str]) -> None:
        super().__init__()
        self.found = found

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        why = _sync_reason(func, args, kwargs)
        if why:
            frames = [f for f in traceback.extract_stack()[:-1] if "mixkit" in f.filename]
            self.found.append(f"{func}: {why} at " + " <- ".join(
                f"{Path(f.filename).name}:{f.lineno}" for f in frames[::-1][:4]))
        return func(*args, **kwargs)


@pytest.fixture
def syncing_ops(monkeypatch) -> list[str]:
    """CUDA's sync debug mode, emulated on the CPU: every aten op run inside ``Engine._step`` or
    ``_Source._assemble`` (the places ``tests/test_cuda.py`` guards with the real thing) that
    would make a CUDA host wait is appended to the returned list, with where it came from.

    What it cannot see on a CPU: ``.cpu()`` / ``.tolist()`` (no-ops here; ``host_reads`` counts
    them) and a CPU tensor copied to the device (one device here; ``test_cuda.py`` catches it).

    Why a private hook is the right tool here (issue #43): the invariant is about the engine's
    own per-batch code, and these two functions are exactly that code — the boundaries the real
    check (``torch.cuda.set_sync_debug_mode`` in ``test_cuda.py``) uses too. An event window a
    public callback could open (epoch start to epoch end) would also hold the once-per-epoch
    reads that are allowed, and a public "wrap every step" parameter would exist only for this
    test. The public API's ``loss`` is checked through its public call instead
    (``test_api.py``).
    """
    from mixkit.data.sources import _Source
    from mixkit.engine.loop import Engine

    found: list[str] = []

    def guarded(fn):
        def wrapped(*a, **k):
            with SyncDetector(found):
                return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(Engine, "_step", guarded(Engine._step))
    monkeypatch.setattr(_Source, "_assemble", guarded(_Source._assemble))
    return found
