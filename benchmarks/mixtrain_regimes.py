"""When does mixTrain pay? A map of regimes on Fashion-MNIST, resumable across sessions.

Each *cell* is one setting (training-set fraction, epochs, recipe). For every seed of a cell
two ``mixkit mixtrain`` run directories are trained, under ``benchmarks/results/regimes/``:

* ``CELL/seedK-cutmix``: the baseline, mixTrain with CutMix + split propagation, then the
  comparison arms matched to CutMix's measured inputs (``skip``; ``short`` where cheap);
* ``CELL/seedK-mixup`` (cells that run MixUp): mixTrain with adaptive MixUp and ``skip``
  (``short`` where cheap, since 2026-12-06) matched to *its* inputs (``--no-baseline``: the
  baseline of the same seed is in the first run; every arm starts from the same seeded
  weights, data and streams, so it is the same baseline).

They are real run directories, so a cell stopped by the end of a session (SIGTERM saves a
mid-epoch checkpoint) continues exactly with ``--resume`` the next time this script runs: a
run dir that completed is skipped, one with ``last.pt`` is resumed, anything else is started.
Commit the run dirs (``last.pt`` included while unfinished) as each finishes.

    taskset -c 1 python benchmarks/mixtrain_regimes.py run p04-e50-adamw --seeds 0 1
    taskset -c 0 python benchmarks/mixtrain_regimes.py run p25-e25-adamw --ops mixup  # one per core
    python benchmarks/mixtrain_regimes.py plan                  # cells, cost estimates, status
    python benchmarks/mixtrain_regimes.py summary --figure docs/images/mixtrain-regimes.png

``summary`` trains nothing: it pools every cell's run dirs (and the committed rows of the
first measured cell, ``p04-e25-adamw``, from ``mixtrain_speedup.py``) into one table — per
cell and op, Δ accuracy against the baseline and against ``skip`` at the op's inputs (paired by
seed), the speedup from per-input median epoch costs, and the optimiser steps — and draws the
regime figure (Δ vs steps, Δ vs training-set size).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mixkit.experiment import mean_sd

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "regimes"
TRAIN_SIZE = 60000          # Fashion-MNIST's training split

# what every cell shares (the CPU setting of docs/benchmarks.md); val: a fixed stratified
# 2,000 of the test split, the same for every arm, seed and cell
COMMON: dict[str, Any] = {"data": "fashionmnist", "model": "mobilenetv2_050", "batch_size": 64,
                          "val_size": 2000, "plots": False, "save_weights": "none",
                          "log_interval": 50}
# the paper's SGD baseline at this scale (He et al.'s recipe: momentum 0.9, lr / 10 at 1/3
# and 2/3 of the run; lr 0.1 per 128 images as the CIFAR ResNet recipe, linearly scaled to
# batch 64; weight decay 5e-4 as for CIFAR)
SGD = {"opt": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "sched": "multistep",
       "decay_rate": 0.1}


# seconds per 2,400-image baseline epoch on one core (1 thread, batch 64, 32 px, evaluation on
# 2,000 included), measured: MobileNetV2-0.5 ~30 s (no channels_last, the map's setting);
# ResNet-18 at widths 16-128 with channels_last ~6.5 s, ResNet-10 ~4 s
# (benchmarks/model_candidates.py, docs/benchmarks.md)
EPOCH_SECONDS = {"mobilenetv2_050": 30.0, "resnet18_w16": 6.5, "resnet10_w16": 4.0}


@dataclass(frozen=True)
class Cell:
    name: str
    fraction: float
    epochs: int
    recipe: dict[str, Any] = field(default_factory=dict)
    mixup: bool = True              # also the MixUp run (and its own skip arm)
    short: bool = False             # add `short` to the cell's runs (cheap cells)
    model: str = "mobilenetv2_050"
    # comparison arms beyond skip/short, in every run of the cell (#46: InfoBatch, SeTa)
    extra: tuple[str, ...] = ()
    channels_last: bool = False     # a speed setting (the ResNet cells: 1.35x on one core)

    @property
    def steps(self) -> int:
        """Optimiser steps of the baseline (the x axis of the steps panel)."""
        n = round(TRAIN_SIZE * self.fraction)
        return self.epochs * -(-n // COMMON["batch_size"])

    def config(self, seed: int, op: str, short: bool = True) -> dict[str, Any]:
        """One run dir's settings. In a cheap cell both runs add `short` matched to their own
        op's inputs (MixUp's runs before 2026-12-06 had `skip` only); ``short=False`` leaves it
        out (a seed time-boxed to a session: `summary` pairs `short` by seed)."""
        cutmix = op == "cutmix"
        compare = ",".join(["skip", *(["short"] if self.short and short else []), *self.extra])
        out = {**COMMON, **self.recipe, "data_fraction": self.fraction, "epochs": self.epochs,
               "seed": seed, "op": op, "compare": compare, "baseline": cutmix}
        if self.model != COMMON["model"]:
            out["model"] = self.model
        if self.channels_last:
            out["channels_last"] = True
        return out

    def cost_units(self) -> float:
        """Estimated cost in baseline-epochs of 2,400 images: baseline 1, CutMix ~0.7, each
        comparison arm at its inputs ~0.7; MixUp ~0.75 and each of its arms ~0.75."""
        arms = 1 + int(self.short) + len(self.extra)        # skip, short, the extra arms
        mixup = 0.75 * (1 + arms) if self.mixup else 0
        per_epoch = self.fraction / 0.04 * (1 + 0.7 * (1 + arms) + mixup)
        return per_epoch * self.epochs

    def core_hours(self) -> float:
        return self.cost_units() * EPOCH_SECONDS[self.model] / 3600


def _ms(epochs: int) -> str:
    return f"{round(epochs / 3)},{round(2 * epochs / 3)}"


CELLS = {c.name: c for c in [
    Cell("p04-e25-adamw", 0.04, 25, short=True),          # measured 2026-11-30 (legacy rows)
    Cell("p04-e50-adamw", 0.04, 50, short=True),
    Cell("p04-e100-adamw", 0.04, 100, short=True),
    Cell("p10-e25-adamw", 0.10, 25),
    Cell("p25-e25-adamw", 0.25, 25),
    Cell("p04-e25-sgd", 0.04, 25, {**SGD, "decay_milestones": _ms(25)}, short=True),
    Cell("p10-e25-sgd", 0.10, 25, {**SGD, "decay_milestones": _ms(25)}),
    Cell("p100-e8-adamw", 1.0, 8, mixup=False),
    # issue #46: the paper's model family (BasicBlock ResNet-18, widths 16-128) in the goal
    # cell, and a long schedule on 6x more data; every arm at each op's inputs
    Cell("p04-e100-adamw-r18w16", 0.04, 100, short=True, model="resnet18_w16",
         extra=("infobatch", "seta"), channels_last=True),
    Cell("p25-e100-adamw-r18w16", 0.25, 100, short=True, model="resnet18_w16",
         extra=("infobatch", "seta"), channels_last=True),
    # the long schedule on 2.5x the goal cell's data: p25 is ~9 core-h a seed, more than two
    # seeds fit in the sessions' one benchmark core; p10 gives both seeds in ~7.5 core-h
    Cell("p10-e100-adamw-r18w16", 0.10, 100, short=True, model="resnet18_w16",
         extra=("infobatch", "seta"), channels_last=True),
]}
# Beyond the paper (issue #26, item 3), measured in the largest affordable cell against the
# faithful rules: each a CutMix run dir `seedK-cutmix-NAME` with only the mixtrain arm
# (`--no-baseline`, no comparison arms: the seed's faithful CutMix and baseline are its pair).
VARIANTS: dict[str, dict[str, Any]] = {
    # boxes touching two borders: at area 0.5 on a 4x4 grid always a half-image
    "edge": {"cutmix_anchor": "edge"},
    # L_corr / L_incorr as the mean of per-epoch means (epoch 0 weighs one epoch)
    "epochs": {"thresholds": "epochs"},
}
OPS = ("cutmix", "mixup")           # a seed's run dirs, in the order `run` trains them
VARIANT_CELL = "p10-e25-adamw"      # 6,000 images: p25's 5 core-hours a seed is not affordable

# runs whose timings are known to be disturbed (the core was shared with the test suite for long
# stretches): their accuracy stands (each arm is deterministic given its seed), their seconds
# are left out of every speedup
DISTURBED_TIMINGS: dict[tuple[str, int], str] = {
    ("p10-e25-adamw", 0): "the baseline shared core 1 with the test suite (2026-12-02)",
    ("p04-e25-sgd", 0): "its arms shared the core with the test suite for stretches (2026-12-02)",
}

# the first cell was measured by mixtrain_speedup.py before this script existed (val 1,000)
LEGACY = {"p04-e25-adamw": [ROOT / "results" / f"mixtrain-fmnist-p04-mnv2-25ep-seed{s}.json"
                            for s in (0, 1, 2)]}


# ------------------------------------------------------------------------------------------
# running (resumable)
# ------------------------------------------------------------------------------------------


def run_dir(cell: Cell, seed: int, op: str, variant: str | None = None) -> Path:
    return OUT / cell.name / (f"seed{seed}-{op}" + (f"-{variant}" if variant else ""))


def status(path: Path) -> str:
    """completed | resumable | fresh."""
    try:
        if json.loads((path / "summary.json").read_text()).get("status") == "completed":
            return "completed"
    except (OSError, ValueError):
        pass
    return "resumable" if (path / "last.pt").is_file() else "fresh"


def variant_config(cell: Cell, seed: int, variant: str) -> dict[str, Any]:
    """The CutMix run of ``cell`` with one beyond-the-paper rule and no other arm."""
    return {**cell.config(seed, "cutmix"), **VARIANTS[variant], "baseline": False,
            "compare": ""}


def train(cell: Cell, seed: int, op: str, variant: str | None = None,
          short: bool = True) -> bool:
    """Train (or continue) one run dir in this process; False if stopped by a signal."""
    from mixkit import experiment

    path = run_dir(cell, seed, op, variant)
    state = status(path)
    print(f"== {cell.name} seed {seed} {path.name}: {state}", flush=True)
    if state == "completed":
        return True
    try:
        if state == "resumable":
            experiment.resume(path)
        else:
            config = (variant_config(cell, seed, variant) if variant else
                      cell.config(seed, op, short))
            experiment.run("mixtrain", **config, output=str(path.parent),
                           experiment=path.name, overwrite=path.exists())
    except experiment.Interrupted as stop:
        print(f"stopped: {stop}", flush=True)
        return False
    return True


def cmd_run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.cells:
        cell = CELLS[name]
        for seed in args.seeds:
            jobs = ([("cutmix", v) for v in args.variants] if args.variants else
                    [(op, None) for op in OPS if op in args.ops and (cell.mixup or op != "mixup")])
            for op, variant in jobs:
                if not train(cell, seed, op, variant, short=not args.no_short):
                    sys.exit(0)


def cmd_plan(args: argparse.Namespace) -> None:
    total = 0.0
    for cell in CELLS.values():
        hours = cell.core_hours()
        done = sorted({p.name.split("-")[0] for p in (OUT / cell.name).glob("seed*")
                       if status(p) == "completed"}) if (OUT / cell.name).is_dir() else []
        legacy = " (legacy rows: 3 seeds)" if cell.name in LEGACY else ""
        print(f"{cell.name:16s} {cell.steps:6d} steps  ~{hours:4.1f} core-h per seed  "
              f"runs completed: {', '.join(done) or '-'}{legacy}")
        total += hours
    print(f"one seed of every cell: ~{total:.0f} core-hours")
    cell = CELLS[VARIANT_CELL]
    hours = cell.fraction / 0.04 * 0.7 * cell.epochs * 30 / 3600     # the CutMix arm alone
    for name in VARIANTS:
        done = [p.name.split("-")[0] for p in (OUT / cell.name).glob(f"seed*-cutmix-{name}")
                if status(p) == "completed"]
        print(f"variant {name:8s} in {cell.name}: ~{hours:.1f} core-h per seed  "
              f"runs completed: {', '.join(sorted(done)) or '-'}")


# ------------------------------------------------------------------------------------------
# pooling
# ------------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict[str, Any]]:
    from mixkit.experiment import load_run

    return load_run(path).rows


def _final(rows: list[dict[str, Any]]) -> float:
    return next(r["val_acc"] for r in reversed(rows) if "val_acc" in r)


def _result(name: str, rows: list[dict[str, Any]]):
    from mixkit.experiment import ArmResult

    return ArmResult.from_rows(name, len(rows), rows)


def _inputs_ratio(rows: list[dict[str, Any]], arms: dict[str, Any]) -> float:
    """An arm's inputs over its seed's baseline's: the noise-free cost ratio."""
    return sum(r["inputs"] for r in rows) / sum(r["inputs"] for r in arms["baseline"])


