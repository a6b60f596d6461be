"""Engine and timing core: schedules by hand, learning, host reads per epoch, atomic writes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mixkit.commands.mixtrain import MixtrainConfig
from mixkit.options import build_config
from mixkit.data import DataOptions, load_data, shuffled
from mixkit.runio.files import atomic_write, save_checkpoint
from mixkit.engine.loop import Engine
from mixkit.engine.optim import Recipe, build_optimizer, cosine_lr, set_lr
from mixkit.engine.runtime import Runtime
from mixkit.engine.timing import DeviceMeter
from mixkit.methods.supervised import SupervisedArm
from mixkit.models import create_model

CPU = torch.device("cpu")


def test_cosine_lr_hand_values() -> None:
    # warmup 2 of 10 epochs, 1.0 -> 0.0
    assert cosine_lr(0.0, 1.0, 0.0, 2, 10) == 0.0
    assert cosine_lr(1.0, 1.0, 0.0, 2, 10) == 0.5
    assert cosine_lr(2.0, 1.0, 0.0, 2, 10) == 1.0
    assert cosine_lr(6.0, 1.0, 0.0, 2, 10) == pytest.approx(0.5)   # half-way down the cosine
    assert cosine_lr(10.0, 1.0, 0.1, 2, 10) == pytest.approx(0.1)
    assert cosine_lr(4.0, 1.0, 0.0, 0, 8) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))
    # a warmup longer than half the run is clipped to half: peak at the middle, min_lr at the end
    assert cosine_lr(1.5, 1.0, 0.0, 20, 3) == 1.0
    assert cosine_lr(3.0, 1.0, 0.0, 20, 3) == pytest.approx(0.0, abs=1e-9)


def test_recipe_start_shifts_the_schedule() -> None:
    r = Recipe("sl", 1.0, 0.0, 0.0, warmup=0, total=4, start=10)
    assert r.lr_at(10) == 1.0 and r.lr_at(12) == pytest.approx(0.5)


def test_no_weight_decay_on_norms_and_biases() -> None:
    model, _ = create_model("resnet18", 10, 32)
    opt = build_optimizer(model, Recipe("sl", 1e-3, 0, 0.05, 0, 1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.backbone.conv1.weight) in decayed
    assert id(model.backbone.bn1.weight) not in decayed
    assert id(model.heads[0].bias) not in decayed
    model.heads.requires_grad_(False)                  # frozen now: still in the optimiser
    held = {id(p) for g in build_optimizer(model, Recipe("sl", 1e-3, 0, 0.05, 0, 1))
            .param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters()}


def test_layer_decay_scales_each_vit_block_by_its_depth() -> None:
    """BEiT/MAE layer decay, hand-computed for ViT-Tiny (12 blocks, so 14 layers 0..13):
    patch embedding and positions d^13, block i d^(12-i), the pooling norm and heads d^0."""
    model, _ = create_model("vit_tiny_patch16_224", 10, 32, patch_size=8)
    opt = build_optimizer(model, Recipe("sl", 1e-3, 0, 0.05, 0, 1, layer_decay=0.5))
    set_lr(opt, 1e-3)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    bb = model.backbone
    expect = {bb.patch_embed.proj.weight: 0.5 ** 13, bb.pos_embed: 0.5 ** 13,
              bb.blocks[0].attn.qkv.weight: 0.5 ** 12, bb.blocks[11].mlp.fc2.bias: 0.5 ** 1,
              bb.fc_norm.weight: 1.0, model.heads[0].weight: 1.0}
    for p, scale in expect.items():
        assert lr_of[id(p)] == pytest.approx(1e-3 * scale)
    assert len(lr_of) == len(list(model.parameters()))         # every parameter, once
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(bb.blocks[0].attn.qkv.weight) in decayed
    assert id(bb.blocks[0].norm1.weight) not in decayed


def test_no_layer_decay_keeps_two_groups_at_the_recipe_lr() -> None:
    model, _ = create_model("vit_tiny_patch16_224", 10, 32, patch_size=8)
    opt = build_optimizer(model, Recipe("sl", 1e-3, 0, 0.05, 0, 1))
    set_lr(opt, 2e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.05]
    assert all(g["lr"] == 2e-3 for g in opt.param_groups)


def test_device_meter_weighted_mean() -> None:
    m = DeviceMeter(CPU)
    m.add(torch.tensor(2.0), 3)
    m.add(torch.tensor(4.0), 1)
    assert float(m.total) / m.weight == pytest.approx((2 * 3 + 4 * 1) / 4)   # the epoch's read
    assert m.peek() == pytest.approx(2.5)                      # exact on the CPU


def _engine(batch_size: int, fraction: float = 0.1, runtime: Runtime | None = None):
    cfg = build_config(MixtrainConfig, {"img_size": 16, "crop_padding": 2,
                                        "data_fraction": fraction}, "test")
    data = load_data("synthetic", DataOptions.from_options(cfg), CPU, "mixtrain")
    torch.manual_seed(0)
    model, _ = create_model("resnet18", 10, 16)
    eng = Engine(model, runtime or Runtime(CPU), data.train, data.val, batch_size=batch_size)
    return eng, data


@pytest.mark.parametrize("compile", [True, False])
def test_epoch_timer_bills_compilation_to_no_arm(compile) -> None:
    """An epoch of 0.25 s wall-clock (the host clock 100.0 -> 100.25) of which torch's compile
    clock counts 0.2 s (10.0 -> 10.2): with --torchcompile it is a 0.05 s epoch and 0.2
    compile seconds; without, 0.25 s and the compile clock is not even read. Both clocks are
    scripted, so a loaded host cannot change the result."""
    import mixkit.engine.timing as timing

    clock = iter([10.0, 10.2])
    wall = iter([100.0, 100.25])
    with timing.EpochTimer(Runtime(CPU, compile=compile), clock=lambda: next(wall),
                           compile_clock=lambda: next(clock)) as t:
        pass
    if compile:
        assert t.compile_seconds == pytest.approx(0.2) and t.seconds == pytest.approx(0.05)
        assert next(clock, None) is None
    else:
        assert t.compile_seconds == 0.0 and t.seconds == pytest.approx(0.25)
        assert next(clock) == 10.0


def test_supervised_training_learns_synthetic_patterns() -> None:
    eng, data = _engine(batch_size=20)
    arm = SupervisedArm("baseline", 4, len(data.train), Recipe("sl", 2e-3, 1e-5, 0.0, 0.5, 4),
                        torch.Generator().manual_seed(0))
    result = eng.fit(arm)
    losses = [r["train_loss"] for r in result.rows]
    assert losses[-1] < losses[0] * 0.7
    assert result.accuracy > 0.3                         # chance is 0.1
    assert result.inputs == 4 * len(data.train) == result.samples


class CountingRuntime(Runtime):
    syncs = 0

    def synchronize(self) -> None:
        CountingRuntime.syncs += 1


def test_host_reads_per_epoch_do_not_grow_with_steps(host_reads) -> None:
    """The step has no host sync: reads per epoch are the same for 2 and for 10 batches."""
    reads = host_reads

    def reads_for(batch_size: int) -> tuple[int, int]:
        eng, data = _engine(batch_size, runtime=CountingRuntime(CPU))
        arm = SupervisedArm("b", 1, len(data.train), Recipe("sl", 1e-3, 0, 0, 0, 1),
                            torch.Generator().manual_seed(0))
        reads["n"], CountingRuntime.syncs = 0, 0
        eng.train_epoch(arm, 0)
        return reads["n"], CountingRuntime.syncs

    few, many = reads_for(50), reads_for(10)   # 2 batches vs 10 batches
    assert few == many
    assert few[1] == 2   # the epoch timer syncs the device once at each end


def test_failed_checkpoint_write_leaves_previous_one_loadable(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def explode(f) -> None:
        f.write(b"partial bytes")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]   # no temp file left behind


@pytest.mark.parametrize("fused", [True, False])
def test_a_non_finite_loss_skips_the_whole_update_fused_or_not(fused, monkeypatch) -> None:
    """Fused AdamW skips on the device (found_inf); a plain AdamW (no fused kernel for the
    device, e.g. MPS on an older torch) must neither crash on found_inf nor update: weights
    and the optimiser's step count stay as they were."""
    from mixkit.engine.arm import Arm, EpochSpec
    from mixkit.engine.events import Callback
    from mixkit.engine.optim import is_fused
    from mixkit.methods.supervised import cross_entropy_loss

    if not fused:                   # a device without a fused kernel: torch refuses fused=True
        class NoFusedAdamW(torch.optim.AdamW):
            def __init__(self, params, fused=None, **kw):
                if fused:
                    raise RuntimeError("fused=True is not supported on this device")
                super().__init__(params, **kw)
        monkeypatch.setattr(torch.optim, "AdamW", NoFusedAdamW)
    eng, data = _engine(batch_size=20)
    recipe = Recipe("sl", 1e-3, 0, 0.05, 0, 1)

    class NaNAtSecondStep(Arm):     # an arm whose second loss is NaN
        name, epochs, calls = "nan", 1, 0

        def epoch(self, epoch: int) -> EpochSpec:
            return EpochSpec("sl", shuffled(len(data.train), torch.Generator().manual_seed(0)),
                             recipe, self.loss)

        def loss(self, model, batch):
            self.calls += 1
            return cross_entropy_loss(model, batch) * (float("nan") if self.calls == 2 else 1)

    class AfterEachStep(Callback):  # what the weights and the optimiser hold after each step
        def __init__(self) -> None:
            self.weights, self.steps, self.fused = [], [], []

        def after_step(self, state) -> None:
            self.weights.append({k: v.detach().clone()
                                 for k, v in state.model.named_parameters()})
            self.steps.append([float(s["step"]) for s in state.optimizer.state.values()])
            self.fused.append(is_fused(state.optimizer))

    seen = AfterEachStep()
    eng.fit(NaNAtSecondStep(), [seen], steps=2)
    assert seen.fused == [fused, fused] and len(seen.weights) == 2
    for k, v in seen.weights[1].items():             # the NaN step changed nothing
        assert torch.equal(v, seen.weights[0][k]), k
    assert seen.steps[1] == seen.steps[0] and seen.steps[0]      # nor counted a step


