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


Splits = tuple[formats.Split, formats.Split]


def _markers(spec: "DatasetSpec", root: Path) -> Path | None:
    """Found when every marker path exists under ``root``; the root is what is read."""
    return root if all((root / m).exists() for m in spec.marker) else None


def _idx_folder(spec: "DatasetSpec", root: Path) -> Path | None:
    """The first candidate folder holding the four IDX files (raw or .gz)."""
    from mixkit.data.formats import IDX_FILES, idx_file

    return next((f for f in spec.candidates(root) if all(
        idx_file(f, stem) is not None for stem in IDX_FILES.values())), None)


def _class_tree(spec: "DatasetSpec", root: Path) -> Path | None:
    """Any folder with sub-folders (the classes, or train/ and val/)."""
    return root if root.is_dir() and any(p.is_dir() for p in root.iterdir()) else None


def _train_tree(spec: "DatasetSpec", root: Path) -> Path | None:
    """The first candidate with a train/ folder (val/ is checked when read)."""
    return next((f.resolve() for f in spec.candidates(root) if (f / "train").is_dir()), None)


def _embedded(spec: "DatasetSpec", root: Path) -> Path | None:
    return root


def _torchvision(cls: str, splits: tuple[str, ...] = ()) -> Callable[[Path], None]:
    """A downloader through torchvision's dataset class ``cls`` (once per split in
    ``splits``, where the class takes ``split=``)."""
    def fetch(root: Path) -> None:
        import torchvision.datasets as tvd

        for split in splits or (None,):
            extra = {"split": split} if split else {}
            getattr(tvd, cls)(str(root), download=True, **extra)
    return fetch


