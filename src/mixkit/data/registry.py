"""Datasets by name: where each lives under the data root, how it is read and downloaded.

Where mixkit looks, in order (``docs/data.md``):

1. ``--data-dir`` given explicitly: that folder alone (what a user points at is what is used);
2. otherwise ``$MIXKIT_DATA_DIR``, else the user cache dir
   (``platformdirs.user_cache_dir("mixkit")/data``),
3. then the system dataset folders, ``$MIXKIT_SYSTEM_DATA_DIRS`` (``os.pathsep``-separated),
   default ``/usr/share/datasets`` (where Debian's ``dataset-*`` packages install).

The first root that holds a dataset wins. Under a root the layouts are torchvision's, so a root
that torchvision already filled works as it is; the IDX datasets (MNIST, Fashion-MNIST) are also
found in their upstream layout (the four files in ``fashion-mnist/`` or ``mnist/``).
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
    # IDX datasets: folders under a root that may hold the four files (raw or .gz), in order
    folders: tuple[str, ...] = ()
    apt_package: str | None = None   # a Debian package that installs it system-wide
    # grow to a slightly larger --img-size (28 -> 32) by zero padding, not by resizing
    pad_to_size: bool = False

    def candidates(self, root: Path) -> list[Path]:
        """The paths under ``root`` that mixkit checks for this dataset (for messages)."""
        if self.folders:
            return [root / f for f in self.folders]
        return [root / m for m in self.marker]


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
    DatasetSpec("fashionmnist", "Fashion-MNIST, 60k/10k 28x28 grey clothing images, 10 classes",
                "the four IDX files (train-images-idx3-ubyte, ...; raw or .gz)", 10, 28, 32,
                True, True, downloadable=True, folders=("FashionMNIST/raw", "fashion-mnist"),
                apt_package="dataset-fashion-mnist", pad_to_size=True),
    DatasetSpec("mnist", "MNIST, 60k/10k 28x28 grey handwritten digits, 10 classes",
                "the four IDX files (train-images-idx3-ubyte, ...; raw or .gz)", 10, 28, 32,
                False, True, downloadable=True, folders=("MNIST/raw", "mnist"), pad_to_size=True),
    DatasetSpec("imagefolder", "any ROOT/[train|val/]<class>/*.jpg tree, streamed",
                "<class>/ folders of images (optionally under train/ and val/)", None, None, 64,
                True, False),
    DatasetSpec("imagenet", "ImageNet-1k (ILSVRC2012), 1.28M/50k JPEGs, 1,000 classes, "
                "streamed", "imagenet/train/<wnid>/*.JPEG and imagenet/val/<wnid>/*.JPEG",
                1000, None, 224, True, False, folders=("imagenet", "ILSVRC/Data/CLS-LOC", ".")),
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


SYSTEM_DATA_DIRS = "/usr/share/datasets"


def system_roots() -> list[Path]:
    """The system dataset folders (``$MIXKIT_SYSTEM_DATA_DIRS``, default /usr/share/datasets)."""
    value = os.environ.get("MIXKIT_SYSTEM_DATA_DIRS", SYSTEM_DATA_DIRS)
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p]


def resolve_root(data_dir: str | None) -> tuple[Path, str]:
    """The data root (where downloads go) and where it came from (for messages)."""
    if data_dir:
        return Path(data_dir).expanduser(), "--data-dir"
    if os.environ.get("MIXKIT_DATA_DIR"):
        return default_root(), "$MIXKIT_DATA_DIR"
    return default_root(), "the user cache dir"


def search_roots(data_dir: str | None) -> list[tuple[Path, str]]:
    """Every root mixkit looks in, in order, with where each came from.

    An explicit ``--data-dir`` is the only root; otherwise the default root, then the system
    dataset folders.
    """
    root, source = resolve_root(data_dir)
    if data_dir:
        return [(root, source)]
    return [(root, source)] + [(r, "the system dataset folder") for r in system_roots()]


def _idx_complete(folder: Path) -> bool:
    from mixkit.data.formats import IDX_FILES, idx_file

    return all(idx_file(folder, stem) is not None for stem in IDX_FILES.values())


def locate(spec: DatasetSpec, root: Path) -> Path | None:
    """Where under ``root`` the dataset is (the root itself, or an IDX folder), else None."""
    if not spec.needs_root:
        return root
    if spec.name == "imagefolder":
        return root if root.is_dir() and any(p.is_dir() for p in root.iterdir()) else None
    if spec.name == "imagenet":           # a tree with train/ (val/ is checked when read)
        return next((f.resolve() for f in spec.candidates(root) if (f / "train").is_dir()),
                    None)
    if spec.folders:
        return next((f for f in spec.candidates(root) if _idx_complete(f)), None)
    return root if all((root / m).exists() for m in spec.marker) else None


def find(spec: DatasetSpec, data_dir: str | None) -> Path | None:
    """The first place in :func:`search_roots` that holds ``spec`` (as :func:`locate` gives)."""
    for root, _ in search_roots(data_dir):
        where = locate(spec, root)
        if where is not None:
            return where
    return None


def missing_error(spec: DatasetSpec, data_dir: str | None, command: str) -> UserError:
    root, source = resolve_root(data_dir)
    if spec.name == "imagefolder":
        return UserError(
            f"no image folder found at {root} (from {source}): imagefolder expects "
            f"{spec.layout}.",
            hint=f"Point --data-dir at the tree, e.g. `mixkit {command} --data imagefolder "
            "--data-dir /path/to/images`.")
    looked = [str(p) for r, _ in search_roots(data_dir) for p in spec.candidates(r)]
    ways = []
    if spec.apt_package:
        ways.append(f"install it system-wide with `apt-get install {spec.apt_package}`")
    if spec.downloadable:
        ways.append(f"download it with `mixkit {command} --data {spec.name} --data-dir {root} "
                    "--download`")
    elif spec.name == "imagenet":
        ways.append(f"put its train/ and val/ under {root / 'imagenet'} (it cannot be "
                    "downloaded for you: image-net.org requires a registration)")
    ways.append("point --data-dir / $MIXKIT_DATA_DIR at a folder that has it")
    return UserError(
        f"dataset `{spec.name}` was not found (data root {root}, from {source}): mixkit looked "
        f"for {', '.join(looked)} ({spec.layout}).",
        hint=f"{'; or '.join(ways).capitalize()}. `mixkit datasets` shows where it looks.")


def download(spec: DatasetSpec, root: Path) -> None:
    """Fetch a dataset into ``root`` with torchvision's downloaders (needs internet)."""
    root.mkdir(parents=True, exist_ok=True)
    actions: dict[str, Callable[[], object]] = {
        "cifar10": lambda: _tv("CIFAR10")(str(root), download=True),
        "cifar100": lambda: _tv("CIFAR100")(str(root), download=True),
        "svhn": lambda: [_tv("SVHN")(str(root), split=s, download=True)
                         for s in ("train", "test")],
        "tinyimagenet": lambda: _download_tinyimagenet(root),
        "fashionmnist": lambda: _tv("FashionMNIST")(str(root), download=True),
        "mnist": lambda: _tv("MNIST")(str(root), download=True),
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


# each reader takes what :func:`locate` returned: the root, or an IDX dataset's own folder
READERS: dict[str, Callable[[Path], tuple[formats.Split, formats.Split]]] = {
    "cifar10": formats.read_cifar10,
    "cifar100": formats.read_cifar100,
    "svhn": formats.read_svhn,
    "tinyimagenet": formats.read_tinyimagenet,
    "fashionmnist": formats.read_idx_dataset,
    "mnist": formats.read_idx_dataset,
}
