"""The timing core: device-synced training seconds and on-device metric accumulation.

Training time is measured between two device synchronisations that bracket an epoch's
training (plan building included, evaluation and checkpointing excluded), so queued GPU work is
counted where it runs. Inside the epoch nothing waits for the device: losses accumulate in a
device tensor, and the progress display reads them through a non-blocking copy that shows the
value of the previous read (airbench's "sync once per epoch").
"""

from __future__ import annotations

import time

import torch

from mixkit.engine.runtime import Runtime


class EpochTimer:
    """``with EpochTimer(runtime) as t: ...`` then ``t.seconds`` (device-synced)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> "EpochTimer":
        self.runtime.synchronize()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.synchronize()
        self.seconds = time.perf_counter() - self._start

    def elapsed(self) -> float:
        """Seconds so far (device-synced): for a checkpoint taken mid-epoch."""
        self.runtime.synchronize()
        return time.perf_counter() - self._start


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

    def mean(self) -> float:
        """Exact running mean (one device read: call once per epoch)."""
        return float(self.total) / max(self.weight, 1)