def _fetch_tinyimagenet(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(TINYIMAGENET_URL, str(root))


def _read_digits(root: Path | None, val_fraction: float) -> Splits:
    from mixkit.data.holdout import stratified_holdout

    images, labels = formats.read_digits()
    tr, va = stratified_holdout(labels, val_fraction, seed=0)
    return formats.Split(images[tr], labels[tr]), formats.Split(images[va], labels[va])


def _read_synthetic(root: Path | None, val_fraction: float) -> Splits:
    return (formats.make_synthetic(1000, 10, 32, seed=1),
            formats.make_synthetic(200, 10, 32, seed=2))


def _file_reader(read: Callable[[Path], Splits]) -> Callable[[Path | None, float], Splits]:
    """A reader of files with their own train/test split (``val_fraction`` is not used)."""
    def reader(root: Path | None, val_fraction: float) -> Splits:
        assert root is not None
        return read(root)
    reader.__doc__ = read.__doc__
    return reader


def _check_imagenet(root: Path) -> None:
    from mixkit.data.folder import check_imagenet

    check_imagenet(root)


@dataclass(frozen=True)
class DatasetSpec:
    """What mixkit knows about one dataset name, and how to find, read and fetch it: a new
    dataset or format is one entry in :data:`SPECS` (``register_dataset``)."""

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
    # IDX datasets: folders under a root that may hold the four files (raw or .gz), in order
    folders: tuple[str, ...] = ()
    apt_package: str | None = None   # a Debian package that installs it system-wide
    # grow to a slightly larger --img-size (28 -> 32) by zero padding, not by resizing
    pad_to_size: bool = False
    # where under a root it is (None: not there); what it returns is what ``read`` reads
    locate_in: Callable[["DatasetSpec", Path], Path | None] = _markers
    # in-memory data: (train, validation) splits from what ``locate_in`` gave, and
    # --val-fraction for a dataset without its own validation split
    read: Callable[[Path | None, float], Splits] | None = None
    # --download: fetch it into a data root (None: it cannot be downloaded)
    fetch: Callable[[Path], None] | None = None
    # a streamed tree's own checks before it is read (ImageNet's val/ layout)
    check: Callable[[Path], None] | None = None
    # only ever the --data-dir itself (no search of the default roots)
    at_data_dir: bool = False
    # how to get it when it is missing and cannot be downloaded (a "not found" hint)
    obtain: str | None = None

    @property
    def downloadable(self) -> bool:
        return self.fetch is not None

    def candidates(self, root: Path) -> list[Path]:
        """The paths under ``root`` that mixkit checks for this dataset (for messages)."""
        if self.folders:
            return [root / f for f in self.folders]
        return [root / m for m in self.marker]


SPECS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
    """Make ``spec`` a ``--data`` name."""
    if spec.name in SPECS and not replace:
        raise ValueError(f"dataset {spec.name!r} is registered already (replace=True)")
    SPECS[spec.name] = spec
    return spec


for _spec in (
    DatasetSpec("digits", "scikit-learn's 1,797 real 8x8 handwritten digits (embedded)",
                "shipped inside scikit-learn", 10, 8, 32, False, True, needs_root=False,
                locate_in=_embedded, read=_read_digits),
    DatasetSpec("cifar10", "CIFAR-10, 50k/10k 32x32 colour images, 10 classes",
                "cifar-10-batches-py/ (python pickles)", 10, 32, 32, True, True,
                marker=("cifar-10-batches-py",), read=_file_reader(formats.read_cifar10),
                fetch=_torchvision("CIFAR10")),
    DatasetSpec("cifar100", "CIFAR-100, 50k/10k 32x32 colour images, 100 fine classes",
                "cifar-100-python/ (python pickles)", 100, 32, 32, True, True,
                marker=("cifar-100-python",), read=_file_reader(formats.read_cifar100),
                fetch=_torchvision("CIFAR100")),
    DatasetSpec("svhn", "SVHN cropped digits, 73k/26k 32x32 images, 10 classes",
                "train_32x32.mat + test_32x32.mat", 10, 32, 32, False, True,
                marker=("train_32x32.mat", "test_32x32.mat"),
                read=_file_reader(formats.read_svhn),
                fetch=_torchvision("SVHN", splits=("train", "test"))),
    DatasetSpec("tinyimagenet", "TinyImageNet, 100k/10k 64x64 images, 200 classes",
                "tiny-imagenet-200/ (wnids.txt, train/, val/val_annotations.txt)", 200, 64, 64,
                True, True, marker=("tiny-imagenet-200",),
                read=_file_reader(formats.read_tinyimagenet), fetch=_fetch_tinyimagenet),
    DatasetSpec("fashionmnist", "Fashion-MNIST, 60k/10k 28x28 grey clothing images, 10 classes",
                "the four IDX files (train-images-idx3-ubyte, ...; raw or .gz)", 10, 28, 32,
                True, True, folders=("FashionMNIST/raw", "fashion-mnist"),
                apt_package="dataset-fashion-mnist", pad_to_size=True, locate_in=_idx_folder,
                read=_file_reader(formats.read_idx_dataset),
                fetch=_torchvision("FashionMNIST")),
    DatasetSpec("mnist", "MNIST, 60k/10k 28x28 grey handwritten digits, 10 classes",
                "the four IDX files (train-images-idx3-ubyte, ...; raw or .gz)", 10, 28, 32,
                False, True, folders=("MNIST/raw", "mnist"), pad_to_size=True,
                locate_in=_idx_folder, read=_file_reader(formats.read_idx_dataset),
                fetch=_torchvision("MNIST")),
    DatasetSpec("imagefolder", "any ROOT/[train|val/]<class>/*.jpg tree, streamed",
                "<class>/ folders of images (optionally under train/ and val/)", None, None, 64,
                True, False, locate_in=_class_tree, at_data_dir=True),
    DatasetSpec("imagenet", "ImageNet-1k (ILSVRC2012), 1.28M/50k JPEGs, 1,000 classes, "
                "streamed", "imagenet/train/<wnid>/*.JPEG and imagenet/val/<wnid>/*.JPEG",
                1000, None, 224, True, False, folders=("imagenet", "ILSVRC/Data/CLS-LOC", "."),
                locate_in=_train_tree, check=_check_imagenet,
                obtain="put its train/ and val/ under {root}/imagenet (it cannot be "
                       "downloaded for you: image-net.org requires a registration)"),
    DatasetSpec("synthetic", "procedural patterns, 10 classes (smoke tests only)",
                "generated", 10, 32, 32, True, True, needs_root=False, locate_in=_embedded,
                read=_read_synthetic),
):
    register_dataset(_spec)


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


def locate(spec: DatasetSpec, root: Path) -> Path | None:
    """Where under ``root`` the dataset is (the root itself, or its own folder), else None."""
    return spec.locate_in(spec, root)


def find(spec: DatasetSpec, data_dir: str | None) -> Path | None:
    """The first place in :func:`search_roots` that holds ``spec`` (as :func:`locate` gives)."""
    for root, _ in search_roots(data_dir):
        where = locate(spec, root)
        if where is not None:
            return where
    return None


def missing_error(spec: DatasetSpec, data_dir: str | None, command: str) -> UserError:
    root, source = resolve_root(data_dir)
    if spec.at_data_dir:
        return UserError(
            f"no image folder found at {root} (from {source}): imagefolder expects "
            f"{spec.layout}.",
            hint=f"Point --data-dir at the tree, e.g. `mixkit {command} --data {spec.name} "
            "--data-dir /path/to/images`.")
    looked = [str(p) for r, _ in search_roots(data_dir) for p in spec.candidates(r)]
    ways = []
    if spec.apt_package:
        ways.append(f"install it system-wide with `apt-get install {spec.apt_package}`")
    if spec.downloadable:
        ways.append(f"download it with `mixkit {command} --data {spec.name} --data-dir {root} "
                    "--download`")
    elif spec.obtain:
        ways.append(spec.obtain.format(root=root))
    ways.append("point --data-dir / $MIXKIT_DATA_DIR at a folder that has it")
    return UserError(
        f"dataset `{spec.name}` was not found (data root {root}, from {source}): mixkit looked "
        f"for {', '.join(looked)} ({spec.layout}).",
        hint=f"{'; or '.join(ways).capitalize()}. `mixkit datasets` shows where it looks.")


def download(spec: DatasetSpec, root: Path) -> None:
    """Fetch a dataset into ``root`` (``spec.fetch``: torchvision's downloaders; needs
    internet)."""
    if spec.fetch is None:
        raise UserError(f"dataset `{spec.name}` cannot be downloaded (--download).",
                        hint="Drop --download; see `mixkit datasets`.")
    root.mkdir(parents=True, exist_ok=True)
    try:
        spec.fetch(root)
    except (OSError, RuntimeError) as exc:
        raise UserError(f"downloading `{spec.name}` into {root} failed: {exc}.",
                        hint="Check the network, or download it elsewhere and copy it into "
                        "the data root.") from None
