"""Reliability, Composer style: a run stopped mid-epoch (SIGTERM) and resumed ends *equal* (zero
tolerance, CPU) to an uninterrupted run — model, optimiser, per-sample state — for every arm of
both commands; negative controls show the test fails without the RNG or plan restore; a NaN stops
the run before the update; a corrupt checkpoint is an exit-2 error; SIGTERM from the shell."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mixkit.engine.events import Callback
from mixkit.engine.signals import STOP

SMALL = ["--data", "digits", "--data-fraction", "0.05", "--val-fraction", "0.05",
         "--img-size", "16", "-b", "16"]                     # 72 train images: 5 batches
MIXTRAIN = ["mixtrain", *SMALL, "--model", "mobilenetv2_035", "--epochs", "3",
            "--keep-checkpoint"]                  # the final state is compared, not only weights
MIXTRAINING = ["mixtraining", *SMALL, "--epochs-ssl", "2", "--epochs-sl", "2",
               "--decoder-depth", "1", "--keep-checkpoint"]
WALL_CLOCK = ("epoch_seconds", "img_per_s", "seconds", "data_seconds", "data_share")


class StopAt(Callback):
    """SIGTERM (the flag the handler sets) after the first step of ``arm`` in ``phase`` at
    progress ``t >= threshold``; each trigger fires once, across resumed processes."""

    def __init__(self, pending: list, signum: int) -> None:
        self.pending, self.signum = pending, signum

    def after_step(self, state) -> None:
        t = state.epoch + (state.batch - 0.5) / state.batches      # the step's progress
        for trig in self.pending:
            if trig[0] == state.arm and trig[1] == state.phase and t >= trig[2]:
                self.pending.remove(trig)
                STOP.request(self.signum)
                break


class Stops(list):
    """The triggers still pending, and the callback factories that fire them: pass it as
    ``run_cli(..., callbacks=stops)`` to every run (and resumed run) it should stop."""

    def __init__(self, triggers, signum: int) -> None:
        super().__init__([lambda: StopAt(self.pending, signum)])
        self.pending = list(triggers)


def stop_at(triggers: list[tuple[str, str, float]], signum: int = signal.SIGTERM) -> Stops:
    """:class:`StopAt` for every arm of the runs given it (the untimed warm-up gets no
    callbacks)."""
    return Stops(triggers, signum)


def _final(run: Path) -> tuple[dict, list[dict]]:
    state = torch.load(run / "last.pt", weights_only=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:                          # wall-clock differs; everything else must not
        for k in WALL_CLOCK:
            r.pop(k, None)
    return state, rows


def _assert_equal(a, b, path: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k not in WALL_CLOCK:
                _assert_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


def _interrupted_then_resumed(args, out: Path, triggers, monkeypatch, capsys) -> Path:
    stops = stop_at(triggers)
    code, _, err = run_cli([*args, "--output", str(out), "--experiment", "R"], capsys, stops)
    while code == 143:                                     # resume until it finishes
        assert "--resume" in err
        status = json.loads((out / "R" / "summary.json").read_text())["status"]
        assert status == "interrupted"
        code, _, err = run_cli([args[0], "--resume", str(out / "R")], capsys, stops)
    assert code == 0, err
    assert not stops.pending, "every stop fired"
    return out / "R"


def _compare(reference: Path, resumed: Path) -> None:
    (sa, ra), (sb, rb) = _final(reference), _final(resumed)
    assert ra == rb                                     # every epoch's row, every arm
    for key in ("model", "optimizer", "ranks", "done", "rows", "scaler", "ema"):  # ranks: RNGs,
        # the per-sample state
        _assert_equal(sa[key], sb[key], key)
    a = json.loads((reference / "summary.json").read_text())
    b = json.loads((resumed / "summary.json").read_text())
    assert {n: v["accuracy"] for n, v in a["arms"].items()} == {
        n: v["accuracy"] for n, v in b["arms"].items()}


@pytest.mark.parametrize("op", ["cutmix", "mixup"])
def test_mixtrain_stopped_mid_epoch_resumes_exactly(op, tmp_path, monkeypatch, capsys) -> None:
    args = [*MIXTRAIN, "--op", op]
    code, _, err = run_cli([*args, "--output", str(tmp_path), "--experiment", "U"], capsys)
    assert code == 0, err
    # stops in the baseline's first epoch and in mixtrain's mixing epochs (pairs in the plan)
    resumed = _interrupted_then_resumed(
        args, tmp_path, [("baseline", "sl", 0.3), ("mixtrain", "sl", 1.4),
                         ("mixtrain", "sl", 2.6)], monkeypatch, capsys)
    _compare(tmp_path / "U", resumed)
    assert _final(resumed)[0]["ranks"][0]["arm_state"]["mix"]["why"].any()   # state was live
    # each epoch's line says what it mixed, the epochs resumed mid-way included
    rows = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    said = dict(re.findall(r"mixtrain epoch (\d+)/\d+: .* mixed (\d+)%",
                           (resumed / "log.txt").read_text()))
    assert {int(e): int(p) for e, p in said.items()} == {
        r["epoch"]: round(100 * r["mixed_fraction"]) for r in rows if r["arm"] == "mixtrain"}


def test_sgd_step_schedule_ema_and_smoothing_resume_exactly(tmp_path, monkeypatch,
                                                            capsys) -> None:
    """The papers' recipe (SGD, momentum buffers, a multistep decay crossed after the resume)
    with the weights' EMA and label smoothing: zero tolerance, EMA included."""
    args = [*MIXTRAIN, "--op", "cutmix", "--opt", "sgd", "--lr", "0.05", "--sched", "multistep",
            "--decay-milestones", "1,2", "--model-ema", "--model-ema-decay", "0.9",
            "--smoothing", "0.1"]
    code, _, err = run_cli([*args, "--output", str(tmp_path), "--experiment", "U"], capsys)
    assert code == 0, err
    resumed = _interrupted_then_resumed(
        args, tmp_path, [("baseline", "sl", 0.5), ("mixtrain", "sl", 1.5)], monkeypatch, capsys)
    _compare(tmp_path / "U", resumed)
    state = _final(resumed)[0]
    assert state["ema"]["updates"] > 0 and "momentum_buffer" in str(state["optimizer"])


