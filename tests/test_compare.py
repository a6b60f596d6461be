"""The comparison arms of `mixkit mixtrain --compare` (mixTrain §5.3, InfoBatch): each matched
to the mixtrain arm's measured inputs in the same run; InfoBatch's pruning and rescaling by
hand; the summary's answer to "what is the most accurate arm at mixtrain's cost?"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mixkit.data.sources import Batch
from mixkit.engine.loop import ArmResult
from mixkit.summary import best_at_cost, robust_speedup
from mixkit.methods.infobatch import InfoBatch, prune_targets

SMALL = ["--data", "digits", "--data-fraction", "0.1", "--val-fraction", "0.05",
         "--img-size", "16", "-b", "16", "--model", "mobilenetv2_035"]


def test_prune_targets_spread_the_saving_and_spare_epoch_0_and_the_annealing() -> None:
    # 8 epochs of 100 samples; the method trained 100, 60, 70, 80, 90, 100, 100, 60 inputs
    # (saving 140, 40 of it in the annealing epoch 7); pruning epochs are 1..6
    # (ceil(0.875 * 8) = 7); the method's savings there are 40, 30, 20, 10, 0, 0 (sum 100), so
    # all 140 are spread over them as 56, 42, 28, 14, 0, 0
    t = prune_targets(8, 100, [100, 60, 70, 80, 90, 100, 100, 60], 0.875)
    assert t == [0, 56, 42, 28, 14, 0, 0, 0]
    assert prune_targets(4, 10, [10, 10, 10, 10], 0.875) == [0, 0, 0, 0]     # nothing saved
    # delta * epochs = 8.75: the official sampler prunes while epoch + 1 <= 8.75, i.e. epochs
    # 0..7 (floor), so epoch 8 anneals; 9 * 10 = 90 saved, spread evenly over epochs 1..7
    t = prune_targets(10, 100, [100] + [90] * 9, 0.875)
    assert t[8] == t[9] == 0 and t[1:8] == [13] * 7       # round(90 / 7) each


def test_infobatch_prunes_below_mean_scores_and_rescales_the_kept_ones() -> None:
    """Scores 0.1, 0.2 are below the mean (1.45) of [0.1, 0.2, 2.5, 3.0]; a target of 1 prunes
    r = 1/2 of them; the kept low scorer's loss is weighted 1 / (1 - 1/2) = 2."""
    arm = InfoBatch(4, 2, targets=[0, 1])
    arm.score = torch.tensor([0.1, 0.2, 2.5, 3.0])
    kept = sorted(arm.plan(1).first.tolist())
    assert arm.below == 2 and arm.ratio == pytest.approx(0.5)
    assert len(kept) == 3 and {2, 3} <= set(kept)            # high scorers always kept
    low = ({0, 1} & set(kept)).pop()
    assert arm.weight.tolist() == [2.0 if i == low else 1.0 for i in range(4)]

    class Fixed(torch.nn.Module):                            # logits that give known losses
        def forward(self, x):
            return x
    x = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1], [0.2, 0.8]]))
    batch = Batch(x, torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 2, 3]))
    ce = -torch.log(torch.tensor([0.5, 0.75, 0.9, 0.8]))
    assert float(arm.loss(Fixed(), batch)) == pytest.approx(float((ce * arm.weight).mean()))
    arm.seen[low] = False                                    # as if pruned: keeps its score
    arm.close_epoch(1)
    assert arm.score[low] == pytest.approx([0.1, 0.2][low])


def _arm(name, inputs, acc, seconds) -> ArmResult:
    rows = [{"epoch": e, "inputs": i, "samples": i, "epoch_seconds": s, "val_acc": acc}
            for e, (i, s) in enumerate(zip(inputs, seconds))]
    return ArmResult.from_rows(name, len(rows), rows)


def test_best_at_cost_and_the_robust_speedup_by_hand() -> None:
    base = _arm("baseline", [100, 100, 100], 0.90, [10, 10, 40])    # one disturbed epoch
    mix = _arm("mixtrain", [100, 50, 50], 0.85, [10, 5, 5])
    short = _arm("short", [100, 100], 0.87, [10, 10])
    skip = _arm("skip", [100, 50, 50], 0.84, [10, 5, 5])
    best = best_at_cost({"baseline": base, "mixtrain": mix, "short": short, "skip": skip}, mix)
    assert best["arm"] == "short" and best["accuracy"] == 0.87   # 200 inputs <= 200 * 1.02
    # totals: 60 s / 20 s = 3.0x; per-input medians: 0.1 s each -> 300*0.1 / (200*0.1) = 1.5x
    assert base.train_seconds / mix.train_seconds == pytest.approx(3.0)
    assert robust_speedup(base, mix) == pytest.approx(1.5)


