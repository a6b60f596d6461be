"""Scan an image-folder tree: ``ROOT/[train|val/]<class>/*.{jpg,png,...}``.

With ``train/`` (and ``val/``, ``validation/`` or ``test/``) under the root, those are the
splits; otherwise the class folders sit directly under the root and a stratified, seeded
``val_fraction`` of them is held out for validation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mixkit.data.holdout import stratified_holdout
from mixkit.errors import UserError, shown_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
VAL_NAMES = ("val", "validation", "test")


class FileList:
    """A compact list of image files: one entry per class folder, then per file its folder's
    index and its name relative to it, in NumPy arrays (about 30-60 bytes a file for ImageNet's
    names, against ~500 for a list of ``Path`` objects). NumPy arrays are also safe to share
    with forked DataLoader workers: touching a Python list's items bumps their reference counts
    and copies every page into each worker, an array's buffer is never written."""

    def __init__(self, dirs: list[str], dir_index: np.ndarray, names: np.ndarray) -> None:
        self.dirs, self.dir_index, self.names = dirs, dir_index, names

    def __len__(self) -> int:
        return int(self.names.shape[0])

    def path(self, i: int) -> Path:
        name = self.names[i].decode("utf-8", "surrogateescape")
        return Path(self.dirs[int(self.dir_index[i])]) / name

    def __getitem__(self, i: int) -> Path:
        return self.path(i)

    def take(self, idx: list[int] | np.ndarray) -> "FileList":
        idx = np.asarray(idx, dtype=np.int64)
        return FileList(self.dirs, self.dir_index[idx], self.names[idx])

    @property
    def nbytes(self) -> int:
        return int(self.dir_index.nbytes + self.names.nbytes)


@dataclass
class FolderTree:
    classes: list[str]
    train: tuple[FileList, torch.Tensor]
    val: tuple[FileList, torch.Tensor]


def _class_dirs(root: Path) -> list[str]:
    with os.scandir(root) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _images_under(folder: str, special: list[str]) -> list[tuple[str, str]]:
    """(sub-folder, file name) of every image under ``folder``, recursively, sorted (folders
    first their files, then their sub-folders; links to folders are not followed).

    An entry is kept when it is a regular file (or a link to one), decided from the directory
    entry's type, which costs no system call for a plain file. An entry with an image name
    that is anything else (a FIFO, a socket, a device, a link to one, a dangling link) is
    appended to ``special``: opening a FIFO blocks forever and ``/dev/zero`` never ends."""
    out: list[tuple[str, str]] = []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    subdirs = []
    for e in entries:
        if _is(e.is_dir, follow_symlinks=False):
            subdirs.append(e.path)
        elif os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES:
            if _is(e.is_file):
                out.append((folder, e.name))
            elif not _is(e.is_dir):
                special.append(e.path)
    for d in subdirs:
        out += _images_under(d, special)
    return out


def _is(test, **kw) -> bool:
    try:
        return test(**kw)
    except OSError:                      # a link loop, a vanished entry: not a file we read
        return False


def _files(root: Path, classes: list[str]) -> tuple[FileList, torch.Tensor]:
    dirs: list[str] = []
    dir_of: dict[str, int] = {}
    index, names, labels = [], [], []
    special: list[str] = []
    for i, c in enumerate(classes):
        d = root / c
        for here, name in _images_under(str(d), special) if d.is_dir() else []:
            if here not in dir_of:
                dir_of[here] = len(dirs)
                dirs.append(here)
            index.append(dir_of[here])
            names.append(name.encode("utf-8", "surrogateescape"))
            labels.append(i)
    if special:
        shown = ", ".join(shown_path(p) for p in special[:3])
        raise UserError(f"the image folder {shown_path(root)} holds {len(special)} entr"
                        f"{'y' if len(special) == 1 else 'ies'} with an image name that "
                        f"{'is' if len(special) == 1 else 'are'} not a regular file (a FIFO, "
                        f"socket, device or dangling link): {shown}"
                        f"{', ...' if len(special) > 3 else ''}. mixkit reads regular files "
                        "only (opening a FIFO would wait forever).",
                        hint="Remove them or replace them with the image files.")
    files = FileList(dirs, np.asarray(index, dtype=np.int32),
                     np.asarray(names, dtype=np.bytes_) if names else np.zeros(0, "S1"))
    return files, torch.tensor(labels, dtype=torch.int64)


