"""MixTraining against independent expectations: Eq. (1) by hand, MAE's masking and patch order,
Eq. (3)'s limits (alpha = 0 is exactly SL, alpha = 1 exactly MAE), one backbone pass in the shared
mix forward, Eq. (2) values, the recipes of Table 7, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from mixkit.commands.mixtraining import MixtrainingConfig
from mixkit.options import build_config
from mixkit.data.formats import Split
from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch, Preprocess, TensorSource
from mixkit.methods.mixtraining.data import MixedSource, mix_inputs
from mixkit.commands.mixtraining import recipes
from mixkit.methods.mixtraining.method import MixTrainingArm
from mixkit.methods.mixtraining.objectives import MAE
from mixkit.methods.mixtraining.schedule import Schedule, mix_epochs
from mixkit.methods.supervised import supervised_loss_from_features, task_mean
from mixkit.models import create_model
from mixkit.models.mae import (encode_visible, masked_mse, num_visible, patchify,
                               random_masking, unpatchify)

# --- Eq. (1) and Algorithm 1 ------------------------------------------------------------------

EQ1 = [  # e_ssl, e_sl, rho -> e_mix, phases (worked by hand)
    (100, 100, 0.5, 50, [("ssl", 50), ("mix", 50), ("sl", 50)]),
    (100, 100, 0.0, 0, [("ssl", 100), ("sl", 100)]),                 # SSL+SL
    (100, 100, 1.0, 100, [("mix", 100)]),                            # all merged
    (100, 50, 0.5, 25, [("ssl", 75), ("mix", 25), ("sl", 25)]),      # min(e_ssl, e_sl) = 50
    (20, 60, 0.25, 5, [("ssl", 15), ("mix", 5), ("sl", 55)]),
    (7, 10, 0.5, 3, [("ssl", 4), ("mix", 3), ("sl", 7)]),            # floor(3.5)
    (10, 7, 1.0, 7, [("ssl", 3), ("mix", 7)]),                       # e_sl - e_mix = 0
    (100, 100, 0.29, 29, [("ssl", 71), ("mix", 29), ("sl", 71)]),    # 0.29*100 is 28.999...
    (0, 10, 0.5, 0, [("sl", 10)]),                                   # the SL baseline
]


@pytest.mark.parametrize("e_ssl,e_sl,rho,e_mix,phases", EQ1)
def test_schedule_eq1(e_ssl, e_sl, rho, e_mix, phases) -> None:
    s = Schedule(e_ssl, e_sl, rho)
    assert mix_epochs(e_ssl, e_sl, rho) == e_mix == s.e_mix
    assert s.phases == phases
    assert s.epochs == e_ssl + e_sl - e_mix
    expanded = [p for p, n in phases for _ in range(n)]
    assert [s.phase_at(e) for e in range(s.epochs)] == expanded
    assert s.sl_start == e_ssl - e_mix        # the SL recipe starts with the mix phase


def test_schedule_rejects_out_of_range() -> None:
    for args in ((-1, 10, 0.5), (10, 10, 1.5), (10, 10, -0.1)):
        with pytest.raises(ValueError):
            mix_epochs(*args)


# --- MAE pieces --------------------------------------------------------------------------------


@pytest.mark.parametrize("num_patches,ratio,keep", [(16, 0.75, 4), (64, 0.75, 16),
                                                     (10, 0.75, 2), (256, 0.75, 64),
                                                     (16, 0.5, 8)])
def test_masking_keeps_floor_and_ids_restore_inverts(num_patches, ratio, keep) -> None:
    assert num_visible(num_patches, ratio) == keep
    m = random_masking(5, num_patches, ratio, torch.device("cpu"),
                       torch.Generator().manual_seed(0))
    assert m.ids_keep.shape == (5, keep)
    assert torch.equal(m.mask.sum(1), torch.full((5,), float(num_patches - keep)))
    assert torch.all(m.mask.gather(1, m.ids_keep) == 0)          # kept patches are visible
    x = torch.randn(5, num_patches, 3)
    ids_shuffle = m.ids_restore.argsort(1)
    assert torch.equal(ids_shuffle[:, :keep], m.ids_keep)
    shuffled = x.gather(1, ids_shuffle[..., None].expand(-1, -1, 3))
    assert torch.equal(shuffled.gather(1, m.ids_restore[..., None].expand(-1, -1, 3)), x)
    # different rows get different masks (per-sample noise)
    assert len({tuple(r.tolist()) for r in m.mask}) > 1


def test_patchify_by_hand_and_inverse() -> None:
    img = torch.arange(16.0).view(1, 1, 4, 4)
    p = patchify(img, 2)
    assert p[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(unpatchify(patchify(x, 4), 4, (2, 2), 3), x)


def _vit(img: int = 16, patch: int = 4, classes=10):
    torch.manual_seed(0)
    return create_model("vit_tiny_patch16_224", classes, img, patch)


def test_patch_order_matches_timm_patch_embed() -> None:
    """Set the patch-embedding conv to copy pixels: its tokens must equal patchify's rows."""
    model, info = _vit()
    pe = model.backbone.patch_embed.proj
    k = 4 * 4 * 3
    w = torch.zeros_like(pe.weight)                       # [D, C, p, p]
    for idx in range(k):                                  # patchify's (p, q, c) order
        pi, rest = divmod(idx, 4 * 3)
        qi, ci = divmod(rest, 3)
        w[idx, ci, pi, qi] = 1.0
    with torch.no_grad():
        pe.weight.copy_(w)
        pe.bias.zero_()
        x = torch.randn(2, 3, 16, 16)
        tokens = model.backbone.patch_embed(x)
    assert torch.allclose(tokens[..., :k], patchify(x, 4), atol=1e-6)


