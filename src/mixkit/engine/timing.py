"""The timing core: device-synced training seconds and on-device metric accumulation.

Training time is measured between two device synchronisations that bracket an epoch's
training (plan building included, evaluation and checkpointing excluded), so queued GPU work is
counted where it runs. Inside the epoch nothing waits for the device: losses accumulate in a
device tensor, and the progress display reads them through a non-blocking copy that shows the
value of the previous read (airbench's "sync once per epoch").
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from mixkit.engine.runtime import Runtime


def compile_seconds() -> float:
    """Wall seconds ``torch.compile`` has spent in this process so far: Dynamo's frame compiles
    and the backward graphs AOTAutograd compiles at their first backward (torch's own count,
    ``torch._dynamo.utils.calculate_time_spent``); 0.0 where this torch keeps none."""
    try:
        from torch._dynamo.utils import calculate_time_spent
    except ImportError:                 # pragma: no cover - a torch without the count
        return 0.0
    return float(calculate_time_spent().get("total_wall_time", 0.0))


class EpochTimer:
    """``with EpochTimer(runtime) as t: ...`` then ``t.seconds`` (device-synced).

    With ``--torchcompile``, the time torch spends compiling inside the bracket (the first
    steps of an arm, a recompile for a new batch shape: an epoch's last partial batch,
    mixTrain's pair counts, split propagation's first call) is taken out of ``seconds`` and kept
    in ``compile_seconds``: it is a one-time cost of the process, not of the arm; billed to
    whichever arm first meets a new shape, it would make every speedup depend on arm order (the
    reason for ``--timing-warmup`` too). Compilation runs on the host while queued device work
    drains, so the subtraction can over-count by at most that queue (milliseconds).
    """

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.perf_counter,
                 compile_clock: Callable[[], float] | None = None) -> None:
        """``clock``: the host clock (seconds); ``compile_clock``: torch's cumulative compile
        seconds (default :func:`compile_seconds`). Both are injectable, so the arithmetic is
        testable with scripted clocks."""
        self.runtime = runtime
        self.clock = clock
        self.compile_clock = compile_clock or compile_seconds
        self.seconds = 0.0
        self.compile_seconds = 0.0
        self._start = 0.0
        self._compiled_before = 0.0

    def _compiled(self) -> float:
        return self.compile_clock() - self._compiled_before if self.runtime.compile else 0.0

    def __enter__(self) -> "EpochTimer":
        self.runtime.synchronize()
        self._compiled_before = self.compile_clock() if self.runtime.compile else 0.0
        self._start = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.synchronize()
        wall = self.clock() - self._start
        self.compile_seconds = self._compiled()
        self.seconds = wall - self.compile_seconds

    def elapsed(self) -> float:
        """Seconds so far (device-synced, compilation excluded): for a mid-epoch checkpoint."""
        self.runtime.synchronize()
        return self.clock() - self._start - self._compiled()


class DeviceMeter:
    """Weighted sum of a per-step scalar, kept on the device; read once when needed."""

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), device=device, dtype=torch.float64)
        self.weight = 0  # host-side: batch sizes are known without the device
        self._async = device.type != "cpu"        # a float() of a device tensor would wait
        self._host = torch.zeros((), dtype=torch.float64, pin_memory=device.type == "cuda")
        self._host_weight = 0            # the weight the last asynchronous copy went with

    def add(self, value: torch.Tensor, weight: int) -> None:
        self.total += value.detach().to(torch.float64) * weight
        self.weight += weight

    def peek(self) -> float | None:
        """Latest *completed* running mean, without waiting for the device; None before any.

        On the CPU the value is exact. On CUDA the device sum is copied to pinned host memory
        asynchronously and the value returned is what the previous copy brought back, divided
        by the weight *that* copy saw (one refresh stale, never biased by later batches).
        """
        if not self._async:
            return float(self.total) / self.weight if self.weight else None
        value = float(self._host) / self._host_weight if self._host_weight else None
        self._host.copy_(self.total, non_blocking=True)
        self._host_weight = self.weight
        return value


def speedup(base_seconds: float, arm_seconds: float) -> float | None:
    """The one definition of a speedup: the reference's training seconds over the arm's; None
    when the arm has no measured seconds (nothing to divide by)."""
    return base_seconds / arm_seconds if arm_seconds > 0 else None
