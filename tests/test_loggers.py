"""Events, callbacks and the loggers (#30): the engine observed, not edited. The TensorBoard
event files are read back with tensorboard's own reader and the W&B offline run with wandb's
own record reader, and compared with metrics.jsonl; the worked example of docs/engine.md runs
as written, under the sync check."""

from __future__ import annotations

import json
import time
import re
import sys
from pathlib import Path

import pytest
import torch

from conftest import run_cli
from mixkit.commands.mixtrain import MixtrainConfig
from mixkit.options import build_config
from mixkit.data import load_data
from mixkit.engine.events import Callback, Event
from mixkit.engine.loop import Engine
from mixkit.engine.optim import Recipe
from mixkit.engine.runtime import Runtime
from mixkit.methods.supervised import SupervisedArm
from mixkit.models import create_model

CPU = torch.device("cpu")
SMALL = ["mixtrain", "--data", "digits", "--data-fraction", "0.1", "--val-fraction", "0.05",
         "--model", "mobilenetv2_035", "--img-size", "16", "--epochs", "2", "-b", "32",
         "--op", "mixup"]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "engine.md"


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _engine() -> tuple[Engine, object]:
    cfg = build_config(MixtrainConfig, {"img_size": 16, "data_fraction": 0.1}, "test")
    data = load_data("synthetic", cfg, CPU, "mixtrain")
    torch.manual_seed(0)
    model, _ = create_model("mobilenetv2_035", 10, 16)
    eng = Engine(model, Runtime(CPU), data.train, data.val, batch_size=32)
    return eng, data