def test_encoder_on_every_patch_is_timm_forward_features() -> None:
    model, info = _vit()
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    every = torch.arange(16).expand(2, -1)
    with torch.no_grad():
        assert torch.allclose(encode_visible(model.backbone, x, every),
                              model.forward_features(x), atol=1e-5)


def test_masked_mse_counts_hidden_patches_only() -> None:
    pred = torch.zeros(2, 4, 3)
    target = torch.stack([torch.full((4, 3), 1.0), torch.full((4, 3), 2.0)])
    mask = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 0, 0]])
    target[0, 1:] = 100.0                              # visible patches: ignored
    assert masked_mse(pred, target, mask).tolist() == [1.0, 4.0]


def test_decoder_is_depth_2_width_192_heads_3() -> None:
    model, info = _vit()
    dec = MAE(info).head()
    assert len(dec.blocks) == 2 and dec.embed.out_features == 192
    assert dec.blocks[0].attn.num_heads == 3 and dec.pred.out_features == 4 * 4 * 3


def test_decoder_sees_layer_normalised_encoder_tokens_as_models_mae() -> None:
    """models_mae.py normalises the encoder output before decoder_embed; our avg-pool ViT's
    ``norm`` is an identity (timm's fine-tuning layout), so the SSL head must do it: an affine
    change of the encoder tokens (per token: scale > 0, shift) leaves the prediction unchanged,
    while the classifier path is untouched (``backbone.norm`` still the identity)."""
    model, info = _vit()
    dec = MAE(info).head().eval()
    assert isinstance(model.backbone.norm, torch.nn.Identity)
    assert isinstance(model.backbone.fc_norm, torch.nn.LayerNorm)
    g = torch.Generator().manual_seed(0)
    visible = torch.randn(2, 1 + 4, info.num_features, generator=g)
    restore = torch.stack([torch.randperm(16, generator=g) for _ in range(2)])
    with torch.no_grad():
        a = dec(visible, restore)
        b = dec(3.0 * visible + 7.0, restore)
    assert torch.allclose(a, b, atol=1e-4)


# --- Eq. (3): the mix-phase objective ----------------------------------------------------------


def _arm(model, info, alpha: float, forward: str, seed: int = 0, tasks: int = 1):
    cfg = build_config(MixtrainingConfig, {"epochs_ssl": 2, "epochs_sl": 2}, "test")
    sched = Schedule(2, 2, 0.5)
    mae = MAE(info, generator=torch.Generator().manual_seed(seed))
    arm = MixTrainingArm("mixtraining", sched, *recipes(cfg, sched), mae, alpha=alpha,
                         mix_forward=forward, num_samples=8,
                         plan_generator=torch.Generator().manual_seed(0), num_tasks=tasks)
    arm.extend_model(model)
    return arm, mae