def robust_speedup(base, arm) -> float:
    """mixkit's speedup from per-input median epoch costs (robust to a disturbed epoch)."""
    from mixkit.experiment import robust_speedup as ratio

    return ratio(base, arm)


def _arm_key(arm: str, op: str) -> str:
    """An arm's key among a seed's arms: the method arm by its op, the baseline as is, each
    comparison arm by the op whose inputs it matched (``skip@cutmix``)."""
    return {"mixtrain": op, "baseline": "baseline"}.get(arm, f"{arm}@{op}")


def cell_seeds(cell: Cell) -> dict[int, dict[str, Any]]:
    """{seed: {"baseline": rows, "cutmix": rows, "skip@cutmix": rows, ...}} of a cell."""
    out: dict[int, dict[str, Any]] = {}
    for path in LEGACY.get(cell.name, []):
        data = json.loads(path.read_text())
        for s in data["seeds"]:
            arms = out.setdefault(s["seed"], {"legacy": True})
            for arm in ("baseline", "cutmix", "mixup", "short"):
                if arm in s:
                    arms[arm] = s[arm]
            arms["skip@cutmix"] = s["skip"]
            if "short" in s:
                arms["short@cutmix"] = s.pop("short")
    if not (OUT / cell.name).is_dir():
        return out
    for path in sorted((OUT / cell.name).glob("seed*-*")):
        if status(path) != "completed":
            continue
        seed, op, *variant = path.name.split("-")
        op = "+".join([op, *variant])        # "cutmix", "mixup" or "cutmix+edge"
        rows = _rows(path)
        arms = out.setdefault(int(seed[4:]), {})
        for arm in {r["arm"] for r in rows}:
            mine = [r for r in rows if r["arm"] == arm]
            arms[_arm_key(arm, op)] = mine
    return out


