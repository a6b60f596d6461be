"""Build a :class:`DataBundle` (train and val sources on the device) from a dataset name.

``--data a,b`` is multi-task data (MixTraining §2.2.3): the training splits are concatenated
into one device-resident store whose samples carry their task index, so one epoch plan shuffles
every task's samples together; each task keeps its own validation split and classifier head.
"""


from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

import torch

from mixkit.data import formats
from mixkit.data.augment import resize_uint8
from mixkit.data.folder import scan_image_folder
from mixkit.data.registry import (DatasetSpec, download, find, get_spec, locate,
                                  missing_error, resolve_root)
from mixkit.data.sources import FileDataset, Preprocess, StreamSource, TensorSource
from mixkit.data.holdout import stratified_indices
from mixkit.data.transforms import RATIO, SCALE, parse_pair
from mixkit.errors import UserError

Source = Union[TensorSource, StreamSource]
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DataOptions:
    """What the data core reads: where a dataset is, which part of it trains, at what size and
    with which augmentation. The command line builds it from its options
    (:meth:`from_options`); a library user builds it directly. Ranges are the command line's
    to check (``docs/data.md``); here they are only typed."""

    data_dir: str | None = None          # the data root (else $MIXKIT_DATA_DIR, the cache dir)
    download: bool = False
    img_size: int | None = None          # None: the dataset's default
    hflip: bool | None = None            # None: where it keeps the class
    crop_padding: int = 4
    train_transform: str = "auto"        # auto | rrc | crop
    scale: tuple[float, float] = SCALE   # RandomResizedCrop area range
    ratio: tuple[float, float] = RATIO   # RandomResizedCrop aspect range
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    data_fraction: float = 1.0           # stratified, seeded subset of the training split
    val_fraction: float = 0.2            # held out where a dataset has no test split
    val_size: int | None = None          # fixed stratified subset of the validation split
    seed: int = 0
    workers: int = 4                     # DataLoader workers for streamed folders
    channels_last: bool = False

    @classmethod
    def from_options(cls, options: Any) -> "DataOptions":
        """The fields of ``options`` (any object with these attributes: the command line's
        resolved config); ``scale``/``ratio`` given as ``"lo,hi"`` strings are parsed."""
        values = {f.name: getattr(options, f.name, f.default) for f in fields(cls)}
        for key in ("scale", "ratio"):
            if isinstance(values[key], str):
                pair = parse_pair(values[key])
                if pair is None:
                    raise ValueError(f"{key} {values[key]!r} is not two numbers lo,hi")
                values[key] = pair
        return cls(**values)


@dataclass
class DataBundle:
    name: str
    spec: DatasetSpec
    train: Source
    val: Source
    num_classes: int | list[int]       # a list for multi-task data, one entry per head
    img_size: int
    hflip: bool
    root: Path | None
    task_vals: list[tuple[str, Source]] = field(default_factory=list)

    @property
    def tasks(self) -> list[tuple[str, Source]]:
        """``(task name, validation source)`` per classifier head (one for single-task data)."""
        return self.task_vals or [(self.name, self.val)]

    @property
    def multitask(self) -> bool:
        return len(self.tasks) > 1

    def close(self) -> None:
        """Release every source's worker processes (streamed folders)."""
        for source in {id(s): s for s in (self.train, self.val, *(v for _, v in self.tasks))
                       }.values():
            source.close()

    def fingerprint(self) -> str:
        """sha256 of what an epoch plan indexes: each split's size and labels and, for streamed
        folders, its file list. A checkpoint keeps it, so a resume on data that changed since
        the stop (a file added or removed, another subset) is refused, not mis-indexed."""
        h = hashlib.sha256()
        for source in (self.train, *(s for _, s in self.tasks)):
            h.update(f"{len(source)};".encode())
            h.update(source.labels.cpu().numpy().tobytes())
            files = getattr(getattr(source, "files", None), "files", None)   # StreamSource
            if files is not None:
                h.update("\0".join(files.dirs).encode("utf-8", "surrogateescape"))
                h.update(files.dir_index.tobytes())
                h.update(files.names.tobytes())
        return h.hexdigest()