def _grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_exactly(mixed: dict, expected: dict, unused: str) -> None:
    """Every gradient of the expected objective, bit for bit; the other head's are zero."""
    for name, g in expected.items():
        assert torch.equal(mixed[name], g), name
    assert all(torch.count_nonzero(g) == 0 for n, g in mixed.items() if n.startswith(unused))


def _batch(n: int = 4) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 10, torch.arange(n))


@pytest.mark.parametrize("forward", ["shared", "separate"])
def test_alpha_0_is_exactly_the_sl_gradient(forward) -> None:
    model, info = _vit()
    arm, _ = _arm(model, info, 0.0, forward)
    b = _batch()
    mixed = _grads(model, arm.mix_loss(model, b))
    _assert_exactly(mixed, _grads(model, F.cross_entropy(model(b.x), b.y)), "ssl_head")


def test_alpha_1_is_exactly_the_mae_gradient() -> None:
    model, info = _vit()
    arm, _ = _arm(model, info, 1.0, "separate", seed=3)
    b = _batch()
    mixed = _grads(model, arm.mix_loss(model, b))
    mae = MAE(info, generator=torch.Generator().manual_seed(3))      # the same mask stream
    _assert_exactly(mixed, _grads(model, mae.standalone(model, b.x).mean()), "heads")


def test_mix_loss_is_the_alpha_weighted_sum() -> None:
    model, info = _vit()
    arm, _ = _arm(model, info, 0.3, "shared", seed=5)
    b = _batch()
    loss = arm.mix_loss(model, b)
    feats = model.forward_features(b.x)
    mae = MAE(info, generator=torch.Generator().manual_seed(5))
    expect = 0.3 * mae.reuse(model, b.x, feats).mean() + 0.7 * F.cross_entropy(model(b.x), b.y)
    assert torch.allclose(loss, expect, atol=1e-6)


@pytest.mark.parametrize("forward,passes", [("shared", [1 + 16]),          # all patches + cls
                                           ("separate", [1 + 4, 1 + 16])])  # + a masked pass
def test_shared_mode_runs_the_backbone_once(forward, passes) -> None:
    model, info = _vit()
    arm, _ = _arm(model, info, 0.5, forward)
    calls, decoder_tokens = [], []
    model.backbone.blocks.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
    model.ssl_head.register_forward_pre_hook(lambda m, i: decoder_tokens.append(i[0].shape[1]))
    arm.mix_loss(model, _batch()).backward()
    assert sorted(calls) == passes                          # token count of each encoder pass
    assert decoder_tokens == [1 + 4]                       # 25 % of 16 patches + class token


# --- Eq. (2): the mixed dataset -----------------------------------------------------------------


def test_mix_inputs_by_hand() -> None:
    assert mix_inputs(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 8.0]), 0.25).tolist() == [
        2.5, 6.0]


def _identity_source(values: list[int], seed: int = 0) -> TensorSource:
    """Sample i is a constant image of value values[i]; no augmentation; x = pixel value."""
    n = len(values)
    images = torch.tensor(values, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2)
    prep = Preprocess(torch.zeros(3), torch.full((3,), 1 / 255), 0, False)
    return TensorSource(Split(images.contiguous(), torch.arange(n) % 3), prep,
                        torch.device("cpu"), seed)


def test_mixed_source_eq2_values() -> None:
    sl = _identity_source([0, 10, 20, 30])                 # x_sl in {0, 10, 20, 30}
    ssl = _identity_source([1, 2, 3, 4, 5, 6, 7])          # x_ssl in {1..7}
    src = MixedSource(sl, ssl, 0.5, torch.Generator().manual_seed(0))
    plan = EpochPlan(torch.tensor([3, 1, 0, 2]))
    seen = []
    for b in src.batches(plan, 2):
        assert torch.equal(b.y, sl.labels[b.ids])           # the SL label (Eq. 2)
        x_sl = torch.tensor([0.0, 10, 20, 30])[b.ids]
        x_ssl = (b.x[:, 0, 0, 0] - 0.5 * x_sl) / 0.5        # invert Eq. (2) with lambda 0.5
        assert torch.allclose(x_ssl, x_ssl.round()) and x_ssl.min() >= 1 and x_ssl.max() <= 7
        assert torch.all(b.x == b.x[:, :1, :1, :1])         # the same mix on every pixel
        seen += b.ids.tolist()
    assert seen == [3, 1, 0, 2]


