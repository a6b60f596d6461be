"""mixTrain against the paper's equations and hand-computed values (§4.1, §4.2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mixkit.methods.mixtrain import ops
from mixkit.data.plan import pair_plan
from mixkit.methods.mixtrain.selection import (NONE, R1, R2, R3, SelectionState, below_mid,
                                               next_mix, regions, thresholds)
from mixkit.commands.mixtrain import mixtrain_recipe
from mixkit.models import create_model
from mixkit.models.split_propagation import region_logits

CPU = torch.device("cpu")


# --- §4.2: thresholds, regions, history ----------------------------------------------------

def test_thresholds_and_regions_on_a_hand_made_loss_vector() -> None:
    # correct unmixed losses 0.2, 0.4 -> L_corr 0.3; incorrect 1.0, 2.0 -> L_incorr 1.5
    sums = torch.tensor([0.6, 2.0, 3.0, 2.0], dtype=torch.float64)
    l_corr, l_incorr, l_mid = thresholds(*sums)
    assert (float(l_corr), float(l_incorr), float(l_mid)) == pytest.approx((0.3, 1.5, 0.9))
    loss = torch.tensor([0.1, 0.89, 0.9, 1.2, 1.5, 1.51, 3.0])
    assert regions(loss, l_mid, l_incorr).tolist() == [R1, R1, R2, R2, R2, R3, R3]


def test_region3_mixes_only_when_its_loss_rose_and_only_once() -> None:
    region = torch.tensor([R3, R3, R3, R1, R2], dtype=torch.int8)
    loss = torch.tensor([2.0, 2.0, 2.0, 0.1, 1.0])
    prev = torch.tensor([1.0, 3.0, 1.0, 0.5, 0.5])
    why = torch.tensor([NONE, NONE, R3, R1, NONE], dtype=torch.int8)
    mixed = why != NONE
    # rose -> R3; fell -> none; rose but was R3-mixed this epoch -> back; R1 stays; R2 none
    assert next_mix(region, loss, prev, why, mixed).tolist() == [R3, NONE, NONE, R1, NONE]
    assert next_mix(region, loss, prev, why, mixed, r3_from="all").tolist() == \
        [R3, NONE, NONE, R1, NONE]


def test_a_region3_mixed_sample_comes_back_even_below_l_mid() -> None:
    """§4.2.4: a Region-3 sample is "mixed for the next epoch, following which it is brought
    back" — also when its mixed loss fell into Region 1 (it may enter Region 1 only after an
    unmixed epoch), under either reading of the Region 3 rule."""
    region = torch.tensor([R1, R1], dtype=torch.int8)
    loss = torch.tensor([0.1, 0.1])
    prev = torch.tensor([2.0, 2.0])
    why = torch.tensor([R3, R3], dtype=torch.int8)
    mixed = torch.tensor([True, False])          # 1 was the odd one out: it trained unmixed
    for r3_from in ("unmixed", "all"):
        assert next_mix(region, loss, prev, why, mixed, r3_from=r3_from).tolist() == [NONE, R1]


def test_a_mixed_sample_whose_loss_jumps_returns_to_unmixed() -> None:
    """§4.2.3: a Region-1 sample stays mixed only while its loss stays below L_mid; the region
    rules (Region 3 included) apply to samples not mixed this epoch (§4.2.2)."""
    region = torch.tensor([R3, R3, R2], dtype=torch.int8)
    loss = torch.tensor([3.0, 3.0, 1.0])
    prev = torch.tensor([0.1, 0.1, 0.1])                   # all three rose
    why = torch.tensor([R1, R1, R1], dtype=torch.int8)
    # 0 was mixed (its split/Eq. 4 loss jumped); 1 was the odd one out and trained single
    mixed = torch.tensor([True, False, True])
    assert next_mix(region, loss, prev, why, mixed).tolist() == [NONE, R3, NONE]
    # the older reading: any sample not mixed *for Region 3* may enter Region 3
    assert next_mix(region, loss, prev, why, mixed, r3_from="all").tolist() == [R3, R3, NONE]


def test_below_mid_is_fig6_over_unmixed_samples() -> None:
    loss = torch.tensor([0.1, 0.2, 0.9, 0.3, 2.0, 0.1, 5.0])
    correct = torch.tensor([True, True, True, False, False, True, False])
    mixed = torch.tensor([False, False, False, False, False, True, True])
    # unmixed correct: 0.1, 0.2, 0.9 -> 2 of 3 below 0.5; unmixed incorrect: 0.3, 2.0 -> 1 of 2
    counts = below_mid(loss, correct, mixed, torch.tensor(0.5))
    assert counts.tolist() == [2, 3, 1, 2]


def _epoch(state: SelectionState, loss: list[float], correct: list[bool]) -> dict:
    ids = torch.arange(len(loss))
    unmixed = state.why[: state.n] == NONE
    state.record(ids, torch.tensor(loss), torch.tensor(correct), unmixed)
    return state.end_epoch()


def test_region_history_across_epochs() -> None:
    """Sample 0 is easy (R1, stays mixed); sample 3 is hard and rising (R3 once, then back)."""
    state = SelectionState(4, CPU)
    assert not state.mix_mask().any()                      # epoch 0 mixes nothing
    # epoch 0: sample 0 correct/low, 1 correct, 2 and 3 incorrect
    m = _epoch(state, [0.1, 0.3, 1.5, 3.0], [True, True, False, False])
    # L_corr 0.2, L_incorr 2.25, L_mid 1.225: 0.1, 0.3 -> R1; 1.5 -> R2; 3.0 -> R3
    assert (m["l_corr"], m["l_incorr"], m["l_mid"]) == pytest.approx((0.2, 2.25, 1.225))
    assert m["region_counts"] == {"r1": 2, "r2": 1, "r3": 1}
    assert (m["correct_below_mid"], m["incorrect_below_mid"]) == (1.0, 0.0)   # Fig. 6
    # sample 3 has no previous loss yet: R3 but not "rising" -> epoch 1 mixes 0 and 1
    assert state.mix_mask().tolist() == [True, True, False, False]
    # epoch 1: 0 and 1 were mixed (their losses do not enter the averages); 3 rises
    m = _epoch(state, [0.05, 0.2, 1.5, 4.0], [True, True, False, False])
    assert m["l_corr"] == pytest.approx(0.2)                            # no new unmixed correct
    assert m["l_incorr"] == pytest.approx((1.5 + 3.0 + 1.5 + 4.0) / 4)   # 2.5
    assert state.mix_mask().tolist() == [True, True, False, True]       # R1 stays, R3 once
    # epoch 2: 3 rises again, but it was mixed for R3 this epoch -> it returns to unmixed
    _epoch(state, [0.05, 0.2, 1.5, 5.0], [True, True, False, False])
    assert state.mix_mask().tolist() == [True, True, False, False]
    # epoch 3: sample 1's loss climbs above L_mid -> it leaves the mixed set
    _epoch(state, [0.05, 1.9, 1.5, 6.0], [True, False, False, False])
    assert state.mix_mask().tolist()[:2] == [True, False]


def test_mixed_sample_with_an_inflated_loss_leaves_through_the_state() -> None:
    """Epoch 0: samples 0, 1 easy -> mixed in epoch 1, where 0's mixed loss jumps to 5.0 (above
    L_incorr 2.0 and rising). The paper's text: it returns to the unmixed set; ``all``: it is
    mixed once more, for Region 3."""
    for r3_from, expect in (("unmixed", [False, True, False]), ("all", [True, True, False])):
        state = SelectionState(3, CPU, r3_from=r3_from)
        _epoch(state, [0.1, 0.1, 2.0], [True, True, False])   # L_corr .1, L_incorr 2, L_mid 1.05
        assert state.mix_mask().tolist() == [True, True, False]
        m = _epoch(state, [5.0, 0.1, 2.0], [False, True, False])
        assert state.mixed[:3].tolist() == [True, True, False]
        assert m["incorrect_below_mid"] == 0.0 and m["correct_below_mid"] is None
        assert state.mix_mask().tolist() == expect, r3_from


def test_thresholds_epochs_is_the_mean_of_per_epoch_means() -> None:
    """Epoch 0: correct unmixed losses 1 and 3 (mean 2); epoch 1: one correct unmixed, 1.0.
    cumulative (the paper): (1 + 3 + 1) / 3 = 5/3; epochs (beyond it): (2 + 1) / 2 = 1.5."""
    for mode, expect in (("cumulative", 5 / 3), ("epochs", 1.5)):
        state = SelectionState(3, CPU, averages=mode)
        _epoch(state, [1.0, 3.0, 9.0], [True, True, False])
        state.begin_epoch()
        state.record(torch.tensor([0, 1, 2]), torch.tensor([1.0, 8.0, 8.0]),
                     torch.tensor([True, False, False]), torch.tensor([True, True, True]))
        assert state.end_epoch()["l_corr"] == pytest.approx(expect), mode


def test_fig6_check_over_all_samples_counts_the_mixed_ones_too() -> None:
    """Epoch 1: samples 0 and 1 trained mixed (correct, losses 0.1 and 5.0); sample 2 unmixed,
    incorrect. L_mid stays 1.05 (mixed losses do not enter it). Unmixed-only: no correct sample
    -> None; over all samples: 1 of the 2 correct is below L_mid."""
    state = SelectionState(3, CPU)
    _epoch(state, [0.1, 0.1, 2.0], [True, True, False])
    m = _epoch(state, [0.1, 5.0, 2.0], [True, True, False])
    assert m["l_mid"] == pytest.approx(1.05)
    assert m["correct_below_mid"] is None and m["correct_below_mid_all"] == 0.5
    assert m["incorrect_below_mid_all"] == 0.0


def test_edge_anchored_boxes_always_touch_two_borders() -> None:
    shapes = torch.tensor(ops.box_shapes((4, 4), 0.5))
    free = ops.sample_cell_boxes(2000, (4, 4), shapes, torch.Generator().manual_seed(0))
    edge = ops.sample_cell_boxes(2000, (4, 4), shapes, torch.Generator().manual_seed(0), True)
    for boxes, middle in ((free, True), (edge, False)):
        y0, x0, h, w = boxes.T
        touches = ((y0 == 0) | (y0 + h == 4)) & ((x0 == 0) | (x0 + w == 4))
        assert bool((~touches).any()) == middle          # the paper's boxes: some mid bands
    y0, x0, h, w = edge.T
    assert set(y0[h == 2].tolist()) == {0, 2} and set(x0[w == 2].tolist()) == {0, 2}
    assert 0.25 < float((~((free[:, 0] == 0) | (free[:, 0] + free[:, 2] == 4)
                           ) | ~((free[:, 1] == 0) | (free[:, 1] + free[:, 3] == 4))
                         ).float().mean()) < 0.42     # about a third in the middle (1 of 3)


def test_pair_plan_accounting() -> None:
    mix = torch.tensor([True, False, True, True, False, True, True])   # 5 eligible
    plan = pair_plan(mix, torch.Generator().manual_seed(0))
    assert (plan.num_pairs, plan.inputs, plan.samples) == (2, 5, 7)
    ids = plan.first.tolist() + [s for s in plan.second.tolist() if s >= 0]
    assert sorted(ids) == list(range(7))                                 # each sample once
    pairs = [(a, b) for a, b in zip(plan.first.tolist(), plan.second.tolist()) if b >= 0]
    assert all(mix[a] and mix[b] for a, b in pairs)


# --- §4.1.1: CutMix on the grid, split propagation ------------------------------------------

def test_box_shapes_are_the_closest_areas() -> None:
    assert sorted(ops.box_shapes((4, 4), 0.5)) == [(2, 4), (4, 2)]
    assert ops.box_shapes((2, 2), 0.25) == [(1, 1)]
    assert all(h * w == 64 for h, w in ops.box_shapes((16, 16), 0.25))


def test_cutmix_pixels_inside_and_outside_an_injected_box() -> None:
    x1, x2 = torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    boxes = torch.tensor([[0, 1, 2, 1], [1, 0, 1, 2]])        # (y0, x0, h, w) in 4x4 cells
    cells = ops.cell_mask(boxes, (4, 4))
    out = ops.cutmix(x1, x2, ops.pixel_mask(cells, (2, 2)))
    expect = torch.zeros(2, 8, 8)
    expect[0, 0:4, 2:4] = 1        # rows 0-1, col 1 of the grid -> pixels [0:4, 2:4]
    expect[1, 2:4, 0:4] = 1        # row 1, cols 0-1 -> pixels [2:4, 0:4]
    assert torch.equal(out[:, 0], expect) and torch.equal(out[:, 2], expect)
    assert cells.flatten(1).sum(1).tolist() == [2, 2]


@pytest.mark.parametrize("name,img,patch", [("resnet18", 32, None), ("mobilenetv2_100", 32, None),
                                            ("vit_tiny_patch16_224", 32, 4),
                                            ("swin_tiny_patch4_window7_224", 32, None)])
def test_sampled_boxes_align_to_the_final_feature_grid(name, img, patch) -> None:
    _, info = create_model(name, 10, img, patch)
    sy, sx = info.input_stride(img)
    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor(ops.box_shapes(info.grid, 0.5))
    boxes = ops.sample_cell_boxes(64, info.grid, shapes, g)
    pix = ops.pixel_mask(ops.cell_mask(boxes, info.grid), (sy, sx))
    assert pix.shape == (64, img, img)
    # every stride-sized block is all-in or all-out: the box edges lie on cell borders
    blocks = pix.float().unflatten(1, (info.grid[0], sy)).unflatten(3, (info.grid[1], sx))
    mean = blocks.mean((2, 4))
    assert bool(((mean == 0) | (mean == 1)).all())
    assert bool((pix.float().mean((1, 2)) == 0.5).all()) or info.grid == (2, 2)


@pytest.mark.parametrize("name,patch", [("resnet18", None), ("vit_tiny_patch16_224", 4),
                                        ("swin_tiny_patch4_window7_224", None)])
def test_split_pooling_over_the_whole_grid_is_the_plain_model(name, patch) -> None:
    torch.manual_seed(0)
    model, info = create_model(name, 10, 32, patch)
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    feats = model.forward_features(x)
    whole = torch.ones(3, *info.grid, dtype=torch.bool)
    (logits,) = region_logits(model, feats, info, [whole])
    assert torch.allclose(logits, model(x), atol=1e-5)


def test_split_regions_pool_their_own_cells_and_both_get_gradient() -> None:
    torch.manual_seed(0)
    model, info = create_model("resnet18", 10, 32)
    feats = torch.randn(1, 512, 4, 4, requires_grad=True)
    box = ops.cell_mask(torch.tensor([[0, 2, 4, 2]]), info.grid)     # right half
    la, lb = region_logits(model, feats, info, [~box, box])
    right = feats[..., 2:].mean((2, 3))
    assert torch.allclose(lb, model.heads[0](right), atol=1e-5)
    (la.sum() + lb.sum()).backward()
    g = feats.grad.abs().sum(1)[0]
    assert bool((g[:, :2] > 0).all() and (g[:, 2:] > 0).all())


# --- §4.1.2: MixUp and adaptive ratios ------------------------------------------------------

def test_adaptive_ratio_from_hand_losses() -> None:
    r = ops.adaptive_ratio(torch.tensor([3.0, 1.0, 0.0, float("inf")]),
                           torch.tensor([1.0, 3.0, 0.0, 1.0]))
    assert r.tolist() == [0.75, 0.25, 0.5, 0.5]


def test_mixup_and_eq2_by_hand() -> None:
    x1, x2 = torch.full((1, 1, 2, 2), 4.0), torch.full((1, 1, 2, 2), 8.0)
    assert ops.mixup(x1, x2, torch.tensor([0.75])).flatten().tolist() == [5.0] * 4
    logits = torch.tensor([[math.log(1.0), math.log(3.0)]])       # softmax = (0.25, 0.75)
    per, ce1, ce2 = ops.mixed_cross_entropy(logits, torch.tensor([0]), torch.tensor([1]),
                                            torch.tensor([0.5]))
    assert ce1.item() == pytest.approx(-math.log(0.25))
    assert ce2.item() == pytest.approx(-math.log(0.75))
    assert per.item() == pytest.approx(0.5 * (-math.log(0.25)) + 0.5 * (-math.log(0.75)))


# --- end to end ---------------------------------------------------------------------------

@pytest.mark.parametrize("op,extra", [
    ("cutmix", []), ("mixup", []), ("cutmix", ["--no-selective", "--no-split-prop"]),
    ("mixup", ["--opt", "sgd", "--lr", "0.05", "--sched", "step", "--decay-epochs", "1",
               "--model-ema", "--smoothing", "0.1"])])   # the papers' recipes: still no sync
def test_mixtrain_runs_and_reports(op, extra, tmp_path: Path, capsys, syncing_ops) -> None:
    args = ["mixtrain", "--op", op, *extra, "--data", "digits", "--data-fraction", "0.1",
            "--val-fraction", "0.05", "--model", "mobilenetv2_035",
            "--img-size", "16", "--epochs", "3", "-b", "32", "--output", str(tmp_path),
            "--experiment", "m"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:5])       # no step would wait on CUDA
    rows = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text()
            .splitlines()]
    mt = [r for r in rows if r["arm"] == "mixtrain"]
    assert len(mt) == 3 and len(rows) == 6
    for r in mt:
        assert {"mixed_fraction", "region_counts", "l_corr", "l_incorr", "l_mid",
                "correct_below_mid", "incorrect_below_mid"} <= r.keys()
        pairs = r["samples"] - r["inputs"]
        assert r["mixed_fraction"] == pytest.approx(2 * pairs / r["samples"])
    if "--no-selective" in extra:
        assert all(r["mixed_fraction"] == pytest.approx(0.5, abs=0.01) for r in mt)
    else:
        assert mt[0]["mixed_fraction"] == 0 and mt[0]["inputs"] == mt[0]["samples"]
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    arms = summary["arms"]
    if "--model-ema" in extra:                  # the EMA evaluated beside the live weights
        assert all(0 <= r["val_acc_ema"] <= 1 for r in rows)
        assert arms["mixtrain"]["accuracy_ema"] == mt[-1]["val_acc_ema"]
        assert (tmp_path / "m" / "weights" / "mixtrain-ema.safetensors").is_file()
    assert summary["speedup"] == pytest.approx(arms["baseline"]["train_seconds"]
                                               / arms["mixtrain"]["train_seconds"])
    assert summary["accuracy_delta"] == pytest.approx(arms["mixtrain"]["accuracy"]
                                                      - arms["baseline"]["accuracy"])
    assert summary["arms"]["mixtrain"]["inputs"] == sum(r["inputs"] for r in mt)


def test_final_unmixed_epochs_train_the_last_epochs_plain(tmp_path: Path, capsys) -> None:
    code, _, err = run_cli(["mixtrain", "--no-baseline", "--data", "digits", "--data-fraction",
                            "0.1", "--val-fraction", "0.05", "--model", "mobilenetv2_035",
                            "--img-size", "16", "--epochs", "4", "-b", "32",
                            "--final-unmixed-epochs", "2", "--output", str(tmp_path),
                            "--experiment", "f"], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "f" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["mixed_fraction"] > 0                       # epoch 1 mixes (paper's rules)
    assert [r["mixed_fraction"] for r in rows[2:]] == [0, 0]    # the last 2 do not
    assert all(r["inputs"] == r["samples"] for r in rows[2:])


@pytest.mark.parametrize("op", ["cutmix", "mixup"])
def test_mixtrain_step_reads_the_host_once_per_epoch_not_per_step(op, host_reads) -> None:
    """Host reads in mixkit's code per epoch are the same for 2 and for 8 batches."""
    from dataclasses import replace

    from mixkit.commands.mixtrain import MIXTRAIN
    from mixkit.commands.mixtrain import MixtrainConfig
    from mixkit.options import build_config
    from mixkit.engine.loop import Engine
    from mixkit.methods.mixtrain.method import MixTrainArm
    from mixkit.methods.mixtrain.settings import MixTrainSettings
    from mixkit.orchestrate import prepare

    cfg = build_config(MixtrainConfig, {"op": op, "data_fraction": 0.05, "img_size": 16,
                                        "epochs": 2, "device": "cpu"}, where="test")

    def reads_for(batch_size: int) -> int:
        ctx = prepare(replace(cfg, batch_size=batch_size), MIXTRAIN)
        torch.manual_seed(0)
        model, _ = create_model("resnet18", 10, 16)
        eng = Engine(model, ctx.runtime, ctx.data.train, ctx.data.val, batch_size=batch_size)
        arm = MixTrainArm(MixTrainSettings(op=op), ctx.cfg.epochs, len(ctx.data.train),
                          mixtrain_recipe(ctx.cfg), ctx.model_info, 16, CPU)
        arm.method.selection.why[: arm.method.selection.n] = 1          # mix everything: a plan with pairs
        host_reads["n"] = 0
        eng.train_epoch(arm, 1)
        return host_reads["n"]

    assert reads_for(18) == reads_for(5)          # 2 batches vs 8 batches of 36 inputs


