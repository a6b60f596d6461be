"""The public API in a plain loop (docs/api.md): the same weights as the CLI, exact resume after
any batch, DataLoader workers and awkward batch sizes, clear errors for bad use, no host sync.

The plain loop here is the one ``examples/plain_pytorch.py`` writes; to compare weights bit for
bit with ``mixkit mixtrain`` it uses the CLI's optimiser and learning-rate curve (built from the
same config) and the CLI's data with augmentation off, as items of a map-style dataset.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

import mixkit
from conftest import SyncDetector, run_cli
from mixkit.commands.mixtrain import MixtrainConfig
from mixkit.options import build_config
from mixkit.data import DataOptions, load_data
from mixkit.data.plan import EpochPlan, pair_plan
from mixkit.engine.optim import build_optimizer, set_lr
from mixkit.commands.mixtrain import mixtrain_recipe
from mixkit.methods.infobatch import prune_targets
from mixkit.models import create_model

CPU = torch.device("cpu")
ARGS = {"data": "digits", "model": "resnet10_w16", "img_size": 16, "epochs": 3,
        "batch_size": 48, "crop_padding": 0, "hflip": False, "seed": 3, "device": "cpu",
        "timing_warmup": 0}


class Items(Dataset):
    """The CLI's training split as ``(normalised image, label)`` items (augmentation off)."""

    def __init__(self, source) -> None:
        self.x = source.prep.eval(source.images)
        self.y = source.labels

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def _cli_args(op: str, extra: list[str]) -> list[str]:
    return ["mixtrain", "--data", "digits", "--model", "resnet10_w16", "--img-size", "16",
            "--epochs", "3", "--batch-size", "48", "--crop-padding", "0", "--no-hflip",
            "--seed", "3", "--device", "cpu", "--timing-warmup", "0", "--op", op,
            "--no-baseline", *extra]


def _plain_loop(method: mixkit.Method, cfg, items: Dataset, epochs: int,
                stop_after: tuple[int, int] | None = None, workers: int = 0) -> dict:
    """The CLI's model init, optimiser and LR curve around a plain PyTorch loop; returns the
    final state dict (or, with ``stop_after=(epoch, batch)``, every state at that point)."""
    torch.manual_seed(cfg.seed)
    model, _ = create_model(cfg.model, 10, cfg.img_size)
    recipe = mixtrain_recipe(cfg)
    opt = build_optimizer(model, recipe)
    loader = DataLoader(items, batch_sampler=method.batch_sampler(cfg.batch_size),
                        collate_fn=method.collate, num_workers=workers)
    return _train(method, model, opt, recipe, loader, epochs, stop_after)