def _timings(cell: Cell, have: dict[int, dict[str, Any]], op: str) -> dict[str, Any]:
    """The op's speedup over the seeds with undisturbed timings, and the *timing control*:
    `skip` does the baseline's work per input, so its measured speedup times its inputs ratio
    should be 1.00; how far it is from 1 is how much this machine's timing noise moves a
    speedup measured between two arms of the same run."""
    from mixkit.experiment import seconds_per_input

    clean = {s: a for s, a in have.items() if (cell.name, s) not in DISTURBED_TIMINGS}
    base = {s: _result("baseline", a["baseline"]) for s, a in clean.items()}
    # skip's speedup x its inputs ratio is the ratio of the two arms' seconds per input
    control = {s: seconds_per_input(base[s]) / seconds_per_input(_result("skip", a[f"skip@{op}"]))
               for s, a in clean.items() if f"skip@{op}" in a}
    speedup = {s: robust_speedup(base[s], _result(op, a[op])) for s, a in clean.items()}
    return {"speedup": mean_sd(list(speedup.values())) if clean else None,
            "speedup_per_seed": {str(s): v for s, v in sorted(speedup.items())},
            "timing_control": mean_sd(list(control.values())) if control else None,
            "timing_control_per_seed": {str(s): v for s, v in sorted(control.items())}}


