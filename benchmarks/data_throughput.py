"""The streamed-folder training data path against timm's loader, side by side in one run.

It generates an ImageNet-like folder (JPEGs of varied sizes around 500x375, quality 90) and
measures, with the same workers, batch and augmentation (RandomResizedCrop scale 0.08-1, ratio
3/4-4/3, bilinear, horizontal flip; no colour jitter), images per second of:

* **mixkit**: ``StreamSource.batches`` (decode with the crop cut while decoding, JPEG draft
  mode, uint8 to the device, flip + normalise batched there) over a shuffled epoch plan;
* **timm**: ``timm.data.create_loader`` (``is_training=True``, ``use_prefetcher=True`` on the
  same device: uint8 from the workers, normalised on the device — timm's fastest path);
* **decode only**, one process: PIL's full decode of each file (the work timm's workers do
  before cropping) and mixkit's decode of the crop, per image: the ceiling a worker can reach;

then the time and memory to scan a 100,000-file tree (zero-byte files: the scan reads no
pixels), extrapolated to ImageNet's 1.28 M. Repeats alternate the two loaders; the median is
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


def mixkit_rate(train: Path, size: int, batch: int, workers: int) -> float:
    from mixkit.data.augment import normalize  # noqa: F401 - the path below uses it
    from mixkit.data.folder import scan_image_folder
    from mixkit.data.plan import shuffled
    from mixkit.data.sources import FileDataset, Preprocess, StreamSource

    tree = scan_image_folder(train.parent, 0.01)
    files, labels = tree.train
    ds = FileDataset(files, labels, size, "rrc", seed=0)
    prep = Preprocess(torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]),
                      0, True)
    src = StreamSource(ds, prep, torch.device("cpu"), 0, workers)
    plan = shuffled(len(ds), torch.Generator().manual_seed(0))
    for b in src.batches(plan, batch, 0, 0):      # warm: workers started, files cached
        pass
    t, n = time.perf_counter(), 0
    for b in src.batches(plan, batch, 0, 1):
        n += b.size
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


def decode_rates(train: Path, size: int, limit: int = 400) -> tuple[float, float]:
    """(full PIL decode, mixkit's crop decode) images/s in this one process."""
    from mixkit.data import transforms as T

    paths = sorted(train.rglob("*.JPEG"))[:limit]
    t = time.perf_counter()
    for p in paths:
        with Image.open(p) as img:
            img.convert("RGB").load()
    full = len(paths) / (time.perf_counter() - t)
    t = time.perf_counter()
    for i, p in enumerate(paths):
        T.decode_rrc(p, size, T.sample_rng(0, 0, i))
    crop = len(paths) / (time.perf_counter() - t)
    return full, crop


def scan(files: int, classes: int = 100) -> tuple[float, float]:
    """(seconds, bytes per file) to scan a tree of ``files`` zero-byte JPEGs."""
    from mixkit.data.folder import scan_image_folder

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
        tree = scan_image_folder(root, 0.2)
        seconds = time.perf_counter() - t
        tracemalloc.stop()
        files_list = tree.train[0]
        per_file = (files_list.nbytes + tree.train[1].element_size() * len(files_list)) / len(
            files_list)
    return seconds, per_file


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
    for r in range(args.repeats):                 # alternate, so drift hits both alike
        ours.append(mixkit_rate(train, args.img_size, args.batch_size, args.workers))
        theirs.append(timm_rate(train, args.img_size, args.batch_size, args.workers))
        print(f"repeat {r}: mixkit {ours[-1]:.0f} img/s, timm {theirs[-1]:.0f} img/s")
    full, crop = decode_rates(train, args.img_size)
    m, t = statistics.median(ours), statistics.median(theirs)
    print(f"\n{args.files} files ~500x375 q90, {args.img_size} px, batch {args.batch_size}, "
          f"{args.workers} worker(s), RandomResizedCrop + flip:")
    print(f"  mixkit {m:.0f} img/s, timm create_loader {t:.0f} img/s: {m / t:.2f}x "
          f"(goal >= 1.3x)")
    print(f"  decode only, one process: PIL full decode {full:.0f} img/s, mixkit crop decode "
          f"{crop:.0f} img/s; mixkit's path = {m / (crop * args.workers):.0%} of crop-decode "
          f"x workers, {m / (full * args.workers):.0%} of full-decode x workers (goal >= 80 %)")
    secs, per_file = scan(args.scan_files)
    print(f"  scan of {args.scan_files:,} files: {secs:.2f} s, {per_file:.0f} bytes per file in "
          f"the file list; 1.28 M files: ~{secs * 1.28e6 / args.scan_files:.0f} s, "
          f"~{per_file * 1.28e6 / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
