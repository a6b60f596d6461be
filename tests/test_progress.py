"""The live view and the logs: what a user sees while a run trains (hand-computed ETAs, the
lines a log gets, a bar that moves inside an epoch), and the meter it reads."""

from __future__ import annotations

import io

import torch
from rich.console import Console

from mixkit.runio.progress import JobClock, TrainingProgress, clock
from mixkit.engine.timing import DeviceMeter


def _row(arm: str, epoch: int, loss: float = 0.5, val: float | None = 0.75) -> dict:
    row = {"arm": arm, "phase": "sl", "epoch": epoch + 1, "train_loss": loss,
           "epoch_seconds": 2.0, "img_per_s": 50.0}
    if val is not None:
        row["val_acc"] = val
    return row


def test_clock_formats() -> None:
    assert (clock(0), clock(59.6), clock(61), clock(3725), clock(None), clock(-1)) == \
        ("0:00", "1:00", "1:01", "1:02:05", "-", "-")


def test_job_eta_extrapolates_the_arm_and_charges_each_later_arm_the_mean() -> None:
    job = JobClock(["baseline", "mixtrain", "short"], start=0.0)
    job.begin_arm("baseline", 0.0, now=0.0)
    assert job.eta(0.0, now=5.0) is None                 # nothing done yet: no guess
    # a quarter of the first arm in 30 s: 90 s left in it, then 2 arms of 120 s each
    assert job.eta(0.25, now=30.0) == 90.0 + 2 * 120.0
    job.begin_arm("mixtrain", 0.0, now=100.0)            # the first arm took 100 s
    # half of the second in 40 s: 40 s left, then one arm at the mean of (100, 80)
    assert job.index == 2 and job.eta(0.5, now=140.0) == 40.0 + 90.0


def test_a_resumed_arm_is_extrapolated_from_where_it_restarted() -> None:
    job = JobClock(["mixtrain"], start=0.0)
    job.begin_arm("mixtrain", 0.5, now=0.0)              # resumed at half way
    # 0.5 -> 0.75 took 20 s: 0.25 left is 20 s more (not 0.25 of 20/0.75)
    assert job.eta(0.75, now=20.0) == 20.0


def test_off_a_terminal_each_epoch_prints_a_line_counting_from_1_and_heartbeats_inside() -> None:
    out, log = io.StringIO(), io.StringIO()
    p = TrainingProgress(Console(file=out, width=60), log=Console(file=log, width=200),
                         heartbeat_s=0.0)             # narrow: log lines must not wrap
    p.begin_job(["baseline", "mixtrain"])
    with p:
        p.start_epoch("mixtrain", "sl", 0, 3, 10, "mixed 0%")
        p.update(4, 123.0, None)                         # no loss back from the device yet
        p.update(7, 120.0, 1.25)
        p.end_epoch(_row("mixtrain", 0), "mixed 0%")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  mixtrain epoch 1/3 batch 4/10 · 123 img/s · loss - · job ")
    assert "  mixtrain epoch 1/3 batch 7/10 · 120 img/s · loss 1.2500 · job" in lines[1]
    assert lines[0].endswith("left")                     # the job's elapsed time and ETA
    assert lines[2] == "mixtrain epoch 1/3: loss 0.5000 val_acc 0.7500 2.00s 50 img/s mixed 0%"
    assert " sl " not in lines[2]                        # a one-phase arm's lines name no phase
    assert log.getvalue().splitlines() == [lines[2]]     # log.txt: epoch lines, no heartbeats


def test_a_multi_phase_arm_names_its_phase() -> None:
    out = io.StringIO()
    with TrainingProgress(Console(file=out, width=200)) as p:
        p.start_epoch("mixtraining", "mix", 4, 30, 5, phased=True)
        p.end_epoch({**_row("mixtraining", 4, val=None), "phase": "mix"})
    assert out.getvalue().startswith("mixtraining mix epoch 5/30: loss 0.5000 2.00s")


def test_on_a_terminal_the_bar_moves_inside_an_epoch_and_shows_the_job() -> None:
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True, color_system=None)
    p = TrainingProgress(console)
    p.begin_job(["baseline", "mixtrain"])
    with p:
        p.start_epoch("baseline", "sl", 1, 4, 10)
        p.update(3, 99.0, 0.8)
        live = p._progress
        epoch_task, job_task = live.tasks
        assert epoch_task.completed == 3 and epoch_task.description == "baseline epoch 2/4"
        assert "3/10" in epoch_task.fields["info"] and "loss 0.8000" in epoch_task.fields["info"]
        assert job_task.description == "job: arm 1/2"
        assert job_task.completed == (1 + 3 / 10) / 4      # of the current arm
        p.start_epoch("baseline", "sl", 2, 4, 10)            # one bar, reused per epoch
        assert len(live.tasks) == 2 and live.tasks[0].completed == 0


def test_peek_is_none_before_any_value_and_exact_on_the_cpu() -> None:
    m = DeviceMeter(torch.device("cpu"))
    assert m.peek() is None
    m.add(torch.tensor(2.0), 3)
    m.add(torch.tensor(4.0), 1)
    assert m.peek() == (2.0 * 3 + 4.0) / 4 == float(m.total) / m.weight


def test_two_arms_of_the_same_name_in_a_row_are_two_arms() -> None:
    """Benchmarks run variants that share the arm name: a restart at epoch 1 is a new arm."""
    p = TrainingProgress(Console(file=io.StringIO()), enabled=True)
    p.start_epoch("mixtrain", "sl", 0, 2, 4)
    p.start_epoch("mixtrain", "sl", 1, 2, 4)
    p.start_epoch("mixtrain", "sl", 0, 2, 4)
    assert p.job.index == 2 and len(p.job.finished) == 1 and p.job.arms == ["mixtrain"] * 2


def test_save_weights_keeps_the_commands_own_arm_all_or_none(tmp_path, capsys) -> None:
    """``--save-weights``: ``method`` (default) keeps the command's own arm, ``all`` every arm,
    ``none`` nothing — read from the run directories the command line writes."""
    from conftest import run_cli

    args = ["mixtrain", "--data", "digits", "--data-fraction", "0.05", "--val-fraction", "0.05",
            "--img-size", "16", "-b", "32", "--model", "mobilenetv2_035", "--epochs", "1",
            "--timing-warmup", "0", "--no-plots", "--compare", "skip", "--output", str(tmp_path)]
    kept = {}
    for which in ("method", "all", "none"):
        code, _, err = run_cli([*args, "--experiment", which, "--save-weights", which], capsys)
        assert code == 0, err
        kept[which] = sorted(p.name for p in (tmp_path / which).glob("weights/*.safetensors"))
    assert kept == {"method": ["mixtrain.safetensors"],
                    "all": ["baseline.safetensors", "mixtrain.safetensors", "skip.safetensors"],
                    "none": []}
