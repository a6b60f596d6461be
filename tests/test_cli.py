"""The command line end to end: run dirs, config re-runs, every format, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import run_cli

FAST = ["--model", "resnet18", "--img-size", "16", "--epochs", "1", "-b", "16"]


def test_mixtrain_run_dir_and_config_rerun(tmp_path: Path, capsys) -> None:
    out = tmp_path / "OUT"
    code, stdout, _ = run_cli(["mixtrain", "--data", "digits", "--epochs", "2",
                               "--data-fraction", "0.1", "--model", "mobilenetv2_035",
                               "--val-fraction", "0.05",
                               "--img-size", "16", "--output", str(out), "--experiment", "E"],
                              capsys)
    assert code == 0
    run = out / "E"
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "metrics.jsonl", "summary.json",
                                                 "summary.csv", "log.txt", "weights"}
    assert not (run / "last.pt").exists()          # a completed run keeps weights, not state
    assert sorted(p.name for p in (run / "weights").iterdir()) == [
        "mixtrain.json", "mixtrain.safetensors"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["arm"], r["phase"], r["epoch"]) for r in rows] == [
        ("baseline", "sl", 1), ("baseline", "sl", 2), ("mixtrain", "sl", 1), ("mixtrain", "sl", 2)]
    n = rows[0]["inputs"]
    assert 166 <= n <= 176                        # ~10 % of digits' 1,707 training images
    assert all(r["samples"] == n and 0 <= r["val_acc"] <= 1 for r in rows)
    assert all(r["inputs"] == n for r in rows[:3])   # mixtrain's epoch 0 mixes nothing
    summary = json.loads((run / "summary.json").read_text())
    assert summary["command"] == "mixtrain"
    arm = summary["arms"]["baseline"]
    assert arm["epochs"] == 2 and arm["inputs"] == 2 * n
    assert arm["accuracy"] == rows[1]["val_acc"]               # its last epoch
    assert arm["train_seconds"] == pytest.approx(sum(r["epoch_seconds"] for r in rows[:2]))
    mt = summary["arms"]["mixtrain"]
    assert summary["speedup"] == pytest.approx(arm["train_seconds"] / mt["train_seconds"])
    assert summary["accuracy_delta"] == pytest.approx(mt["accuracy"] - arm["accuracy"])
    assert summary["device"].startswith("cpu")
    assert "baseline" in stdout and "mixtrain" in stdout and "speedup" in stdout  # the table
    header = (run / "summary.csv").read_text().splitlines()[0]
    assert header.startswith("arm,phase,epoch,train_loss,val_acc")
    log = (run / "log.txt").read_text().splitlines()        # what the console showed, plain
    assert log[0].startswith("mixkit mixtrain: digits") and f"run dir {run}" in log[0]
    assert [x.split(":")[0] for x in log[1:5]] == [
        "baseline epoch 1/2", "baseline epoch 2/2", "mixtrain epoch 1/2", "mixtrain epoch 2/2"]
    assert any("speedup" in x for x in log) and log[-1].startswith(f"run dir: {run}")
    assert summary["weights"] == ["weights/mixtrain.safetensors"]
    _check_weights_score_the_reported_accuracy(run, mt["accuracy"])

    # the saved config re-runs: same recipe, a fresh run dir beside the first
    code, _, _ = run_cli(["mixtrain", "--config", str(run / "config.yaml")], capsys)
    assert code == 0
    rerun = json.loads((out / "E-1" / "summary.json").read_text())
    for name in ("baseline", "mixtrain"):                 # same seed, same result
        assert rerun["arms"][name]["accuracy"] == summary["arms"][name]["accuracy"]
    assert yaml.safe_load((out / "E-1" / "config.yaml").read_text())["epochs"] == 2


def test_explicit_experiment_is_never_overwritten(tmp_path: Path, capsys) -> None:
    (tmp_path / "E").mkdir()
    (tmp_path / "E" / "keep.txt").write_text("precious")
    code, _, err = run_cli(["mixtrain", *FAST, "--output", str(tmp_path), "--experiment", "E"],
                           capsys)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert (tmp_path / "E" / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize("name,fixture,extra", [
    ("cifar10", "cifar10_root", []),
    ("cifar100", "cifar100_root", []),
    ("svhn", "svhn_root", []),
    ("tinyimagenet", "tinyimagenet_root", []),
    ("imagefolder", "imagefolder_root", ["--workers", "0"]),
    ("fashionmnist", "fashionmnist_root", []),
])
def test_each_format_trains_one_epoch(name, fixture, extra, request, tmp_path, capsys) -> None:
    root = request.getfixturevalue(fixture)
    code, _, err = run_cli(["mixtrain", "--no-baseline", "--data", name, "--data-dir",
                            str(root), *FAST, "-b", "8", *extra, "--output",
                            str(tmp_path / "runs"), "--experiment", name], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "runs" / name / "summary.json").read_text())
    assert summary["command"] == "mixtrain" and summary["arms"]["mixtrain"]["epochs"] == 1


def test_console_script_exit_code_and_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mixkit", "mixtrain", "--data", "nope",
                           "--output", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown dataset `nope`" in proc.stderr and "Traceback" not in proc.stderr


def test_datasets_and_models_listings(tmp_path: Path, cifar10_root: Path, capsys) -> None:
    code, out, _ = run_cli(["datasets", "--data-dir", str(cifar10_root)], capsys)
    assert code == 0
    line = next(ln for ln in out.splitlines() if "│ cifar10 " in ln)
    assert "[1]/cifar-10-batches" in line and " no " not in line     # under --data-dir
    assert f"[1] {cifar10_root}" in " ".join(out.split())
    assert "svhn" in out and "tinyimagenet" in out and "digits" in out
    code, out, _ = run_cli(["models"], capsys)
    assert code == 0 and "resnet18" in out and "vit_tiny_patch16_224" in out


def test_amp_bf16_and_channels_last_run_on_cpu(tmp_path: Path, capsys, syncing_ops) -> None:
    code, _, err = run_cli(["mixtrain", *FAST, "--img-size", "8", "--data-fraction", "0.05",
                            "--op", "mixup", "--amp",
                            "--channels-last", "--device", "cpu", "--output", str(tmp_path),
                            "--experiment", "amp"], capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:5])       # no step would wait on CUDA
    summary = json.loads((tmp_path / "amp" / "summary.json").read_text())
    assert "amp bfloat16" in summary["device"] and "channels_last" in summary["device"]
    assert 0.0 <= summary["arms"]["baseline"]["accuracy"] <= 1.0


def test_torchcompile_trains_like_eager_and_bills_compiling_to_no_arm(tmp_path: Path,
                                                                     capsys) -> None:
    """--torchcompile on the CPU (aot_eager: Dynamo and AOTAutograd trace the model, the
    backbone's forward_features and the backward, without inductor's code generation): the
    same accuracy as the eager run; the compile of the first step and the recompiles that
    mixing brings (split propagation's first call, new batch shapes) are in compile_seconds,
    not in the epochs' seconds — an epoch that compiled has more compile than training time."""
    args = ["mixtrain", *FAST, "--epochs", "2", "--data-fraction", "0.05", "-b", "32",
            "--op", "cutmix", "--no-baseline", "--device", "cpu", "--output", str(tmp_path)]
    assert run_cli([*args, "--experiment", "eager"], capsys)[0] == 0
    code, _, err = run_cli([*args, "--torchcompile", "--compile-backend", "aot_eager",
                            "--experiment", "c"], capsys)
    assert code == 0, err
    eager, comp = (json.loads((tmp_path / e / "summary.json").read_text()) for e in ("eager", "c"))
    assert "torch.compile (aot_eager)" in comp["device"]
    assert comp["arms"]["mixtrain"]["accuracy"] == pytest.approx(
        eager["arms"]["mixtrain"]["accuracy"], abs=1.01 / 359)       # at most one image
    rows = [json.loads(x) for x in (tmp_path / "c" / "metrics.jsonl").open()]
    assert rows[1]["mixed_fraction"] > 0                              # epoch 2 trains pairs
    assert rows[1]["compile_seconds"] > rows[1]["epoch_seconds"]      # compiled, not billed
    arm = comp["arms"]["mixtrain"]
    assert arm["compile_seconds"] == pytest.approx(sum(r["compile_seconds"] for r in rows))
    assert arm["train_seconds"] == pytest.approx(sum(r["epoch_seconds"] for r in rows))
    assert "compile_seconds" not in eager["arms"]["mixtrain"]


def test_version_and_help_show_the_allowed_values(capsys) -> None:
    import mixkit

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.startswith(f"mixkit {mixkit.__version__} (torch ")
    code, out, _ = run_cli(["mixtrain", "--help"], capsys)
    flat = " ".join(out.replace("│", " ").split())
    assert code == 0 and "(one of: cutmix, mixup)" in flat
    assert "(one of: cumulative, last, epochs)" in flat and "(one of: bfloat16, float16)" in flat
    assert "(one of: adamw, sgd)" in flat and "(one of: cosine, step, multistep, none)" in flat


def test_help_piped_off_a_terminal_is_not_squeezed() -> None:
    """Piped (a file, a pager, CI logs): 120 columns, so a short help line stays one line."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    out = subprocess.run([sys.executable, "-m", "mixkit", "mixtrain", "--help"], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    assert any("Training epochs per arm. (default: 20)" in line for line in out.splitlines())
    assert max(len(line) for line in out.splitlines()) == 120


def test_no_baseline_table_has_no_speedup_column(tmp_path: Path, capsys) -> None:
    from mixkit.report import speedup_table

    summary = {"command": "mixtrain", "data": "d", "model": "m", "device": "cpu",
               "baseline_arm": "baseline", "compare_arms": ["baseline"],
               "arms": {"mixtrain": {"accuracy": 0.5, "best_accuracy": 0.6, "train_seconds": 1.0,
                                     "inputs": 10, "epochs": 1}}}
    table = speedup_table(summary)
    headers = [c.header for c in table.columns]
    assert headers == ["arm", "accuracy", "best", "train s", "inputs", "epochs"]
    assert "speedup" not in str(table.caption)
    assert list(table.columns[2]._cells) == ["60.00%"]


def _check_weights_score_the_reported_accuracy(run, accuracy: float) -> None:
    """``weights/ARM.safetensors`` is the classifier that scored the run's reported accuracy:
    rebuilt from the file alone and evaluated on the run's validation split (its saved
    config); and the same again with ``safetensors`` alone and the JSON beside it (no mixkit
    reader: the two lines ``docs/run-dir.md`` gives)."""
    from safetensors.torch import load_file

    from mixkit.commands.mixtrain import MIXTRAIN
    from mixkit.commands.mixtrain import MixtrainConfig
    from mixkit.options import load_config
    from mixkit.engine.loop import evaluate
    from mixkit.models import create_model
    from mixkit.models.weights import load_weights
    from mixkit.orchestrate import prepare

    ctx = prepare(load_config(MixtrainConfig, run / "config.yaml", {}), MIXTRAIN)
    model = load_weights(run / "weights" / "mixtrain.safetensors")
    assert not any(k.startswith("ssl_head") for k in model.state_dict())
    assert evaluate(model, ctx.data.val, ctx.runtime, 256) == accuracy
    info = json.loads((run / "weights" / "mixtrain.json").read_text())
    plain, _ = create_model(info["model"], info["num_classes"], info["img_size"],
                            info["patch_size"], info["native_size"])
    plain.load_state_dict(load_file(run / "weights" / "mixtrain.safetensors"), strict=True)
    assert evaluate(plain, ctx.data.val, ctx.runtime, 256) == accuracy


def test_weights_load_from_the_safetensors_file_alone(tmp_path) -> None:
    """The ``.safetensors`` file holds the rebuild JSON in its header: it loads with no
    ``ARM.json`` beside it, equal to the model it was written from; a file of another kind is
    refused (pre-release ``.pt`` weights are not read)."""
    import torch

    from mixkit.models import create_model
    from mixkit.models.weights import load_weights, to_safetensors, weights_payload

    model, _ = create_model("mobilenetv2_035", 10, 16)
    payload = weights_payload(model, arm="mixtrain", model_name="mobilenetv2_035",
                              num_classes=10, img_size=16, patch_size=None, native_size=8)
    (tmp_path / "w.safetensors").write_bytes(to_safetensors(payload))
    loaded = load_weights(tmp_path / "w.safetensors")
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="not a mixkit weights file"):
        load_weights(tmp_path / "old.pt")


@pytest.mark.parametrize("command,own", [("mixtrain", "mixTrain"),
                                         ("mixtraining", "MixTraining")])
def test_help_groups_the_options_into_panels(command, own, capsys) -> None:
    import re

    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    panels = re.findall(r"╭─ (.+?) ─", out)
    assert panels[:2] == ["Options", "Run & output"] and own in panels
    assert {"Data", "Model", "Recipe", "Devices", "Logging"} <= set(panels)
    assert ("Comparison" in panels) == (command == "mixtrain")
