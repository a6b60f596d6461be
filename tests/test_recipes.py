"""The papers' recipes (#25): schedules pinned to hand-computed learning rates, an SGD step to a
hand-computed update, the weights' EMA to a hand-computed average, label smoothing to torch's
own definition, and mixTrain's selection recording the plain cross-entropy under smoothing."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import run_cli
from mixkit.commands.mixtrain import MixtrainConfig
from mixkit.commands.mixtraining import MixtrainingConfig
from mixkit.options import build_config, load_config
from mixkit.engine.ema import ModelEma
from mixkit.engine.optim import Recipe, build_optimizer, is_fused
from mixkit.methods.supervised import smoothed
from torch.optim.optimizer import register_optimizer_step_pre_hook

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


# --- schedules ---------------------------------------------------------------------------------

def test_step_schedule_hand_computed() -> None:
    """He et al.: 0.1, /10 every 30 epochs; 5 warm-up epochs rise linearly from 0."""
    r = Recipe("sl", 0.1, 0.0, 1e-4, warmup=5, total=90, sched="step", decay_epochs=30)
    assert r.lr_at(2.5) == pytest.approx(0.05)                 # half-way up the warm-up
    assert r.lr_at(5.0) == pytest.approx(0.1)
    assert r.lr_at(29.99) == pytest.approx(0.1)
    assert r.lr_at(30.0) == pytest.approx(0.01)
    assert r.lr_at(59.5) == pytest.approx(0.01)
    assert r.lr_at(60.0) == pytest.approx(0.001)
    assert r.lr_at(89.9) == pytest.approx(0.001)


def test_multistep_schedule_hand_computed_and_offset() -> None:
    """Milestones count from the recipe's own start (MixTraining's SL recipe starts late)."""
    r = Recipe("sl", 0.2, 0.0, 0.0, warmup=0, total=20, start=10, sched="multistep",
               decay_milestones=(5, 15), decay_rate=0.5)
    assert [r.lr_at(t) for t in (10.0, 14.9, 15.0, 24.9, 25.0, 29.9)] == pytest.approx(
        [0.2, 0.2, 0.1, 0.1, 0.05, 0.05])


def test_constant_schedule_and_cosine_unchanged() -> None:
    flat = Recipe("sl", 0.3, 0.0, 0.0, warmup=2, total=10, sched="none")
    assert [flat.lr_at(t) for t in (1.0, 2.0, 9.99)] == pytest.approx([0.15, 0.3, 0.3])
    cos = Recipe("sl", 1.0, 0.0, 0.0, warmup=0, total=4)
    assert cos.lr_at(2.0) == pytest.approx(0.5)                # cos(pi/2): half-way
    assert cos.lr_at(1.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_short_arm_compresses_the_decays_to_the_same_fractions() -> None:
    r = Recipe("sl", 0.1, 0.0, 0.0, warmup=0, total=30, sched="multistep",
               decay_milestones=(10, 20))
    s = r.compressed(15)
    assert s.decay_milestones == (5, 10) and s.total == 15
    assert [s.lr_at(t) for t in (4.9, 5.0, 10.0)] == pytest.approx([0.1, 0.01, 0.001])


def test_config_defaults_follow_the_optimiser() -> None:
    sgd = build_config(MixtrainConfig, {"opt": "sgd", "sched": "multistep", "epochs": 90}, "t")
    assert (sgd.lr, sgd.weight_decay, sgd.momentum, sgd.nesterov) == (0.1, 1e-4, 0.9, False)
    assert sgd.milestones(90) == (30, 60)                    # He et al.'s 30 and 60 of 90
    adamw = build_config(MixtrainConfig, {}, "t")
    assert (adamw.lr, adamw.weight_decay, adamw.momentum) == (2e-3, 0.05, None)
    mt = build_config(MixtrainingConfig, {"opt": "sgd"}, "t")
    assert mt.lr_base == 0.1 and mt.weight_decay == 1e-4
    listed = build_config(MixtrainConfig, {"sched": "multistep", "epochs": 9,
                                           "decay_milestones": [3, 6]}, "t")
    assert listed.milestones(9) == (3.0, 6.0)                # a YAML list works too


def _lrs_seen() -> tuple[list[float], object]:
    """Every optimiser step's learning rate, through torch's public global step hook."""
    seen: list[float] = []
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    return seen, handle


def test_engine_lr_follows_progress_with_mixtrains_fewer_batches(tmp_path: Path,
                                                                  capsys) -> None:
    """The skip arm trains fewer batches per epoch than the baseline but must see the same
    curve: step k of epoch e (of n batches) gets lr_at(e + (k + 0.5) / n)."""
    seen, handle = _lrs_seen()
    try:
        code, _, err = run_cli(["mixtrain", "--data", "digits", "--data-fraction", "0.1",
                                "--val-fraction", "0.05", "--model", "mobilenetv2_035",
                                "--img-size", "16", "--epochs", "4", "-b", "32",
                                "--op", "cutmix", "--opt", "sgd", "--lr", "0.04",
                                "--warmup-epochs", "0", "--sched", "multistep",
                                "--decay-milestones", "1,3", "--decay-rate", "0.5",
                                "--timing-warmup", "0", "--compare", "skip",
                                "--output", str(tmp_path), "--experiment", "r"], capsys)
    finally:
        handle.remove()
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    expected = []
    for row in rows:                              # in arm order, as the steps ran
        steps = -(-row["inputs"] // 32)
        e = row["epoch"] - 1
        for k in range(steps):
            t = e + (k + 0.5) / steps
            expected.append(0.04 * 0.5 ** ((t >= 1) + (t >= 3)))
    assert seen == pytest.approx(expected, rel=1e-12)
    skip = [r for r in rows if r["arm"] == "skip"]
    base = [r for r in rows if r["arm"] == "baseline"]
    assert sum(r["inputs"] for r in skip) < sum(r["inputs"] for r in base)


# --- optimisers --------------------------------------------------------------------------------

def _tiny() -> torch.nn.Linear:
    m = torch.nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, -2.0]]))
        m.bias.copy_(torch.tensor([0.5]))
    return m


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_two_steps_hand_computed(nesterov: bool) -> None:
    """torch's SGD with coupled weight decay (weights only, not the bias), momentum 0.9."""
    m = _tiny()
    opt = build_optimizer(m, Recipe("sl", 0.1, 0.0, 0.01, 0, 1, opt="sgd", momentum=0.9,
                                    nesterov=nesterov))
    assert isinstance(opt, torch.optim.SGD) and is_fused(opt)   # fused on the CPU too
    g = [(torch.tensor([[0.2, 0.4]]), torch.tensor([1.0])),
         (torch.tensor([[-0.1, 0.3]]), torch.tensor([-0.5]))]
    w, b = torch.tensor([1.0, -2.0]), 0.5
    buf_w, buf_b = None, None
    for gw, gb in g:
        m.weight.grad, m.bias.grad = gw.clone(), gb.clone()
        opt.step()
        dw = gw[0] + 0.01 * w                                 # L2 on the weight only
        buf_w = dw if buf_w is None else 0.9 * buf_w + dw
        buf_b = gb[0] if buf_b is None else 0.9 * buf_b + gb[0]
        w = w - 0.1 * (dw + 0.9 * buf_w if nesterov else buf_w)
        b = b - 0.1 * (gb[0] + 0.9 * buf_b if nesterov else buf_b)
    assert torch.allclose(m.weight[0], w, atol=1e-7)
    assert float(m.bias.detach()) == pytest.approx(float(b), abs=1e-7)