def scan_image_folder(root: Path, val_fraction: float) -> FolderTree:
    split_root = root / "train"
    if split_root.is_dir():
        classes = _class_dirs(split_root)
        train = _files(split_root, classes)
        val_dir = next((root / v for v in VAL_NAMES if (root / v).is_dir()), None)
        val = _files(val_dir, classes) if val_dir else None
    else:
        classes = _class_dirs(root)
        train, val = _files(root, classes), None
    if len(classes) < 2 or len(train[0]) == 0:
        raise UserError(f"the image folder {root} has {len(classes)} class folder(s) and "
                        f"{len(train[0])} image(s); training needs at least 2 classes with "
                        "images.", hint="Lay it out as ROOT/<class>/*.jpg (optionally under "
                        "train/ and val/).")
    counts = torch.bincount(train[1], minlength=len(classes)).tolist()
    empty = [c for c, n in zip(classes, counts) if n == 0]
    if empty:
        raise UserError(f"the image folder {root} has class folder(s) with no training images: "
                        f"{', '.join(empty[:5])} (looked for "
                        f"{', '.join(sorted(IMAGE_SUFFIXES))} files).",
                        hint="Add images to them or remove the empty class folders; a class "
                        "with no examples cannot be learned.")
    if val is None:
        tr, va = stratified_holdout(train[1], val_fraction, seed=0)
        files = train[0]
        val = (files.take(va.numpy()), train[1][va])
        train = (files.take(tr.numpy()), train[1][tr])
        if len(train[0]) == 0:
            raise UserError(f"the image folder {shown_path(root)} has {len(val[0])} image(s) "
                            f"and no train/ folder; holding out --val-fraction {val_fraction:g} "
                            "for validation leaves no training image.",
                            hint="Add images, lower --val-fraction, or split them into "
                            "train/ and val/ yourself.")
    if len(val[0]) == 0:
        raise UserError(f"the image folder {root} has an empty validation split.",
                        hint="Put images under val/<class>/ or remove the empty val/ folder.")
    return FolderTree(classes, train, val)


IMAGENET_CLASSES = 1000


def check_imagenet(root: Path) -> None:
    """The two common mistakes with an ImageNet tree, as one paragraph each: the official
    validation archive unpacked flat (50,000 files, no class folders), and a tree with another
    number of classes (a subset is an ``imagefolder``)."""
    train, val = root / "train", root / "val"
    classes = _class_dirs(train)
    if len(classes) != IMAGENET_CLASSES:
        raise UserError(f"{train} has {len(classes)} class folders; ImageNet-1k has "
                        f"{IMAGENET_CLASSES} (one per wnid, e.g. n01440764).",
                        hint="For a subset or another tree of this layout use --data "
                        f"imagefolder --data-dir {root}.")
    if not val.is_dir():
        raise UserError(f"{root} has no val/ folder; ImageNet is evaluated on its 50,000 "
                        "validation images.", hint="Unpack ILSVRC2012_img_val.tar into val/ and "
                        "sort it into wnid folders (below).")
    with os.scandir(val) as it:
        entries = list(it)
    flat = sum(e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
               for e in entries)
    if flat and not any(e.is_dir() for e in entries):
        raise UserError(f"{val} holds {flat:,} images but no class folders: the official "
                        "validation archive unpacks flat, and mixkit needs val/<wnid>/*.JPEG "
                        "to know each image's class.",
                        hint="Move each image into its wnid folder with the devkit's ground "
                        "truth (e.g. the `valprep.sh` script of PyTorch's ImageNet example, or "
                        "LOC_val_solution.csv from Kaggle's copy), then re-run.")
