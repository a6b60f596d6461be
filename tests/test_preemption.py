"""Data loss under the surfaces a batch system exercises (#42): ``--overwrite`` never destroys a
finished run for a new one that does not start, and a SIGTERM to the whole process group (what
SLURM preemption, `timeout` and Kubernetes send) with DataLoader workers running ends in the
documented interrupted exit with a resumable checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli, solid_png

SMALL = ["--img-size", "16", "--model", "mobilenetv2_035", "-b", "4"]


def _tree(root: Path, per_class: int = 10, val: int = 3) -> Path:
    for c, name in enumerate(["cat", "dog"]):
        for k in range(per_class):
            solid_png(root / "train" / name / f"{k}.png", (200 * c, 30 + k, 90))
        for k in range(val):
            solid_png(root / "val" / name / f"{k}.png", (200 * c, 30 + k, 90))
    return root


def _folder_run(tree: Path, out: Path, name: str, *extra: str) -> list[str]:
    return ["mixtrain", "--data", "imagefolder", "--data-dir", str(tree), *SMALL, "--epochs",
            "1", "--no-baseline", "--workers", "0", "--output", str(out), "--experiment", name,
            *extra]


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_overwrite_with_a_corrupt_val_image_gives_the_finished_run_back(tmp_path,
                                                                        capsys) -> None:
    tree = _tree(tmp_path / "tree")
    out = tmp_path / "runs"
    code, _, err = run_cli(_folder_run(tree, out, "R"), capsys)
    assert code == 0, err
    before = _files(out / "R")
    (tree / "val" / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    code, _, err = run_cli([*_folder_run(tree, out, "R"), "--overwrite"], capsys)
    assert code == 2 and "1.png" in err
    assert _files(out / "R") == before                  # every byte of the old run is back
    assert sorted(p.name for p in out.iterdir()) == ["R"]          # nothing set aside remains


def test_overwrite_with_a_logger_that_cannot_start_gives_the_finished_run_back(
        tmp_path, capsys, monkeypatch) -> None:
    """W&B's setup fails (a bad setting, no service): ``wandb.init`` raises, as it does on its
    own validation errors; the finished run must come back untouched."""
    wandb = pytest.importorskip("wandb")
    tree = _tree(tmp_path / "tree")
    out = tmp_path / "runs"
    assert run_cli(_folder_run(tree, out, "W"), capsys)[0] == 0
    before = _files(out / "W")

    def refuse(**kwargs):
        raise wandb.errors.UsageError("the W&B service could not start")

    monkeypatch.setattr(wandb, "init", refuse)
    code, _, err = run_cli([*_folder_run(tree, out, "W"), "--overwrite", "--log-wandb",
                            "--wandb-mode", "offline"], capsys)
    assert code == 2 and "W&B could not start a run" in err and "Traceback" not in err
    assert _files(out / "W") == before
    assert sorted(p.name for p in out.iterdir()) == ["W"]


def test_overwrite_replaces_mixkits_own_tensorboard_run_once_the_new_one_saved(
        tmp_path, capsys) -> None:
    pytest.importorskip("tensorboard")
    tree = _tree(tmp_path / "tree")
    out = tmp_path / "runs"
    assert run_cli([*_folder_run(tree, out, "T"), "--log-tensorboard"], capsys)[0] == 0
    old = json.loads((out / "T" / "summary.json").read_text())
    code, _, err = run_cli([*_folder_run(tree, out, "T"), "--overwrite", "--log-tensorboard",
                            "--seed", "1"], capsys)
    assert code == 0, err
    new = json.loads((out / "T" / "summary.json").read_text())
    assert new["seed"] == 1 and old["seed"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["T"]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "the run never got there"
        time.sleep(0.02)


@pytest.mark.parametrize("when", ["first-epoch-boundary", "mid-epoch"])
def test_sigterm_to_the_process_group_with_two_workers_keeps_a_resumable_checkpoint(
        when: str, tmp_path) -> None:
    """The real thing: the run leads its own process group, the signal goes to the group (the
    main process and both DataLoader workers), the exit is 143 with no traceback, ``last.pt``
    loads, and ``--resume`` finishes the run."""
    tree = _tree(tmp_path / "tree", per_class=24, val=4)
    out = tmp_path / "runs"
    args = [sys.executable, "-m", "mixkit", "mixtrain", "--data", "imagefolder", "--data-dir",
            str(tree), *SMALL, "--epochs", "3", "--no-baseline", "--workers", "2",
            "--log-interval", "1", "--output", str(out), "--experiment", "P"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        # the first row is written just before the epoch's checkpoint: the boundary; the
        # log's first progress line comes with the first steps: mid-epoch
        _wait_for(out / "P" / ("metrics.jsonl" if when == "first-epoch-boundary" else
                               "log.txt"), proc)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "--resume" in err
    state = torch.load(out / "P" / "last.pt", weights_only=True)
    assert state["arm"] == "mixtrain"
    done = subprocess.run([sys.executable, "-m", "mixkit", "mixtrain", "--resume",
                           str(out / "P")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "P" / "summary.json").read_text())["status"] == "completed"
