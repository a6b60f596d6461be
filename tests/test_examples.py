"""The examples in ``examples/`` run as a user runs them (on digits, two epochs) and learn."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, script, "--epochs", "2", *args], cwd=EXAMPLES,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_plain_pytorch_example_trains_with_mixtrain() -> None:
    out = _run("plain_pytorch.py", "--workers", "1")
    accs = [float(a) for a in re.findall(r"val_acc ([0-9.]+)", out)]
    assert len(accs) == 2 and accs[-1] > 0.3                 # 10 classes: chance is 0.1
    assert "mixed 0%" not in out.strip().splitlines()[-1]     # epoch 2 trained mixed pairs


def test_lightning_example_trains_with_the_callback() -> None:
    pytest.importorskip("lightning")
    out = _run("lightning_module.py")
    assert float(re.findall(r"val_acc ([0-9.]+)", out)[-1]) > 0.2