def _deltas(against: str, per_seed: dict[int, float]) -> dict[str, Any]:
    """``d_<against>``: mean ± sd over seeds, and each seed's value (the docs quote both)."""
    return {f"d_{against}": mean_sd(list(per_seed.values())),
            f"d_{against}_per_seed": {str(s): v for s, v in sorted(per_seed.items())}}


def cell_summary(cell: Cell) -> list[dict[str, Any]]:
    """Per op: paired Δ vs baseline and vs skip at the op's inputs, speedup, inputs."""
    seeds = {s: a for s, a in cell_seeds(cell).items() if "baseline" in a}
    out = []
    for op in ("cutmix", "mixup"):
        have = {s: a for s, a in seeds.items() if op in a}
        if not have:
            continue
        base = {s: _final(a["baseline"]) for s, a in have.items()}
        acc = {s: _final(a[op]) for s, a in have.items()}
        row = {"cell": cell.name, "op": op, "model": cell.model, "seeds": sorted(have),
               "steps": cell.steps,
               "train": round(TRAIN_SIZE * cell.fraction), "recipe": cell.recipe.get("opt",
                                                                                     "adamw"),
               "baseline": mean_sd([100 * base[s] for s in have]),
               "acc": mean_sd([100 * acc[s] for s in have]),
               **_deltas("base", {s: 100 * (acc[s] - base[s]) for s in have}),
               "inputs": mean_sd([_inputs_ratio(a[op], a) for a in have.values()]),
               **_timings(cell, have, op)}
        for alt in ("skip", "short", *cell.extra):
            paired = [s for s, a in have.items() if f"{alt}@{op}" in a]
            if paired:
                row.update(_deltas(alt, {s: 100 * (acc[s] - _final(have[s][f"{alt}@{op}"]))
                                         for s in paired}))
        out.append(row)
    return out