def test_sgd_skips_the_update_on_a_device_flag() -> None:
    """The NaN guard: a fused SGD honours ``found_inf`` and leaves the weights untouched."""
    m = _tiny()
    opt = build_optimizer(m, Recipe("sl", 0.1, 0.0, 0.0, 0, 1, opt="sgd"))
    m.weight.grad, m.bias.grad = torch.ones(1, 2), torch.ones(1)
    opt.found_inf = torch.ones(())
    before = m.weight.detach().clone()
    opt.step()
    assert torch.equal(m.weight, before)


# --- EMA ---------------------------------------------------------------------------------------

def test_ema_hand_computed_average_and_buffers() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema = ModelEma(model, decay=0.5)
    expected = 1.0
    for value in (3.0, 5.0, -1.0):
        with torch.no_grad():
            model[0].weight.fill_(value)
            model[1].running_mean.fill_(value)
        model[1].num_batches_tracked += 1
        ema.update(model)
        expected = 0.5 * expected + 0.5 * value
    assert float(ema.module[0].weight) == pytest.approx(expected)      # 1 -> 2 -> 3.5 -> 1.25
    assert float(ema.module[1].running_mean) == pytest.approx(1.125)   # 0 -> 1.5 -> 3.25 -> 1.125
    assert int(ema.module[1].num_batches_tracked) == 3                # integers are copied
    assert not ema.module.training and ema.updates == 3