def test_last_epoch_thresholds_forget_earlier_epochs() -> None:
    state = SelectionState(2, CPU, averages="last")
    _epoch(state, [0.2, 3.0], [True, False])      # L_corr 0.2, L_incorr 3.0
    m = _epoch(state, [0.1, 1.0], [True, False])  # sample 0 mixed: only sample 1 is unmixed
    # this epoch has no unmixed correct sample -> L_corr falls back to the cumulative 0.2;
    # L_incorr is this epoch's 1.0 alone (cumulative would give 2.0)
    assert (m["l_corr"], m["l_incorr"]) == pytest.approx((0.2, 1.0))


def test_r1_entry_correct_gates_entry_but_not_staying() -> None:
    """``--r1-entry correct`` (beyond the paper): by hand, four samples all below L_mid."""
    region = torch.tensor([R1, R1, R1, R1], dtype=torch.int8)
    loss = torch.tensor([0.1, 0.1, 0.1, 0.1])
    prev = torch.tensor([0.2, 0.2, 0.2, 0.2])
    # 0: unmixed + correct -> enters; 1: unmixed + wrong -> kept out;
    # 2: mixed for R1 + wrong (e.g. its half-image) -> stays (§4.2.3); 3: R3-mixed + wrong -> out
    why = torch.tensor([NONE, NONE, R1, R3], dtype=torch.int8)
    mixed = why != NONE
    correct = torch.tensor([True, False, False, False])
    assert next_mix(region, loss, prev, why, mixed, correct).tolist() == [R1, NONE, R1, NONE]
    # the paper: every sample below L_mid is mixed, except 3, which was mixed for Region 3 and
    # is brought back for an epoch (§4.2.4)
    assert next_mix(region, loss, prev, why, mixed).tolist() == [R1, R1, R1, NONE]


