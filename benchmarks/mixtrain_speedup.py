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

With ``--compare short,skip,infobatch`` the comparison arms of ``mixkit mixtrain --compare``
run too, each matched to the *first* op's measured inputs in the same seed (what a user would do
instead with the same compute: train fewer epochs, skip mini-batches, prune with InfoBatch).
Speedups are printed from total seconds and from per-input median epoch costs (robust to one
disturbed epoch); a seed whose per-input epoch costs scatter more than 10 % (median absolute
deviation) in any arm is flagged, and its total-seconds ratio should not be quoted.

and the two overheads, each timed on its own with and without the work (medians of many
device-synced repeats, as shares of a CutMix step on a half-mixed plan):

* selection bookkeeping: the per-batch state updates, the end-of-epoch region rules and the
  pairing of the next plan, as a share of a mixtrain epoch's time (goal <= 1 %);
* split propagation: CutMix forward+backward with region pooling vs plain CutMix (goal <= 2 %).

    python benchmarks/mixtrain_speedup.py                # digits, mobilenetv2_050, 20 epochs, 3 seeds
    python benchmarks/mixtrain_speedup.py --data fashionmnist --data-fraction 0.05 --val-size 2000 \
        --epochs 30 --compare short,skip,infobatch --rows-out rows.json      # 2-core CPU setting
    python benchmarks/mixtrain_speedup.py --data cifar10 --data-dir ~/data --model resnet18 --epochs 30

Every option of ``mixkit mixtrain`` is an option here too (``--help``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
import yaml

from common import (add_run_options, apply_threads, config_options, load_rows, mean_sd,
                    save_rows)
import mixkit
from mixkit import functional as MF
from mixkit.experiment import (NOISY, ArmResult, Experiment, best_at_cost, robust_speedup,
                               timing_spread)


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


def summarize(runs: list[dict], arms: list[str]) -> None:
    """Per arm over the seeds that ran it: speedup from totals and from per-input medians,
    accuracy delta (per seed too, for paired comparisons), inputs, and the iso-time comparison;
    then which arm is most accurate at the first op's cost, seed by seed."""
    print(f"baseline accuracy {mean_sd([100 * r['baseline'].accuracy for r in runs], 2)} %; "
          f"seconds {mean_sd([r['baseline'].train_seconds for r in runs], 1)}")
    for arm in arms:
        rs = [r for r in runs if arm in r]
        speed = [r["baseline"].train_seconds / r[arm].train_seconds for r in rs]
        robust = [robust_speedup(r["baseline"], r[arm]) for r in rs]
        delta = [100 * (r[arm].accuracy - r["baseline"].accuracy) for r in rs]
        iso = [iso_time_accuracy(r["baseline"].rows, r[arm].train_seconds) for r in rs]
        iso_delta = [100 * (r[arm].accuracy - a) for r, a in zip(rs, iso) if a is not None]
        inputs = [r[arm].inputs / r["baseline"].inputs for r in rs]
        print(f"{arm:10s} accuracy {mean_sd([100 * r[arm].accuracy for r in rs], 2)} %  "
              f"delta {mean_sd(delta, 2)} pts (per seed {[round(d, 2) for d in delta]})  "
              f"speedup {mean_sd(speed)}x total, {mean_sd(robust)}x per-input medians  "
              f"inputs {mean_sd(inputs)}  vs baseline stopped at its wall-clock: "
              f"{mean_sd(iso_delta, 2) if iso_delta else 'n/a'} pts")
    for i, r in enumerate(runs):
        noisy = [a for a, res in r.items() if res.rows and timing_spread(res) > NOISY]
        first = next((a for a in arms if a in r), None)
        best = best_at_cost(r, r[first]) if first else None
        print(f"seed #{i}: most accurate at {first}'s cost: "
              f"{best['arm'] if best else '-'}"
              + (f"; timing noisy in {', '.join(noisy)} (quote the per-input median speedup)"
                 if noisy else ""))


def pooled(paths: list[str]) -> tuple[list[dict], list[str]]:
    """Seeds from ``--rows-out`` files of earlier invocations, as arm results (each seed's arms
    were measured side by side in its own process)."""
    seeds, _ = load_rows(paths)
    runs = [{k: ArmResult.from_rows(k, len(v), v) for k, v in seed.items()} for seed in seeds]
    arms = []
    for r in runs:
        arms += [k for k in r if k != "baseline" and k not in arms]
    return runs, arms


def run_seed(base, ops: list[str], turn: int = 0, compare: tuple[str, ...] = ()
             ) -> dict[str, ArmResult]:
    """Every arm of one seed. The order of the baseline and the ops rotates with ``turn`` so
    that no arm is always the one that runs last on a host whose speed drifts (each arm
    starts from the seed's own weights and streams, so the order changes no result but its
    seconds); the comparison arms follow, matched to the first op's measured inputs.

    ``ops``: ``OP`` or ``OP:key=value,...`` (values parsed as YAML, then validated)."""
    exp = Experiment("mixtrain", **base, progress=True)
    exp.warm_up("baseline")
    arms = ["baseline", *ops]
    out: dict[str, ArmResult] = {}
    for name in arms[turn % len(arms):] + arms[: turn % len(arms)]:
        if name == "baseline":
            out[name] = exp.train("baseline")
        else:
            op, _, rest = name.partition(":")
            values = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1)
                                                        for kv in rest.split(",") if kv)}
            out[name] = exp.train("mixtrain", op=op, **values)
    for name in compare:
        out[name] = exp.train(name, match=out[ops[0]])
    exp.close()
    return out