def test_ema_warmup_decays_as_timm() -> None:
    ema = ModelEma(torch.nn.Linear(1, 1), decay=0.9998, warmup=True)
    assert ema.decay_at(1) == 0.0                                     # the first copies
    assert ema.decay_at(2) == pytest.approx(1 - 2 ** (-2 / 3))
    assert ema.decay_at(10**9) == 0.9998                              # capped at the decay


# --- label smoothing ---------------------------------------------------------------------------

def test_smoothing_matches_torchs_label_smoothing() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(6, 5, generator=g), torch.tensor([0, 1, 2, 3, 4, 0])
    ce = F.cross_entropy(logits, y, reduction="none")
    ours = smoothed(ce, logits, 0.1)
    assert torch.allclose(ours, F.cross_entropy(logits, y, reduction="none",
                                                label_smoothing=0.1), atol=1e-6)
    y2, r = torch.tensor([1, 1, 1, 1, 1, 1]), torch.rand(6, generator=g)
    mixed = r * ce + (1 - r) * F.cross_entropy(logits, y2, reduction="none")
    both = (r * F.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
            + (1 - r) * F.cross_entropy(logits, y2, reduction="none", label_smoothing=0.1))
    assert torch.allclose(smoothed(mixed, logits, 0.1), both, atol=1e-6)


def test_mixtrain_records_plain_cross_entropy_under_smoothing() -> None:
    """The selection's thresholds are the paper's, in cross-entropy: with --smoothing the arm
    trains on the smoothed loss and records the plain one (docs/mixtrain.md)."""
    from mixkit.data.plan import shuffled
    from mixkit.data.sources import Batch
    from mixkit.methods.mixtrain.method import MixTrainArm
    from mixkit.methods.mixtrain.settings import MixTrainSettings
    from mixkit.models import create_model
    from mixkit.commands.mixtrain import mixtrain_recipe

    cfg = build_config(MixtrainConfig, {"smoothing": 0.2, "op": "mixup", "epochs": 2}, "t")
    model, info = create_model("mobilenetv2_035", 10, 16, None, 8)
    arm = MixTrainArm(MixTrainSettings(op="mixup"), cfg.epochs, 8, mixtrain_recipe(cfg), info,
                      16, torch.device("cpu"), smoothing=cfg.smoothing)
    arm.epoch(0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 16, 16, generator=g), torch.arange(8) % 10
    batch = Batch(x=x, y=y, ids=shuffled(8, g).first)
    model.eval()                                     # the same logits on both calls
    loss = arm.method.loss(model, batch)
    with torch.no_grad():
        logits = model(x)
    plain = F.cross_entropy(logits, y, reduction="none")
    assert torch.allclose(arm.method.selection.loss_new[batch.ids], plain, atol=1e-5)
    assert float(loss.detach()) == pytest.approx(float(F.cross_entropy(logits, y, label_smoothing=0.2)),
                                        abs=1e-5)


