"""Run directories under attack and faults: nothing outside ``--output`` is touched, one writer
per run, a full disk is exit 1 with a resumable checkpoint, a resume never runs a different
recipe, and the untimed warm-up changes no result."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_cli

SMALL = ["--data", "digits", "--data-fraction", "0.05", "--val-fraction", "0.05",
         "--img-size", "16", "-b", "16"]
MIXTRAIN = ["mixtrain", *SMALL, "--model", "mobilenetv2_035", "--epochs", "2", "--no-baseline",
            "--keep-checkpoint"]                  # runs are made to look interrupted below


def _run(tmp: Path, name: str, capsys, *extra: str) -> tuple[int, str]:
    code, _, err = run_cli([*MIXTRAIN, *extra, "--output", str(tmp / "runs"),
                            "--experiment", name], capsys)
    return code, err


def test_overwrite_never_deletes_outside_output_or_what_is_not_a_run(tmp_path, capsys) -> None:
    parent = tmp_path / "home"
    (parent / "runs").mkdir(parents=True)
    (parent / "precious.txt").write_text("keep")
    for name in ("..", ".", "../home", str(parent)):
        code, _, err = run_cli([*MIXTRAIN, "--output", str(parent / "runs"), "--experiment",
                                name, "--overwrite"], capsys)
        assert code == 2 and "--experiment" in err
    assert (parent / "precious.txt").read_text() == "keep"
    # a folder that is not a run, and a run with someone's file in it, are never deleted
    (parent / "runs" / "notes").mkdir()
    (parent / "runs" / "notes" / "a.txt").write_text("mine")
    code, _, err = run_cli([*MIXTRAIN, "--output", str(parent / "runs"), "--experiment", "notes",
                            "--overwrite"], capsys)
    assert code == 2 and "not a mixkit run directory" in err
    assert (parent / "runs" / "notes" / "a.txt").read_text() == "mine"


def test_overwrite_replaces_a_finished_run_but_not_one_with_foreign_files(tmp_path,
                                                                          capsys) -> None:
    assert _run(tmp_path, "R", capsys)[0] == 0
    run = tmp_path / "runs" / "R"
    (run / "my-analysis.ipynb").write_text("{}")
    code, err = _run(tmp_path, "R", capsys, "--overwrite")
    assert code == 2 and "my-analysis.ipynb" in err and (run / "my-analysis.ipynb").exists()
    (run / "my-analysis.ipynb").unlink()
    (run / "config.yaml").write_text((run / "config.yaml").read_text())
    stamp = (run / "summary.json").stat().st_mtime_ns
    assert _run(tmp_path, "R", capsys, "--overwrite")[0] == 0
    assert (run / "summary.json").stat().st_mtime_ns != stamp         # a new run


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, capsys) -> None:
    assert _run(tmp_path, "L", capsys)[0] == 0
    run = tmp_path / "runs" / "L"
    (run / "summary.json").unlink()                       # as if it had been interrupted
    # another process holds the run (a real second process, as two shells would)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from pathlib import Path; "
                               "from mixkit.runio.rundir import RunLock; "
                               f"l = RunLock(Path({str(run)!r})); l.acquire(); "
                               "print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
        assert code == 2 and f"pid {holder.pid}" in err and "one writer" in err
        code, err = _run(tmp_path, "L", capsys, "--overwrite")
        assert code == 2 and f"pid {holder.pid}" in err                 # nor deleted under it
    finally:
        holder.kill()
        holder.wait()
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)  # a dead holder: free
    assert code == 0, err


def test_a_full_disk_at_a_checkpoint_is_exit_1_and_resumable(tmp_path, monkeypatch,
                                                             capsys) -> None:
    real = torch.save
    calls = {"n": 0}

    def full(obj, f, *a, **k):                            # the disk fills mid-write of the
        calls["n"] += 1                                   # second epoch's checkpoint
        if calls["n"] == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full)              # the device's seam: torch's writer
    code, err = _run(tmp_path, "F", capsys)
    assert code == 1 and "No space left on device" in err and "Traceback" not in err
    run = tmp_path / "runs" / "F"
    assert "--resume" in err and str(run) in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left" in summary["error"]
    assert not list(run.glob(".*.tmp"))                   # the torn write left nothing
    state = torch.load(run / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch"]) == (1, 0)     # the previous checkpoint, whole
    monkeypatch.setattr(torch, "save", real)
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
    assert code == 0, err


def test_stale_temp_files_of_a_killed_writer_are_removed_on_resume(tmp_path, capsys) -> None:
    assert _run(tmp_path, "T", capsys)[0] == 0
    run = tmp_path / "runs" / "T"
    (run / "summary.json").unlink()
    (run / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
    assert code == 0, err
    assert not (run / ".last.pt.x1y2.tmp").exists()


def test_resume_refuses_an_edited_config_and_a_crafted_checkpoint(tmp_path, capsys) -> None:
    assert _run(tmp_path, "E", capsys)[0] == 0
    run = tmp_path / "runs" / "E"
    (run / "summary.json").unlink()
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text.replace("batch_size: 16", "batch_size: 8")
                                     .replace("model: mobilenetv2_035", "model: resnet18"))
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
    assert code == 2 and "batch_size: 16 -> 8" in err and "model" in err
    (run / "config.yaml").write_text(text)
    torch.save({"format": 1, "command": "mixtrain", "arm": "mixtrain"}, run / "last.pt")
    code, _, err = run_cli(["mixtrain", "--resume", str(run)], capsys)
    assert code == 2 and "not a complete mixkit checkpoint" in err and "Traceback" not in err


def test_a_mid_run_user_error_leaves_no_half_made_run_dir(tmp_path, capsys,
                                                          imagefolder_root) -> None:
    (imagefolder_root / "val" / "dog" / "1.png").write_bytes(b"broken")
    code, _, err = run_cli(["mixtrain", "--data", "imagefolder", "--data-dir",
                            str(imagefolder_root), "--img-size", "16", "-b", "4", "--epochs",
                            "1", "--model", "mobilenetv2_035", "--workers", "0", "--output",
                            str(tmp_path / "runs"), "--experiment", "B"], capsys)
    assert code == 2 and "1.png" in err
    assert not (tmp_path / "runs").exists()


def test_reusing_an_interrupted_runs_name_suggests_resume(tmp_path, capsys) -> None:
    assert _run(tmp_path, "I", capsys)[0] == 0
    (tmp_path / "runs" / "I" / "summary.json").unlink()
    code, err = _run(tmp_path, "I", capsys)
    assert code == 2 and f"--resume {tmp_path / 'runs' / 'I'}" in err


def test_the_untimed_warm_up_changes_no_result(tmp_path, capsys) -> None:
    for name, steps in (("W0", "0"), ("W5", "5")):
        assert _run(tmp_path, name, capsys, "--timing-warmup", steps)[0] == 0
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / "runs" / n / "weights" / "mixtrain.safetensors")
            for n in ("W0", "W5"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = [[json.loads(x) for x in (tmp_path / "runs" / n / "metrics.jsonl").open()]
            for n in ("W0", "W5")]
    drop = ("epoch_seconds", "img_per_s", "data_seconds", "data_share")
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows[0]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rows[1]]


def test_a_last_batch_of_one_sample_on_a_1x1_feature_map_trains(tmp_path, capsys) -> None:
    """86 samples in batches of 85 would leave one sample alone, which BatchNorm cannot
    normalise on ResNet-18's 1x1 map at 8 px: it joins the batch before instead."""
    code, _, err = run_cli(["mixtrain", "--data", "digits", "--data-fraction", "0.05",
                            "--val-fraction", "0.05", "-b", "85", "--img-size", "8", "--op",
                            "mixup", "--model", "resnet18", "--epochs", "1", "--no-baseline",
                            "--output", str(tmp_path), "--experiment", "B"], capsys)
    assert code == 0, err