def arms_table(cell: Cell) -> list[str]:
    """Markdown: each arm's final accuracy (and inputs over the seed's baseline) in each completed
    run dir of a cell with every alternative — the per-seed values the op rows pool — and the
    baseline's final training loss, which says whether the baseline fits its training set."""
    seeds = {s: a for s, a in cell_seeds(cell).items() if "baseline" in a}
    runs = [(s, op) for s in sorted(seeds) for op in OPS if op in seeds[s]]
    if not runs or not cell.extra:
        return []

    def cell_text(arms: dict[str, Any], key: str) -> str:
        if key not in arms:
            return "—"
        return (f"{100 * _final(arms[key]):.2f} % ({_inputs_ratio(arms[key], arms):.3f})"
                if key != "baseline" else f"{100 * _final(arms[key]):.2f} %")

    lines = ["| arm | " + " | ".join(f"seed {s} {op} run" for s, op in runs) + " |",
             "| --- " * (len(runs) + 1) + "|"]
    for arm in ("baseline", "mixtrain", "skip", "short", *cell.extra):
        keys = [_arm_key(arm, op) for _, op in runs]
        lines.append(f"| {arm} | " + " | ".join(cell_text(seeds[s], k)
                                               for (s, _), k in zip(runs, keys)) + " |")
    loss = [f"{seeds[s]['baseline'][-1]['train_loss']:.3f}" for s in sorted(seeds)]
    lines.append(f"\nbaseline's final training loss, per seed: {', '.join(loss)}")
    return lines


def variant_summary() -> list[dict[str, Any]]:
    """Per beyond-the-paper rule: paired Δ accuracy against the faithful CutMix of the same
    seed (and against the baseline), the inputs and speedup against the baseline."""
    cell = CELLS[VARIANT_CELL]
    seeds = cell_seeds(cell)
    out = []
    for name in VARIANTS:
        key = f"cutmix+{name}"
        have = {s: a for s, a in seeds.items() if key in a and "cutmix" in a and "baseline" in a}
        if not have:
            continue
        acc = {s: _final(a[key]) for s, a in have.items()}
        out.append({"cell": cell.name, "variant": name, "seeds": sorted(have),
                    "options": VARIANTS[name], "acc": mean_sd([100 * v for v in acc.values()]),
                    "d_faithful": mean_sd([100 * (acc[s] - _final(a["cutmix"]))
                                           for s, a in have.items()]),
                    "d_base": mean_sd([100 * (acc[s] - _final(a["baseline"]))
                                       for s, a in have.items()]),
                    "inputs": mean_sd([_inputs_ratio(a[key], a) for a in have.values()]),
                    "inputs_faithful": mean_sd([_inputs_ratio(a["cutmix"], a)
                                                for a in have.values()])})
    return out


FIG6 = ("correct_below_mid", "incorrect_below_mid", "correct_below_mid_all",
        "incorrect_below_mid_all")


def fig6_summary() -> list[dict[str, Any]]:
    """Fig. 6's check of ``L_mid`` per cell and op, the paper's way (samples trained unmixed
    that epoch) beside every sample (mixed ones by their mixed loss): the share of correct and
    of incorrect samples below ``L_mid``, each run's mean over its epochs after the first, then
    mean ± sd over seeds. The paper reports > 95 % correct and < 10 % incorrect below."""
    out = []
    for cell in CELLS.values():
        for op in ("cutmix", "mixup", *(f"cutmix+{v}" for v in VARIANTS)):
            per_seed = []
            for arms in cell_seeds(cell).values():
                rows = [r for r in arms.get(op, []) if r.get("epoch", 0) > 1]
                if rows and all(r.get(k) is not None for r in rows for k in FIG6):
                    per_seed.append({k: sum(r[k] for r in rows) / len(rows) for k in FIG6})
            if per_seed:
                out.append({"cell": cell.name, "op": op, "seeds": len(per_seed),
                            **{k: mean_sd([100 * d[k] for d in per_seed]) for k in FIG6}})
    return out


