"""Datasets by name: where each lives under the data root, how it is read and downloaded.

The data root is ``--data-dir``, else ``$MIXKIT_DATA_DIR``, else the user cache dir
(``platformdirs.user_cache_dir("mixkit")/data``). Under it the layouts are torchvision's, so a
root that torchvision already filled works as it is.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mixkit.data import formats
from mixkit.errors import UserError

TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


@dataclass(frozen=True)
class DatasetSpec:
    """What mixkit knows about one dataset name."""

    name: str
    description: str
    layout: str                      # what must exist under the root, for messages
    num_classes: int | None          # None: read from the data (imagefolder)
    native_size: int | None          # stored resolution; None: varies (imagefolder)
    default_img_size: int
    hflip: bool                      # does a horizontal flip keep the class?
    in_memory: bool                  # device-resident uint8 store vs streamed DataLoader
    needs_root: bool = True
    marker: tuple[str, ...] = ()     # paths under the root whose presence means "found"
    downloadable: bool = False


SPECS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("digits", "scikit-learn's 1,797 real 8x8 handwritten digits (embedded)",
                "shipped inside scikit-learn", 10, 8, 32, False, True, needs_root=False),
    DatasetSpec("cifar10", "CIFAR-10, 50k/10k 32x32 colour images, 10 classes",
                "cifar-10-batches-py/ (python pickles)", 10, 32, 32, True, True,
                marker=("cifar-10-batches-py",), downloadable=True),
    DatasetSpec("cifar100", "CIFAR-100, 50k/10k 32x32 colour images, 100 fine classes",
                "cifar-100-python/ (python pickles)", 100, 32, 32, True, True,
                marker=("cifar-100-python",), downloadable=True),
    DatasetSpec("svhn", "SVHN cropped digits, 73k/26k 32x32 images, 10 classes",
                "train_32x32.mat + test_32x32.mat", 10, 32, 32, False, True,
                marker=("train_32x32.mat", "test_32x32.mat"), downloadable=True),
    DatasetSpec("tinyimagenet", "TinyImageNet, 100k/10k 64x64 images, 200 classes",
                "tiny-imagenet-200/ (wnids.txt, train/, val/val_annotations.txt)", 200, 64, 64,
                True, True, marker=("tiny-imagenet-200",), downloadable=True),
    DatasetSpec("imagefolder", "any ROOT/[train|val/]<class>/*.jpg tree, streamed",
                "<class>/ folders of images (optionally under train/ and val/)", None, None, 64,
                True, False),
    DatasetSpec("synthetic", "procedural patterns, 10 classes (smoke tests only)",
                "generated", 10, 32, 32, True, True, needs_root=False),
)}


def get_spec(name: str, flag: str = "--data") -> DatasetSpec:
    if name not in SPECS:
        close = difflib.get_close_matches(name, list(SPECS), n=3, cutoff=0.4)
        hint = f"Did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown dataset `{name}` ({flag}).",
                        hint=f"{hint}Known: {', '.join(SPECS)} (`mixkit datasets` lists them).")
    return SPECS[name]


def default_root() -> Path:
    env = os.environ.get("MIXKIT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mixkit")) / "data"


def resolve_root(data_dir: str | None) -> tuple[Path, str]:
    """The data root and where it came from (for messages)."""
    if data_dir:
        return Path(data_dir).expanduser(), "--data-dir"
    if os.environ.get("MIXKIT_DATA_DIR"):
        return default_root(), "$MIXKIT_DATA_DIR"
    return default_root(), "the user cache dir"


def is_present(spec: DatasetSpec, root: Path) -> bool:
    if not spec.needs_root:
        return True
    if spec.name == "imagefolder":
        return root.is_dir() and any(p.is_dir() for p in root.iterdir())
    return all((root / m).exists() for m in spec.marker)


def missing_error(spec: DatasetSpec, root: Path, source: str, command: str) -> UserError:
    if spec.name == "imagefolder":
        return UserError(
            f"no image folder found at {root} (from {source}): imagefolder expects "
            f"{spec.layout}.",
            hint=f"Point --data-dir at the tree, e.g. `mixkit {command} --data imagefolder "
            "--data-dir /path/to/images`.")
    return UserError(
        f"dataset `{spec.name}` was not found under {root} (from {source}): mixkit looked for "
        f"{', '.join(str(root / m) for m in spec.marker)} ({spec.layout}).",
        hint=f"Download it with `mixkit {command} --data {spec.name} --data-dir {root} "
        "--download`, or point --data-dir / $MIXKIT_DATA_DIR at a folder that has it.")


def download(spec: DatasetSpec, root: Path) -> None:
    """Fetch a dataset into ``root`` with torchvision's downloaders (needs internet)."""
    root.mkdir(parents=True, exist_ok=True)
    actions: dict[str, Callable[[], object]] = {
        "cifar10": lambda: _tv("CIFAR10")(str(root), download=True),
        "cifar100": lambda: _tv("CIFAR100")(str(root), download=True),
        "svhn": lambda: [_tv("SVHN")(str(root), split=s, download=True)
                         for s in ("train", "test")],
        "tinyimagenet": lambda: _download_tinyimagenet(root),
    }
    if spec.name not in actions:
        raise UserError(f"dataset `{spec.name}` cannot be downloaded (--download).",
                        hint="Drop --download; see `mixkit datasets`.")
    try:
        actions[spec.name]()
    except (OSError, RuntimeError) as exc:
        raise UserError(f"downloading `{spec.name}` into {root} failed: {exc}.",
                        hint="Check the network, or download it elsewhere and copy it into "
                        "the data root.") from None


def _tv(name: str):
    import torchvision.datasets as tvd

    return getattr(tvd, name)


def _download_tinyimagenet(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(TINYIMAGENET_URL, str(root))


READERS: dict[str, Callable[[Path], tuple[formats.Split, formats.Split]]] = {
    "cifar10": formats.read_cifar10,
    "cifar100": formats.read_cifar100,
    "svhn": formats.read_svhn,
    "tinyimagenet": formats.read_tinyimagenet,
}
