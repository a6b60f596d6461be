"""Which model buys the most regime-map cell per core-hour? (issue #46, item 1)

Two measurements on one pinned core (``taskset -c K``, 1 torch thread), Fashion-MNIST:

* ``throughput``: training img/s of each candidate (random init, mixkit's small-input
  adaptation, batch 64, one SGD step with cross-entropy per batch: forward, backward, update),
  at 32 px (Fashion-MNIST padded, mixkit's default) and 28 px (stored size), with and without
  ``channels_last``. Median of 5 timed blocks of 10 steps after 5 warm-up steps.
* ``accuracy``: the baseline arm alone of the regime map's cheapest cell (2,400 images, 25
  AdamW epochs, the fixed 2,000-image validation subset), one seed per model: does the narrow
  ResNet learn this data as well as the map's MobileNetV2-0.5 does?

    taskset -c 1 python benchmarks/model_candidates.py throughput
    taskset -c 1 python benchmarks/model_candidates.py accuracy --models resnet18_w16 mobilenetv2_050

Each prints one table; ``--json`` keeps it (``benchmarks/results/model-candidates.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

CANDIDATES = ("mobilenetv2_050", "resnet18", "resnet18_w32", "resnet18_w16", "resnet10_w16")


def img_per_s(name: str, img_size: int, channels_last: bool, batch: int = 64,
              blocks: int = 5, steps: int = 10) -> float:
    """Training throughput of one model on random inputs (the data path is not measured)."""
    import mixkit

    torch.manual_seed(0)
    model = mixkit.create_timm_model(name, num_classes=10, img_size=img_size)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, img_size, img_size).to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    times = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append(time.perf_counter() - t0)
    return batch * steps / statistics.median(times)


def cmd_throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    print("| model | img_size | channels_last | img/s (1 thread) |")
    print("| --- | --- | --- | --- |")
    for name in args.models:
        for size in (32, 28):
            for cl in (False, True):
                v = img_per_s(name, size, cl)
                rows.append({"model": name, "img_size": size, "channels_last": cl,
                             "img_per_s": v})
                print(f"| {name} | {size} | {'on' if cl else 'off'} | {v:.0f} |", flush=True)
    return rows


def cmd_accuracy(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The baseline arm of p04-e25-adamw for each model, alone (``mixkit.experiment``: the
    run's cores and starting point, one arm, no run directory)."""
    from mixkit.experiment import Experiment

    rows = []
    for name in args.models:
        with Experiment("mixtrain", data="fashionmnist", model=name, batch_size=64,
                        val_size=2000, data_fraction=0.04, epochs=25, seed=args.seed,
                        channels_last=args.channels_last, progress=True) as exp:
            arm = exp.train("baseline")
        rows.append({"model": name, "seed": args.seed, "accuracy": arm.accuracy,
                     "train_seconds": arm.train_seconds,
                     "img_per_s": arm.inputs / arm.train_seconds})
    print("| model | seed | val acc (2,000) | train s | img/s |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['seed']} | {100 * r['accuracy']:.2f} % | "
              f"{r['train_seconds']:.0f} | {r['img_per_s']:.0f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--models", nargs="+", default=list(CANDIDATES))
    a = sub.add_parser("accuracy")
    a.add_argument("--models", nargs="+", default=["mobilenetv2_050", "resnet18_w16",
                                                    "resnet10_w16"])
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--channels-last", action="store_true")
    for q in (t, a):
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rows = {"throughput": cmd_throughput, "accuracy": cmd_accuracy}[args.cmd](args)
    if args.json:
        path = Path(args.json)
        old = json.loads(path.read_text()) if path.is_file() else {}
        old[args.cmd] = rows
        old["torch"] = torch.__version__
        path.write_text(json.dumps(old, indent=1))


if __name__ == "__main__":
    main()
