"""No host syncs in the hot loop, checked on the CPU against CUDA's list of syncing ops.

``tests/test_cuda.py`` runs the step under ``torch.cuda.set_sync_debug_mode("error")``, but
only where a GPU is lent. Here a dispatch mode (``conftest.SyncDetector``) watches every aten
op of ``Engine._step`` and ``_Source._assemble`` on the CPU and flags the ones that make a CUDA
host wait: scalar reads, ``nonzero`` and the ops built on it (boolean-mask indexing,
``torch.where(cond)``, ``masked_select``), ``unique``, ``bincount``, ``repeat_interleave``
without ``output_size``, and tensors built from Python lists. The ``host_reads`` counter cannot
see the data-dependent-shape ops at all; this does, for every command and arm, on every machine.
"""

from __future__ import annotations

import json
import operator

import pytest
import torch

from conftest import SyncDetector, run_cli

SMALL = ["--data", "digits", "--data-fraction", "0.05", "--img-size", "16", "-b", "32",
         "--device", "cpu", "--log-interval", "2"]
MIXTRAIN = ["mixtrain", *SMALL, "--model", "resnet18", "--epochs", "2"]
MIXTRAINING = ["mixtraining", *SMALL, "--epochs-ssl", "2", "--epochs-sl", "2",
               "--decoder-depth", "1", "--patch-size", "8"]

X = torch.randn(6, generator=torch.Generator().manual_seed(0))
M = X > 0
R = torch.tensor([1, 0, 2, 1, 1, 1])

SYNCS = {
    "item": lambda: X.sum().item(),
    "float()": lambda: float(X.sum()),
    "if tensor": lambda: 1 if M.any() else 0,
    "mask index": lambda: X[M],
    "mask assign": lambda: operator.setitem(X.clone(), M, 0.0),
    "nonzero": lambda: torch.nonzero(M),
    "where(cond)": lambda: torch.where(M),
    "masked_select": lambda: X.masked_select(M),
    "unique": lambda: torch.unique(R),
    "bincount": lambda: torch.bincount(R),
    "repeat_interleave": lambda: X.repeat_interleave(R),
    "list to tensor": lambda: torch.tensor([1.0, 2.0]),
    "equal": lambda: torch.equal(X, X),
}
NO_SYNCS = {
    "id index": lambda: X[R],
    "id assign": lambda: operator.setitem(X.clone(), R, 0.0),
    "masked_fill": lambda: X.masked_fill(M, 0.0),
    "where(cond, a, b)": lambda: torch.where(M, X, 0.0),
    "0-dim scalar tensor": lambda: torch.tensor(0.5) * X,
    "repeat_interleave(output_size)": lambda: torch.repeat_interleave(X, R, output_size=6),
    "argmax + gather": lambda: X.unsqueeze(0).gather(1, X.argmax().view(1, 1)),
    "scatter_add": lambda: torch.zeros(3).scatter_add_(0, R[:3], X[:3]),
    "randperm": lambda: torch.randperm(6, generator=torch.Generator().manual_seed(0)),
}


@pytest.mark.parametrize("name", SYNCS)
def test_detector_flags_each_syncing_pattern(name: str) -> None:
    found: list[str] = []
    with SyncDetector(found):
        SYNCS[name]()
    assert found, f"{name} would sync on CUDA but was not flagged"


@pytest.mark.parametrize("name", NO_SYNCS)
def test_detector_passes_device_side_patterns(name: str) -> None:
    found: list[str] = []
    with SyncDetector(found):
        NO_SYNCS[name]()
    assert not found, found


@pytest.mark.parametrize("argv", [
    [*MIXTRAIN, "--op", "cutmix", "--compare", "skip,infobatch", "--no-baseline"],
    [*MIXTRAIN, "--op", "mixup", "--amp", "--channels-last", "--no-baseline"],
    [*MIXTRAINING],
    [*MIXTRAINING, "--ssl-data", "synthetic", "--no-baseline"],
], ids=["mixtrain-cutmix-and-comparisons", "mixtrain-mixup-amp", "mixtraining",
        "mixtraining-ssl-data"])
def test_every_arm_steps_without_a_syncing_op(argv, syncing_ops, tmp_path, capsys) -> None:
    """Each command's every arm, mixing epochs included: not one syncing op in a step or in a
    batch's assembly (the same guard as ``test_cuda.py``, emulated)."""
    code, _, err = run_cli([*argv, "--output", str(tmp_path), "--experiment", "s"], capsys)
    assert code == 0, err
    assert not syncing_ops, "\n".join(syncing_ops[:10])
    rows = [json.loads(x) for x in (tmp_path / "s" / "metrics.jsonl").open()]
    if argv[0] == "mixtrain":       # the mixing steps were among those checked
        assert any(r["arm"] == "mixtrain" and r["mixed_fraction"] > 0 for r in rows)
    else:
        assert any(r["phase"] == "mix" for r in rows)