def test_mixtraining_every_phase_resumes_exactly(tmp_path, monkeypatch, capsys) -> None:
    code, _, err = run_cli([*MIXTRAINING, "--output", str(tmp_path), "--experiment", "U"],
                           capsys)
    assert code == 0, err
    resumed = _interrupted_then_resumed(
        MIXTRAINING, tmp_path, [("sl", "sl", 0.5), ("ssl+sl", "ssl", 1.3),
                                ("mixtraining", "ssl", 0.3), ("mixtraining", "mix", 1.5),
                                ("mixtraining", "sl", 2.5)], monkeypatch, capsys)
    _compare(tmp_path / "U", resumed)
    assert (resumed / "reconstruction.png").is_file()


def _tamper(checkpoint: Path, control: str) -> None:
    """Edit a stopped run's ``last.pt`` (its documented keys, docs/run-dir.md): ``rng`` gives
    every random stream another seed's state; ``plan`` reverses the interrupted epoch's order."""
    ck = torch.load(checkpoint, weights_only=True)
    if control == "rng":
        for rank in ck["ranks"]:
            rank["rng"]["torch"] = torch.Generator().manual_seed(99).get_state()
            rank["rng"]["generators"] = {k: torch.Generator().manual_seed(99).get_state()
                                         for k in rank["rng"]["generators"]}
    else:
        ck["plan"]["first"] = ck["plan"]["first"].flip(0)
        if ck["plan"]["second"] is not None:
            ck["plan"]["second"] = ck["plan"]["second"].flip(0)
    torch.save(ck, checkpoint)


@pytest.mark.parametrize("control", ["rng", "plan"])
def test_negative_control_without_rng_or_plan_restore(control, tmp_path, capsys) -> None:
    """The equality above is not vacuous: a checkpoint whose random streams (or the stopped
    epoch's plan) are not the run's own resumes to other weights."""
    args = [*MIXTRAIN, "--op", "mixup", "--no-baseline"]
    code, _, _ = run_cli([*args, "--output", str(tmp_path), "--experiment", "U"], capsys)
    assert code == 0
    code, _, _ = run_cli([*args, "--output", str(tmp_path), "--experiment", "R"], capsys,
                         stop_at([("mixtrain", "sl", 1.4)]))
    assert code == 143
    _tamper(tmp_path / "R" / "last.pt", control)
    code, _, err = run_cli([args[0], "--resume", str(tmp_path / "R")], capsys)
    assert code == 0, err
    a, b = _final(tmp_path / "U")[0], _final(tmp_path / "R")[0]
    assert not all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


