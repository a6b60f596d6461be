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

``--ssl-lr-as-mix`` is SSL+SL's fair control: MixTraining's MAE term trains in the mix phase at
the SL recipe's learning rate (6.7x Table 7's SSL rate at batch 64), so the control trains SSL+SL's
MAE phase at that rate too.

A rho or alpha sweep (the paper's Tables 4-5) needs only the MixTraining arm per setting:
``--arms mixtraining --reference ROWS.json`` takes SL and SSL+SL of the same seeds from an
earlier ``--rows-out`` file (an arm trained alone is bit-identical to the same arm trained after
the others: each starts from the seed's own weights and streams). Accuracy deltas are then
exact; the measured latency ratio is across processes and says so. ``--pool ROWS
--reference REF`` also prints each arm of ROWS against the same arm of REF, paired by seed: what
a setting that changes several arms (``--layer-decay``) did to each.

    python benchmarks/mixtraining_pareto.py                          # digits, ViT-Tiny, 3 seeds
    python benchmarks/mixtraining_pareto.py --data cifar10 --data-dir ~/data --epochs-ssl 20 \\
        --epochs-sl 20 --data-fraction 0.1
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from common import (add_run_options, apply_threads, config_options, load_rows_by_seed,
                    mean_sd, save_rows)
from mixkit.experiment import ArmResult, Experiment, Run, pareto_figure
from mixkit.functional import Schedule

ARMS = ("sl", "ssl+sl", "mixtraining")      # mixkit mixtraining's line-up, in its order


def run_seed(base, recon_dir: str | None, arms: list[str]) -> dict[str, ArmResult]:
    """Train ``arms`` for one seed. Each arm starts from the seed's own initial weights and
    streams, so training a subset gives the same arm results as training all three."""
    with Experiment("mixtraining", **base, progress=True) as exp:
        results = {name: exp.train(name) for name in arms}
        if recon_dir:                    # Fig. 4: the same grid `mixkit mixtraining` writes
            exp.write_artifacts(Path(recon_dir) / f"seed{base.seed}")
    return results


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


def ssl_curve(runs: list[dict[str, ArmResult]], arm: str) -> str:
    """The arm's SSL (MAE) loss per SSL epoch, mean over seeds: is MAE learning?"""
    per_seed = [[r["train_loss"] for r in run[arm].rows if r["phase"] == "ssl"] for run in runs]
    if not per_seed or not per_seed[0]:
        return "-"
    means = [statistics.mean(v) for v in zip(*per_seed)]
    step = max(1, len(means) // 8)
    return " ".join(f"{m:.3f}" for m in means[::step]) + f" (last {means[-1]:.3f})"


def complete(seeds: list[int], runs: list[dict[str, ArmResult]],
             reference: dict[int, dict[str, list[dict]]],
             trained: tuple[str, ...] = ()) -> list[dict[str, ArmResult]]:
    """Each seed's arms, the ones not trained here taken from ``--reference`` rows of the same
    seed; an arm found nowhere (nor about to be ``trained``) is an error naming the seed and the
    arm. Called with empty ``runs`` and the arms to train, it checks before any training."""
    out = []
    for seed, run in zip(seeds, runs):
        ref = {k: ArmResult.from_rows(k, len(v), v) for k, v in reference.get(seed, {}).items()
               if k not in run}
        full = {**ref, **run}
        missing = [a for a in ARMS if a not in full and a not in trained]
        if missing:
            raise SystemExit(f"seed {seed}: no rows for arm(s) {', '.join(missing)}; train them "
                             "(--arms) or pass --reference rows files that hold this seed")
        out.append({a: full[a] for a in ARMS if a in full})
    return out


def against_reference(seeds: list[int], runs: list[dict[str, ArmResult]],
                      reference: dict[int, dict[str, list[dict]]]) -> None:
    """Each arm trained in the pooled files against the *same* arm of the same seed in
    ``--reference``: what a setting that changes several arms (``--layer-decay`` changes the SL
    recipe of SL, SSL+SL and MixTraining) did to each, paired by seed."""
    for name in ARMS:
        here = [(r[name], reference[s][name]) for s, r in zip(seeds, runs)
                if name in r and name in reference.get(s, {})]
        if here:
            d = [100 * (a.accuracy - ArmResult.from_rows(name, len(v), v).accuracy)
                 for a, v in here]
            t = [a.train_seconds / ArmResult.from_rows(name, len(v), v).train_seconds
                 for a, v in here]
            print(f"{name} here vs the same arm in --reference: {mean_sd(d, 2)} pts "
                  f"(per seed {[round(x, 2) for x in d]}), train seconds {mean_sd(t)}x")
            mix_losses(name, [(a.rows, v) for a, v in here])


def mix_losses(name: str, pairs: list[tuple[list[dict], list[dict]]]) -> None:
    """Both losses of the mix phase (Eq. 3's ``l_ssl`` and ``l_sl``), mean over its epochs and
    seeds, here and in --reference: what a change to the mix phase (``--mix-forward``) did to
    the pretext task and to the classifier, and the mix epoch's cost."""
    def stats(rows: list[dict]) -> tuple[float, float, float] | None:
        mix = [r for r in rows if r["phase"] == "mix" and "ssl_loss" in r]
        if not mix:
            return None
        return (statistics.mean(r["ssl_loss"] for r in mix),
                statistics.mean(r["sl_loss"] for r in mix),
                statistics.median(r["epoch_seconds"] for r in mix))
    got = [(stats(a), stats(b)) for a, b in pairs]
    got = [(a, b) for a, b in got if a is not None and b is not None]
    if not got:
        return
    for k, label in enumerate(("MAE loss l_ssl", "classifier loss l_sl", "mix epoch s")):
        here, ref = [a[k] for a, _ in got], [b[k] for _, b in got]
        print(f"  {name} mix phase {label}: here {mean_sd(here)}, --reference {mean_sd(ref)}")


def report(runs: list[dict[str, ArmResult]], sched: Schedule, across: bool = False) -> None:
    for name in ARMS:
        acc = [100 * r[name].accuracy for r in runs]
        best = [100 * max(row.get("val_acc", 0.0) for row in r[name].rows) for r in runs]
        sec = [r[name].train_seconds for r in runs]
        print(f"{name:12s} accuracy {mean_sd(acc, 2)} % (best epoch {mean_sd(best, 2)})   "
              f"train seconds {mean_sd(sec, 1)}")
    for name in ("ssl+sl", "mixtraining"):
        print(f"MAE loss per SSL epoch, {name}: {ssl_curve(runs, name)}")
    costs = [phase_costs(r) for r in runs]
    pred = [predicted_speedup(sched, c) for c in costs]
    meas = [r["ssl+sl"].train_seconds / r["mixtraining"].train_seconds for r in runs]
    ratio = lambda ph: [c[ph] / c["sl"] for c in costs if ph in c]  # noqa: E731
    print("per-epoch cost (s): " + ", ".join(
        f"{ph} {mean_sd([c[ph] for c in costs if ph in c], 2)}" for ph in ("ssl", "mix", "sl")
        if any(ph in c for c in costs)))
    print(f"mix epoch / SL epoch {mean_sd(ratio('mix'))} (goal <= 1.2); "
          f"SSL epoch / SL epoch {mean_sd(ratio('ssl'))}")
    where = " (SSL+SL from --reference: another process, so not side by side)" if across else ""
    print(f"speedup vs SSL+SL: predicted {mean_sd(pred)}x, measured{where} {mean_sd(meas)}x, "
          f"measured/predicted {mean_sd([m / q for m, q in zip(meas, pred)])} (goal within 5 %)")
    gain = [100 * (r["mixtraining"].accuracy - r["ssl+sl"].accuracy) for r in runs]
    gain_sl = [100 * (r["mixtraining"].accuracy - r["sl"].accuracy) for r in runs]
    ssl_gain = [100 * (r["ssl+sl"].accuracy - r["sl"].accuracy) for r in runs]
    pareto = sum(g > 0 and m > 1 for g, m in zip(gain, meas))
    print(f"SSL+SL over SL {mean_sd(ssl_gain, 2)} pts (per seed {[round(g, 2) for g in ssl_gain]})")
    print(f"MixTraining over SSL+SL {mean_sd(gain, 2)} pts (per seed "
          f"{[round(g, 2) for g in gain]}), over SL {mean_sd(gain_sl, 2)} pts; "
          f"Pareto improvement over SSL+SL in {pareto}/{len(runs)} seeds")


def setting_label(meta: dict) -> str:
    """``rho R, alpha A`` of a rows file (older files name alpha only in their settings line)."""
    sch = meta.get("schedule", {})
    alpha = sch.get("alpha") or next(iter(re.findall(r"alpha ([0-9.e-]+)",
                                                     meta.get("settings", ""))), "?")
    return f"rho {sch.get('rho', '?')}, alpha {alpha}"


def sweep(paths: list[str], reference: dict[int, dict[str, list[dict]]],
          figure: str | None) -> None:
    """Tables 4-5: MixTraining at each setting of a rho/alpha sweep against SL and SSL+SL of the
    same seeds (``--reference``). Files of the same setting (seeds run at different times) are
    pooled; a setting's rows come from ``--arms mixtraining`` runs or from full runs.

    Accuracy deltas are paired by seed and exact (an arm trained alone is bit-identical to the
    same arm trained after the others). The speedup is given two ways: predicted from the epoch
    costs (SSL and SL epochs from the same seed's SSL+SL arm, mix epochs from the setting's own
    arm; Section 2.2), and measured as latency(SSL+SL) / latency(MixTraining), which for an
    ``--arms mixtraining`` file is across processes.
    """
    settings: dict[str, tuple[dict, dict[int, list[dict]]]] = {}
    for path in paths:
        by_seed, metas = load_rows_by_seed([path])
        meta, rows = settings.setdefault(setting_label(metas[0]), (metas[0], {}))
        rows.update({seed: r["mixtraining"] for seed, r in by_seed.items()})
    groups: dict[str, dict[int, dict[str, ArmResult]]] = {}
    for label, (meta, rows) in settings.items():
        seeds = sorted(rows)
        runs = complete(seeds, [{"mixtraining": ArmResult.from_rows("mixtraining", len(v), v)}
                                for v in (rows[s] for s in seeds)], reference)
        sch = meta["schedule"]
        sched = Schedule(sch["e_ssl"], sch["e_sl"], sch["rho"])
        gain = [100 * (r["mixtraining"].accuracy - r["ssl+sl"].accuracy) for r in runs]
        gain_sl = [100 * (r["mixtraining"].accuracy - r["sl"].accuracy) for r in runs]
        meas = [r["ssl+sl"].train_seconds / r["mixtraining"].train_seconds for r in runs]
        pred = [predicted_speedup(sched, {**phase_costs({"ssl+sl": r["ssl+sl"]}),
                                          **phase_costs({"m": r["mixtraining"]})})
                for r in runs]
        pareto = sum(g > 0 and q > 1 for g, q in zip(gain, pred))
        acc = [100 * r["mixtraining"].accuracy for r in runs]
        print(f"{label}, seeds {seeds}: accuracy {mean_sd(acc, 2)} %; vs SSL+SL "
              f"{mean_sd(gain, 2)} pts (per seed {[round(g, 2) for g in gain]}), vs SL "
              f"{mean_sd(gain_sl, 2)} pts; speedup vs SSL+SL predicted {mean_sd(pred)}x, "
              f"measured {mean_sd(meas)}x; Pareto over SSL+SL in {pareto}/{len(runs)} seeds")
        groups[label] = dict(zip(seeds, runs))
    if figure:
        save_sweep_figure(groups, figure)


def save_sweep_figure(groups: dict[str, dict[int, dict[str, ArmResult]]], path: str) -> None:
    """Accuracy against training time: SL, SSL+SL and MixTraining at each setting, mean ± sd
    over the seeds every setting has (``mixkit report``'s Pareto figure, fed from rows)."""
    seeds = sorted(set.intersection(*(set(g) for g in groups.values())))
    alphas = {label.split("alpha ")[1] for label in groups}
    short = {label: "MixTraining " + label.replace("rho ", "ρ=").replace(", alpha ", " α=")
             if len(alphas) > 1 else "MixTraining ρ=" + label.split(",")[0][4:]
             for label in groups}
    runs = []
    for seed in seeds:
        base = next(iter(groups.values()))[seed]
        rows = [dict(row, arm=arm) for arm in ("sl", "ssl+sl") for row in base[arm].rows]
        for label, by_seed in groups.items():
            rows += [dict(row, arm=short[label])
                     for row in by_seed[seed]["mixtraining"].rows]
        runs.append(Run(Path(path), {}, rows))
    fig = pareto_figure([runs])
    fig.axes[0].set_title(f"MixTraining vs SL and SSL+SL, mean ± sd of {len(seeds)} seeds "
                          "(up-left is better)")
    fig.savefig(path)
    print(f"figure: {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    build = config_options(p, "mixtraining", {
        "epochs_ssl": 10, "epochs_sl": 10, "batch_size": 128})
    add_run_options(p)
    p.add_argument("--paper-warmups", action="store_true",
                   help="absolute Table-7 warmups (5 SL / 20 SSL epochs) instead of 5 %% / 20 %%")
    p.add_argument("--recon-out", default=None, metavar="DIR",
                   help="write each seed's reconstruction grid (Fig. 4) under DIR/seed<N>/")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                   help="train only these arms (a rho/alpha sweep needs only mixtraining); the "
                   "others come from --reference")
    p.add_argument("--reference", nargs="+", default=[], metavar="ROWS_JSON",
                   help="earlier --rows-out files: the arms not trained (or pooled) here, "
                   "matched by seed. Their latencies come from another process: the report "
                   "says so next to the measured speedup")
    p.add_argument("--sweep", nargs="+", default=None, metavar="ROWS_JSON",
                   help="train nothing: one --arms mixtraining rows file per rho/alpha setting, "
                   "each against --reference SL and SSL+SL of the same seeds (Tables 4-5)")
    p.add_argument("--ssl-lr-as-mix", action="store_true",
                   help="the fair control of SSL+SL: its SSL phase trains MAE at the peak "
                   "learning rate the mix phase gives it (the SL recipe's), not Table 7's SSL "
                   "rate; train with --arms ssl+sl and compare with --pool ROWS --reference "
                   "the Table-7 rows of the same seeds")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="with --sweep: accuracy vs training time of every arm and setting")
    args = p.parse_args()
    apply_threads(args)
    base = build(args)
    if not args.paper_warmups:
        base = base.replace(warmup_epochs=args.warmup_epochs or 0.05 * base.epochs_sl,
                            ssl_warmup_epochs=args.ssl_warmup_epochs or 0.2 * base.epochs_ssl)
    if args.ssl_lr_as_mix:
        base = base.replace(ssl_lr=base.sl_lr)
    sched = Schedule(base.epochs_ssl, base.epochs_sl, base.rho)
    reference, _ = load_rows_by_seed(args.reference)
    if args.sweep:
        sweep(args.sweep, reference, args.figure)
        return
    if args.pool:
        pooled, metas = load_rows_by_seed(args.pool)
        if len({setting_label(m) for m in metas}) > 1:
            raise SystemExit("--pool files hold different settings (" + "; ".join(
                sorted({setting_label(m) for m in metas})) + "): pool one setting at a time "
                "(the others as --reference), or compare settings with --sweep")
        runs = [{k: ArmResult.from_rows(k, len(v), v) for k, v in r.items()}
                for r in pooled.values()]
        across = any("ssl+sl" not in r for r in runs)
        own = runs
        runs = complete(list(pooled), runs, reference)
        print(f"\npooled seeds {list(pooled)} from {', '.join(args.pool)}: {metas}")
        report(runs, Schedule(**{k: metas[0]["schedule"][k] for k in ("e_ssl", "e_sl", "rho")})
               if metas and "schedule" in metas[0] else sched, across)
        against_reference(list(pooled), own, reference)
        return
    with Experiment("mixtraining", **base) as exp:
        device = exp.describe()
    settings = (f"{base.data} (p={base.data_fraction}, val {base.val_size or 'all'}), "
                f"{base.model} patch {base.patch_size}, img {base.img_size}, "
                f"e_ssl {sched.e_ssl}, e_sl {sched.e_sl}, rho {base.rho} (e_mix {sched.e_mix}), "
                f"alpha {base.alpha}, {base.mix_forward} forward, mask {base.mask_ratio}, "
                f"norm_pix {base.norm_pix_loss}, ssl lr {base.ssl_peak_lr:g}, sl lr "
                f"{base.sl_lr:g}, layer decay {base.layer_decay:g}, batch {base.batch_size}, "
                f"seeds {args.seeds}, arms "
                f"{' '.join(args.arms)}, {device}")
    meta = {"settings": settings, "schedule": {"e_ssl": sched.e_ssl, "e_sl": sched.e_sl,
                                               "rho": base.rho, "alpha": base.alpha}}
    complete(args.seeds, [{}] * len(args.seeds), reference, tuple(args.arms))  # fail early
    runs = []
    for seed in args.seeds:
        runs.append(run_seed(base.replace(seed=seed), args.recon_out, args.arms))
        if args.rows_out:          # after every seed: a stopped benchmark keeps what it ran
            save_rows(args.rows_out, args.seeds[:len(runs)], runs, meta)
    print(f"\nMixTraining vs SSL+SL vs SL — {settings}")
    report(complete(args.seeds, runs, reference), sched, "ssl+sl" not in args.arms)


if __name__ == "__main__":
    main()