class _SlowReads:
    """A training source whose reads sleep: every batch takes ``delay`` host seconds to
    arrive, as a streamed folder's does when its workers cannot keep up."""

    def __init__(self, source, delay: float) -> None:
        self.source, self.delay = source, delay

    def __getattr__(self, name):
        return getattr(self.source, name)

    def __len__(self) -> int:
        return len(self.source)

    def batches(self, *args, **kwargs):
        import time

        for batch in self.source.batches(*args, **kwargs):
            time.sleep(self.delay)
            yield batch


def test_the_wait_for_data_is_measured_and_an_input_bound_run_is_named() -> None:
    """Each epoch's row says how long the loop waited for its batches; a source that sleeps
    0.3 s a batch raises the share, and the run's closing line calls it input-bound."""
    from mixkit.methods.supervised import SupervisedArm
    from mixkit.summary import INPUT_BOUND, data_wait, input_bound_line

    shares = {}
    for delay in (0.0, 0.3):
        eng, data = _engine(8)
        if delay:
            eng.train_source = _SlowReads(eng.train_source, delay)
        arm = SupervisedArm("baseline", 1, len(data.train), Recipe("sl", 1e-3, 0, 0, 0, 1),
                            torch.Generator().manual_seed(0))
        row = eng.train_epoch(arm, 0)
        nb = -(-len(data.train) // 8)
        assert row["data_seconds"] >= delay * nb                      # every wait counted
        shares[delay] = row["data_share"]
    assert shares[0.3] > INPUT_BOUND > shares[0.0]
    summary = {"command": "mixtrain", "method_arm": "mixtrain", "arms": {
        "mixtrain": {**data_wait([{**row, "epoch_seconds": row["epoch_seconds"]}]),
                     "samples": 200, "inputs": 130}}}
    line = input_bound_line(summary)
    assert line is not None and "Input-bound: mixtrain" in line and "toward the samples" in line
    assert input_bound_line({"arms": {"a": {"data_share": 0.05}}}) is None
