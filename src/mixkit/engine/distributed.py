"""torchrun / DDP: the process group, plan sharding and the few collectives the engine needs.

Nothing home-made: the process group comes from the environment ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), NCCL on CUDA and gloo on the
CPU; gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel`.

* ``-b/--batch-size`` is per process (timm's convention); the global batch is
  ``batch_size * world_size``, and MixTraining's ``lr_base`` scales with the global batch.
* Every rank builds the *same* epoch plan (same seeded plan generator, same per-sample state) and
  trains a disjoint shard of it (:func:`shard_plan`) with the same number of steps on every rank.
* Per-row randomness (augmentation, MAE masks, CutMix boxes, Eq. (2) partners) is seeded per
  rank, so ranks do not draw the same crops for different images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from mixkit.data.plan import EpochPlan


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (``world == 1``: a plain single-process run)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def stream_seed(self, seed: int, offset: int = 0) -> int:
        """Seed of a per-row random stream: differs by rank, equals ``seed + offset`` on rank 0."""
        return seed + offset + 1_000_003 * self.rank


def from_env() -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(d: Dist, device: torch.device) -> None:
    """Join the torchrun job (idempotent). NCCL for CUDA, gloo otherwise."""
    if d.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shard_plan(plan: EpochPlan, rank: int, world: int, batch_size: int) -> EpochPlan:
    """This rank's part of ``plan`` for per-rank batches of ``batch_size``.

    Global step ``k`` covers plan rows ``[k*B*W, (k+1)*B*W)``; rank ``r`` takes every ``W``-th
    of them starting at ``r``. Every rank gets the same number of steps, ``ceil(M / (B*W))``;
    a last global step with fewer than two rows per rank is merged into the one before, so no
    rank ever has an empty or a one-row batch (BatchNorm). Across ranks, each plan row is
    trained exactly once.
    """
    m, step = plan.inputs, batch_size * world
    steps = max(1, -(-m // step))
    if steps > 1 and m - (steps - 1) * step < 2 * world:
        steps -= 1                                   # merge the tiny tail into the last step
    rows = torch.arange(m)
    parts = []
    for k in range(steps):
        hi = (k + 1) * step if k < steps - 1 else m
        parts.append(rows[k * step + rank: hi: world])
    idx = torch.cat(parts)
    second = None if plan.second is None else plan.second[idx.to(plan.second.device)]
    first = plan.first[idx.to(plan.first.device)]
    pairs = 0 if second is None else plan.num_pairs     # host count: the global one is kept
    return EpochPlan(first, second, pairs, steps=steps)


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """In-place sum over ranks (no-op outside a process group)."""
    if dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def all_reduce_max(t: torch.Tensor) -> None:
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)


def broadcast(tensors: list[torch.Tensor], src: int = 0) -> None:
    """In place: every rank takes rank ``src``'s values (no-op outside a process group)."""
    if dist.is_initialized():
        for t in tensors:
            dist.broadcast(t, src)


def all_gather_object(obj: Any) -> list[Any]:
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
