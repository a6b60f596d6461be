"""One implementation of every method for two callers: a user's own loop and mixkit's engine.

A :class:`Method` decides, each epoch, *what* trains (an :class:`~mixkit.data.plan.EpochPlan`:
which samples, paired or single, in which order) and *how* a batch of it becomes a loss; it
keeps its per-sample state in device tensors indexed by sample id. Subclasses implement four
hooks::

    plan(epoch) -> EpochPlan            the epoch begins (draws from the plan generator)
    compute_loss(model, batch) -> loss  one step's mean loss; records per-sample losses
    close_epoch(epoch) -> dict          the epoch's bookkeeping (all-reduced under DDP)
    own_state() / load_own_state()      per-sample state for checkpoints

Two adapters drive them:

* **your loop** (InfoBatch's "wrap, pass the sampler, hand back the loss" shape)::

      loader = DataLoader(ds, batch_sampler=m.batch_sampler(64), collate_fn=m.collate)
      for epoch in range(m.epoch, epochs):
          for batch in loader:
              loss = m.loss(model, batch); loss.backward(); opt.step(); opt.zero_grad()
          m.end_epoch()

  The sampler yields, per batch, the ids of its inputs' first constituents, then the partners
  of its paired rows (``B + P`` dataset indices); :meth:`loss` rebuilds the pairs on the device
  from the sampler's record of that batch (a FIFO: the DataLoader returns batches in the order
  the sampler yielded them), so the dataset, its transforms and the workers stay the user's.
* **the engine**: :class:`MethodArm` turns a method into an :class:`~mixkit.engine.arm.Arm`
  (the CLI's arms), whose source hands :meth:`loss` a ready :class:`~mixkit.data.sources.Batch`.

Both call the same :meth:`compute_loss`, so a loop and the CLI train the same weights.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple, Sequence

import torch
from torch.utils.data import Sampler

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch
from mixkit.engine import distributed as D
from mixkit.engine.arm import Arm, EpochSpec
from mixkit.engine.optim import Recipe


class UsageError(RuntimeError):
    """The API was called in an order or with inputs it cannot work with (the message says
    what to change)."""


class LoaderBatch(NamedTuple):
    """What :meth:`Method.collate` returns: ``B + P`` images ``[B+P, C, H, W]`` and labels
    ``[B+P]``, the first ``B`` the batch's rows, the last ``P`` the partners of its paired
    rows (in row order)."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass
class _Pending:
    """The sampler's record of one yielded batch (host tensors)."""

    first: torch.Tensor
    second: torch.Tensor | None
    pairs: int


@dataclass
class _Loop:
    """Where a user's loop stands: its epoch, the epoch's plan, the batches consumed."""

    epoch: int = 0
    plan: EpochPlan | None = None
    consumed: int = 0
    batch_size: int | None = None
    pending: collections.deque = field(default_factory=collections.deque)


