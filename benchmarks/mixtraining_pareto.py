"""SL, SSL+SL and MixTraining side by side in one process: is MixTraining a Pareto improvement?

For every seed it trains the three arms of ``mixkit mixtraining`` from the same initial weights,
data and augmentation streams, and prints over seeds (mean ± sd):

* each arm's accuracy and training seconds (the paper's Table 1 columns);
* the per-epoch cost of each phase (median epoch seconds of ``ssl``, ``mix`` and ``sl`` epochs
  over every arm), the mix/SL cost ratio (goal <= 1.2) and the SSL/SL ratio;
* the speedup those costs predict, ``(e_ssl*c_ssl + e_sl*c_sl) / ((e_ssl-e_mix)*c_ssl +
  e_mix*c_mix + (e_sl-e_mix)*c_sl)``, next to the measured latency(SSL+SL) / latency(MixTraining)
  (goal: within 5 %);
* Pareto: in how many seeds MixTraining is both more accurate and faster than SSL+SL.

Warmups follow Table 7's *proportions* (SL 5 of 100 epochs, SSL 20 of 100) unless
``--paper-warmups`` keeps the absolute 5 / 20 epochs (which a 10-epoch run clips to half).

    python benchmarks/mixtraining_pareto.py                          # digits, ViT-Tiny, 3 seeds
    python benchmarks/mixtraining_pareto.py --data cifar10 --data-dir ~/data --epochs-ssl 20 \\
        --epochs-sl 20 --data-fraction 0.1
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

from common import mean_sd
from mixkit.commands import MIXTRAINING, SCHEDULES, mixtraining_arm
from mixkit.config import MixtrainingConfig, build_config
from mixkit.engine.loop import ArmResult
from mixkit.engine.progress import TrainingProgress
from mixkit.methods.mixtraining.schedule import Schedule
from mixkit.runner import prepare, run_arm

def run_seed(cfg, progress: TrainingProgress) -> dict[str, ArmResult]:
    ctx = prepare(cfg, MIXTRAINING)
    return {name: run_arm(ctx, name, mixtraining_arm(name, sched), None, progress)
            for name, sched in SCHEDULES.items()}


def phase_costs(results: dict[str, ArmResult]) -> dict[str, float]:
    """Median epoch seconds of each phase over every arm's epochs (one seed)."""
    by_phase: dict[str, list[float]] = {}
    for r in results.values():
        for row in r.rows:
            by_phase.setdefault(row["phase"], []).append(row["epoch_seconds"])
    return {p: statistics.median(v) for p, v in by_phase.items()}


def predicted_speedup(s: Schedule, c: dict[str, float]) -> float:
    base = s.e_ssl * c["ssl"] + s.e_sl * c["sl"]
    ours = (s.e_ssl - s.e_mix) * c["ssl"] + s.e_mix * c.get("mix", 0.0) + \
        (s.e_sl - s.e_mix) * c["sl"]
    return base / ours


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--ssl-data", default=None)
    p.add_argument("--model", default="vit_tiny_patch16_224")
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--patch-size", type=int, default=None)
    p.add_argument("--epochs-ssl", type=int, default=10)
    p.add_argument("--epochs-sl", type=int, default=10)
    p.add_argument("--rho", type=float, default=0.5)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--mix-forward", default="shared", choices=("shared", "separate"))
    p.add_argument("-b", "--batch-size", type=int, default=128)
    p.add_argument("--data-fraction", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--paper-warmups", action="store_true",
                   help="absolute Table-7 warmups (5 SL / 20 SSL epochs) instead of 5 %% / 20 %%")
    args = p.parse_args()

    values = {k: getattr(args, k) for k in (
        "data", "data_dir", "ssl_data", "model", "img_size", "patch_size", "epochs_ssl",
        "epochs_sl", "rho", "alpha", "mix_forward", "batch_size", "data_fraction", "device",
        "amp")}
    if not args.paper_warmups:
        values |= {"warmup_epochs": 0.05 * args.epochs_sl,
                   "ssl_warmup_epochs": 0.2 * args.epochs_ssl}
    base = build_config(MixtrainingConfig, values, where="benchmark")
    progress = TrainingProgress(enabled=True)
    runs = [run_seed(replace(base, seed=s), progress) for s in args.seeds]
    sched = Schedule(base.epochs_ssl, base.epochs_sl, base.rho)
    device = prepare(base, MIXTRAINING).runtime.describe()

    print(f"\nMixTraining vs SSL+SL vs SL — {args.data}, {args.model}, e_ssl {sched.e_ssl}, "
          f"e_sl {sched.e_sl}, rho {base.rho} (e_mix {sched.e_mix}), alpha {base.alpha}, "
          f"{base.mix_forward} forward, batch {base.batch_size}, seeds {args.seeds}, {device}")
    for name in SCHEDULES:
        acc = [100 * r[name].accuracy for r in runs]
        sec = [r[name].train_seconds for r in runs]
        print(f"{name:12s} accuracy {mean_sd(acc, 2)} %   train seconds {mean_sd(sec, 1)}")
    costs = [phase_costs(r) for r in runs]
    pred = [predicted_speedup(sched, c) for c in costs]
    meas = [r["ssl+sl"].train_seconds / r["mixtraining"].train_seconds for r in runs]
    ratio = lambda ph: [c[ph] / c["sl"] for c in costs if ph in c]  # noqa: E731
    print("per-epoch cost (s): " + ", ".join(
        f"{ph} {mean_sd([c[ph] for c in costs if ph in c], 2)}" for ph in ("ssl", "mix", "sl")
        if any(ph in c for c in costs)))
    print(f"mix epoch / SL epoch {mean_sd(ratio('mix'))} (goal <= 1.2); "
          f"SSL epoch / SL epoch {mean_sd(ratio('ssl'))}")
    print(f"speedup vs SSL+SL: predicted {mean_sd(pred)}x, measured {mean_sd(meas)}x, "
          f"measured/predicted {mean_sd([m / q for m, q in zip(meas, pred)])} (goal within 5 %)")
    gain = [100 * (r["mixtraining"].accuracy - r["ssl+sl"].accuracy) for r in runs]
    gain_sl = [100 * (r["mixtraining"].accuracy - r["sl"].accuracy) for r in runs]
    pareto = sum(g > 0 and m > 1 for g, m in zip(gain, meas))
    print(f"accuracy gain over SSL+SL {mean_sd(gain, 2)} pts, over SL {mean_sd(gain_sl, 2)} pts;"
          f" Pareto improvement over SSL+SL in {pareto}/{len(runs)} seeds")


if __name__ == "__main__":
    main()
