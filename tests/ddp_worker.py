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
from mixkit.engine.loop import Engine


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


def run(out: str, args: list[str]) -> int:
    trace: dict[str, list] = {"steps": [], "params": [], "state": []}
    step, epoch, warm_up = Engine._step, Engine._train_epoch, Engine.warm_up
    warming = [False]
    arm_name = [""]

    def untraced_warm_up(self, arm, steps):         # the untimed warm-up trains no epoch
        warming[0] = True
        try:
            return warm_up(self, arm, steps)
        finally:
            warming[0] = False

    def traced_step(self, spec, batch, opt, t):
        if warming[0]:
            return step(self, spec, batch, opt, t)
        ids2 = None if batch.ids2 is None else torch.where(batch.paired, batch.ids2, -1)
        trace["steps"].append([int(t), spec.phase, batch.ids.tolist(),
                               None if ids2 is None else ids2.tolist(), arm_name[0]])
        return step(self, spec, batch, opt, t)

    def traced_epoch(self, arm, e, resume=None):
        arm_name[0] = arm.name
        result = epoch(self, arm, e, resume)
        trace["params"].append(digest(p for _, p in sorted(self.model.named_parameters())))
        state = getattr(arm, "state_dict", None)
        trace["state"].append(digest(flat(state())) if state else None)
        return result

    Engine._step, Engine._train_epoch, Engine.warm_up = traced_step, traced_epoch, untraced_warm_up
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    with open(os.path.join(out, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(trace, f)
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
