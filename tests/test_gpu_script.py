"""``benchmarks/gpu.py --quick`` end to end on the CPU.

A GPU is lent for minutes now and then, so the script must not be the thing that fails when one
is: every part (engine throughput, mixTrain's short run and overheads, MixTraining's phase
costs) has to run against the current benchmark modules. The script records a failing part in
its JSON and goes on (so a time-out or one bug keeps the other figures); this test is where such
an error fails instead of waiting for the next GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_script_quick_runs_every_part_without_error(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "benchmarks/gpu.py", "--quick", "--device", "cpu",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    assert not errors, errors
    assert set(res["seconds"]) == {"throughput", "mixtrain", "mixtraining"}  # no CUDA: no tests
    assert res["device"] == "cpu" and res["quick"] is True

    (tp,) = res["throughput"]
    assert tp["mixkit_img_s"] > 0 and tp["plain_img_s"] > 0 and tp["mfu"] is None  # no peak
    assert tp["repeats"] == 1
    assert abs(tp["ratio_median"] - tp["mixkit_img_s"] / tp["plain_img_s"]) < 1e-9

    mt = res["mixtrain"]
    for op in ("cutmix", "mixup"):
        assert 0 < mt[op]["inputs"] < 1          # epoch 2 trains pairs: fewer inputs
        assert mt[op]["speedup"] > 0
    assert 0 <= mt["overhead_bookkeeping"] < 1 and 0 <= mt["overhead_split_propagation"] < 1

    mg = res["mixtraining"]
    assert set(mg["phase_seconds"]) == {"ssl", "mix", "sl"}
    assert set(mg["accuracy"]) == {"sl", "ssl+sl", "mixtraining"}
    c = mg["phase_seconds"]                      # 2 + 2 epochs, rho 0.5: e_mix = 1
    expected = (2 * c["ssl"] + 2 * c["sl"]) / (c["ssl"] + c["mix"] + c["sl"])
    assert abs(mg["predicted_speedup"] - expected) < 1e-9
