"""The GPU path, end to end (skipped without CUDA / MPS; run by ``benchmarks/gpu.py``).

Each command runs a few steps on the GPU with AMP (bf16 and fp16), channels_last,
``--torchcompile``, ``--ssl-data`` and an exact resume, with the training step *and* the batch
assembly under ``torch.cuda.set_sync_debug_mode("error")``: any host sync there (``.item()``,
``.cpu()``, ``nonzero``, boolean indexing, a CPU/GPU generator mix-up) fails the test. With two
or more GPUs, each command also runs as a 2-process NCCL job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mixkit.data.sources import _Source
from mixkit.engine.loop import Engine

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
mps = pytest.mark.skipif(not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()), reason="needs MPS")

SMALL = ["--data", "digits", "--data-fraction", "0.2", "--img-size", "32", "-b", "64"]
MIXTRAIN = ["mixtrain", *SMALL, "--model", "resnet18", "--epochs", "3", "--log-interval", "2"]
MIXTRAINING = ["mixtraining", *SMALL, "--epochs-ssl", "2", "--epochs-sl", "2",
               "--decoder-depth", "1", "--patch-size", "8", "--log-interval", "2"]


@pytest.fixture
def no_host_syncs(monkeypatch) -> dict[str, bool]:
    """Every training step and every batch assembly runs with CUDA's sync debug mode at
    "error": a hidden device->host sync raises instead of silently stalling the GPU.

    Returns a switch: ``no_host_syncs["on"] = False`` lets a warm-up run through unguarded.
    torch.compile needs one: Inductor benchmarks a kernel's candidate configurations with
    device syncs the first time it meets a shape (a one-time cost, not the hot loop's)."""
    switch = {"on": True}

    def strict(fn):
        def wrapped(*args, **kwargs):
            if not switch["on"]:
                return fn(*args, **kwargs)
            torch.cuda.set_sync_debug_mode("error")
            try:
                return fn(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode(0)
        return wrapped

    monkeypatch.setattr(Engine, "_step", strict(Engine._step))
    monkeypatch.setattr(_Source, "_assemble", strict(_Source._assemble))
    return switch


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


@cuda
@pytest.mark.parametrize("cmd", ["mixtrain-cutmix", "mixtrain-mixup", "mixtraining"])
@pytest.mark.parametrize("amp", ["bfloat16", "float16"])
def test_each_command_trains_on_cuda_without_host_syncs(cmd, amp, no_host_syncs, tmp_path,
                                                        capsys) -> None:
    argv = MIXTRAINING if cmd == "mixtraining" else [*MIXTRAIN, "--op", cmd.split("-")[1]]
    code, _, err = run_cli([*argv, "--device", "cuda", "--amp", "--amp-dtype", amp,
                            "--output", str(tmp_path), "--experiment", "G"], capsys)
    assert code == 0, err
    s = _summary(tmp_path / "G")
    assert s["status"] == "completed" and "cuda" in s["device"] and f"amp {amp}" in s["device"]


@cuda
def test_fast_defaults_on_cuda(tmp_path, capsys) -> None:
    """No flag: bf16 autocast and channels_last for a CNN (docs/engine.md)."""
    code, _, err = run_cli([*MIXTRAIN, "--device", "cuda", "--output", str(tmp_path),
                            "--experiment", "D"], capsys)
    assert code == 0, err
    device = _summary(tmp_path / "D")["device"]
    if torch.cuda.is_bf16_supported():
        assert "amp bfloat16" in device
    assert "channels_last" in device


@cuda
@pytest.mark.parametrize("cmd", ["mixtrain", "mixtraining"])
def test_torchcompile_and_channels_last_on_cuda(cmd, no_host_syncs, tmp_path, capsys) -> None:
    """The same run twice in one process: the first compiles and tunes every kernel for every
    shape the run meets (unguarded), the second must then step without a single sync, and
    bills its (cache-hit) compiling to no arm."""
    argv = MIXTRAINING if cmd == "mixtraining" else MIXTRAIN
    args = [*argv, "--device", "cuda", "--torchcompile", "--channels-last", "--no-baseline",
            "--output", str(tmp_path)]
    no_host_syncs["on"] = False
    assert run_cli([*args, "--experiment", "W"], capsys)[0] == 0
    no_host_syncs["on"] = True
    code, _, err = run_cli([*args, "--experiment", "C"], capsys)
    assert code == 0, err
    s = _summary(tmp_path / "C")
    assert "torch.compile" in s["device"]
    assert all("compile_seconds" in a for a in s["arms"].values())


@cuda
def test_ssl_data_on_cuda_draws_partners_on_the_device(no_host_syncs, tmp_path, capsys) -> None:
    """The Eq. (2) partners come from a CUDA generator (a CPU/GPU mix-up crashed here)."""
    code, _, err = run_cli([*MIXTRAINING, "--ssl-data", "synthetic", "--no-baseline",
                            "--device", "cuda", "--output", str(tmp_path), "--experiment", "S"],
                           capsys)
    assert code == 0, err
    rows = [json.loads(x) for x in (tmp_path / "S" / "metrics.jsonl").open()]
    assert [r["phase"] for r in rows] == ["ssl", "mix", "sl"]


@cuda
def test_resume_on_cuda_is_exact(tmp_path, capsys, monkeypatch) -> None:
    """Stopped mid-run on the GPU and resumed: the same final weights as an uninterrupted run
    (CUDA RNG state and the device generators travel in the checkpoint)."""
    from mixkit.engine.events import Callback
    from mixkit.engine.signals import STOP

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)   # not left on for later
    args = [*MIXTRAIN, "--op", "mixup", "--no-baseline", "--device", "cuda", "--no-amp",
            "--output", str(tmp_path)]
    assert run_cli([*args, "--experiment", "U"], capsys)[0] == 0
    class StopOnce(Callback):
        """SIGTERM's flag after the first step past progress 1.5 (mid epoch 2)."""

        fired = False

        def after_step(self, state) -> None:
            if not StopOnce.fired and state.epoch + (state.batch - 0.5) / state.batches > 1.5:
                StopOnce.fired = True
                STOP.request(15)

    assert run_cli([*args, "--experiment", "R"], capsys, [StopOnce])[0] == 143
    code, _, err = run_cli(["mixtrain", "--resume", str(tmp_path / "R")], capsys)
    assert code == 0, err
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / r / "weights" / "mixtrain.safetensors") for r in "UR")
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
@pytest.mark.parametrize("cmd", ["mixtrain", "mixtraining"])
def test_two_process_nccl_run(cmd, tmp_path) -> None:
    argv = MIXTRAINING if cmd == "mixtraining" else MIXTRAIN
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "mixkit", *argv, "--no-baseline",
                           "--output", str(tmp_path), "--experiment", "N"],
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _summary(tmp_path / "N")["world_size"] == 2


@mps
@pytest.mark.parametrize("cmd", ["mixtrain", "mixtraining"])
def test_each_command_trains_on_mps(cmd, tmp_path, capsys) -> None:
    """What --device auto picks on a Mac: the plain AdamW path (older torch) must not crash."""
    argv = MIXTRAINING if cmd == "mixtraining" else MIXTRAIN
    code, _, err = run_cli([*argv, "--device", "mps", "--output", str(tmp_path),
                            "--experiment", "M"], capsys)
    assert code == 0, err