def test_a_run_draws_its_figures_unless_no_plots(tmp_path, capsys) -> None:
    assert _run(tmp_path, "P", capsys)[0] == 0
    figs = sorted(p.name for p in (tmp_path / "runs" / "P" / "plots").iterdir())
    assert figs == ["accuracy_vs_time.png", "mixing.png", "regions.png", "thresholds.png"]
    assert _run(tmp_path, "Q", capsys, "--no-plots")[0] == 0
    assert not (tmp_path / "runs" / "Q" / "plots").exists()


# --- the surfaces of the last turn (#42) -------------------------------------------------------


def _stopped(tmp: Path, name: str, capsys, *extra: str) -> Path:
    assert _run(tmp, name, capsys, *extra)[0] == 0
    run = tmp / "runs" / name
    (run / "summary.json").unlink()                       # as if it had been interrupted
    return run


def test_a_link_planted_one_level_down_is_refused_on_resume(tmp_path, capsys) -> None:
    """``RUN/tb/<arm>`` made a link to a folder outside: resuming with --log-tensorboard must
    not write the event file there (the check looks at every depth, not the top level)."""
    pytest.importorskip("tensorboard")
    run = _stopped(tmp_path, "K", capsys, "--log-tensorboard")
    outside = tmp_path / "outside"
    outside.mkdir()
    arm = run / "tb" / "mixtrain"
    for f in arm.iterdir():
        f.unlink()
    arm.rmdir()
    arm.symlink_to(outside, target_is_directory=True)
    code, _, err = run_cli(["mixtrain", "--resume", str(run), "--log-tensorboard"], capsys)
    assert code == 2 and "symbolic link" in err and "tb/mixtrain" in err
    assert list(outside.iterdir()) == []


