"""Everything a short GPU session should measure, in one command that writes one JSON.

    python benchmarks/gpu.py --data-dir .gpu-data --out gpu-results.json     # <= 8 min on H100/H200
    python benchmarks/gpu.py --quick --device cpu                           # smoke test, anywhere

Parts (each is written to the JSON as soon as it is done, so a time-out keeps what finished):

1. ``tests/test_cuda.py``: both commands on the GPU (bf16 / fp16 AMP, channels_last,
   --ssl-data, exact resume) with the step under CUDA's sync debug mode "error"; 2-process
   NCCL runs when there are two GPUs. Its torch.compile tests run last (``tests_compile``),
   with whatever is left of ``--budget``: cold compiles take minutes.
2. Engine vs the plain ``DataLoader`` + timm loop (``engine_throughput.compare``): ResNet-18 on
   Fashion-MNIST at 32 px, batch 512, plain / bf16+channels_last / +torch.compile in *both*
   loops; img/s, the ratio, and model FLOP utilisation against the chip's dense bf16 peak
   (goal: engine >= 1.3x the plain loop, >= 35 % MFU with bf16).
3. mixTrain on a short run (baseline, CutMix, MixUp side by side): speedups, accuracy deltas, and
   the two overheads as shares of a step (goals <= 1 % bookkeeping, <= 2 % split propagation).
4. MixTraining's per-phase epoch costs (SSL, mix, SL) and predicted vs measured speedup.

Needs nothing but the repository and Fashion-MNIST's four files under ``--data-dir`` (copy
``/usr/share/datasets/fashion-mnist`` into the working tree; 30 MB travels with it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

import engine_throughput
import mixkit
import mixtrain_speedup
import mixtraining_pareto
from mixkit import experiment
from mixkit.functional import Schedule

# dense bf16 tensor-core peaks (no sparsity), FLOP/s, by a substring of the device name
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12,
             "L4": 121e12, "RTX 4090": 165e12}
REPO = Path(__file__).resolve().parent.parent


def peak_flops(name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def run_cuda_tests(select: str, timeout: float) -> dict:
    """``tests/test_cuda.py -k SELECT`` in a subprocess; a time-out is a result, not a crash."""
    t = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p",
                               "no:cacheprovider", "-n", "0", "tests/test_cuda.py", "-k", select],
                              cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return {"timed_out_after": timeout, "tail": out[-4000:]}
    last = proc.stdout.splitlines()[-1] if proc.stdout else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}
    return {"returncode": proc.returncode, **counts, "seconds": time.perf_counter() - t,
            "tail": proc.stdout[-4000:] + proc.stderr[-2000:]}


def throughput(args) -> list[dict]:
    peak = None
    out = []
    for amp, cl, comp in args.settings:
        with engine_throughput.experiment(
                args.data, "resnet18", args.batch, data_dir=args.data_dir,
                img_size=args.img_size, data_fraction=args.fraction, device=args.device,
                amp=amp, channels_last=cl, compile=comp) as exp:
            if peak is None:
                model = mixkit.create_timm_model("resnet18", num_classes=exp.num_classes,
                                                 img_size=exp.img_size).to(exp.device)
                flops = engine_throughput.train_flops_per_image(model, exp.img_size, exp.device)
                peak = (peak_flops(torch.cuda.get_device_name(exp.device))
                        if exp.device.type == "cuda" else 0.0)
            r = engine_throughput.compare(exp, args.batch, compile=comp, workers=args.workers,
                                          repeats=args.repeats)
        r["train_flops_per_image"] = flops
        r["mfu"] = r["mixkit_img_s"] * flops / peak if peak else None
        r["plain_mfu"] = r["plain_img_s"] * flops / peak if peak else None
        out.append(r)
    return out


def mixtrain_short(args) -> dict:
    base = experiment.settings(
        "mixtrain", data=args.data, data_dir=args.data_dir, data_fraction=args.fraction,
        img_size=args.img_size, model="resnet18", epochs=args.mixtrain_epochs,
        batch_size=args.batch, lr=2e-3, device=args.device, val_size=args.val_size)
    r = mixtrain_speedup.run_seed(base, ["cutmix", "mixup"])
    out: dict = {op: {"speedup": r["baseline"].train_seconds / r[op].train_seconds,
                      "accuracy_delta": r[op].accuracy - r["baseline"].accuracy,
                      "inputs": r[op].inputs / r["baseline"].inputs}
                 for op in ("cutmix", "mixup")}
    out["baseline_accuracy"] = r["baseline"].accuracy
    book, split = mixtrain_speedup.overheads(base, repeats=10 if not args.quick else 2)
    out["overhead_bookkeeping"], out["overhead_split_propagation"] = book, split
    return out


def mixtraining_costs(args) -> dict:
    cfg = experiment.settings(
        "mixtraining", data=args.data, data_dir=args.data_dir, data_fraction=args.fraction,
        img_size=args.img_size, patch_size=8 if args.quick else 4,
        epochs_ssl=args.mixtraining_epochs, epochs_sl=args.mixtraining_epochs,
        batch_size=args.batch // 2, device=args.device, val_size=args.val_size,
        decoder_depth=2)
    results = mixtraining_pareto.run_seed(cfg, None, list(mixtraining_pareto.ARMS))
    costs = mixtraining_pareto.phase_costs(results)
    sched = Schedule(cfg.epochs_ssl, cfg.epochs_sl, cfg.rho)
    return {"phase_seconds": costs, "mix_over_sl": costs.get("mix", 0) / costs["sl"],
            "predicted_speedup": mixtraining_pareto.predicted_speedup(sched, costs),
            "measured_speedup": results["ssl+sl"].train_seconds
            / results["mixtraining"].train_seconds,
            "accuracy": {k: v.accuracy for k, v in results.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="fashionmnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu-results.json"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the script")
    p.add_argument("--budget", type=float, default=470, help="seconds the whole script may take: "
                   "the last part (the torch.compile CUDA tests) gets what is left")
    p.add_argument("--skip", nargs="*", default=[], choices=("tests", "throughput", "mixtrain",
                                                             "mixtraining"))
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    full = not args.quick
    args.fraction = 0.5 if full else 0.05
    args.img_size = 32 if full else 16      # --quick: a smoke test (the suite runs it)
    args.val_size = 2000 if full else 100
    args.batch = 512 if full else 32
    args.repeats = 3 if full else 1
    args.workers = min(16, os.cpu_count() or 1) if full else 0
    args.settings = ([(False, False, False), (True, True, False), (True, True, True)] if full
                     else [(False, False, False)])
    args.mixtrain_epochs = 8 if full else 2
    args.mixtraining_epochs = 6 if full else 2
    if args.quick:
        args.data = "digits" if args.data == "fashionmnist" and not args.data_dir else args.data
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    results: dict = {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
                     "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
                     "quick": args.quick, "started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def part(key: str, fn) -> None:
        if key in args.skip:
            return
        t = time.perf_counter()
        try:
            results[key] = fn()
        except Exception as exc:  # noqa: BLE001 - record and go on: other parts still count
            results[key] = {"error": f"{type(exc).__name__}: {exc}"}
        results.setdefault("seconds", {})[key] = time.perf_counter() - t
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"[gpu.py] {key} done in {time.perf_counter() - t:.0f} s -> {args.out}",
              flush=True)

    start = time.perf_counter()
    if device.type == "cuda":
        part("tests", lambda: run_cuda_tests("not torchcompile", timeout=200))
    part("throughput", lambda: throughput(args))
    part("mixtrain", lambda: mixtrain_short(args))
    part("mixtraining", lambda: mixtraining_costs(args))
    if device.type == "cuda":       # last: compiling is the slowest and the most expendable
        left = args.budget - (time.perf_counter() - start)
        part("tests_compile", lambda: run_cuda_tests("torchcompile", timeout=max(30.0, left)))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