def current_dist() -> D.Dist:
    """This process's rank and world from an initialised process group (else one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return D.Dist(dist.get_rank(), dist.get_world_size())
    return D.Dist()


class Method:
    """Base of mixkit's public methods (see the module doc). ``num_samples`` is the dataset's
    length (sample ids are ``0 .. num_samples - 1``); ``seed`` seeds the plan stream (the same
    on every rank: the plan is global and each rank trains its shard); ``smoothing`` is label
    smoothing, timm's ``--smoothing``; ``dist`` defaults to the initialised process group
    (construct the method after ``init_process_group``)."""

    name = "method"

    def __init__(self, num_samples: int, *, epochs: int | None = None, seed: int = 0,
                 device: torch.device | str | None = None, smoothing: float = 0.0,
                 dist: D.Dist | None = None, generator: torch.Generator | None = None) -> None:
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int (len(dataset)), "
                             f"not {num_samples!r}")
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {epochs}")
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing {smoothing} must lie in [0, 1)")
        self.num_samples, self.epochs, self.seed = num_samples, epochs, seed
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.smoothing = smoothing
        self.dist = dist if dist is not None else current_dist()
        # the plan stream (a CPU generator): ``generator``, else one seeded with ``seed``
        self.plan_generator = generator if generator is not None else \
            torch.Generator().manual_seed(seed)
        self._loop = _Loop()

    # --- the hooks a method implements --------------------------------------------------------
    def plan(self, epoch: int) -> EpochPlan:
        """Begin ``epoch``: its plan over all ranks (draws from :attr:`generators`)."""
        raise NotImplementedError

    def compute_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The batch's mean loss (a scalar on the device), recording per-sample losses."""
        raise NotImplementedError

    def note(self) -> str:
        """The current epoch's note beside the command line's progress bar ("mixed 42%"),
        derived from the method's state, so an epoch resumed from a checkpoint says what the
        original said."""
        return ""

    def close_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's bookkeeping (combining the ranks' records); extra keys for its row."""
        return {}

    def own_state(self) -> dict[str, Any]:
        return {}

    def load_own_state(self, state: dict[str, Any]) -> None:
        pass

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """Every random stream the method draws from, by name (saved in checkpoints)."""
        return {"plan": self.plan_generator}

    # --- a user's loop --------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch a loop is in (from 0; restored by :meth:`load_state_dict`)."""
        return self._loop.epoch

    def batch_sampler(self, batch_size: int) -> "PlanSampler":
        """The ``batch_sampler`` of your ``DataLoader``: each epoch's plan in batches of
        ``batch_size`` inputs (under DDP, this rank's shard, equal steps on every rank). A
        last batch of one input is merged into the one before (BatchNorm)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        if self._loop.batch_size not in (None, batch_size) and self._loop.consumed:
            raise UsageError(f"the epoch in progress runs batches of {self._loop.batch_size}; "
                             f"a sampler of {batch_size} can start with the next epoch")
        self._loop.batch_size = batch_size
        return PlanSampler(self, batch_size)

    @staticmethod
    def collate(items: Sequence[Any]) -> LoaderBatch:
        """Stack a batch of ``(image_tensor, label)`` items (what the sampler's indices
        fetched) into a :class:`LoaderBatch`."""
        try:
            images = [item[0] for item in items]
            labels = [int(item[1]) for item in items]
            if not isinstance(images[0], torch.Tensor):
                raise TypeError(f"the image is a {type(images[0]).__name__}")
        except (TypeError, IndexError, KeyError, ValueError) as err:
            raise UsageError(
                "mixkit's collate needs a map-style dataset whose items are (image_tensor, "
                f"int_label); this one's are not ({err}). Return the label, and convert the "
                "image with a tensor transform (e.g. torchvision's ToTensor).") from None
        return LoaderBatch(torch.stack(images), torch.tensor(labels, dtype=torch.int64))

    def loss(self, model: torch.nn.Module, batch: LoaderBatch | Batch) -> torch.Tensor:
        """The batch's mean loss, to call ``.backward()`` on. ``batch`` is what the
        ``DataLoader`` built with :meth:`batch_sampler` and :meth:`collate` yielded (moved to
        any device or not), or a ready :class:`~mixkit.data.sources.Batch`. No host sync."""
        if isinstance(batch, Batch):
            return self._through(model, batch)
        x, y = batch[0], batch[1]
        if not self._loop.pending:
            raise UsageError("loss() got a batch the sampler did not yield: build the "
                             "DataLoader with batch_sampler=method.batch_sampler(batch_size) "
                             "and collate_fn=method.collate, and call loss() once per batch")
        rec = self._loop.pending.popleft()
        if x.shape[0] != rec.first.numel() + rec.pairs:
            raise UsageError(f"loss() got {x.shape[0]} images where the sampler's batch has "
                             f"{rec.first.numel() + rec.pairs} (rows + partners): use "
                             "collate_fn=method.collate and keep every fetched item")
        self._loop.consumed += 1
        return self._through(model, self._assemble(x, y, rec))

    def end_epoch(self) -> dict[str, Any]:
        """Close the loop's epoch (per-sample state rolled over, all-reduced under DDP): the
        next sampler iteration starts the next epoch. Returns the epoch's statistics."""
        loop = self._loop
        if loop.plan is None:
            loop.plan = self.plan(loop.epoch)        # an epoch that never drew a batch
        stats = self.close_epoch(loop.epoch)
        loop.epoch, loop.plan, loop.consumed = loop.epoch + 1, None, 0
        loop.pending.clear()
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue bit for bit after any batch: per-sample state, every random
        stream, the epoch, its plan and the batches already consumed."""
        loop = self._loop
        plan = None if loop.plan is None else {
            "first": loop.plan.first, "second": loop.plan.second,
            "num_pairs": loop.plan.num_pairs}
        return {"method": type(self).__name__, "num_samples": self.num_samples,
                "state": self.own_state(),
                "generators": {k: g.get_state() for k, g in self.generators.items()},
                "loop": {"epoch": loop.epoch, "consumed": loop.consumed, "plan": plan,
                         "batch_size": loop.batch_size}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != type(self).__name__:
            raise UsageError(f"this state is a {state.get('method')}'s, not a "
                             f"{type(self).__name__}'s")
        if state["num_samples"] != self.num_samples:
            raise UsageError(f"this state is for a dataset of {state['num_samples']} samples; "
                             f"this {type(self).__name__} has {self.num_samples}: resume with "
                             "the dataset the state was saved with")
        self.load_own_state(state["state"])
        for k, g in self.generators.items():
            g.set_state(state["generators"][k])
        loop, saved = self._loop, state["loop"]
        loop.epoch, loop.consumed = int(saved["epoch"]), int(saved["consumed"])
        loop.batch_size = saved["batch_size"] if loop.batch_size is None else loop.batch_size
        p = saved["plan"]
        loop.plan = None if p is None else EpochPlan(p["first"], p["second"], p["num_pairs"])
        loop.pending.clear()

    # --- internals --------------------------------------------------------------------------
    def _epoch_plan(self, batch_size: int) -> EpochPlan:
        """This rank's part of the loop epoch's plan (built on first use)."""
        loop = self._loop
        if loop.plan is None:
            plan = self.plan(loop.epoch)
            loop.plan = EpochPlan(plan.first.cpu(), None if plan.second is None else
                                  plan.second.cpu(), plan.num_pairs)
        if not self.dist.enabled:
            return loop.plan
        return D.shard_plan(loop.plan, self.dist.rank, self.dist.world, batch_size)

    def _assemble(self, x: torch.Tensor, y: torch.Tensor, rec: _Pending) -> Batch:
        """A :class:`Batch` from ``B + P`` collated items: rows, then paired rows' partners.
        A single's partner is itself (static shapes, as the CLI's sources build them)."""
        dev = self.device
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        ids = rec.first.to(dev, non_blocking=True)
        b = ids.shape[0]
        if rec.second is None:
            return Batch(x, y, ids)
        second = rec.second.to(dev, non_blocking=True)
        paired = second >= 0
        rows = torch.arange(b, device=dev)
        where = torch.where(paired, b + torch.cumsum(paired, 0) - 1, rows)
        return Batch(x[:b], y[:b], ids, x[where], y[where], torch.where(paired, second, ids),
                     paired)

    def _through(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """:meth:`compute_loss` on ``model``; a DDP-wrapped model is run through DDP's own
        forward (its gradient hooks are armed only there), with the step as that forward."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        if not isinstance(model, DDP):
            return self.compute_loss(model, batch)
        inner = model.module

        def step(*_: Any, **__: Any) -> torch.Tensor:
            del inner.forward               # the model's own forward again, for the method
            return self.compute_loss(inner, batch)

        inner.forward = step                # DDP's forward calls it once
        try:
            return model()
        finally:
            inner.__dict__.pop("forward", None)


