"""``mixkit.experiment``: the commands from Python (docs/api.md, "Runs from Python").

An arm trained alone through :class:`Experiment` must be the same arm a ``mixkit mixtrain`` run
trains (same starting point, same streams: equal per-epoch losses, accuracies and inputs), and
bad use must fail at the call with the command line's one-paragraph errors. The benchmarks are
held to the public names.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import mixkit
from mixkit import experiment
from mixkit.errors import UserError
from mixkit.experiment import Experiment

ARGS = {"data": "digits", "model": "resnet10_w16", "img_size": 16, "epochs": 2,
        "batch_size": 48, "seed": 3, "device": "cpu", "timing_warmup": 0, "plots": False}
REPO = Path(__file__).resolve().parents[1]


def _trace(rows: list[dict]) -> list[tuple]:
    """What must match bit for bit between two trainings of one arm (not the seconds)."""
    return [(r["epoch"], r["inputs"], r["train_loss"], r.get("val_acc")) for r in rows]


def test_an_arm_trained_alone_is_the_arm_of_a_run(tmp_path: Path) -> None:
    run = experiment.run("mixtrain", **ARGS, op="cutmix", compare="short",
                         output=str(tmp_path), experiment="r")
    assert run.finished and run.arms == ["baseline", "mixtrain", "short"]
    with Experiment("mixtrain", **ARGS, op="mixup") as exp:
        assert {"baseline", "mixtrain", "short", "skip", "infobatch", "seta"} <= set(exp.arms)
        # out of the run's order, the baseline never trained, the op given per arm
        cut = exp.train("mixtrain", op="cutmix")
        short = exp.train("short")
    assert _trace(cut.rows) == _trace(run.arm_rows("mixtrain"))
    assert _trace(short.rows) == _trace(run.arm_rows("short"))
    assert cut.inputs < sum(r["inputs"] for r in run.arm_rows("baseline"))


def test_a_comparison_arm_is_matched_to_the_result_it_is_given() -> None:
    with Experiment("mixtrain", **ARGS) as exp:
        with pytest.raises(UserError, match="train `mixtrain` first, or pass match="):
            exp.train("skip")
        cut = exp.train("mixtrain")
        mix = exp.train("mixtrain", op="mixup")
        skip = exp.train("skip", match=cut)
        assert [r["inputs"] for r in skip.rows] == [r["inputs"] for r in cut.rows]
        assert exp.train("skip").inputs == mix.inputs      # default: the last method result
        with pytest.raises(UserError, match="not an arm of `mixkit mixtrain`"):
            exp.train("nope")


def test_settings_are_validated_and_derive_new_ones() -> None:
    s = experiment.settings("mixtrain", **ARGS, compare="short,skip")
    assert s["seed"] == 3 and s.seed == 3 and s.compare_arms == ["short", "skip"]
    assert "compare_arms" not in s                    # derived: readable, not an option
    assert s.replace(seed=4).seed == 4 and s.seed == 3
    with pytest.raises(UserError, match="--batch-size"):
        s.replace(batch_size=0)
    with pytest.raises(UserError, match="epochs_ssl|--epochs-ssl"):
        experiment.settings("mixtrain", epochs_ssl=3)  # the other command's option
    with pytest.raises(UserError, match="not a training command"):
        experiment.settings("mixtrian")
    flags = {o.name: o for o in experiment.options("mixtrain")}
    assert flags["batch_size"].flag == "--batch-size" and flags["batch_size"].short == "-b"
    assert flags["op"].choices == ("cutmix", "mixup") and not flags["output"].per_experiment


def test_resume_refuses_what_it_cannot_continue(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothing to resume"):
        experiment.resume(tmp_path)
    run = experiment.run("mixtrain", **{**ARGS, "epochs": 1}, baseline=False,
                         output=str(tmp_path), experiment="done", keep_checkpoint=True)
    with pytest.raises(UserError, match="already completed"):
        experiment.resume(run.path)


# -- the benchmarks use public names only ------------------------------------------------------

PUBLIC_MODULES = ("mixkit", "mixkit.experiment", "mixkit.functional", "mixkit.lightning")


def _public(module: str) -> set[str]:
    return set(importlib.import_module(module).__all__)


def _mixkit_uses(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every mixkit import in ``path``, and ``mixkit.X`` attribute reads."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.split(".")[0] == "mixkit":
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.split(".")[0] == "mixkit"]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id == "mixkit":
            out.append(("mixkit", node.attr))
    return out


def _breaches(path: Path) -> list[str]:
    bad = []
    for module, name in _mixkit_uses(path):
        if module not in PUBLIC_MODULES:
            bad.append(f"{module}.{name}")
        elif name and name not in _public(module) and \
                f"{module}.{name}" not in PUBLIC_MODULES:
            bad.append(f"{module}.{name}")
    return bad


@pytest.mark.parametrize("path", sorted([*(REPO / "benchmarks").glob("*.py"),
                                         *(REPO / "examples").glob("*.py")]),
                         ids=lambda p: p.name)
def test_benchmarks_and_examples_use_only_public_names(path: Path) -> None:
    assert not _breaches(path), _breaches(path)


def test_the_public_name_check_sees_a_private_import(tmp_path: Path) -> None:
    f = tmp_path / "b.py"
    f.write_text("import mixkit\nfrom mixkit.orchestrate import run_arm\n"
                 "from mixkit.experiment import Experiment, prepare\nmixkit.orchestrate\n"
                 "from mixkit import functional, experiment\n")
    assert _breaches(f) == ["mixkit.orchestrate.run_arm", "mixkit.experiment.prepare",
                            "mixkit.orchestrate"]
    assert set(mixkit.__all__) >= {"MixTrain", "create_timm_model"}


def test_a_methods_settings_are_its_commands_options() -> None:
    """Declared once, in the method's package: every field of ``MixTrainSettings`` (and of
    ``SeTaSettings``, as ``--seta-*``) is a ``mixkit mixtrain`` option, every field of
    ``MixTrainingSettings`` a ``mixkit mixtraining`` one, with the same default,
    choices and help line, and both refuse the same out-of-range value."""
    import dataclasses

    from mixkit.methods.mixtrain.settings import MixTrainSettings
    from mixkit.methods.mixtraining.settings import MixTrainingSettings
    from mixkit.methods.seta import SeTaSettings

    for command, cls, prefix in (("mixtrain", MixTrainSettings, ""),
                                 ("mixtrain", SeTaSettings, "seta_"),
                                 ("mixtraining", MixTrainingSettings, "")):
        opts = {o.name: o for o in experiment.options(command)}
        for f in dataclasses.fields(cls):
            o = opts[prefix + f.name]
            assert (o.default, o.help) == (f.default, f.metadata["help"]), f.name
            assert o.choices == f.metadata["choices"], f.name
    with pytest.raises(ValueError, match="cutmix_area 1.0 must be at most 0.99"):
        MixTrainSettings(cutmix_area=1.0)
    with pytest.raises(UserError, match="--cutmix-area"):
        experiment.settings("mixtrain", cutmix_area=1.0)


def test_the_data_core_alone_and_as_arrays() -> None:
    """``input_batches``: one epoch of the data core as the step receives it (every training
    image once, augmented and normalised, batch_size at a time); ``train_arrays``: the same set
    in memory as uint8, with the statistics the data core normalises with."""
    import torch

    with Experiment("mixtrain", **{**ARGS, "batch_size": 100}) as exp:
        arrays = exp.train_arrays()
        n = len(arrays.labels)
        assert arrays.images.dtype == torch.uint8 and arrays.images.shape == (n, 3, 16, 16)
        assert exp.img_size == 16 and exp.num_classes == 10 and arrays.hflip is False
        sizes, labels = [], []
        for x, y in exp.input_batches(epoch=0):
            assert x.dtype == torch.float32 and x.shape[1:] == (3, 16, 16)
            sizes.append(len(y))
            labels.append(y)
        assert sum(sizes) == n and max(sizes) == 100
        assert torch.equal(torch.cat(labels).sort().values, arrays.labels.sort().values)
        x = (arrays.images.float() / 255 - arrays.mean.view(3, 1, 1)) / arrays.std.view(3, 1, 1)
        assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05   # its stats


def test_resume_continues_a_stopped_run_to_the_uninterrupted_result(tmp_path: Path) -> None:
    """``experiment.run`` stopped by SIGTERM mid-epoch raises ``Interrupted`` with its
    checkpoint saved; ``experiment.resume`` finishes it to the same rows as a run never
    stopped (the seconds aside)."""
    from test_resume import WALL_CLOCK, stop_at

    small = {**ARGS, "data_fraction": 0.05, "val_fraction": 0.05, "batch_size": 16,
             "model": "mobilenetv2_035", "op": "mixup", "baseline": False,
             "output": str(tmp_path)}
    whole = experiment.run("mixtrain", **small, experiment="whole")
    with pytest.raises(experiment.Interrupted):
        experiment.run("mixtrain", **small, experiment="cut",
                       callbacks=stop_at([("mixtrain", "sl", 1.4)]))
    resumed = experiment.resume(tmp_path / "cut")

    def rows(run):
        return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in run.rows]
    assert resumed.finished and rows(resumed) == rows(whole)
