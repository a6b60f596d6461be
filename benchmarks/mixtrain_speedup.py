"""mixTrain vs the supervised baseline at equal epochs, side by side in one process.

For every seed it trains, from the same initial weights, data and augmentation stream:
the baseline arm, and a mixtrain arm for each ``--ops`` entry (CutMix with split propagation,
MixUp with adaptive ratios; ``OP:key=value,...`` overrides settings for that arm, e.g.
``mixup:r1_entry=correct``, so variants run side by side with the faithful method). It prints,
over seeds (mean ± sd):

* speedup = baseline training seconds / mixtrain training seconds (equal epochs),
* accuracy delta (mixtrain − baseline, points),
* the iso-time comparison the paper makes (§5.3.3): the baseline's accuracy when it is stopped
  at mixtrain's wall-clock (the last baseline epoch that ends within mixtrain's total time) —
  is mixtrain more accurate than simply training less?

and the two overheads, each timed on its own with and without the work (medians of many
device-synced repeats, as shares of a CutMix step on a half-mixed plan):

* selection bookkeeping: the per-batch state updates, the end-of-epoch region rules and the
  pairing of the next plan, as a share of a mixtrain epoch's time (goal <= 1 %);
* split propagation: CutMix forward+backward with region pooling vs plain CutMix (goal <= 2 %).

    python benchmarks/mixtrain_speedup.py                # digits, mobilenetv2_050, 20 epochs, 3 seeds
    python benchmarks/mixtrain_speedup.py --data cifar10 --data-dir ~/data --model resnet18 --epochs 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
import yaml

from common import mean_sd
from mixkit.arms import MIXTRAIN, mixtrain, mixtrain_recipe, supervised
from mixkit.config import MixtrainConfig, build_config
from mixkit.data.plan import pair_plan
from mixkit.engine.loop import ArmResult
from mixkit.engine.progress import TrainingProgress
from mixkit.methods.mixtrain import ops
from mixkit.methods.mixtrain.method import MixTrainArm
from mixkit.models import create_model
from mixkit.models.split import region_logits
from mixkit.orchestrate import prepare, run_arm, seed_everything


def iso_time_accuracy(base_rows: list[dict], budget: float) -> float | None:
    """Baseline val accuracy at the last epoch that ends within ``budget`` seconds."""
    spent, acc = 0.0, None
    for row in base_rows:
        spent += row["epoch_seconds"]
        if spent > budget:
            break
        acc = row["val_acc"]
    return acc


def mean_rows(runs: list[dict], arm: str) -> list[dict]:
    """The arm's metrics rows averaged epoch by epoch over the seeds that ran it (numbers and
    region counts; keys missing or ``None`` in some seed average over the others)."""
    per_seed = [r[arm].rows for r in runs if arm in r]
    out = []
    for rows in zip(*per_seed):
        avg: dict = {"epoch": rows[0]["epoch"]}
        keys = {k for row in rows for k, v in row.items() if isinstance(v, (int, float))}
        for k in keys - {"epoch"}:
            vals = [row[k] for row in rows if isinstance(row.get(k), (int, float))]
            avg[k] = statistics.mean(vals)
        if "region_counts" in rows[0]:
            avg["region_counts"] = {k: statistics.mean(row["region_counts"][k] for row in rows)
                                    for k in rows[0]["region_counts"]}
        out.append(avg)
    return out


def print_trace(runs: list[dict], ops: list[str]) -> None:
    """Per-epoch selection trace, averaged over seeds: what the region rules did, epoch by
    epoch. ``ok<mid``/``bad<mid``: the shares of the correct / incorrect unmixed samples below
    ``L_mid`` (the paper's Fig. 6 reports > 95 % and < 10 %)."""
    base = mean_rows(runs, "baseline")

    def pct(x) -> str:
        return "  -" if x is None else f"{x:4.0%}"

    for op in ops:
        print(f"\n{op} (mean of {sum(op in r for r in runs)} seeds): epoch  mixed  r1/r2/r3  "
              f"L_corr L_incorr L_mid  ok<mid bad<mid  train_loss (baseline)  "
              f"val_acc (baseline)")
        for row, b in zip(mean_rows(runs, op), base):
            rc = row.get("region_counts", {})
            print(f"  {row['epoch']:>5d}  {row.get('mixed_fraction', 0):5.0%}  "
                  f"{rc.get('r1', 0):.0f}/{rc.get('r2', 0):.0f}/{rc.get('r3', 0):.0f}  "
                  f"{row.get('l_corr', 0):.3f} {row.get('l_incorr', 0):.3f} "
                  f"{row.get('l_mid', 0):.3f}  {pct(row.get('correct_below_mid'))}   "
                  f"{pct(row.get('incorrect_below_mid'))}  "
                  f"{row['train_loss']:.3f} ({b['train_loss']:.3f})  "
                  f"{row.get('val_acc', float('nan')):.3f} ({b.get('val_acc', float('nan')):.3f})")


def summarize(runs: list[dict], ops: list[str]) -> None:
    """Speedup, accuracy delta (with the per-seed values, so that two arms can be compared
    seed by seed), inputs and the iso-time comparison of each op, over the seeds that ran it."""
    print(f"baseline accuracy {mean_sd([r['baseline'].accuracy for r in runs])}; "
          f"seconds {mean_sd([r['baseline'].train_seconds for r in runs])}")
    for op in ops:
        rs = [r for r in runs if op in r]
        speed = [r["baseline"].train_seconds / r[op].train_seconds for r in rs]
        delta = [100 * (r[op].accuracy - r["baseline"].accuracy) for r in rs]
        iso = [iso_time_accuracy(r["baseline"].rows, r[op].train_seconds) for r in rs]
        iso_delta = [100 * (r[op].accuracy - a) for r, a in zip(rs, iso) if a is not None]
        inputs = [r[op].inputs / r["baseline"].inputs for r in rs]
        print(f"{op:7s} speedup {mean_sd(speed)}x  accuracy delta {mean_sd(delta)} pts "
              f"(per seed {[round(d, 2) for d in delta]})  "
              f"inputs {mean_sd(inputs)} of baseline  "
              f"vs baseline stopped at its wall-clock: {mean_sd(iso_delta) if iso_delta else 'n/a'}"
              f" pts (positive: mixtrain more accurate)")


def pooled(paths: list[str]) -> tuple[list[dict], list[str]]:
    """Seeds from ``--rows-out`` files of earlier invocations, as arm results (each seed's arms
    were measured side by side in its own process)."""
    runs, ops = [], []
    for path in paths:
        with open(path) as f:
            for seed in json.load(f):
                arms = {k: v for k, v in seed.items() if k != "seed"}
                runs.append({k: ArmResult.from_rows(k, len(v), v) for k, v in arms.items()})
                ops += [k for k in arms if k != "baseline" and k not in ops]
    return runs, ops


def arm_config(cfg, spec: str):
    """``OP`` or ``OP:key=value,...`` -> the arm's config (values parsed as the config parses
    YAML, then validated)."""
    op, _, rest = spec.partition(":")
    overrides = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    values = {**vars(cfg), "op": op,
              **{k: yaml.safe_load(v) for k, v in overrides.items()}}
    return build_config(MixtrainConfig, values, where=f"--ops {spec}")


def run_seed(cfg, ops: list[str], progress: TrainingProgress, turn: int = 0) -> dict[str, dict]:
    """Every arm of one seed. The order rotates with ``turn`` so that no arm is always the one
    that runs last on a host whose speed drifts; each arm reseeds, so the order changes no
    result but its seconds."""
    ctx = prepare(cfg, MIXTRAIN)
    arms = ["baseline", *ops]
    out = {}
    for name in arms[turn % len(arms):] + arms[: turn % len(arms)]:
        if name == "baseline":
            out[name] = run_arm(ctx, "baseline", supervised("baseline"), None, progress)
        else:
            ctx.cfg = arm_config(cfg, name)
            out[name] = run_arm(ctx, "mixtrain", mixtrain, None, progress)
    return out


def timed(fn, runtime, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` device-synced calls (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeats):
        runtime.synchronize()
        t = time.perf_counter()
        fn()
        runtime.synchronize()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def overheads(cfg, repeats: int) -> tuple[float, float]:
    """(bookkeeping, split propagation) as shares of a CutMix step on a half-mixed epoch.

    Each cost is timed on its own, with and without the work, over many repeats, because on a
    shared CPU two whole epochs differ by more than the 1-2 % being measured:

    * bookkeeping = the two ``MixState.record`` calls of every step + the end-of-epoch region
      rules and the pairing of the next plan, divided by the epoch's step time;
    * split propagation = (region pooling of both constituents + one head call on 2B rows +
      their backward) − (whole-map pooling + head on B rows + backward), per step time.
    """
    ctx = prepare(replace(cfg, op="cutmix"), MIXTRAIN)
    seed_everything(cfg.seed)
    model = ctx.runtime.prepare(create_model(cfg.model, ctx.data.num_classes, ctx.data.img_size,
                                             cfg.patch_size)[0])
    n, rt = len(ctx.data.train), ctx.runtime
    arm = MixTrainArm(replace(cfg, op="cutmix"), n, mixtrain_recipe(cfg), ctx.model_info,
                      ctx.data.img_size, rt.device)
    mix = torch.rand(n, generator=torch.Generator().manual_seed(0)) < 0.5
    plan = pair_plan(mix, torch.Generator().manual_seed(0))
    batch = next(iter(ctx.data.train.batches(plan, cfg.batch_size)))
    nb = plan.num_batches(cfg.batch_size)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with rt.autocast():
            loss = arm.loss(model, batch)
        loss.backward()

    t_step = timed(step, rt, repeats)
    ce = torch.rand(batch.size, device=rt.device)
    ok = ce > 0.5
    state = arm.state

    def record() -> None:
        state.record(batch.ids, ce, ok, ~batch.paired)
        state.record(state.slot(batch.ids2, batch.paired), ce, ok, torch.zeros_like(ok))

    t_record = timed(record, rt, 20 * repeats)
    t_epoch_rules = timed(lambda: (state.end_epoch(), pair_plan(state.mix_mask(),
                                                                 torch.Generator())), rt, repeats)
    book = (nb * t_record + t_epoch_rules) / (nb * t_step)

    with torch.no_grad(), rt.autocast():
        feats0 = model.forward_features(batch.x)
    cells = ops.cell_mask(ops.sample_cell_boxes(batch.size, ctx.model_info.grid, arm.box_shapes,
                                                arm.box_generator), ctx.model_info.grid)

    def head(split: bool) -> None:
        feats = feats0.detach().requires_grad_()
        with rt.autocast():
            if split:
                la, lb = region_logits(model, feats, ctx.model_info, [~cells, cells])
                loss = F.cross_entropy(la, batch.y) + F.cross_entropy(lb, batch.y2)
            else:
                loss = F.cross_entropy(model.forward_head(feats), batch.y)
        loss.backward()

    split = (timed(lambda: head(True), rt, 20 * repeats)
             - timed(lambda: head(False), rt, 20 * repeats)) / t_step
    return book, split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--model", default="mobilenetv2_050")
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--patch-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--data-fraction", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ops", nargs="+", default=["cutmix", "mixup"])
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", action="store_true")
    p.add_argument("--thresholds", default="cumulative", choices=("cumulative", "last"))
    p.add_argument("--final-unmixed-epochs", type=int, default=0,
                   help="beyond the paper: the last K epochs unmixed")
    p.add_argument("--overhead-repeats", type=int, default=10)
    p.add_argument("--no-overheads", action="store_true")
    p.add_argument("--rows-out", default=None,
                   help="write every arm's metrics rows, per seed, to this JSON file")
    p.add_argument("--pool", nargs="+", default=None, metavar="ROWS_JSON",
                   help="train nothing: summarise the seeds of earlier --rows-out files together")
    args = p.parse_args()

    base = build_config(MixtrainConfig, {
        "data": args.data, "data_dir": args.data_dir, "model": args.model,
        "img_size": args.img_size, "patch_size": args.patch_size, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "data_fraction": args.data_fraction,
        "device": args.device, "amp": args.amp, "thresholds": args.thresholds,
        "final_unmixed_epochs": args.final_unmixed_epochs},
        where="benchmark")
    if args.pool:
        runs, ops = pooled(args.pool)
        print(f"\npooled {len(runs)} seeds from {', '.join(args.pool)}")
        print_trace(runs, ops)
        summarize(runs, ops)
        return
    progress = TrainingProgress(enabled=True)
    runs = []
    for turn, seed in enumerate(args.seeds):
        runs.append(run_seed(replace(base, seed=seed), args.ops, progress, turn))
    device = prepare(base, MIXTRAIN).runtime.describe()
    print(f"\nmixtrain vs baseline — {args.data}, {args.model}, {args.epochs} epochs, "
          f"thresholds {args.thresholds}, "
          f"final unmixed epochs {args.final_unmixed_epochs}, "
          f"batch {args.batch_size}, seeds {args.seeds}, {device}")
    print_trace(runs, args.ops)
    if args.rows_out:
        with open(args.rows_out, "w") as f:
            json.dump([{"seed": seed, **{k: v.rows for k, v in r.items()}}
                       for seed, r in zip(args.seeds, runs)], f)
    summarize(runs, args.ops)
    if not args.no_overheads:
        book, split = overheads(replace(base, seed=args.seeds[0]), args.overhead_repeats)
        print(f"overheads: selection bookkeeping {100 * book:+.2f} % of a mixtrain epoch's steps "
              f"(goal <= 1 %); split propagation {100 * split:+.2f} % (goal <= 2 %)")


if __name__ == "__main__":
    main()