def test_the_closing_line_recommends_the_arm_that_beat_mixtrain_at_its_cost() -> None:
    from mixkit.report import best_at_cost_line

    base = _arm("baseline", [100, 100], 0.90, [10, 10])
    mix = _arm("mixtrain", [100, 50], 0.82, [10, 5])
    skip = _arm("skip", [100, 50], 0.86, [10, 5])
    arms = {"baseline": base, "mixtrain": mix, "skip": skip}
    line = best_at_cost_line({"best_at_method_cost": best_at_cost(arms, mix),
                              "method_arm": "mixtrain", "arms": arms})
    assert line.startswith("Most accurate at or below mixtrain's cost (inputs): skip (86.00%)")
    assert "+4.00 points over mixtrain" in line and "run `skip` instead" in line
    alone = best_at_cost_line({"best_at_method_cost": best_at_cost({"mixtrain": mix, "baseline":
                                                                     base}, mix),
                               "method_arm": "mixtrain", "arms": {"mixtrain": 1, "baseline": 1}})
    assert "instead" not in alone                       # the method itself: no advice


def test_compare_arms_end_to_end_are_matched_to_mixtrain(tmp_path: Path, capsys,
                                                         syncing_ops) -> None:
    code, out, err = run_cli(["mixtrain", *SMALL, "--epochs", "4", "--op", "mixup",
                              "--compare", "short,skip,infobatch,seta", "--infobatch-delta",
                              "0.75", "--seta-delta", "0.75", "--output", str(tmp_path),
                              "--experiment", "C"], capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:5])       # no step would wait on CUDA
    s = json.loads((tmp_path / "C" / "summary.json").read_text())
    assert list(s["arms"]) == ["baseline", "mixtrain", "short", "skip", "infobatch", "seta"]
    rows = [json.loads(x) for x in (tmp_path / "C" / "metrics.jsonl").open()]
    by = {a: [r for r in rows if r["arm"] == a] for a in s["arms"]}
    n = by["baseline"][0]["inputs"]
    mix_inputs = [r["inputs"] for r in by["mixtrain"]]
    assert [r["inputs"] for r in by["skip"]] == mix_inputs              # epoch by epoch
    assert s["arms"]["short"]["epochs"] == round(sum(mix_inputs) / n)
    assert all(r["inputs"] == n for r in by["short"])
    ib = [r["inputs"] for r in by["infobatch"]]
    assert ib[0] == n and ib[-1] == n     # no scores yet; the annealing epoch (>= 0.75 * 4)
    seta = [r["inputs"] for r in by["seta"]]       # at most mixtrain's, epoch by epoch, and
    assert all(a <= b for a, b in zip(seta, mix_inputs))           # all of epoch 0 (window 0)
    assert seta[0] == mix_inputs[0] == n and seta[-1] == mix_inputs[-1]  # annealing: matched
    assert s["best_at_method_cost"]["arm"] in {"mixtrain", "short", "skip", "infobatch",
                                               "seta"}
    for a in s["arms"].values():
        assert set(a) >= {"accuracy", "train_seconds", "inputs", "speedup", "accuracy_delta"}
    assert "Most accurate at or below mixtrain's cost" in out


def test_a_users_comparison_arm_is_one_registration(tmp_path: Path, capsys) -> None:
    """An arm defined here, registered with one public call, runs through the real command:
    its row is in the end-of-run table, ``summary.json`` and ``mixkit report``."""
    from mixkit.command import COMPARISONS, register_comparison
    from mixkit.commands.mixtrain import mixtrain_recipe
    from mixkit.methods.supervised import SupervisedArm

    def half_epochs(ctx):          # the baseline recipe over half the epochs, every sample
        epochs = max(1, ctx.cfg.epochs // 2)
        return SupervisedArm("halfrun", epochs, len(ctx.data.train),
                             mixtrain_recipe(ctx.cfg).compressed(epochs), ctx.plan_generator())

    register_comparison("halfrun", half_epochs, "half the epochs")
    try:
        code, out, err = run_cli(["mixtrain", *SMALL, "--epochs", "2", "--compare",
                                  "halfrun", "--output", str(tmp_path), "--experiment", "P"],
                                 capsys)
        assert code == 0, err
        assert "halfrun" in out                                        # the table
        s = json.loads((tmp_path / "P" / "summary.json").read_text())
        assert s["arms"]["halfrun"]["epochs"] == 1
        code, out, err = run_cli(["report", str(tmp_path / "P"), "--out",
                                  str(tmp_path / "rep")], capsys)
        assert code == 0, err
        assert "halfrun" in (tmp_path / "rep" / "report.md").read_text()
    finally:
        COMPARISONS.pop("halfrun", None)
    with pytest.raises(ValueError, match="plain name"):
        register_comparison("Bad Name", half_epochs)
    for taken in ("mixtrain", "baseline", "mixtraining", "sl"):   # the commands' own arms
        with pytest.raises(ValueError, match="not one of"):
            register_comparison(taken, half_epochs)
