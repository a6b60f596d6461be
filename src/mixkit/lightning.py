"""mixkit's methods in PyTorch Lightning: one callback, one call in ``training_step``.

::

    mt = mixkit.MixTrain(len(train_set), op="cutmix")

    class Lit(L.LightningModule):
        def training_step(self, batch, batch_idx):
            return mt.loss(self.model, batch)                      # the one call

        def train_dataloader(self):
            return DataLoader(train_set, batch_sampler=mt.batch_sampler(64),
                              collate_fn=mt.collate, num_workers=8)

    trainer = L.Trainer(callbacks=[MixkitCallback(mt)], use_distributed_sampler=False)
    trainer.fit(Lit(), ckpt_path=...)          # resumes the method exactly, mid-epoch too

The callback closes each epoch (per-sample state rolled over; all-reduced under DDP, where
Lightning's process group is the method's) and keeps the method's whole state — per-sample
tables, random streams, the epoch's plan and position — in Lightning's checkpoint, so a fit
resumed with ``ckpt_path`` continues where the sampler stopped. ``use_distributed_sampler=False``
because the method shards its own plan across ranks. Install with ``pip install
mixkit[lightning]``.
"""

from __future__ import annotations

from typing import Any

import lightning as L

from mixkit.methods.method import Method, UsageError

__all__ = ["MixkitCallback"]


class MixkitCallback(L.Callback):
    """Drives a :class:`mixkit.Method` (``MixTrain``, ``InfoBatch``, ``SeTa``, ``Skip``, …)
    from Lightning's loop: ``end_epoch`` after every training epoch, state in checkpoints."""

    def __init__(self, method: Method) -> None:
        if not isinstance(method, Method):
            raise TypeError(f"MixkitCallback takes a mixkit.Method, not {type(method).__name__}")
        self.method = method

    @property
    def state_key(self) -> str:
        return f"MixkitCallback[{type(self.method).__name__}]"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        connector = getattr(trainer, "_accelerator_connector", None)
        if trainer.world_size > 1 and getattr(connector, "use_distributed_sampler", False):
            raise UsageError("the method shards its own plan across ranks: pass "
                             "use_distributed_sampler=False to the Trainer")
        # an epoch's length follows its plan (mixed pairs, pruned samples): Lightning must
        # ask the DataLoader for it every epoch, not once (it would cut a longer epoch short)
        trainer.reload_dataloaders_every_n_epochs = 1

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.device.type != self.method.device.type:
            raise UsageError(f"the method keeps its per-sample state on "
                             f"{self.method.device}, the model trains on {pl_module.device}: "
                             f"construct it with device={str(pl_module.device)!r}")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stats = self.method.end_epoch()
        numbers = {f"mixkit/{k}": float(v) for k, v in stats.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers and trainer.logger is not None:
            trainer.logger.log_metrics(numbers, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return self.method.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.method.load_state_dict(state_dict)