def test_a_regular_file_where_tensorboard_writes_is_exit_2(tmp_path, capsys) -> None:
    pytest.importorskip("tensorboard")
    run = _stopped(tmp_path, "Q", capsys, "--log-tensorboard")
    arm = run / "tb" / "mixtrain"
    for f in arm.iterdir():
        f.unlink()
    arm.rmdir()
    arm.write_text("not a folder")
    code, _, err = run_cli(["mixtrain", "--resume", str(run), "--log-tensorboard"], capsys)
    assert code == 2 and "Traceback" not in err and "not a folder mixkit made" in err


def test_a_broken_tensorboard_install_is_refused_before_training(tmp_path, capsys,
                                                                 monkeypatch) -> None:
    """The up-front check imports what the logger will use (``SummaryWriter``), not just the
    top-level package: a broken install is exit 2 before epoch 1, with nothing written."""
    pytest.importorskip("tensorboard")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # import fails
    code, err = _run(tmp_path, "B", capsys, "--log-tensorboard")
    assert code == 2 and "torch.utils.tensorboard" in err and "--log-tensorboard" in err
    assert not (tmp_path / "runs").exists()


def test_wandb_online_without_credentials_is_refused_before_training(tmp_path, capsys,
                                                                    monkeypatch) -> None:
    pytest.importorskip("wandb")
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    code, err = _run(tmp_path, "O", capsys, "--log-wandb", "--wandb-mode", "online")
    assert code == 2 and "wandb login" in err and "--wandb-mode offline" in err
    assert not (tmp_path / "runs").exists()


def test_a_run_leaves_nothing_outside_output_in_a_fresh_home(tmp_path) -> None:
    """The real command in a fresh ``$HOME`` and ``$TMPDIR``, with the W&B logger (offline):
    matplotlib's font cache, torch's inductor cache folder and W&B's debug logs all stay out
    of them, and W&B's links in the run dir point inside it."""
    pytest.importorskip("wandb")
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "XDG_"))
           and k not in ("MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR")}
    env.update(HOME=str(home), TMPDIR=str(tmp), WANDB_SILENT="true")
    out = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "mixkit", *MIXTRAIN[:-1], "--epochs", "1",
                           "--log-wandb", "--output", str(out), "--experiment", "H"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in home.iterdir()) == []
    assert sorted(p.name for p in tmp.iterdir()) == []
    run = (out / "H").resolve()
    for link in [p for p in run.rglob("*") if p.is_symlink()]:
        assert link.resolve().is_relative_to(run), (link, link.resolve())
    assert (run / "plots").is_dir()                       # the figures were drawn


def test_val_size_applies_to_a_streamed_folder(tmp_path, capsys) -> None:
    from conftest import solid_png

    for c, name in enumerate(["cat", "dog"]):
        for k in range(10):
            solid_png(tmp_path / "tree" / "train" / name / f"{k}.png", (200 * c, 30 + k, 90))
            solid_png(tmp_path / "tree" / "val" / name / f"{k}.png", (200 * c, 30 + k, 90))
    code, _, err = run_cli(["mixtrain", "--data", "imagefolder", "--data-dir",
                            str(tmp_path / "tree"), "--img-size", "16", "--model",
                            "mobilenetv2_035", "-b", "4", "--workers", "0", "--epochs", "1",
                            "--no-baseline", "--val-size", "10", "--output", str(tmp_path),
                            "--experiment", "V"], capsys)
    assert code == 0, err
    assert "20 train / 10 val" in (tmp_path / "V" / "log.txt").read_text()


def test_non_utf8_output_and_experiment_names_run_and_print_escaped(tmp_path, capsys) -> None:
    """``--output out\\xff --experiment run\\xe9`` (bytes a shell passes that are not UTF-8):
    the run completes, writes there, and prints the names escaped (no UnicodeEncodeError)."""
    out = os.fsdecode(bytes(tmp_path) + b"/out\xff")
    code, stdout, err = run_cli([*MIXTRAIN[:-1], "--epochs", "1", "--output", out,
                                 "--experiment", os.fsdecode(b"run\xe9")], capsys)
    assert code == 0, err
    run = os.path.join(os.fsencode(out), b"run\xe9")
    assert os.path.isfile(os.path.join(run, b"summary.json"))
    assert "out\\xff/run\\xe9" in stdout and "Traceback" not in err
    assert b"out\\xff/run\\xe9" in open(os.path.join(run, b"log.txt"), "rb").read()