class PoisonAt(Callback):
    """Fault injection (a test breaking the observe-only contract on purpose): at the start of
    epoch ``epoch`` of the real run the classifier's bias becomes NaN, so every loss from that
    epoch's first step on is non-finite. Records the parameters as they were then."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.snap = epoch, {}

    def epoch_start(self, state) -> None:
        if state.epoch == self.epoch and not self.snap:
            with torch.no_grad():
                state.model.heads[0].bias.fill_(float("nan"))
            self.snap = {"model": state.model, "params": {
                n: p.detach().clone() for n, p in state.model.named_parameters()}}


def test_nan_loss_skips_the_update_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                      capsys) -> None:
    poison = PoisonAt(1)
    code, _, err = run_cli([*MIXTRAIN, "--no-baseline", "--output", str(tmp_path),
                            "--experiment", "N"], capsys, [lambda: poison])
    assert code == 1 and "non-finite" in err and "Traceback" not in err
    after = dict(poison.snap["model"].named_parameters())
    for k, v in poison.snap["params"].items():              # no update in epoch 2 or later
        assert torch.allclose(after[k], v, rtol=0, atol=0, equal_nan=True), k
    summary = json.loads((tmp_path / "N" / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite" in summary["error"]
    state = torch.load(tmp_path / "N" / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch"]) == (1, 0)       # the last good one: after epoch 1
    assert all(torch.isfinite(v).all() for v in state["model"].values()
               if v.is_floating_point())


def test_resume_refuses_changed_recipe_and_other_command(tmp_path, capsys) -> None:
    code, _, _ = run_cli([*MIXTRAIN, "--epochs", "1", "--no-baseline", "--output",
                          str(tmp_path), "--experiment", "D"], capsys)
    assert code == 0
    code, _, err = run_cli(["mixtrain", "--resume", str(tmp_path / "D")], capsys)
    assert code == 2 and "already completed" in err
    (tmp_path / "D" / "summary.json").unlink()
    code, _, err = run_cli(["mixtrain", "--resume", str(tmp_path / "D"), "--lr", "0.1"], capsys)
    assert code == 2 and "--lr" in err
    code, _, err = run_cli(["mixtraining", "--resume", str(tmp_path / "D")], capsys)
    assert code == 2 and "mixkit mixtrain" in err


def test_sigint_exits_130_and_a_different_world_size_is_refused(tmp_path, monkeypatch,
                                                                capsys) -> None:
    args = [*MIXTRAIN, "--no-baseline", "--epochs", "2"]
    stops = stop_at([("mixtrain", "sl", 0.5)], signal.SIGINT)
    code, _, err = run_cli([*args, "--output", str(tmp_path), "--experiment", "I"], capsys,
                           stops)
    assert code == 130 and "--resume" in err
    monkeypatch.setenv("WORLD_SIZE", "2")                    # as if relaunched on 2 processes
    code, _, err = run_cli(["mixtrain", "--resume", str(tmp_path / "I")], capsys)
    assert code == 2 and "same world size" in err and "--nproc_per_node 1" in err
    monkeypatch.delenv("WORLD_SIZE")
    code, _, err = run_cli(["mixtrain", "--resume", str(tmp_path / "I")], capsys)
    assert code == 0, err


def test_sigterm_from_the_shell_exits_143_and_resume_matches(tmp_path, capsys) -> None:
    """The real thing: a subprocess, a real SIGTERM, exit 143, then --resume."""
    train = [*MIXTRAIN, "--no-baseline", "--epochs", "4", "--output", str(tmp_path)]
    args = [sys.executable, "-m", "mixkit", *train]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*args, "--experiment", "S"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "S" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "--resume" in err
    done = subprocess.run([sys.executable, "-m", "mixkit", "mixtrain", "--resume",
                           str(tmp_path / "S")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    code, _, err = run_cli([*train, "--experiment", "U"], capsys)   # uninterrupted reference
    assert code == 0, err
    acc = [json.loads((tmp_path / e / "summary.json").read_text())["arms"]["mixtrain"]
           ["accuracy"] for e in ("S", "U")]
    assert acc[0] == acc[1]


def test_comparison_arms_resume_exactly(tmp_path, monkeypatch, capsys) -> None:
    """The --compare arms are matched to mixtrain's measured inputs, which a resumed run reads
    back from the checkpoint: stops inside skip, infobatch's and seta's pruning epochs."""
    args = [*MIXTRAIN, "--op", "mixup", "--no-baseline", "--compare",
            "short,skip,infobatch,seta"]
    code, _, err = run_cli([*args, "--output", str(tmp_path), "--experiment", "U"], capsys)
    assert code == 0, err
    resumed = _interrupted_then_resumed(
        args, tmp_path, [("skip", "sl", 1.5), ("infobatch", "sl", 1.5), ("seta", "sl", 1.5)],
        monkeypatch, capsys)
    _compare(tmp_path / "U", resumed)


def test_resume_writes_what_the_run_was_told_to_write(tmp_path, monkeypatch, capsys) -> None:
    """`--save-weights none --no-plots` hold after a resume (config.yaml records them), and a
    resume may still change them: the run's own files, not the defaults'."""
    args = [*MIXTRAIN, "--epochs", "2", "--no-baseline", "--save-weights", "none", "--no-plots"]
    run = _interrupted_then_resumed(args, tmp_path, [("mixtrain", "sl", 0.5)], monkeypatch,
                                    capsys)
    assert not (run / "weights").exists() and not (run / "plots").exists()
    stops = stop_at([("mixtrain", "sl", 0.5)])
    code, _, _ = run_cli([*args, "--output", str(tmp_path), "--experiment", "W"], capsys,
                         stops)
    assert code == 143
    code, _, err = run_cli(["mixtrain", "--resume", str(tmp_path / "W"), "--save-weights",
                            "method"], capsys)
    assert code == 0, err
    assert (tmp_path / "W" / "weights" / "mixtrain.safetensors").is_file()
    assert not (tmp_path / "W" / "plots").exists()
