"""An exponential moving average of the weights (timm's ``--model-ema``), kept on the device.

``ema = decay * ema + (1 - decay) * live`` after every optimiser step, for every floating
tensor of the model's ``state_dict`` (parameters *and* normalisation statistics, as timm's
``ModelEmaV3``); integer buffers (BatchNorm's step counter) are copied. One fused
``torch._foreach_lerp_`` per step, a Python float for the decay: no host read.

``warmup`` is timm's decay warm-up (``--model-ema-warmup``): at update ``k`` the decay is
``min(decay, 1 - (1 + k)^(-2/3))`` (update 1 copies the weights), so on a run of a few
thousand steps the average is not dominated by the random initial weights
(``0.9998 ** 1000 = 0.82``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch


class ModelEma:
    """The averaged copy (``module``, always in eval mode) and its update counter."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: bool = False) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0
        self._pairs: list[tuple[list[torch.Tensor], list[torch.Tensor]]] | None = None

    def decay_at(self, k: int) -> float:
        """The decay of the ``k``-th update (from 1)."""
        if not self.warmup:
            return self.decay
        step = k - 1
        return 0.0 if step <= 0 else min(self.decay, 1.0 - (1.0 + step) ** (-2.0 / 3.0))

    def bind(self, model: torch.nn.Module) -> None:
        """Pair the average's tensors with the live model's (same keys, same devices); the
        optimiser updates the live ones in place, so the pairing holds for the whole arm."""
        live, mine = model.state_dict(), self.module.state_dict()
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        ints = [k for k, v in mine.items() if not v.is_floating_point()]
        self._pairs = ([mine[k] for k in floats], [live[k] for k in floats])
        self._ints = ([mine[k] for k in ints], [live[k] for k in ints])

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        if self._pairs is None:
            self.bind(model)
        self.updates += 1
        ema, live = self._pairs
        torch._foreach_lerp_(ema, live, 1.0 - self.decay_at(self.updates))
        for e, v in zip(*self._ints):
            e.copy_(v)

    def state_dict(self) -> dict[str, Any]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