def load_data(name: str, opts: DataOptions, device: torch.device, command: str) -> DataBundle:
    """Find (or ``--download``), read, subset and place one dataset on ``device``, as
    ``opts`` says (:class:`DataOptions`); ``command`` names the command in a "not found"
    message's download line."""
    if "," in name:
        return load_tasks([n.strip() for n in name.split(",")], opts, device, command)
    spec = get_spec(name)
    img_size = opts.img_size or spec.default_img_size
    hflip = spec.hflip if opts.hflip is None else opts.hflip
    root = _find(spec, opts, command)
    if spec.in_memory:
        train, val = _in_memory_splits(spec, root, opts, img_size)
        prep = _preprocess(channel_stats(train.images), opts, hflip)
        train_src: Source = TensorSource(train, prep, device, opts.seed)
        val_src: Source = TensorSource(val, prep, device, opts.seed)
        num_classes = spec.num_classes or int(train.labels.max()) + 1
    else:
        if spec.check is not None:
            spec.check(root)
        train_files, val_files, num_classes = _folder_splits(root, opts, img_size)
        prep = _preprocess((torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)), opts, hflip,
                           streamed=True)
        train_src = StreamSource(train_files, prep, device, opts.seed, opts.workers)
        val_src = StreamSource(val_files, prep, device, opts.seed, opts.workers)
    return DataBundle(name, spec, train_src, val_src, num_classes, img_size, hflip,
                      root if spec.needs_root else None)


def _find(spec: DatasetSpec, opts: DataOptions, command: str) -> Path:
    """Where ``spec`` is (the first root of the search order that holds it; see
    :mod:`mixkit.data.registry`), downloading it into the data root with ``--download``."""
    where = find(spec, opts.data_dir)
    if where is not None:
        return where
    if not (opts.download and spec.downloadable):
        raise missing_error(spec, opts.data_dir, command)
    root, _ = resolve_root(opts.data_dir)
    download(spec, root)
    where = locate(spec, root)
    if where is None:
        raise missing_error(spec, opts.data_dir, command)
    return where


def load_tasks(names: list[str], opts: DataOptions, device: torch.device,
               command: str) -> DataBundle:
    """Several in-memory datasets as one multi-task training store plus a val split per task.

    All tasks share one image size (``--img-size``, else the largest default) and one
    normalisation (channel statistics of the concatenated training splits: one backbone sees
    one input distribution); each task keeps its own flip rule (SVHN digits are never flipped).
    """
    if len(set(names)) != len(names) or any(not n for n in names):
        raise UserError(f"--data {','.join(names)}: multi-task data must name distinct "
                        "datasets, separated by commas.", hint="E.g. --data cifar10,svhn.")
    specs = [get_spec(n) for n in names]
    streamed = [s.name for s in specs if not s.in_memory]
    if streamed:
        raise UserError(f"--data {','.join(names)}: multi-task training needs in-memory "
                        f"datasets; `{streamed[0]}` is streamed from files.",
                        hint="Combine cifar10, cifar100, svhn, tinyimagenet, digits.")
    img_size = opts.img_size or max(s.default_img_size for s in specs)
    trains, vals = zip(*(_in_memory_splits(s, _find(s, opts, command), opts, img_size)
                         for s in specs))
    images = torch.cat([t.images for t in trains])
    prep = _preprocess(channel_stats(images), opts, False)
    train = TensorSource(formats.Split(images, torch.cat([t.labels for t in trains])), prep,
                         device, opts.seed)
    flips = [s.hflip if opts.hflip is None else opts.hflip for s in specs]
    train.set_tasks(torch.cat([torch.full((len(t),), k) for k, t in enumerate(trains)]),
                    torch.tensor(flips))
    val_sources = [TensorSource(v, prep, device, opts.seed) for v in vals]
    classes = [s.num_classes or int(t.labels.max()) + 1 for s, t in zip(specs, trains)]
    return DataBundle(",".join(names), specs[0], train, val_sources[0], classes, img_size,
                      any(flips), None, list(zip(names, val_sources)))


def train_transform(opts: DataOptions, streamed: bool) -> str:
    """``--train-transform``: ``auto`` is RandomResizedCrop for streamed folders (ImageNet's
    recipe) and the padded crop for the in-memory datasets (CIFAR's)."""
    if opts.train_transform != "auto":
        return opts.train_transform
    return "rrc" if streamed else "crop"