def _fmt(ms: tuple[float, float] | None, digits: int = 2, sign: str = "+",
         one: bool = False) -> str:
    """``mean ± sd``; the mean alone for one seed (``one``), whose sd is no spread."""
    if ms is None:
        return "—"
    text = f"{ms[0]:{sign}.{digits}f}" + ("" if one else f" ± {ms[1]:.{digits}f}")
    return text.replace("-", "−")


def _fmt_seeds(row: dict[str, Any], key: str, sign: str = "+", unit: str = "") -> str:
    """``mean ± sd<unit> (seed values)`` of ``row[key]``; the value alone for one seed; the seed
    count where fewer seeds than the op's entered (`short` is not in every seed's runs;
    disturbed timings are left out)."""
    per_seed = row.get(f"{key}_per_seed")
    if not per_seed:
        return "—"
    text = _fmt(row[key], sign=sign, one=len(per_seed) == 1) + unit
    if len(per_seed) > 1:
        text += " (" + ", ".join(f"{v:{sign}.2f}" for v in per_seed.values()) + ")"
    if len(per_seed) < len(row["seeds"]):
        text += f" [{len(per_seed)} seed{'s' if len(per_seed) > 1 else ''}]"
    return text.replace("-", "−")


def cmd_summary(args: argparse.Namespace) -> None:
    rows = [r for cell in CELLS.values() for r in cell_summary(cell)]
    extra = [a for a in ("infobatch", "seta") if any(f"d_{a}" in r for r in rows)]
    print("| cell | op | seeds | steps | baseline | Δ vs baseline | Δ vs skip (same inputs) | "
          "Δ vs short | " + "".join(f"Δ vs {a} | " for a in extra)
          + "inputs | speedup (per-input medians) | timing control |")
    print("| --- " * (11 + len(extra)) + "|")
    for r in rows:
        speed = _fmt_seeds(r, "speedup", sign="", unit="×")
        control = _fmt_seeds(r, "timing_control", sign="")
        print(f"| {r['cell']} | {r['op']} | {len(r['seeds'])} | {r['steps']} | "
              f"{_fmt(r['baseline'], sign='', one=len(r['seeds']) == 1)} % | "
              f"{_fmt_seeds(r, 'd_base')} | "
              f"{_fmt_seeds(r, 'd_skip')} | {_fmt_seeds(r, 'd_short')} | "
              + "".join(f"{_fmt_seeds(r, 'd_' + a)} | " for a in extra)
              + f"{r['inputs'][0]:.3f} | {speed} | {control} |")
    print("\ntiming control: skip's measured speedup x its inputs ratio (1.00 when two arms' "
          "seconds per input compare exactly)")
    pays = [r for r in rows if len(r["seeds"]) >= 2 and (r["speedup"] or (0, 0))[0] >= 1.3
            and r["d_base"][0] >= -0.5 and r.get("d_skip", (-1, 0))[0] >= 0]
    print("\ngoal (>= 1.3x within 0.5 points of the baseline and >= skip, mean of >= 2 "
          f"seeds): {', '.join(r['cell'] + ' ' + r['op'] for r in pays) or 'no cell so far'}")
    for cell in CELLS.values():
        lines = arms_table(cell)
        if lines:
            print(f"\n{cell.name}: each arm's final top-1 (inputs over the seed's baseline):\n")
            print("\n".join(lines))
    variants = variant_summary()
    if variants:
        print(f"\nbeyond the paper, CutMix in {VARIANT_CELL} (paired by seed):\n")
        print("| rule | seeds | accuracy | Δ vs faithful CutMix | Δ vs baseline | inputs "
              "(faithful) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for v in variants:
            flags = " ".join(f"--{k.replace('_', '-')} {x}" for k, x in v["options"].items())
            print(f"| `{flags}` | {len(v['seeds'])} | {v['acc'][0]:.2f} ± {v['acc'][1]:.2f} % | "
                  f"{_fmt(v['d_faithful'])} | {_fmt(v['d_base'])} | {v['inputs'][0]:.3f} "
                  f"({v['inputs_faithful'][0]:.3f}) |")
    fig6 = fig6_summary()
    if fig6:
        print("\nFig. 6's check of L_mid (% below it; mean over epochs 2.., then over seeds):\n")
        print("| cell | op | seeds | correct (unmixed) | incorrect (unmixed) | correct (all) | "
              "incorrect (all) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in fig6:
            cols = " | ".join(_fmt(r[k], 1, sign="", one=r["seeds"] == 1) for k in FIG6)
            print(f"| {r['cell']} | {r['op']} | {r['seeds']} | {cols} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cells": rows, "variants": variants,
                                               "fig6": fig6}, indent=1))
    if args.figure:
        figure(rows, Path(args.figure))
    if args.alternatives_figure:
        alternatives_figure(rows, Path(args.alternatives_figure))


