"""Scan an image-folder tree: ``ROOT/[train|val/]<class>/*.{jpg,png,...}``.

With ``train/`` (and ``val/``, ``validation/`` or ``test/``) under the root, those are the
splits; otherwise the class folders sit directly under the root and a stratified, seeded
``val_fraction`` of them is held out for validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mixkit.data.split import stratified_holdout
from mixkit.errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
VAL_NAMES = ("val", "validation", "test")


@dataclass
class FolderTree:
    classes: list[str]
    train: tuple[list[Path], torch.Tensor]
    val: tuple[list[Path], torch.Tensor]


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(root: Path, classes: list[str]) -> tuple[list[Path], torch.Tensor]:
    paths, labels = [], []
    for i, c in enumerate(classes):
        d = root / c
        files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) \
            if d.is_dir() else []
        paths += files
        labels += [i] * len(files)
    return paths, torch.tensor(labels, dtype=torch.int64)


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
        paths = train[0]
        val = ([paths[i] for i in va.tolist()], train[1][va])
        train = ([paths[i] for i in tr.tolist()], train[1][tr])
    if len(val[0]) == 0:
        raise UserError(f"the image folder {root} has an empty validation split.",
                        hint="Put images under val/<class>/ or remove the empty val/ folder.")
    return FolderTree(classes, train, val)