def _preprocess(stats: tuple[torch.Tensor, torch.Tensor], opts: DataOptions, hflip: bool,
                streamed: bool = False) -> Preprocess:
    """How batches are augmented on the device: streamed RandomResizedCrop cut its crop while
    decoding (only the flip is left); in-memory RandomResizedCrop is one batched resample."""
    rrc = train_transform(opts, streamed) == "rrc"
    return Preprocess(stats[0], stats[1], 0 if rrc else opts.crop_padding, hflip,
                      opts.channels_last,
                      (opts.scale, opts.ratio) if rrc and not streamed
                      else None, opts.interpolation)


def _in_memory_splits(spec: DatasetSpec, root: Path, opts: DataOptions,
                      img_size: int) -> tuple[formats.Split, formats.Split]:
    assert spec.read is not None, f"in-memory dataset {spec.name} has no reader"
    train, val = spec.read(root if spec.needs_root else None, opts.val_fraction)
    if opts.data_fraction < 1.0:
        keep = stratified_indices(train.labels, opts.data_fraction, opts.seed)
        train = formats.Split(train.images[keep], train.labels[keep])
    val = _val_subset(val, opts.val_size)
    return (formats.Split(fit_size(train.images, img_size, spec.pad_to_size), train.labels),
            formats.Split(fit_size(val.images, img_size, spec.pad_to_size), val.labels))


def _val_subset(val: formats.Split, size: int | None) -> formats.Split:
    """``--val-size``: a stratified subset of the validation split, fixed (seed 0) so every
    arm and seed is scored on the same images."""
    if size is None or size >= len(val):
        return val
    keep = stratified_indices(val.labels, size / len(val), seed=0)
    return formats.Split(val.images[keep], val.labels[keep])


PAD_LIMIT = 4     # px per side: 28 -> 32 is padded; anything further is resized


def fit_size(images: torch.Tensor, size: int, pad: bool) -> torch.Tensor:
    """Images at ``size`` px: zero-padded (centred) where ``pad`` and the growth is at most
    ``PAD_LIMIT`` px per side, else resized (``docs/data.md``: why 28 -> 32 pads)."""
    grow = size - images.shape[-1]
    if pad and 0 < grow <= 2 * PAD_LIMIT and grow % 2 == 0 and images.shape[-2] == images.shape[-1]:
        return torch.nn.functional.pad(images, (grow // 2,) * 4)
    return resize_uint8(images, size)


def _folder_splits(root: Path, opts: DataOptions,
                  img_size: int) -> tuple[FileDataset, FileDataset, int]:
    tree = scan_image_folder(root, opts.val_fraction)
    train_paths, train_labels = tree.train
    if opts.data_fraction < 1.0:
        keep = stratified_indices(train_labels, opts.data_fraction, opts.seed).tolist()
        train_paths, train_labels = train_paths.take(keep), train_labels[keep]
    how = dict(transform=train_transform(opts, streamed=True), seed=opts.seed,
               scale=opts.scale, ratio=opts.ratio,
               interpolation=opts.interpolation, crop_pct=opts.crop_pct)
    val_paths, val_labels = tree.val
    if opts.val_size is not None and opts.val_size < len(val_labels):    # as in memory (below)
        keep = stratified_indices(val_labels, opts.val_size / len(val_labels), seed=0).tolist()
        val_paths, val_labels = val_paths.take(keep), val_labels[keep]
    return (FileDataset(train_paths, train_labels, img_size, **how),
            FileDataset(val_paths, val_labels, img_size, **how), len(tree.classes))


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images in [0, 1] units, in chunks (no float copy)."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    sq = torch.zeros_like(total)
    for s in range(0, images.shape[0], chunk):
        x = images[s:s + chunk].double().div_(255.0)
        total += x.sum((0, 2, 3))
        sq += x.square().sum((0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    if n == 0:
        raise UserError("the training split is empty.", hint="Check the data root.")
    mean = total / n
    std = (sq / n - mean.square()).clamp_min(1e-6).sqrt().clamp_min(1e-3)
    return mean.float(), std.float()