def _series(ax: Any, rows: list[dict[str, Any]], key: str, marker: str,
            nudge: dict[str, float], label: str, **style: Any) -> None:
    """One model's points on a panel, per op: Δ vs the baseline (solid) and vs ``skip`` at
    equal inputs (dashed, lighter), mean ± sd over seeds, joined along ``key``; each op nudged
    on the log x axis so that series meeting at one x stay readable."""
    from mixkit.experiment import arm_colour as colour

    for op in ("cutmix", "mixup"):
        mine = sorted((r for r in rows if r["op"] == op), key=lambda r: r[key])
        for ref, line in (("d_base", "-"), ("d_skip", "--")):
            pts = [r for r in mine if ref in r]
            if not pts:
                continue
            ax.errorbar([r[key] * nudge[op] for r in pts], [r[ref][0] for r in pts],
                        yerr=[r[ref][1] for r in pts], fmt=marker + line, capsize=3,
                        color=colour(op), alpha=1.0 if ref == "d_base" else 0.6,
                        label=f"{op} vs {'baseline' if ref == 'd_base' else 'skip'}{label}",
                        **style)
            for r in pts if ref == "d_base" else ():  # seeds, once per point
                ax.annotate(f"n={len(r['seeds'])}", (r[key] * nudge[op], r[ref][0]),
                            fontsize=7, xytext=(4, 4), textcoords="offset points",
                            color="0.35")


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Two panels, one message: is mixTrain's accuracy cost shrinking as the regime approaches
    the paper's? Left: Δ vs optimiser steps at fixed data (2,400 images, AdamW); right: Δ vs
    training-set size. MobileNetV2-0.5 (the map's model, circles: 25 epochs on the right; all
    60,000 images at 8 epochs as a hollow diamond off the line) beside the paper's family,
    ``resnet18_w16`` (hexagons: 100 epochs, the goal cell and the long schedule on more data).
    Solid: vs the baseline; dashed: vs ``skip`` at equal inputs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from mixkit.experiment import arm_colour as colour

    fig, axes = plt.subplots(1, 2, figsize=(11.5, 5.2), sharey=True)
    mnv2 = COMMON["model"]
    adamw = [r for r in rows if r["recipe"] == "adamw"]
    resnet = [r for r in adamw if r["model"] != mnv2]     # the 100-epoch resnet18_w16 cells
    panels = [("optimiser steps of the baseline (log)", "steps",
               [r for r in adamw if r["cell"].startswith("p04-") and r["model"] == mnv2],
               [r for r in resnet if r["cell"].startswith("p04-")]),
              ("training images (log)", "train",
               [r for r in adamw if r["cell"].endswith("-e25-adamw") and r["model"] == mnv2],
               resnet)]
    for ax, (xlabel, key, mine, theirs) in zip(axes, panels):
        ax.axhline(0.0, color="0.3", lw=0.8)
        _series(ax, mine, key, "o", {"cutmix": 0.97, "mixup": 1.03}, "")
        _series(ax, theirs, key, "h", {"cutmix": 1.08, "mixup": 1.14}, ", resnet18_w16",
                markersize=8, mec="0.15", mew=0.8)
        sgd = [r for r in rows if r["recipe"] == "sgd" and key == "steps" and r["model"] == mnv2]
        for r in sgd:                   # nudged right of the AdamW point at the same steps
            for ref, marker, nudge in (("d_base", "s", 1.07), ("d_skip", "^", 1.12)):
                if ref in r:
                    ax.errorbar([r[key] * nudge], [r[ref][0]], yerr=[r[ref][1]], fmt=marker,
                                mfc="none", color=colour(r["op"]), capsize=3,
                                alpha=1.0 if ref == "d_base" else 0.6,
                                label=f"{r['op']} vs {'baseline' if ref == 'd_base' else 'skip'}"
                                      ", SGD")
        full = [r for r in rows if r["cell"].startswith("p100-")] if key == "train" else []
        for r in full:                  # all 60,000 images: 8 epochs, so apart from the line
            for ref, alpha in (("d_base", 1.0), ("d_skip", 0.6)):
                if ref in r:
                    ax.errorbar([r[key]], [r[ref][0]], yerr=[r[ref][1]], fmt="D", capsize=3,
                                color=colour(r["op"]), alpha=alpha, mfc="none")
                    ax.annotate(f"n={len(r['seeds'])}", (r[key], r[ref][0]), fontsize=7,
                                xytext=(-6, 4), textcoords="offset points", ha="right",
                                color="0.35")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(sorted({r[key] for r in mine + theirs + full}))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Δ top-1 accuracy (points), mean ± sd over seeds")
    axes[0].set_title("schedule length (2,400 images)")
    axes[1].set_title("training-set size (circles 25 epochs, hexagons 100;\n"
                      "diamonds: 60,000 at 8 epochs)", fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()   # the left panel holds every series
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle("mixTrain's accuracy cost on Fashion-MNIST (CPU), MobileNetV2-0.5 (circles) "
                 "and resnet18_w16 (hexagons): below zero, the method loses")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def alternatives_figure(rows: list[dict[str, Any]], path: Path) -> None:
    """One message: at the same inputs, is mixTrain more accurate than what a user would do
    instead? Per ResNet cell and op, mixTrain's accuracy minus each alternative's (mean ± sd
    over seeds; above zero, mixTrain wins)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mixkit.experiment import arm_colour as colour

    refs = [("d_base", "baseline\n(all inputs)"), ("d_skip", "skip"), ("d_short", "short"),
            ("d_infobatch", "InfoBatch"), ("d_seta", "SeTa")]
    cells = [r for r in rows if r["model"] != COMMON["model"] and "d_base" in r]
    names = sorted({r["cell"] for r in cells})
    fig, axes = plt.subplots(1, len(names), figsize=(max(8.0, 5.5 * len(names)), 5.0),
                             sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.axhline(0.0, color="0.3", lw=0.8)
        for k, op in enumerate(("cutmix", "mixup")):
            r = next((r for r in cells if r["cell"] == name and r["op"] == op), None)
            if r is None:
                continue
            xs = [i + (k - 0.5) * 0.25 for i, (ref, _) in enumerate(refs) if ref in r]
            ys = [r[ref] for ref, _ in refs if ref in r]
            n = len(r["seeds"])
            ax.errorbar(xs, [y[0] for y in ys], yerr=[y[1] for y in ys], fmt="o", capsize=3,
                        color=colour(op), label=f"{op} (n={n} seed{'s' * (n > 1)}, "
                        f"{r['inputs'][0]:.2f} of the inputs)")
        ax.set_xticks(range(len(refs)), [label for _, label in refs])
        train = next(r["train"] for r in cells if r["cell"] == name)
        ax.set_title(f"{train:,} training images ({name})", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  frameon=False)
    axes[0][0].set_ylabel("mixTrain − alternative, top-1 (points)")
    fig.suptitle("mixTrain against each alternative at the same inputs\nFashion-MNIST, "
                 "resnet18_w16, 100 AdamW epochs (CPU): above zero, mixTrain wins (SeTa trains fewer)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def main() -> None:
    sys.path.insert(0, str(ROOT))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train (or continue) cells")
    r.add_argument("cells", nargs="+", choices=list(CELLS))
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=[],
                   help=f"instead of the cell's runs, CutMix with these beyond-the-paper rules "
                        f"(one run dir each; measured in {VARIANT_CELL})")
    r.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (pin with `taskset -c K`)")
    r.add_argument("--ops", nargs="+", choices=OPS, default=list(OPS),
                   help="only these run dirs of each seed (independent: run them one per core)")
    r.add_argument("--no-short", action="store_true",
                   help="leave `short` out of the seed's runs (a seed that must fit a "
                        "session; summary pairs `short` by seed)")
    sub.add_parser("plan", help="cells, estimated cost and what has completed")
    s = sub.add_parser("summary", help="pool the committed run dirs; train nothing")
    s.add_argument("--figure", default=None)
    s.add_argument("--alternatives-figure", default=None,
                   help="the ResNet cells: mixTrain against each alternative at its cost")
    s.add_argument("--json", default=None)
    args = p.parse_args()
    {"run": cmd_run, "plan": cmd_plan, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    main()