class Recorder(Callback):
    """Every event in order, with what the state said then."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def __getattribute__(self, name):
        if name in {e.value for e in Event}:
            return lambda state: object.__getattribute__(self, "seen").append(
                (name, state.epoch, state.batch, None if state.row is None else
                 ("val_acc" in state.row)))
        return object.__getattribute__(self, name)


def test_events_fire_in_order_with_the_state_they_promise() -> None:
    rec = Recorder()
    eng, data = _engine()
    arm = SupervisedArm("b", 2, len(data.train), Recipe("sl", 1e-3, 0, 0, 0, 2),
                        torch.Generator().manual_seed(0))
    eng.fit(arm, [rec])
    names = [s[0] for s in rec.seen]
    steps = -(-len(data.train) // 32)
    epoch = (["epoch_start"] + ["after_backward", "after_step"] * steps
             + ["epoch_end", "eval_end"])
    assert names == ["fit_start", *epoch, *epoch, "fit_end"]
    assert [s[1:] for s in rec.seen if s[0] == "after_step"][:2] == [(0, 1, None), (0, 2, None)]
    assert [s[3] for s in rec.seen if s[0] in ("epoch_end", "eval_end")][:2] == [False, True]


def _worked_example() -> type:
    """The gradient-norm callback of docs/engine.md, exactly as printed there."""
    text = DOCS.read_text()
    code = re.search(r"\*\*Worked example: log the gradient norm\*\*.*?```python\n(.*?)```",
                     text, re.S).group(1)
    scope: dict = {}
    exec(compile(code, str(DOCS), "exec"), scope)          # noqa: S102 - our own docs
    return scope["GradNorm"]


def test_the_documented_grad_norm_callback_runs_without_a_sync(syncing_ops) -> None:
    cb = _worked_example()()
    eng, data = _engine()
    arm = SupervisedArm("b", 2, len(data.train), Recipe("sl", 1e-3, 0, 0, 0, 2),
                        torch.Generator().manual_seed(0))
    eng.fit(arm, [cb])
    assert len(cb.per_epoch) == 2 and all(0 < g < 1e4 for g in cb.per_epoch)
    assert not syncing_ops, "\n".join(syncing_ops[:5])        # no read in the hot loop


def test_tensorboard_event_files_hold_the_metrics_rows(tmp_path: Path, capsys) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, _, err = run_cli([*SMALL, "--log-tensorboard", "--output", str(tmp_path),
                            "--experiment", "t"], capsys)
    assert code == 0, err
    run = tmp_path / "t"
    rows = _rows(run)
    for arm in ("baseline", "mixtrain"):
        acc = EventAccumulator(str(run / "tb" / arm))
        acc.Reload()
        mine = [r for r in rows if r["arm"] == arm]
        for key in ("val_acc", "train_loss", "epoch_seconds", "inputs"):
            events = acc.Scalars(key)
            assert [e.step for e in events] == [r["epoch"] for r in mine]
            assert [e.value for e in events] == pytest.approx([r[key] for r in mine], rel=1e-6)
        if arm == "mixtrain":
            assert [e.value for e in acc.Scalars("l_mid")] == pytest.approx(
                [r["l_mid"] for r in mine], rel=1e-6)
        summary = json.loads((run / "summary.json").read_text())
        assert acc.Scalars("summary/accuracy")[0].value == pytest.approx(
            summary["arms"][arm]["accuracy"], rel=1e-6)


def test_wandb_offline_run_holds_the_metrics_rows(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    code, _, err = run_cli([*SMALL, "--log-wandb", "--wandb-project", "mixkit-test",
                            "--output", str(tmp_path), "--experiment", "w"], capsys)
    assert code == 0, err
    run = tmp_path / "w"
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run / "wandb").iterdir())
    rows = _rows(run)
    # W&B's service writes the .wandb file from its own process and may still be flushing the
    # last records when finish() returns: read until every row is there (at most 20 s)
    deadline = time.time() + 20
    while True:
        history = _wandb_history(next(offline[0].glob("*.wandb")))
        if sum("val_acc" in "".join(h) for h in history) >= len(rows) or time.time() > deadline:
            break
        time.sleep(0.2)
    for arm in ("baseline", "mixtrain"):
        mine = [r for r in rows if r["arm"] == arm]
        logged = [h for h in history if f"{arm}/val_acc" in h]
        assert [h[f"{arm}/epoch"] for h in logged] == [r["epoch"] for r in mine]
        assert [h[f"{arm}/val_acc"] for h in logged] == pytest.approx(
            [r["val_acc"] for r in mine])
    summary = _wandb_summary(next(offline[0].glob("*.wandb")))
    s = json.loads((run / "summary.json").read_text())
    assert summary["mixtrain/accuracy"] == pytest.approx(s["arms"]["mixtrain"]["accuracy"])


def _wandb_records(path: Path):
    """The protobuf records of a local ``.wandb`` file: wandb's transaction log is LevelDB's
    log format (a 7-byte ``:W&B`` header, 32 KiB blocks of records with a 7-byte header:
    crc32, length, type FULL/FIRST/MIDDLE/LAST), each record a ``wandb_internal_pb2.Record``."""
    import struct

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:                       # a block's tail is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):                                 # FULL or LAST: a whole record
            yield parts
            parts = b""


def _wandb_items(path: Path, kind: str) -> list[dict]:
    """Each ``kind`` record (``history`` rows, ``summary`` updates) of a local .wandb file as
    {key: value}, parsed with wandb's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2

    out = []
    for raw in _wandb_records(path):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == kind:
            items = rec.history.item if kind == "history" else rec.summary.update
            out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                        for i in items})
    return out


def _wandb_history(path: Path) -> list[dict]:
    return _wandb_items(path, "history")


def _wandb_summary(path: Path) -> dict:
    """The run summary's final values (the last update of each key)."""
    out: dict = {}
    for update in _wandb_items(path, "summary"):
        out.update(update)
    return out


@pytest.mark.parametrize("flag,module", [("--log-tensorboard", "tensorboard"),
                                         ("--log-wandb", "wandb")])
def test_a_missing_logger_package_is_exit_2_naming_the_install_line(flag, module, tmp_path,
                                                                     capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)          # import now raises ImportError
    code, _, err = run_cli([*SMALL, flag, "--output", str(tmp_path / "runs")], capsys)
    assert code == 2 and f'pip install -e ".[{module}]"' in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()                 # before anything was written