# --- multi-task ---------------------------------------------------------------------------------


def test_task_mean_sums_each_tasks_mean() -> None:
    v = torch.tensor([1.0, 3.0, 10.0, 2.0, 4.0])
    task = torch.tensor([0, 0, 1, 2, 2])
    assert task_mean(v, task, 3).item() == pytest.approx(2.0 + 10.0 + 3.0)
    assert task_mean(v, None, 1).item() == pytest.approx(4.0)


def test_multitask_loss_uses_each_rows_head() -> None:
    model, info = _vit(classes=[10, 3])
    b = Batch(torch.randn(4, 3, 16, 16), torch.tensor([7, 2, 1, 9]), torch.arange(4),
              task=torch.tensor([0, 1, 1, 0]))
    feats = model.forward_features(b.x)
    got = supervised_loss_from_features(model, feats, b)
    l0 = F.cross_entropy(model(b.x[[0, 3]], 0), b.y[[0, 3]])
    l1 = F.cross_entropy(model(b.x[[1, 2]], 1), b.y[[1, 2]])
    assert torch.allclose(got, l0 + l1, atol=1e-5)


# --- Table 7 recipes ----------------------------------------------------------------------------


def test_recipes_follow_table7_scaled_by_batch() -> None:
    cfg = build_config(MixtrainingConfig, {"epochs_ssl": 10, "epochs_sl": 10, "batch_size": 512},
                       "test")
    ssl, sl = recipes(cfg, Schedule(10, 10, 0.5))
    assert ssl.lr == pytest.approx(1.5e-4 * 2) and sl.lr == pytest.approx(1e-3 * 2)
    assert ssl.betas == sl.betas == (0.9, 0.95)
    assert ssl.weight_decay == sl.weight_decay == 0.05
    assert (ssl.start, ssl.total) == (0, 10) and (sl.start, sl.total) == (5, 10)
    # SL: warmup 5 epochs within a 10-epoch span, starting at arm epoch 5 (the mix phase)
    assert sl.lr_at(5.0) == 0.0 and sl.lr_at(7.5) == pytest.approx(1e-3)
    assert sl.lr_at(10.0) == pytest.approx(2e-3)
    # SSL: warmup 20 clipped to half of its 10-epoch span
    assert ssl.lr_at(2.5) == pytest.approx(1.5e-4) and ssl.lr_at(5.0) == pytest.approx(3e-4)
    assert ssl.layer_decay == sl.layer_decay == 1.0                 # Table 7 has none


def test_layer_decay_is_the_sl_recipes_only() -> None:
    """MAE decays layers when fine-tuning, never when pre-training: the SL recipe (which also
    drives the mix phase) carries --layer-decay, the SSL recipe does not."""
    cfg = build_config(MixtrainingConfig, {"layer_decay": 0.65}, "test")
    ssl, sl = recipes(cfg, Schedule(10, 10, 0.5))
    assert (ssl.layer_decay, sl.layer_decay) == (1.0, 0.65)


# --- the command end to end --------------------------------------------------------------------

