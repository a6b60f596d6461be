"""One rank of a mixkit run under torchrun, with probes (used by tests/test_distributed.py).

Records, per rank: the dataset ids each step trained (and their partners), a checksum of the
parameters and of the arm's per-sample state after every epoch; then runs the real CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import torch

from mixkit.cli import main
from mixkit.engine.events import Callback


def digest(tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def flat(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state) for t in flat(state[k])]
    return []


class Probe(Callback):
    """Observes the real run through the engine's events: each step's dataset ids (and
    partners), and after every epoch a checksum of the parameters and of the arm's state."""

    def __init__(self, trace: dict[str, list]) -> None:
        self.trace = trace

    def after_step(self, state) -> None:
        b = state.batch_data
        ids2 = None if b.ids2 is None else torch.where(b.paired, b.ids2, -1)
        t = state.epoch + (state.batch - 0.5) / state.batches
        self.trace["steps"].append([int(t), state.phase, b.ids.tolist(),
                                    None if ids2 is None else ids2.tolist(), state.arm])

    def epoch_end(self, state) -> None:
        self.trace["params"].append(digest(p for _, p in sorted(state.model.named_parameters())))
        arm_state = getattr(state.method, "state_dict", None)
        self.trace["state"].append(digest(flat(arm_state())) if arm_state else None)


def run(out: str, args: list[str]) -> int:
    trace: dict[str, list] = {"steps": [], "params": [], "state": []}
    code = 0
    try:
        main(args, callbacks=[lambda: Probe(trace)])     # the untimed warm-up attaches none
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(trace, f)
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
