"""The public API's overhead: mixTrain in a plain PyTorch loop vs mixkit's own engine, side by side.

Both train the same model (``resnet18_w16`` at 32 px, batch 64, AdamW) on the same images
(scikit-learn's digits, augmentation off in both) with the same method for the same epochs:

* **engine**: ``mixkit mixtrain --no-baseline`` (the CLI; its ``epoch_seconds`` cover the
  epoch's plan, steps and end-of-epoch bookkeeping, evaluation excluded);
* **loop**: ``examples/plain_pytorch.py``'s loop — ``DataLoader(batch_sampler=mt.batch_sampler,
  collate_fn=mt.collate)`` over a map-style dataset, ``mt.loss``, ``mt.end_epoch`` — timed
  over the same span.

Mixing changes how many inputs an epoch has, so the comparison is seconds per *input*,
median over the mixing epochs (2..E), arms alternated ``--repeats`` times. Imports only public
names (``mixkit``, the ``mixkit`` command). Pin it to one idle core::

    taskset -c 0 python benchmarks/api_overhead.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import mixkit

MODEL, IMG, BATCH = "resnet18_w16", 32, 64


def digits() -> TensorDataset:
    """scikit-learn's digits as normalised 3x32x32 items (the CLI holds out 20 % for val)."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=IMG, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    n = int(0.8 * len(d.target))
    return TensorDataset((x[:n] - 0.5) / 0.5, torch.tensor(d.target[:n]))


def engine_seconds(op: str, epochs: int, threads: int) -> list[float]:
    """Seconds per input of each epoch of the CLI's mixtrain arm."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "mixkit", "mixtrain", "--data", "digits", "--model", MODEL,
               "--img-size", str(IMG), "--batch-size", str(BATCH), "--epochs", str(epochs),
               "--op", op, "--no-baseline", "--crop-padding", "0", "--no-hflip",
               "--device", "cpu", "--output", tmp,
               "--experiment", "e", "--save-weights", "none"]
        subprocess.run(cmd, check=True, capture_output=True,
                       env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        rows = [json.loads(r) for r in (Path(tmp) / "e" / "metrics.jsonl").read_text()
                .splitlines()]
    return [r["epoch_seconds"] / r["inputs"] for r in rows
            if r.get("arm") == "mixtrain" and "inputs" in r]


def loop_seconds(op: str, epochs: int) -> list[float]:
    """Seconds per input of each epoch of the plain loop with ``mixkit.MixTrain``."""
    torch.manual_seed(0)
    data = digits()
    model = mixkit.create_timm_model(MODEL, num_classes=10, img_size=IMG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05, fused=True)
    mt = mixkit.MixTrain(len(data), op=op)
    loader = DataLoader(data, batch_sampler=mt.batch_sampler(BATCH), collate_fn=mt.collate)
    out = []
    for _ in range(epochs):
        model.train()
        t0, inputs = time.perf_counter(), 0
        for batch in loader:
            loss = mt.loss(model, batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            inputs += batch[0].shape[0]
        stats = mt.end_epoch()
        inputs -= round(stats["mixed_fraction"] * len(data) / 2)      # a pair is one input
        out.append((time.perf_counter() - t0) / inputs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ops", default="mixup,cutmix")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {MODEL} {IMG}px batch {BATCH}, "
          f"{args.epochs} epochs, {args.repeats} alternations")
    for op in args.ops.split(","):
        ratios = []
        for r in range(args.repeats):
            eng = statistics.median(engine_seconds(op, args.epochs, args.threads)[1:])
            lp = statistics.median(loop_seconds(op, args.epochs)[1:])
            ratios.append(lp / eng)
            print(f"  {op} repeat {r + 1}: engine {eng * 1e3:.3f} ms/input, "
                  f"loop {lp * 1e3:.3f} ms/input, loop/engine {lp / eng:.3f}", flush=True)
        sd = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        print(f"{op}: plain loop / engine time per input = {statistics.mean(ratios):.3f} "
              f"± {sd:.3f} (overhead {100 * (statistics.mean(ratios) - 1):+.1f} %)")


if __name__ == "__main__":
    main()
