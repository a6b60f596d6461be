"""Every random stream a run draws from, as checkpointable plain data (a bit-for-bit resume
restores all of them: ``docs/reliability.md``)."""

from __future__ import annotations

from typing import Any

import torch


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random stream a run draws from: Python, NumPy, torch (CPU/CUDA), data generators.

    Plain containers and tensors only (NumPy's state array is stored as a tensor), so the
    checkpoint loads with ``weights_only=True``.
    """
    import random

    import numpy as np

    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "generators": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Inverse of :func:`rng_state`."""
    import random

    import numpy as np

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])