def test_r1_entry_correct_through_the_state() -> None:
    state = SelectionState(3, CPU, r1_entry="correct")
    # correct 0.1 -> L_corr 0.1; incorrect 0.5, 2.0 -> L_incorr 1.25; L_mid 0.675.
    # sample 1 (0.5 < L_mid) is wrong: the paper mixes it, the gate does not
    _epoch(state, [0.1, 0.5, 2.0], [True, False, False])
    assert state.mix_mask().tolist() == [True, False, False]
    paper = SelectionState(3, CPU)
    _epoch(paper, [0.1, 0.5, 2.0], [True, False, False])
    assert paper.mix_mask().tolist() == [True, True, False]


def test_split_propagation_loss_is_the_mean_over_samples_by_hand() -> None:
    """Rows 0 and 2 are pairs, row 1 a single: samples are 1, 4 | 2 | 3, 6 -> 16 / 5."""
    ce_a, ce_b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    paired = torch.tensor([True, False, True])
    assert float(ops.split_propagation_loss(ce_a, ce_b, paired)) == pytest.approx(16 / 5)


def test_share_weighted_split_loss_weighs_each_constituent_by_its_area_by_hand() -> None:
    """``--split-loss share``: row 0 pastes a quarter (0.75·1 + 0.25·4 = 1.75), row 1 is a
    single (2; its share is ignored), row 2 pastes a half (0.5·3 + 0.5·6 = 4.5): mean over the
    3 inputs = 8.25 / 3."""
    ce_a, ce_b = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])
    paired = torch.tensor([True, False, True])
    share_b = torch.tensor([0.25, 0.5, 0.5])
    got = ops.split_propagation_loss(ce_a, ce_b, paired, share_b)
    assert float(got) == pytest.approx(8.25 / 3)