class PlanSampler(Sampler[list[int]]):
    """The batches of a method's loop epoch as lists of dataset indices (module doc)."""

    def __init__(self, method: Method, batch_size: int) -> None:
        self.method, self.batch_size = method, batch_size

    def __len__(self) -> int:
        """The epoch's batches (on this rank), consumed ones included: a resumed epoch yields
        only the rest, while its length stays the epoch's (Lightning counts a restored
        ``batch_idx`` up to it; a learning-rate curve uses it as the epoch's length)."""
        return self.method._epoch_plan(self.batch_size).num_batches(self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        loop = self.method._loop
        plan = self.method._epoch_plan(self.batch_size)
        loop.pending.clear()
        for k in range(loop.consumed, plan.num_batches(self.batch_size)):
            first, second = plan.batch(k, self.batch_size)
            if second is None:
                loop.pending.append(_Pending(first, None, 0))
                yield first.tolist()
                continue
            partners = second[second >= 0]
            loop.pending.append(_Pending(first, second, int(partners.numel())))
            yield first.tolist() + partners.tolist()


class MethodArm(Arm):
    """A :class:`Method` as one of the engine's arms: ``epochs`` epochs of one ``recipe``."""

    def __init__(self, name: str, method: Method, epochs: int, recipe: Recipe) -> None:
        self.name, self.method, self.epochs, self.recipe = name, method, epochs, recipe

    @property
    def generators(self) -> dict[str, torch.Generator]:
        return self.method.generators

    def state_dict(self) -> dict[str, Any]:
        return self.method.own_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method.load_own_state(state)

    def epoch(self, epoch: int) -> EpochSpec:
        plan = self.method.plan(epoch)
        return EpochSpec("sl", plan, self.recipe, self.method.loss, note=self.method.note())

    def epoch_note(self) -> str | None:
        return self.method.note()

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return self.method.close_epoch(epoch)