FAST = ["--epochs-ssl", "2", "--epochs-sl", "2", "--img-size", "16", "-b", "32",
        "--data-fraction", "0.1", "--val-fraction", "0.05", "--decoder-depth", "1"]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_mixtraining_three_arms_end_to_end(tmp_path: Path, capsys, syncing_ops) -> None:
    code, out, err = run_cli(["mixtraining", "--data", "digits", *FAST, "--output",
                              str(tmp_path), "--experiment", "E"], capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:5])       # no step would wait on CUDA
    run = tmp_path / "E"
    rows = _rows(run)
    phases = {a: [r["phase"] for r in rows if r["arm"] == a] for a in ("sl", "ssl+sl",
                                                                        "mixtraining")}
    assert phases == {"sl": ["sl", "sl"], "ssl+sl": ["ssl", "ssl", "sl", "sl"],
                      "mixtraining": ["ssl", "mix", "sl"]}
    assert all(("val_acc" in r) == (r["phase"] != "ssl") for r in rows)
    mix = next(r for r in rows if r["phase"] == "mix")
    assert mix["ssl_loss"] > 0 and mix["sl_loss"] > 0
    assert mix["train_loss"] == pytest.approx(0.5 * mix["ssl_loss"] + 0.5 * mix["sl_loss"],
                                              rel=1e-4)
    s = json.loads((run / "summary.json").read_text())
    assert set(s["arms"]) == {"sl", "ssl+sl", "mixtraining"}
    assert s["baseline_arm"] == "ssl+sl" and s["compare_arms"] == ["ssl+sl", "sl"]
    assert s["speedup"] == pytest.approx(s["arms"]["ssl+sl"]["train_seconds"]
                                         / s["arms"]["mixtraining"]["train_seconds"])
    assert set(s["arms"]["mixtraining"]["phase_seconds"]) == {"ssl", "mix", "sl"}
    assert (run / "reconstruction.png").stat().st_size > 0
    assert json.loads((run / "reconstruction.json").read_text())["rows"] == [
        "original", "masked", "ssl+sl", "mixtraining"]
    assert "speedup = ssl+sl" in out and "Δ ssl+sl" in out and "Δ sl" in out
    best = s["best_at_method_cost"]            # by measured seconds: SL is cheaper per epoch
    cheap = {n: a for n, a in s["arms"].items()
             if a["train_seconds"] <= 1.02 * s["arms"]["mixtraining"]["train_seconds"]}
    assert best["by"] == "train_seconds" and best["arm"] in cheap
    assert best["accuracy"] == max(a["accuracy"] for a in cheap.values())
    assert "Most accurate at or below mixtraining's cost (training seconds)" in " ".join(
        out.split())


def test_closing_line_names_a_cheaper_more_accurate_arm() -> None:
    """Hand-made summary: SL (900 s, 76.3 %) beats MixTraining (1,240 s, 76.1 %) at its cost;
    SSL+SL (1,400 s) costs more and is not eligible."""
    from mixkit.engine.loop import ArmResult
    from mixkit.summary import best_at_cost
    from mixkit.report import best_at_cost_line

    def arm(name: str, secs: float, acc: float) -> ArmResult:
        return ArmResult(name, acc, secs, 1000, 1000, 1)

    results = {"sl": arm("sl", 900, 0.763), "ssl+sl": arm("ssl+sl", 1400, 0.770),
               "mixtraining": arm("mixtraining", 1240, 0.761)}
    best = best_at_cost(results, results["mixtraining"], "train_seconds")
    assert best["arm"] == "sl" and best["accuracy"] == 0.763
    line = best_at_cost_line({"best_at_method_cost": best, "method_arm": "mixtraining",
                              "arms": results})
    assert "sl (76.30%)" in line and "+0.20 points" in line and "run `sl` instead" in line


def test_ssl_data_and_multitask_end_to_end(tmp_path: Path, capsys, syncing_ops) -> None:
    code, _, err = run_cli(["mixtraining", "--data", "digits", "--ssl-data", "synthetic",
                            *FAST, "--no-baseline", "--output", str(tmp_path),
                            "--experiment", "S"], capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:5])       # no step would wait on CUDA
    rows = _rows(tmp_path / "S")
    assert rows[0]["phase"] == "ssl" and rows[0]["inputs"] == 1000   # the SSL data's epoch
    assert rows[1]["phase"] == "mix" and rows[1]["inputs"] < 200     # the SL data (10 %)

    code, _, err = run_cli(["mixtraining", "--data", "digits,synthetic", *FAST,
                            "--no-baseline", "--output", str(tmp_path), "--experiment", "M"],
                           capsys)
    assert code == 0, err
    s = json.loads((tmp_path / "M" / "summary.json").read_text())
    tasks = s["arms"]["mixtraining"]["task_accuracy"]
    assert set(tasks) == {"digits", "synthetic"}
    assert s["arms"]["mixtraining"]["accuracy"] == pytest.approx(sum(tasks.values()) / 2)
