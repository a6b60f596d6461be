"""Data sources: turn an epoch plan into augmented, normalised batches on the device.

Two sources take the same :class:`~mixkit.data.plan.EpochPlan`:

* :class:`TensorSource` keeps a small dataset on the device as uint8 ``[N, C, H, W]``; a batch
  is an index gather plus batched augmentation (no DataLoader, no worker processes).
* :class:`StreamSource` streams a folder of image files through a ``DataLoader`` with workers
  and pinned memory; the workers decode and resize, the device augments, exactly as above.
"""

from __future__ import annotations

import atexit
import signal
import threading
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mixkit.data.augment import augment, normalize, resized_crop, sample_rrc
from mixkit.data import transforms as T
from mixkit.data.formats import Split, decode_image
from mixkit.data.plan import EpochPlan
from mixkit.errors import UserError


@dataclass
class Batch:
    """One step's inputs. ``x2/y2/ids2/paired`` exist only for plans with pairs.

    For rows that are singles in a paired plan, ``x2/y2/ids2`` repeat the first sample and
    ``paired`` is False, so every tensor keeps the static shape ``[B, ...]``.
    """

    x: torch.Tensor
    y: torch.Tensor
    ids: torch.Tensor
    x2: torch.Tensor | None = None
    y2: torch.Tensor | None = None
    ids2: torch.Tensor | None = None
    paired: torch.Tensor | None = None
    task: torch.Tensor | None = None     # multi-task data: each row's task (head) index

    @property
    def size(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Preprocess:
    """How raw uint8 images become model inputs (shared by both sources)."""

    mean: torch.Tensor
    std: torch.Tensor
    padding: int
    hflip: bool
    channels_last: bool = False
    # in-memory RandomResizedCrop: (scale, ratio), or None (the padded crop, or a streamed
    # source whose crop was cut while decoding)
    rrc: tuple[tuple[float, float], tuple[float, float]] | None = None
    interpolation: str = "bilinear"

    def to(self, device: torch.device) -> "Preprocess":
        return Preprocess(self.mean.to(device), self.std.to(device), self.padding, self.hflip,
                          self.channels_last, self.rrc, self.interpolation)

    def train(self, images: torch.Tensor, generator: torch.Generator,
              hflip: torch.Tensor | None = None) -> torch.Tensor:
        """Augment and normalise; ``hflip`` (bool [B]) overrides the flag per row (multi-task)."""
        flip = self.hflip if hflip is None else hflip
        if self.rrc is not None:
            n, _, h, w = images.shape
            boxes = sample_rrc(n, h, w, *self.rrc, generator, images.device)
            flips = (torch.rand(n, generator=generator, device=images.device) < 0.5) & flip
            crops = resized_crop(images, boxes, h, flips, self.interpolation)
            return normalize(crops, self.mean, self.std, self.channels_last)
        return normalize(augment(images, self.padding, flip, generator), self.mean,
                         self.std, self.channels_last)

    def eval(self, images: torch.Tensor) -> torch.Tensor:
        return normalize(images, self.mean, self.std, self.channels_last)


class _Source:
    """What both sources share: the device, preprocessing and the augmentation generator."""

    def __init__(self, labels: torch.Tensor, prep: Preprocess, device: torch.device,
                 seed: int) -> None:
        self.device = device
        self.labels = labels.to(device)
        self.prep = prep.to(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.tasks: torch.Tensor | None = None        # [N] task index per sample (multi-task)
        self.task_hflip: torch.Tensor | None = None   # [T] may task t be flipped?

    def close(self) -> None:
        """Release worker processes (a streamed source's); the source is not used after."""

    def set_tasks(self, tasks: torch.Tensor, task_hflip: torch.Tensor) -> None:
        """Mark the samples of a concatenation of datasets with their task index."""
        self.tasks, self.task_hflip = tasks.to(self.device), task_hflip.to(self.device)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _assemble(self, raw: torch.Tensor, ids: torch.Tensor, raw2: torch.Tensor | None,
                  ids2: torch.Tensor | None, paired: torch.Tensor | None) -> Batch:
        task = None if self.tasks is None else self.tasks[ids]
        flip = None if task is None else self.task_hflip[task]
        x = self.prep.train(raw, self.generator, flip)
        if raw2 is None:
            return Batch(x, self.labels[ids], ids, task=task)
        x2 = self.prep.train(raw2, self.generator)
        return Batch(x, self.labels[ids], ids, x2, self.labels[ids2], ids2, paired)


def _partners(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    paired = second >= 0
    return torch.where(paired, second, first), paired


class TensorSource(_Source):
    """A split held on the device as uint8; batches are gathers from an on-device plan."""

    def __init__(self, split: Split, prep: Preprocess, device: torch.device, seed: int) -> None:
        super().__init__(split.labels, prep, device, seed)
        self.images = split.images.to(device)

    def batches(self, plan: EpochPlan, batch_size: int, start: int = 0,
                epoch: int = 0) -> Iterator[Batch]:
        """Batches ``start, start+1, ...`` of the plan (``start > 0``: a resumed epoch); the
        augmentation comes from the source's generator (``epoch`` is for streamed crops)."""
        plan = plan.to(self.device)
        for k in range(start, plan.num_batches(batch_size)):
            first, second = plan.batch(k, batch_size)
            if second is None:
                yield self._assemble(self.images[first], first, None, None, None)
            else:
                ids2, paired = _partners(first, second)
                yield self._assemble(self.images[first], first, self.images[ids2], ids2, paired)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for s in range(0, len(self), batch_size):
            yield self.prep.eval(self.images[s:s + batch_size]), self.labels[s:s + batch_size]


# ------------------------------------------------------------------------------------------
# streamed image folders
# ------------------------------------------------------------------------------------------


class FileDataset(Dataset):
    """Image files decoded to uint8 ``[3, size, size]`` in the DataLoader's workers.

    ``transform``: ``rrc`` (RandomResizedCrop while decoding for a training key ``(i, epoch)``,
    the resize + centre crop for an evaluation key ``i``; :mod:`mixkit.data.transforms`) or
    ``crop`` (the whole image resized to the square, both ways). The crop of sample ``i`` in
    epoch ``epoch`` depends on ``(seed, epoch, i)`` alone.

    A file that cannot be decoded comes back as ``(zeros, message)`` rather than an exception:
    an exception raised in a worker reaches the main process as a worker traceback, while the
    message lets the main process raise the one-paragraph error that names the file.
    """

    def __init__(self, files, labels: torch.Tensor, size: int, transform: str = "crop", *,
                 seed: int = 0, scale: tuple[float, float] = T.SCALE,
                 ratio: tuple[float, float] = T.RATIO, interpolation: str = "bilinear",
                 crop_pct: float = 0.875) -> None:
        self.files, self.labels, self.size, self.transform = files, labels, size, transform
        self.seed, self.scale, self.ratio = seed, scale, ratio
        self.interpolation, self.crop_pct = interpolation, crop_pct

    def __len__(self) -> int:
        return len(self.files)

    def decoder(self, i: int, epoch: int | None):
        """The decode of sample ``i``: training in ``epoch``, or evaluation (``None``)."""
        if self.transform != "rrc":
            return lambda p: T.decode_squash(p, self.size)
        if epoch is None:
            return lambda p: T.decode_eval(p, self.size, self.crop_pct, self.interpolation)
        rng = T.sample_rng(self.seed, epoch, i)
        return lambda p: T.decode_rrc(p, self.size, rng, self.scale, self.ratio,
                                      self.interpolation)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, str]:
        i, epoch = key if isinstance(key, tuple) else (key, None)
        try:
            return torch.from_numpy(decode_image(self.files[i], decode=self.decoder(i, epoch))), ""
        except UserError as err:
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), err.paragraph


def _checked(fetched: tuple[torch.Tensor, list[str]]) -> torch.Tensor:
    """The images of a fetched batch, or the first undecodable file's error."""
    images, errors = fetched
    bad = next((e for e in errors if e), None)
    if bad:
        raise UserError(bad)
    return images


class StreamSource(_Source):
    """Files streamed by a DataLoader (workers, pinned memory) along the same epoch plans.

    Each batch fetches the *unique* ids its rows need (a pair's partner is fetched once), and
    the device indexes them back into rows, so a paired plan decodes no image twice.
    """

    def __init__(self, files: FileDataset, prep: Preprocess, device: torch.device, seed: int,
                 workers: int) -> None:
        super().__init__(files.labels, prep, device, seed)
        self.files, self.workers = files, workers
        self._sampler = _BatchList()
        self._loader: DataLoader | None = None

    def _load(self, batches: list[list[int]]) -> DataLoader:
        """One DataLoader for the source's life (workers persist); each pass sets its batches."""
        self._sampler.batches = batches
        if self._loader is None:
            _OPEN.add(self)
            self._loader = DataLoader(self.files, batch_sampler=self._sampler,
                                      num_workers=self.workers,
                                      pin_memory=self.device.type == "cuda",
                                      persistent_workers=self.workers > 0,
                                      worker_init_fn=worker_ignores_stop_signals
                                      if self.workers > 0 else None)
        return self._loader

    def batches(self, plan: EpochPlan, batch_size: int, start: int = 0,
                epoch: int = 0) -> Iterator[Batch]:
        """``epoch`` keys the decode-time crops (the same on resume and on every rank)."""
        plan = plan.to("cpu")
        rows = [_host_rows(*plan.batch(k, batch_size))
                for k in range(start, plan.num_batches(batch_size))]
        loader = self._load([[(i, epoch) for i in r.unique_ids.tolist()] for r in rows])
        for r, fetched in zip(rows, _started(loader)):
            raw = _checked(fetched).to(self.device, non_blocking=True)
            ids = torch.from_numpy(r.first).to(self.device, non_blocking=True)
            if r.second is None:
                rows = raw if r.in_order else raw[r.where(r.first, self.device)]
                yield self._assemble(rows, ids, None, None, None)
                continue
            ids2 = torch.from_numpy(r.partner).to(self.device, non_blocking=True)
            paired = torch.from_numpy(r.second >= 0).to(self.device, non_blocking=True)
            yield self._assemble(raw[r.where(r.first, self.device)], ids,
                                 raw[r.where(r.partner, self.device)], ids2, paired)

    def close(self) -> None:
        """Shut the persistent workers down now. They ignore SIGTERM (below), so they must not
        be left to multiprocessing's exit handler, which terminates daemonic children with
        SIGTERM and then waits for them. torch has no public call for this; the loader's
        iterator has done it the same way since persistent workers exist (torch 1.7)."""
        loader, self._loader = self._loader, None
        _OPEN.discard(self)
        it = getattr(loader, "_iterator", None)
        if it is None:
            return
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        for w in getattr(it, "_workers", []):         # one that did not leave on request
            if w.is_alive():
                w.kill()
                w.join()
        loader._iterator = None

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = list(range(len(self)))
        chunks = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
        for chunk, fetched in zip(chunks, _started(self._load(chunks))):
            yield (self.prep.eval(_checked(fetched).to(self.device, non_blocking=True)),
                   self.labels[chunk[0]:chunk[-1] + 1])


# ------------------------------------------------------------------------------------------
# workers and stop signals
# ------------------------------------------------------------------------------------------

# A batch scheduler (SLURM preemption, `timeout`, Kubernetes) sends SIGTERM to the whole process
# group, DataLoader workers included. Left to the default action they die at once, and the main
# process gets "DataLoader worker ... killed by signal" at its next fetch or, through torch's
# SIGCHLD handler, anywhere (a checkpoint write included). The main process owns the stop: it
# finishes the step, saves, and exits 143; the workers ignore both signals and are shut down
# with the loader (or exit with their parent, which torch's workers watch).
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


_OPEN: "weakref.WeakSet[StreamSource]" = weakref.WeakSet()


@atexit.register
def _close_open_sources() -> None:
    """Registered after multiprocessing's exit handler, so it runs before it (atexit is LIFO):
    a source nobody closed still shuts its workers down instead of hanging the exit."""
    for source in list(_OPEN):
        source.close()


def worker_ignores_stop_signals(worker_id: int) -> None:
    """``worker_init_fn``: leave SIGTERM/SIGINT to the main process (see above)."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Block SIGTERM/SIGINT in the main thread while the loader forks its workers, so no worker
    receives one before :func:`worker_ignores_stop_signals` has run; a signal that arrives
    meanwhile stays pending and is delivered to the main process when the block ends."""
    if threading.current_thread() is not threading.main_thread() or \
            not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _started(loader: Iterable) -> Iterator:
    """``iter(loader)``: the first call forks the workers, with the stop signals deferred."""
    with stop_signals_deferred():
        return iter(loader)


class _BatchList:
    """A batch sampler whose batches are replaced before each pass over the loader."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass
class _HostRows:
    """One batch's plan rows on the host, and the unique ids the loader must fetch for them."""

    first: np.ndarray
    second: np.ndarray | None
    partner: np.ndarray | None
    unique_ids: np.ndarray           # what the loader fetches: sorted unique, or plan order
    in_order: bool = False           # unique_ids == first: the fetched batch is the rows

    def where(self, ids: np.ndarray, device: torch.device) -> torch.Tensor:
        """Positions of ``ids`` in the fetched (sorted, unique) batch."""
        return torch.from_numpy(np.searchsorted(self.unique_ids, ids)).to(device)


def _host_rows(first: torch.Tensor, second: torch.Tensor | None) -> _HostRows:
    f = first.numpy()
    if second is None:               # every id once: fetched in plan order, no gather after
        return _HostRows(f, None, None, f.copy(), in_order=True)
    s = second.numpy()
    partner = np.where(s >= 0, s, f)
    return _HostRows(f, s, partner, np.unique(np.concatenate([f, partner])))
