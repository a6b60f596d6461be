"""mixkit's supervised engine vs the loop a user would write, side by side in one process.

The *plain* loop is the PyTorch/timm tutorial loop: a ``Dataset`` that turns each uint8 image
into a PIL image, torchvision ``RandomCrop(padding=4)`` (+ ``RandomHorizontalFlip`` where the
dataset allows it), ``ToTensor``, ``Normalize``; a ``DataLoader`` with workers and pinned
memory; ``torch.optim.AdamW``; ``running_loss += loss.item()`` each step. The *mixkit* loop is
the engine's supervised arm: the dataset on the device as uint8, batched crop/flip on the
device, no host reads in the step. Both train the same model (same architecture, same init),
on the same data and device, at the same batch size. Each repeat times one epoch of each
(device-synced, after one untimed warm-up epoch of each), alternating which runs first; the
script prints the per-repeat img/s and the median ratio.

    python benchmarks/engine_throughput.py                       # digits, resnet18, CPU/GPU
    python benchmarks/engine_throughput.py --model vit_tiny_patch16_224 --patch-size 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import mixkit
from mixkit.experiment import Experiment


class PilDataset(Dataset):
    """What a user writes for an in-memory dataset (torchvision's CIFAR10 does the same)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def plain_epoch(model, loader, opt, device, amp: bool = False,
                channels_last: bool = False) -> tuple[float, int]:
    """One epoch of the loop a user writes (with autocast / channels_last if asked)."""
    model.train()
    sync(device)
    start, n, running_loss = time.perf_counter(), 0, 0.0
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for x, y in loader:
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running_loss += loss.item()
        n += x.shape[0]
    sync(device)
    return time.perf_counter() - start, n


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_flops_per_image(model: torch.nn.Module, img_size: int, device: torch.device) -> float:
    """Forward FLOPs of one image (torch's FLOP counter) x 3 for forward + backward."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(2, 3, img_size, img_size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return 3 * counter.get_total_flops() / 2


def compare(exp: Experiment, batch_size: int, *, compile: bool = False, workers: int = 2,
            repeats: int = 3, log=print) -> dict:
    """mixkit's engine vs the plain loop on the same model, data, device and options (those
    of ``exp``'s settings): img/s per repeat (alternating which runs first) and the median
    ratio. A mixkit repeat is the second epoch of the baseline arm from its starting point
    (the engine's epoch time: no evaluation, no compilation)."""
    cfg, device = exp.settings, exp.device
    amp, channels_last = cfg.amp, cfg.channels_last
    arrays = exp.train_arrays()
    n = len(arrays.labels)
    tfm = [T.RandomCrop(exp.img_size, padding=4)]
    tfm += [T.RandomHorizontalFlip()] if arrays.hflip else []
    tfm += [T.ToTensor(), T.Normalize(arrays.mean.tolist(), arrays.std.tolist())]
    loader = DataLoader(PilDataset(arrays.images.permute(0, 2, 3, 1).numpy(),
                                   arrays.labels.numpy(), T.Compose(tfm)),
                        batch_size=batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        drop_last=True)

    torch.manual_seed(0)
    plain_model = mixkit.create_timm_model(cfg.model, num_classes=exp.num_classes,
                                           img_size=exp.img_size,
                                           patch_size=cfg.patch_size).to(device)
    if channels_last:
        plain_model = plain_model.to(memory_format=torch.channels_last)
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=1e-3, weight_decay=0.05,
                                  fused=device.type == "cuda" or None)
    if compile:
        plain_model.compile()

    def run_mixkit() -> float:
        """The second epoch of a fresh arm (the first pays the new weights' one-time costs,
        as the plain loop's warm-up epoch does)."""
        return n / exp.train("baseline", epochs=2).rows[1]["epoch_seconds"]

    def run_plain() -> float:
        """The engine's epochs exclude compilation (``docs/engine.md``); so do these: the
        first (warm-up) epoch compiles, the timed ones reuse it."""
        seconds, seen = plain_epoch(plain_model, loader, plain_opt, device, amp, channels_last)
        return seen / seconds

    log(f"device {exp.describe()}; {cfg.data} {n} images at {exp.img_size}px; "
        f"{cfg.model}; batch {batch_size}; plain loop workers {workers}")
    run_mixkit(), run_plain()   # warm-up (allocator, oneDNN/cuDNN kernels, compile, workers)
    rows = []
    for r in range(repeats):
        order = ("mixkit", "plain") if r % 2 == 0 else ("plain", "mixkit")
        ips = {k: run_mixkit() if k == "mixkit" else run_plain() for k in order}
        rows.append(ips)
        log(f"repeat {r}: mixkit {ips['mixkit']:8.1f} img/s   plain {ips['plain']:8.1f} img/s"
            f"   ratio {ips['mixkit'] / ips['plain']:.3f}")
    ratios = [r["mixkit"] / r["plain"] for r in rows]
    out = {"amp": amp, "channels_last": channels_last, "compile": compile,
           "mixkit_img_s": statistics.median(r["mixkit"] for r in rows),
           "plain_img_s": statistics.median(r["plain"] for r in rows),
           "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
           "ratio_max": max(ratios), "repeats": repeats}
    log(f"median ratio mixkit/plain = {out['ratio_median']:.3f} (min {min(ratios):.3f}, "
        f"max {max(ratios):.3f}, {repeats} repeats)")
    return out


def experiment(data: str, model: str, batch_size: int, *, data_dir: str | None = None,
               img_size: int | None = None, data_fraction: float = 0.5, device: str = "auto",
               amp: bool = False, channels_last: bool = False, compile: bool = False,
               patch_size: int | None = None) -> Experiment:
    """The baseline arm's cores: the data on the device, AdamW at 1e-3 (as the plain loop),
    no evaluation cost worth counting (the epoch time excludes it)."""
    return Experiment("mixtrain", data=data, data_dir=data_dir, img_size=img_size,
                      data_fraction=data_fraction, workers=0, model=model,
                      batch_size=batch_size, device=device, amp=amp,
                      channels_last=channels_last, torchcompile=compile, patch_size=patch_size,
                      opt="adamw", lr=1e-3, weight_decay=0.05, warmup_epochs=0,
                      val_size=min(256, batch_size), timing_warmup=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--patch-size", type=int, default=None)
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--data-fraction", type=float, default=0.5)
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="plain loop's DataLoader workers")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true", help="bf16 autocast in both loops")
    p.add_argument("--channels-last", action="store_true", help="in both loops")
    p.add_argument("--compile", action="store_true", help="torch.compile in both loops")
    args = p.parse_args()

    with experiment(args.data, args.model, args.batch_size, data_dir=args.data_dir,
                    img_size=args.img_size, data_fraction=args.data_fraction,
                    device=args.device, amp=args.amp, channels_last=args.channels_last,
                    compile=args.compile, patch_size=args.patch_size) as exp:
        compare(exp, args.batch_size, compile=args.compile, workers=args.workers,
                repeats=args.repeats)


if __name__ == "__main__":
    main()
