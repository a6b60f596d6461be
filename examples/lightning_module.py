"""mixTrain in a PyTorch Lightning module: one callback, one call in ``training_step``.

    pip install "mixkit[lightning]"
    python examples/lightning_module.py --epochs 3

Resuming with ``trainer.fit(module, ckpt_path=...)`` restores the method's per-sample state,
random streams and position in the epoch from Lightning's checkpoint (docs/api.md).
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from torch.utils.data import DataLoader

import mixkit
from mixkit.lightning import MixkitCallback

from plain_pytorch import digits


class DigitsClassifier(L.LightningModule):
    def __init__(self, method: mixkit.Method, batch_size: int = 64, workers: int = 0) -> None:
        super().__init__()
        self.model = mixkit.create_timm_model("resnet18_w16", num_classes=10, img_size=32)
        self.method, self.batch_size, self.workers = method, batch_size, workers
        self.train_set, self.val_set = digits(train=True), digits(train=False)

    def training_step(self, batch, batch_idx):
        loss = self.method.loss(self.model, batch)            # mixkit: the one call
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self.model(x).argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=2e-3, weight_decay=0.05)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_sampler=self.method.batch_sampler(self.batch_size),
                          collate_fn=self.method.collate, num_workers=self.workers)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--op", choices=("cutmix", "mixup"), default="cutmix")
    args = parser.parse_args()
    torch.manual_seed(0)
    train_size = len(digits(train=True))
    method = mixkit.MixTrain(train_size, op=args.op)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False,
                        enable_checkpointing=False, use_distributed_sampler=False,
                        callbacks=[MixkitCallback(method)])
    trainer.fit(DigitsClassifier(method))
    print(f"val_acc {float(trainer.callback_metrics['val_acc']):.3f}")


if __name__ == "__main__":
    main()
