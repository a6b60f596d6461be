"""torchrun with N processes vs 1 process at the same global batch, side by side in one run.

For each seed it runs ``mixkit <command>`` once as a single process with ``-b B*N`` and once under
``torchrun --nproc_per_node N`` with ``-b B`` (same global batch, same seed), reads both
``summary.json`` files and prints accuracy (mean ± sd) and training seconds of each, and their
ratio. On a GPU box N GPUs should give close to N x; on this 2-core CPU the two processes share
the cores, so the figure shows correctness (same accuracy) more than speed.

    python benchmarks/ddp_scaling.py                       # mixtrain on digits, 2 procs, 3 seeds
    python benchmarks/ddp_scaling.py --nproc 8 -- --data cifar10 --data-dir ~/data --epochs 30
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import mean_sd


def run(cmd: list[str], out: Path, name: str, env: dict[str, str]) -> dict:
    proc = subprocess.run([*cmd, "--output", str(out), "--experiment", name], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((out / name / "summary.json").read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--command", default="mixtrain", choices=("mixtrain", "mixtraining"))
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("-b", "--batch-size", type=int, default=32, help="per process")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("extra", nargs="*", help="more mixkit flags (after --)")
    args = p.parse_args()
    extra = args.extra or ["--data", "digits", "--model", "mobilenetv2_035", "--img-size", "16",
                           "--epochs", "5", "--no-baseline"]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // args.nproc))}
    single_env = {**os.environ}
    arm = "mixtrain" if args.command == "mixtrain" else "mixtraining"
    res: dict[str, list[dict]] = {"1": [], "N": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for seed in args.seeds:
            base = [args.command, *extra, "--seed", str(seed)]
            res["1"].append(run([sys.executable, "-m", "mixkit", *base, "-b",
                                 str(args.batch_size * args.nproc)], out, f"one-{seed}",
                                single_env))
            res["N"].append(run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 "--nproc_per_node", str(args.nproc), "-m", "mixkit", *base,
                                 "-b", str(args.batch_size)], out, f"ddp-{seed}", env))
    acc = {k: [100 * s["arms"][arm]["accuracy"] for s in v] for k, v in res.items()}
    sec = {k: [s["arms"][arm]["train_seconds"] for s in v] for k, v in res.items()}
    ratio = [a / b for a, b in zip(sec["1"], sec["N"])]
    print(f"\n{args.command} {' '.join(extra)}; global batch {args.batch_size * args.nproc}; "
          f"seeds {args.seeds}; {res['1'][0]['device']}")
    print(f"1 process      accuracy {mean_sd(acc['1'], 2)} %   "
          f"train seconds {mean_sd(sec['1'], 1)}")
    print(f"{args.nproc} processes    accuracy {mean_sd(acc['N'], 2)} %   "
          f"train seconds {mean_sd(sec['N'], 1)}   (world_size {res['N'][0]['world_size']})")
    print(f"speedup (1-process seconds / {args.nproc}-process seconds) {mean_sd(ratio)}x; "
          f"accuracy difference {mean_sd([a - b for a, b in zip(acc['N'], acc['1'])], 2)} pts")


if __name__ == "__main__":
    main()
