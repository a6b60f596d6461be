"""Where a run's time goes: the host wait for data in an input-bound run vs an in-memory one.

Three real ``mixkit mixtrain`` runs (baseline + mixTrain MixUp, ``--compare skip``), the same
small model (``resnet10_w16``) and batch, each reporting per epoch ``data_seconds`` (the host
time the loop waited for its next batch) and ``data_share`` (of the epoch):

* a streamed ImageNet-like folder (JPEGs ~500x375, decoded and RandomResizedCrop-ped to 32 px
  while decoding) with ``--workers 0`` (decoding in the training process) and ``--workers 1``
  (one worker process on the same core);
* an in-memory run (Fashion-MNIST's files if installed, else ``digits``): ~0 wait.

It prints each arm's wait share, its inputs and samples, and the run's closing line, which names
an input-bound run (``mixkit.summary.INPUT_BOUND``). Pin it to one core::

    taskset -c 0 python benchmarks/data_wait.py --files 1200 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from data_throughput import make_folder

ARGS = ["--model", "resnet10_w16", "--batch-size", "64", "--op", "mixup", "--compare", "skip",
        "--device", "cpu", "--save-weights", "none", "--timing-warmup", "0"]


def run(out: Path, name: str, data: list[str], epochs: int) -> tuple[dict, str]:
    cmd = [sys.executable, "-m", "mixkit", "mixtrain", *data, *ARGS, "--epochs", str(epochs),
           "--output", str(out), "--experiment", name]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"})
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    summary = json.loads((out / name / "summary.json").read_text())
    text = " ".join(proc.stdout.split())                 # the table wraps; unwrap it
    found = re.search(r"Input-bound:.*?(?:theirs\.|$)", text)
    return summary, found.group(0) if found else "(no input-bound line)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=int, default=1200)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--img-size", type=int, default=32, help="the folder runs' crop size (px)")
    args = p.parse_args()
    import torch

    print(f"torch {torch.__version__}, 1 thread, resnet10_w16, batch 64, {args.epochs} epochs "
          f"(mixTrain mixes from epoch 2)")
    fmnist = Path("/usr/share/datasets/fashion-mnist")
    memory = (["--data", "fashionmnist", "--data-fraction", "0.04"] if fmnist.is_dir()
              else ["--data", "digits"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "folder"
        make_folder(root, args.files, 10)
        out = Path(tmp) / "runs"
        folder = ["--data", "imagefolder", "--data-dir", str(root), "--img-size",
                  str(args.img_size)]
        cases = [("streamed, --workers 0", [*folder, "--workers", "0"]),
                 ("streamed, --workers 1", [*folder, "--workers", "1"]),
                 (f"in memory ({memory[1]})", [*memory, "--img-size", "32"])]
        print("| data | arm | wait share | data s / epoch | inputs | samples | epoch s |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        closing = []
        for i, (label, data) in enumerate(cases):
            summary, line = run(out, f"r{i}", data, args.epochs)
            for arm, s in summary["arms"].items():
                print(f"| {label} | {arm} | {s['data_share']:.2f} | "
                      f"{s['data_seconds'] / args.epochs:.1f} | {s['inputs']} | "
                      f"{s.get('samples', '')} | {s['train_seconds'] / args.epochs:.1f} |",
                      flush=True)
            closing.append(f"{label}: {line}")
        print("\nclosing lines:\n" + "\n".join(closing))


if __name__ == "__main__":
    main()
