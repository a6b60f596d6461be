"""torchrun on the CPU (gloo): 2 processes per command. Both ranks end every epoch with identical
parameters and per-sample state, each dataset index is trained exactly once per epoch across
ranks, and rank 0 alone writes one run dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mixkit.data.plan import EpochPlan
from mixkit.engine.distributed import shard_plan

WORKER = Path(__file__).with_name("ddp_worker.py")
SMALL = ["--data", "digits", "--data-fraction", "0.05", "--val-fraction", "0.05",
         "--img-size", "16", "-b", "8", "--no-baseline"]
PRUNING = ("skip", "infobatch", "seta")     # comparison arms that train a subset of the data per epoch


@pytest.mark.parametrize("m,batch,world", [(72, 8, 2), (73, 8, 2), (17, 8, 2), (33, 16, 2),
                                           (10, 4, 3), (5, 2, 2)])
def test_shard_plan_covers_every_row_once_with_equal_steps(m, batch, world) -> None:
    plan = EpochPlan(torch.randperm(m), torch.arange(m) - 1, 3)
    shards = [shard_plan(plan, r, world, batch) for r in range(world)]
    steps = {s.num_batches(batch) for s in shards}
    assert len(steps) == 1                                     # no rank waits at the end
    seen = []
    for s in shards:
        batches = [s.batch(k, batch)[0] for k in range(s.num_batches(batch))]
        assert all(b.numel() > 0 for b in batches)             # no empty batch on any rank
        seen += torch.cat(batches).tolist()
    assert sorted(seen) == sorted(plan.first.tolist())         # each row exactly once
    # the shards keep each row's partner with it
    for s in shards:
        pos = {v: i for i, v in enumerate(plan.first.tolist())}
        assert [plan.second[pos[v]].item() for v in s.first.tolist()] == s.second.tolist()


def _torchrun(tmp: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", str(WORKER), str(tmp), *args], env=env,
                          capture_output=True, text=True, timeout=240)


def _check_ranks(tmp: Path, num_samples: int) -> list[dict]:
    ranks = [json.loads((tmp / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["params"] == ranks[1]["params"]          # identical after every epoch
    assert ranks[0]["state"] == ranks[1]["state"]            # identical per-sample state
    for arm, e in {(s[4], s[0]) for s in ranks[0]["steps"]}:
        ids = []
        for r in ranks:
            for _, _, first, second, _ in (s for s in r["steps"] if (s[4], s[0]) == (arm, e)):
                ids += first + [i for i in (second or []) if i >= 0]
        if arm in PRUNING:                  # a subset, each sample on one rank only, once
            assert len(set(ids)) == len(ids) and set(ids) <= set(range(num_samples)), (arm, e)
        else:
            assert sorted(ids) == list(range(num_samples)), (arm, e)
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"])  # same number of steps
    return ranks


@pytest.mark.parametrize("cmd,extra", [      # (mixtrain's own arm is in the --compare run)
    ("mixtraining", ["--epochs-ssl", "2", "--epochs-sl", "2", "--decoder-depth", "1"]),
    ("mixtrain", ["--model", "mobilenetv2_035", "--epochs", "3", "--op", "mixup",
                  "--compare", "short,skip,infobatch,seta", "--infobatch-delta", "0.67",
                  "--seta-delta", "0.67"]),
])
def test_two_processes_stay_in_sync(cmd, extra, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = _torchrun(tmp_path, [cmd, *SMALL, *extra, "--output", str(runs),
                                "--experiment", "D"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((runs / "D" / "summary.json").read_text())
    assert summary["world_size"] == 2 and [p.name for p in runs.iterdir()] == ["D"]
    rows = [json.loads(x) for x in (runs / "D" / "metrics.jsonl").read_text().splitlines()]
    n = rows[0]["samples"]                                   # the global plan's samples
    ranks = _check_ranks(tmp_path, n)
    if cmd == "mixtraining":
        assert [r["phase"] for r in rows] == ["ssl", "mix", "sl"]
    else:
        assert any(s[3] and max(s[3]) >= 0 for s in ranks[0]["steps"])   # pairs were trained
    if "--compare" in extra:            # the comparison arms under DDP: each epoch's logged
        assert set(summary["arms"]) == {"mixtrain", *PRUNING, "short"}   # inputs are what
        for row in rows:                # the two ranks trained together
            trained = sum(len(s[2]) for r in ranks for s in r["steps"]
                          if (s[4], s[0] + 1) == (row["arm"], row["epoch"]))
            assert trained == row["inputs"], (row["arm"], row["epoch"])
        assert summary["arms"]["skip"]["inputs"] < 3 * n      # skipping happened
