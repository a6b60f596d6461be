"""The streamed-folder training data path against timm's loader, side by side in one run.

It generates an ImageNet-like folder (JPEGs of varied sizes around 500x375, quality 90) and
measures, with the same workers, batch and augmentation (RandomResizedCrop scale 0.08-1, ratio
3/4-4/3, bilinear, horizontal flip; no colour jitter), images per second of:

* **mixkit**: ``Experiment.input_batches`` — the data core as a run feeds its step (decode
  with the crop cut while decoding, JPEG draft mode, uint8 to the device, flip + normalise
  batched there) over a shuffled epoch plan;
* **timm**: ``timm.data.create_loader`` (``is_training=True``, ``use_prefetcher=True`` on the
  same device: uint8 from the workers, normalised on the device — timm's fastest path);
* **one process**: PIL's full decode of each file (the work timm's workers do before
  cropping), and mixkit's whole path with no worker (crop decode, batching, flip, normalise):
  the ceiling one worker can reach;

then the time and peak memory to set a run up on a 100,000-file tree (the folder scan and the
checks; zero-byte files: no pixel is read), extrapolated to ImageNet's 1.28 M. Only public
names (``mixkit.experiment``). Repeats alternate the two loaders; the median is
printed.

    taskset -c 0 python benchmarks/data_throughput.py --workers 1 --files 2000
    python benchmarks/data_throughput.py --workers 4 --img-size 224 --scan-files 100000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_folder(root: Path, files: int, classes: int, seed: int = 0) -> Path:
    """``root/train/c<k>/<i>.JPEG``: smooth structure + noise, sizes 300-700 x 250-550."""
    rng = np.random.default_rng(seed)
    for i in range(files):
        w, h = int(rng.integers(300, 701)), int(rng.integers(250, 551))
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * 3 + i) % 256, (y * 2) % 256, (x + y + 7 * i) % 256], -1)
        img = np.clip(img + rng.integers(-25, 26, img.shape), 0, 255).astype(np.uint8)
        path = root / "train" / f"c{i % classes}" / f"{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path, quality=90)
    return root / "train"


def stream(root: Path, size: int, batch: int, workers: int):
    """``mixkit mixtrain``'s data core on the folder: RandomResizedCrop + flip, normalised."""
    from mixkit.experiment import Experiment

    return Experiment("mixtrain", data="imagefolder", data_dir=str(root), img_size=size,
                      batch_size=batch, workers=workers, val_fraction=0.01, device="cpu",
                      model="resnet18")


def mixkit_rate(exp, epoch: int) -> float:
    """Images/s of one shuffled epoch of the data core alone (no model)."""
    t, n = time.perf_counter(), 0
    for x, _ in exp.input_batches(epoch):
        n += x.shape[0]
    return n / (time.perf_counter() - t)


def timm_rate(train: Path, size: int, batch: int, workers: int) -> float:
    from timm.data import create_dataset, create_loader

    ds = create_dataset("", root=str(train))
    loader = create_loader(ds, input_size=(3, size, size), batch_size=batch, is_training=True,
                           scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                           color_jitter=0.0, interpolation="bilinear", num_workers=workers,
                           device=torch.device("cpu"), use_prefetcher=True,
                           persistent_workers=True)
    for _ in loader:                              # warm, as for mixkit
        pass
    t, n = time.perf_counter(), 0
    for x, _ in loader:
        n += x.shape[0]
    return n / (time.perf_counter() - t)


def full_decode_rate(train: Path, limit: int = 400) -> float:
    """PIL's full decode of each file, one process: the work timm's workers do per image
    before cropping."""
    paths = sorted(train.rglob("*.JPEG"))[:limit]
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            img.convert("RGB").load()
    return len(paths) / (time.perf_counter() - t)


def _set_up(files: int, classes: int) -> tuple[float, int]:
    """(seconds, peak traced bytes) to set up a run on a tree of ``files`` zero-byte JPEGs:
    the folder scan and every check before training (no pixel is read)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for c in range(classes):
            d = root / "train" / f"n{c:08d}"
            d.mkdir(parents=True)
            for k in range(files // classes):
                (d / f"n{c:08d}_{k}.JPEG").touch()
        (root / "val").mkdir()
        for c in range(classes):
            (root / "val" / f"n{c:08d}").mkdir()
            (root / "val" / f"n{c:08d}" / "v.JPEG").touch()
        tracemalloc.start()
        t = time.perf_counter()
        exp = stream(root, 224, 64, 0)
        seconds = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        exp.close()
    return seconds, peak


def scan(files: int, classes: int = 100) -> tuple[float, float]:
    """(seconds, bytes) per file of a run's set-up: the slope between a tree of ``files`` and
    one of a tenth as many, so the fixed costs (the model check, imports) are not
    extrapolated."""
    _set_up(files // 10, classes)                 # warm: imports, the model factory
    t1, m1 = _set_up(files // 10, classes)
    t2, m2 = _set_up(files, classes)
    n = files - files // 10
    return (t2 - t1) / n, (m2 - m1) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=2000)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scan-files", type=int, default=100_000)
    p.add_argument("--root", default=None, help="reuse/generate the folder here")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.root or tempfile.mkdtemp(prefix="mixkit-imagenet-like-"))
    train = root / "train"
    if not train.is_dir():
        t = time.perf_counter()
        make_folder(root, args.files, args.classes)
        print(f"generated {args.files} JPEGs in {time.perf_counter() - t:.0f} s under {root}")
    ours, theirs = [], []
    with stream(root, args.img_size, args.batch_size, args.workers) as exp:
        mixkit_rate(exp, 0)                        # warm: workers started, files cached
        for r in range(args.repeats):             # alternate, so drift hits both alike
            ours.append(mixkit_rate(exp, r + 1))
            theirs.append(timm_rate(train, args.img_size, args.batch_size, args.workers))
            print(f"repeat {r}: mixkit {ours[-1]:.0f} img/s, timm {theirs[-1]:.0f} img/s")
    with stream(root, args.img_size, args.batch_size, 0) as exp:
        mixkit_rate(exp, 0)
        crop = mixkit_rate(exp, 1)
    full = full_decode_rate(train)
    m, t = statistics.median(ours), statistics.median(theirs)
    print(f"\n{args.files} files ~500x375 q90, {args.img_size} px, batch {args.batch_size}, "
          f"{args.workers} worker(s), RandomResizedCrop + flip:")
    print(f"  mixkit {m:.0f} img/s, timm create_loader {t:.0f} img/s: {m / t:.2f}x "
          f"(goal >= 1.3x)")
    print(f"  one process: PIL full decode {full:.0f} img/s, mixkit's whole path with no "
          f"worker {crop:.0f} img/s; with {args.workers} worker(s) = "
          f"{m / (crop * args.workers):.0%} of that x workers, "
          f"{m / (full * args.workers):.0%} of full-decode x workers (goal >= 80 %)")
    secs, per_file = scan(args.scan_files)
    print(f"  a run's set-up (folder scan + checks), per file (slope from {args.scan_files:,} "
          f"files): {1e6 * secs:.1f} µs, {per_file:.0f} bytes peak; 1.28 M files: "
          f"~{secs * 1.28e6:.0f} s, ~{per_file * 1.28e6 / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