def timed(fn, sync, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` device-synced calls (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def overheads(base, repeats: int) -> tuple[float, float]:
    """(bookkeeping, split propagation) as shares of a CutMix step on a half-mixed epoch.

    Each cost is timed on its own, with and without the work, over many repeats, because on a
    shared CPU two whole epochs differ by more than the 1-2 % being measured:

    * bookkeeping = the two per-sample state updates of every step + the end-of-epoch region
      rules and the pairing of the next plan, divided by the epoch's step time;
    * split propagation = (region pooling of both constituents + one head call on 2B rows +
      their backward) − (whole-map pooling + head on B rows + backward), per step time.
    """
    exp = Experiment("mixtrain", **base.replace(op="cutmix"))
    cfg = exp.settings
    images, labels, mean, std, _ = exp.train_arrays()
    device = exp.device
    torch.manual_seed(cfg.seed)
    model = mixkit.create_timm_model(cfg.model, num_classes=int(labels.max()) + 1,
                                     img_size=images.shape[-1], patch_size=cfg.patch_size)
    model = model.to(device)
    n, b = len(labels), cfg.batch_size
    x1 = ((images[:b].float() / 255 - mean[:, None, None]) / std[:, None, None]).to(device)
    x2 = torch.roll(x1, 1, 0)
    y1, y2 = labels[:b].to(device), torch.roll(labels[:b], 1).to(device)
    info = MF.model_info(model, x1[:2])
    stride = info.input_stride(images.shape[-1])
    gen = torch.Generator(device=device).manual_seed(0)
    shapes = torch.tensor(MF.box_shapes(info.grid, 0.5), device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        cells = MF.cell_mask(MF.sample_cell_boxes(b, info.grid, shapes, gen), info.grid)
        x = MF.cutmix(x1, x2, MF.pixel_mask(cells, stride))
        la, lb = MF.region_logits(model, model.forward_features(x), info, [~cells, cells])
        (F.cross_entropy(la, y1) + F.cross_entropy(lb, y2)).backward()

    t_step = timed(step, sync, repeats)
    mix = torch.rand(n, generator=torch.Generator().manual_seed(0)) < 0.5
    plan = MF.pair_plan(mix, torch.Generator().manual_seed(0))
    nb = plan.num_batches(b)
    state = MF.SelectionState(n, device)
    ids = torch.arange(b, device=device)
    ce = torch.rand(b, device=device)
    ok, paired = ce > 0.5, torch.rand(b, device=device) > 0.5

    def record() -> None:
        state.record(ids, ce, ok, ~paired)
        state.record(state.slot(ids + b, paired), ce, ok, torch.zeros_like(ok))

    t_record = timed(record, sync, 20 * repeats)
    t_epoch_rules = timed(lambda: (state.end_epoch(), MF.pair_plan(state.mix_mask(),
                                                                    torch.Generator())),
                          sync, repeats)
    book = (nb * t_record + t_epoch_rules) / (nb * t_step)

    with torch.no_grad():
        feats0 = model.forward_features(x1)
    cells = MF.cell_mask(MF.sample_cell_boxes(b, info.grid, shapes, gen), info.grid)

    def head(split: bool) -> None:
        feats = feats0.detach().requires_grad_()
        if split:
            la, lb = MF.region_logits(model, feats, info, [~cells, cells])
            loss = F.cross_entropy(la, y1) + F.cross_entropy(lb, y2)
        else:
            loss = F.cross_entropy(model.forward_head(feats), y1)
        loss.backward()

    split = (timed(lambda: head(True), sync, 20 * repeats)
             - timed(lambda: head(False), sync, 20 * repeats)) / t_step
    exp.close()
    return book, split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    build = config_options(p, "mixtrain", {"model": "mobilenetv2_050", "epochs": 20,
                                               "batch_size": 64, "lr": 2e-3})
    add_run_options(p)
    p.add_argument("--ops", nargs="+", default=["cutmix", "mixup"],
                   help="mixtrain arms: OP or OP:key=value,... (the first is what --compare "
                   "arms are matched to)")
    p.add_argument("--overhead-repeats", type=int, default=10)
    p.add_argument("--no-overheads", action="store_true")
    args = p.parse_args()
    apply_threads(args)
    if args.pool:
        runs, arms = pooled(args.pool)
        print(f"\npooled {len(runs)} seeds from {', '.join(args.pool)}")
        print_trace(runs, [a for a in arms if a.split(":")[0] in ("cutmix", "mixup")])
        summarize(runs, arms)
        return
    base = build(args)
    compare = tuple(base.compare_arms)
    base = base.replace(compare="")
    with Experiment("mixtrain", **base) as exp:
        device = exp.describe()
    settings = (f"{base.data} (p={base.data_fraction}, val {base.val_size or 'all'}), "
                f"{base.model}, {base.epochs} epochs, batch {base.batch_size}, lr {base.lr}, "
                f"ops {args.ops}, compare {list(compare)} (matched to {args.ops[0]}), "
                f"seeds {args.seeds}, {device}")
    runs = []
    for turn, seed in enumerate(args.seeds):
        runs.append(run_seed(base.replace(seed=seed), args.ops, turn, compare))
        if args.rows_out:          # after every seed: a stopped benchmark keeps what it ran
            save_rows(args.rows_out, args.seeds[:len(runs)], runs, {"settings": settings})
    print(f"\nmixtrain vs baseline — {settings}")
    print_trace(runs, args.ops)
    summarize(runs, [*args.ops, *compare])
    if not args.no_overheads:
        book, split = overheads(base.replace(seed=args.seeds[0]), args.overhead_repeats)
        print(f"overheads: selection bookkeeping {100 * book:+.2f} % of a mixtrain epoch's steps "
              f"(goal <= 1 %); split propagation {100 * split:+.2f} % (goal <= 2 %)")


if __name__ == "__main__":
    main()