# --- configs/ (every file is loaded by tests/test_config.py) -------------------------------------

PAPER_BASELINES = {      # (epochs, lr, weight decay, milestones): the papers' numbers
    "mixtrain-imagenet-resnet50-sgd.yaml": (90, 0.1, 1e-4, (30, 60)),     # He et al. 2015
    "mixtrain-cifar10-resnet18-sgd.yaml": (200, 0.1, 5e-4, (100, 150)),   # CIFAR ResNet recipe
}


@pytest.mark.parametrize("name", sorted(PAPER_BASELINES))
def test_paper_baseline_configs_hold_the_papers_recipe(name: str) -> None:
    cfg = load_config(MixtrainConfig, CONFIGS[0].parent / name, {})
    epochs, lr, wd, milestones = PAPER_BASELINES[name]
    assert (cfg.opt, cfg.momentum, cfg.sched, cfg.decay_rate) == ("sgd", 0.9, "multistep", 0.1)
    assert (cfg.epochs, cfg.lr, cfg.weight_decay, cfg.milestones(epochs)) == (
        epochs, lr, wd, milestones)
    assert cfg.smoothing == 0 and not cfg.nesterov


def test_a_checkpoint_recipe_from_before_these_options_still_matches() -> None:
    """A recipe saved before --opt/--sched existed restores equal to today's build of the same
    config: otherwise the engine would rebuild the optimiser on resume (a fresh AdamW)."""
    from mixkit.commands.mixtrain import mixtrain_recipe

    old = {"name": "sl", "lr": 0.002, "min_lr": 1e-06, "weight_decay": 0.05, "warmup": 1.0,
           "total": 50, "start": 0.0, "betas": (0.9, 0.999), "layer_decay": 1.0}
    cfg = build_config(MixtrainConfig, {"epochs": 50}, "t")
    assert Recipe.from_state(old) == mixtrain_recipe(cfg)
    assert Recipe.from_state(old).compressed(30) == mixtrain_recipe(cfg).compressed(30)


def test_the_lr_column_is_the_rate_each_epoch_trained_at(tmp_path, capsys) -> None:
    """timm's meaning: with ``--sched step --decay-epochs 2`` (no warmup) epochs 1-2 trained
    at the peak rate and epoch 3 at peak x decay-rate; ``lr_end`` is the rate after the
    epoch's last step (what ``lr`` meant before)."""
    import json

    from conftest import run_cli

    code, _, err = run_cli(["mixtrain", "--data", "digits", "--data-fraction", "0.05",
                            "--img-size", "16", "--model", "mobilenetv2_035", "-b", "16",
                            "--epochs", "3", "--no-baseline", "--opt", "sgd", "--lr", "0.1",
                            "--sched", "step", "--decay-epochs", "2", "--decay-rate", "0.1",
                            "--warmup-epochs", "0", "--output", str(tmp_path),
                            "--experiment", "L"], capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "L" / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([0.1, 0.1, 0.01])
    assert [r["lr_end"] for r in rows] == pytest.approx([0.1, 0.01, 0.01])
    csv = (tmp_path / "L" / "summary.csv").read_text().splitlines()
    assert [float(line.split(",")[6]) for line in csv[1:]] == pytest.approx([0.1, 0.1, 0.01])


def test_label_smoothing_is_the_losss_not_the_optimisers_recipe() -> None:
    """A smoothing change is no optimiser change: the recipe is the same with and without it
    (the engine rebuilds the optimiser only when the recipe changes), the arm carries it."""
    from mixkit.commands.mixtrain import mixtrain_recipe
    from mixkit.engine.optim import Recipe

    plain = build_config(MixtrainConfig, {"epochs": 2}, "t")
    smooth = build_config(MixtrainConfig, {"epochs": 2, "smoothing": 0.1}, "t")
    assert mixtrain_recipe(plain) == mixtrain_recipe(smooth)
    assert "smoothing" not in {f.name for f in dataclasses.fields(Recipe)}
