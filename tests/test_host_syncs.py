"""No host syncs in the hot loop, checked on the CPU against CUDA's list of syncing ops.

``tests/test_cuda.py`` runs the step under ``torch.cuda.set_sync_debug_mode("error")``, but
only where a GPU is lent. ``conftest.SyncDetector`` (a dispatch mode) emulates it on every
machine: the ``syncing_ops`` fixture watches every aten op of ``Engine._step`` and
``_Source._assemble`` and lists the ones that make a CUDA host wait: scalar reads, ``nonzero``
and the ops built on it (boolean-mask indexing, ``torch.where(cond)``, ``masked_select``),
``unique``, ``bincount``, ``repeat_interleave`` without ``output_size``, tensors built from
Python lists. The ``host_reads`` counter cannot see the data-dependent-shape ops at all.

The end-to-end tests of every command assert that list empty (every arm, mixing epochs
included): ``test_mixtrain_runs_and_reports`` (CutMix with and without split propagation,
MixUp), ``test_compare_arms_end_to_end_are_matched_to_mixtrain`` (short, skip, InfoBatch),
``test_mixtraining_three_arms_end_to_end``, ``test_ssl_data_and_multitask_end_to_end`` and
``test_amp_bf16_and_channels_last_run_on_cpu``. Here: which patterns the detector flags and which
it lets through, so that an empty list means something.
"""

from __future__ import annotations

import operator

import pytest
import torch

from conftest import SyncDetector

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