def _train(method, model, opt, recipe, loader, epochs, stop_after=None) -> dict:
    for epoch in range(method.epoch, epochs):
        nb = len(loader)                                  # the epoch's batches, all of them
        for k, batch in enumerate(loader, start=method.state_dict()["loop"]["consumed"]):
            set_lr(opt, recipe.lr_at(epoch + (k + 0.5) / nb))
            loss = method.loss(model, batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if stop_after == (epoch, k):
                return {"model": model.state_dict(), "opt": opt.state_dict(),
                        "method": method.state_dict()}
        method.end_epoch()
    return {"model": model.state_dict()}


def _cli_weights(tmp_path: Path, capsys, op: str, extra: list[str] = ()) -> Path:
    code, out, err = run_cli([*_cli_args(op, list(extra)), "--output", str(tmp_path),
                              "--experiment", "cli"], capsys)
    assert code == 0, err
    return tmp_path / "cli"


def _same(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _setup():
    cfg = build_config(MixtrainConfig, ARGS, where="test")
    data = load_data("digits", DataOptions.from_options(cfg), CPU, "mixtrain")
    return cfg, Items(data.train)


@pytest.mark.parametrize("op", ["mixup", "cutmix"])
def test_plain_loop_trains_the_clis_weights_bit_for_bit(op, tmp_path, capsys) -> None:
    """``mixkit mixtrain`` and a plain loop with :class:`mixkit.MixTrain` (same seed, data,
    optimiser): every weight equal, mixing epochs included."""
    run = _cli_weights(tmp_path, capsys, op)
    cfg, items = _setup()
    mt = mixkit.MixTrain(len(items), op=op, seed=cfg.seed, epochs=cfg.epochs)
    got = _plain_loop(mt, cfg, items, cfg.epochs)["model"]
    want = load_file(run / "weights" / "mixtrain.safetensors")
    assert _same(got, want) == 0.0
    rows = [r for r in map(eval_json, (run / "metrics.jsonl").read_text().splitlines())
            if r.get("arm") == "mixtrain" and "inputs" in r]
    assert rows[-1]["mixed_fraction"] > 0                 # the compared epochs mixed pairs


def eval_json(line: str) -> dict:
    import json
    return json.loads(line)


def test_infobatch_in_a_plain_loop_trains_the_clis_arm_bit_for_bit(tmp_path, capsys) -> None:
    run = _cli_weights(tmp_path, capsys, "mixup", ["--compare", "infobatch", "--save-weights", "all"])
    cfg, items = _setup()
    rows = [eval_json(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    inputs = [int(r["inputs"]) for r in rows if r.get("arm") == "mixtrain" and "inputs" in r]
    n = len(items)
    ib = mixkit.InfoBatch(n, cfg.epochs, targets=prune_targets(cfg.epochs, n, inputs, 0.875),
                          seed=cfg.seed)
    got = _plain_loop(ib, cfg, items, cfg.epochs)["model"]
    assert _same(got, load_file(run / "weights" / "infobatch.safetensors")) == 0.0


@pytest.mark.parametrize("op", ["cutmix", "mixup"])
def test_a_loop_stopped_after_any_batch_resumes_to_the_same_weights(op, tmp_path) -> None:
    """Stopped mid-epoch in a mixing epoch, every state saved with ``torch.save`` and loaded
    into fresh objects (a new process would do the same), the run ends on the same weights."""
    cfg, items = _setup()
    n = len(items)
    through = _plain_loop(mixkit.MixTrain(n, op=op, seed=1), cfg, items, 3)["model"]
    saved = _plain_loop(mixkit.MixTrain(n, op=op, seed=1), cfg, items, 3, stop_after=(1, 4))
    torch.save(saved, tmp_path / "ckpt.pt")
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)

    mt = mixkit.MixTrain(n, op=op, seed=1)
    mt.load_state_dict(saved["method"])
    assert mt.epoch == 1
    torch.manual_seed(99)                                 # nothing may depend on the global RNG
    model, _ = create_model(cfg.model, 10, cfg.img_size)
    model.load_state_dict(saved["model"])
    recipe = mixtrain_recipe(cfg)
    opt = build_optimizer(model, recipe)
    opt.load_state_dict(saved["opt"])
    loader = DataLoader(items, batch_sampler=mt.batch_sampler(cfg.batch_size),
                        collate_fn=mt.collate)
    resumed = _train(mt, model, opt, recipe, loader, 3)["model"]
    assert _same(resumed, through) == 0.0


class Indexed(Dataset):
    """Image ``i`` is filled with ``i`` (so a batch says which samples it holds)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.full((3, 4, 4), float(i)), i % 5


class Recorded(mixkit.Method):
    """A user's own method (the public base): pairs a fixed set, records what each step got."""

    def __init__(self, n: int, mixed: torch.Tensor) -> None:
        super().__init__(n)
        self.mixed, self.seen = mixed, []

    def plan(self, epoch: int) -> EpochPlan:
        return pair_plan(self.mixed, self.plan_generator)

    def compute_loss(self, model, batch) -> torch.Tensor:
        self.seen.append(batch)
        return batch.x.sum() * 0


@pytest.mark.parametrize("n,batch_size,workers", [(23, 7, 2), (10, 1, 0), (9, 4, 1)])
def test_every_sample_arrives_once_with_its_partner(n, batch_size, workers) -> None:
    """Odd sizes, a last partial batch, batches of one input, DataLoader workers: each step's
    rows and partners are the samples the plan says, every sample exactly once an epoch."""
    mixed = torch.arange(n) % 3 != 0
    m = Recorded(n, mixed)
    loader = DataLoader(Indexed(n), batch_sampler=m.batch_sampler(batch_size),
                        collate_fn=m.collate, num_workers=workers)
    for _ in range(2):
        for batch in loader:
            m.loss(torch.nn.Identity(), batch)
        m.end_epoch()
    for epoch in (m.seen[: len(m.seen) // 2], m.seen[len(m.seen) // 2:]):
        ids = []
        for b in epoch:
            assert torch.equal(b.x[:, 0, 0, 0].long(), b.ids)
            assert torch.equal(b.x2[:, 0, 0, 0].long(), b.ids2)
            assert torch.equal(b.y, b.ids % 5) and torch.equal(b.y2, b.ids2 % 5)
            ids += b.ids.tolist() + b.ids2[b.paired].tolist()
        assert sorted(ids) == list(range(n))
        assert all(mixed[b.ids[b.paired]].all() and mixed[b.ids2[b.paired]].all() for b in epoch)


def test_bad_use_is_a_clear_error_at_the_call() -> None:
    mt = mixkit.MixTrain(10, op="cutmix")
    with pytest.raises(mixkit.UsageError, match="batch_sampler"):
        mt.loss(torch.nn.Identity(), (torch.zeros(2, 3, 8, 8), torch.zeros(2)))
    with pytest.raises(mixkit.UsageError, match="int_label"):
        mt.collate([torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)])          # no labels
    other = mixkit.MixTrain(12, op="cutmix")
    with pytest.raises(mixkit.UsageError, match="12 samples"):
        mt.load_state_dict(other.state_dict())
    with pytest.raises(mixkit.UsageError, match="not a MixTrain"):
        mt.load_state_dict(mixkit.Baseline(10).state_dict())
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
    loader = DataLoader(Indexed(10), batch_sampler=mt.batch_sampler(5), collate_fn=mt.collate)
    mt.end_epoch()                                 # epoch 1: a plan with pairs (all "mixed")
    mt.selection.why[:10] = 1
    mt.end_epoch()
    with pytest.raises(mixkit.UsageError, match="op='mixup'"):
        for batch in loader:
            mt.loss(flat, batch)
    with pytest.raises(ValueError, match="num_samples"):
        mixkit.MixTrain(0)


def test_loss_makes_no_host_sync() -> None:
    """The CPU emulation of CUDA's sync debug mode (conftest) over ``loss`` of mixing batches
    (CutMix with split propagation and MixUp with adaptive ratios) and InfoBatch's."""
    torch.manual_seed(0)
    model, _ = create_model("resnet10_w16", 5, 16)
    data = [(torch.randn(3, 16, 16), i % 5) for i in range(24)]
    for method in (mixkit.MixTrain(24, op="cutmix"), mixkit.MixTrain(24, op="mixup"),
                   mixkit.InfoBatch(24, 4)):
        loader = DataLoader(data, batch_sampler=method.batch_sampler(8),
                            collate_fn=method.collate)
        for epoch in range(2):
            for batch in loader:
                found: list[str] = []
                with SyncDetector(found):
                    method.loss(model, batch).backward()
                if epoch == 1:
                    assert found == [], found
            if isinstance(method, mixkit.MixTrain) and epoch == 0:
                method.selection.why[:24] = 1                  # epoch 1 mixes
            method.end_epoch()


def test_skip_and_short_match_a_budget() -> None:
    skip = mixkit.Skip(100, fraction=0.6, epochs=2)
    assert skip.plan(0).inputs == 60 and skip.plan(1).inputs == 60
    assert mixkit.short_epochs(100, inputs=640) == 6
    b = mixkit.Skip(10, budget=[10, 4])
    assert [b.plan(e).inputs for e in range(2)] == [10, 4]
    with pytest.raises(ValueError):
        mixkit.Skip(10)


def test_public_names_take_no_cli_config() -> None:
    """No public function or class (``mixkit``, ``mixkit.experiment``, ``mixkit.functional``)
    takes the command line's config object: no annotation naming a ``*Config`` class, and a
    ``cfg``/``config`` parameter only as a plain dict (``Run.config``: its ``config.yaml``)."""
    import inspect

    from mixkit import experiment, functional

    for module in (mixkit, experiment, functional):
        for name in module.__all__:
            obj = getattr(module, name)
            target = obj.__init__ if isinstance(obj, type) else obj
            if not callable(target) or name == "__version__":
                continue
            try:
                params = inspect.signature(target).parameters
            except (TypeError, ValueError):         # a builtin (NamedTuple's __init__)
                continue
            for p in params.values():
                assert "Config" not in str(p.annotation), (name, p)
                if p.name in ("cfg", "config"):     # only as plain data (Run.config: the yaml)
                    assert str(p.annotation).startswith("dict"), (name, p)
