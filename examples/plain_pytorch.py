"""mixTrain in a plain PyTorch training loop (docs/api.md shows the changed lines as a diff).

The loop is the one the PyTorch tutorials write; the lines marked ``# mixkit`` add mixTrain.
Runs on scikit-learn's digits (upsampled to 32 px) in about a minute on a CPU:

    python examples/plain_pytorch.py --epochs 3
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

import mixkit


def digits(train: bool) -> TensorDataset:
    """scikit-learn's 8x8 digits as normalised 3x32x32 tensors (first 80 % train, rest val)."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    x, y = (x - 0.5) / 0.5, torch.tensor(d.target)
    cut = int(0.8 * len(y))
    return TensorDataset(x[:cut], y[:cut]) if train else TensorDataset(x[cut:], y[cut:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--op", choices=("cutmix", "mixup"), default="cutmix")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    train_set, val_set = digits(train=True), digits(train=False)
    model = mixkit.create_timm_model("resnet18_w16", num_classes=10, img_size=32).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)

    mt = mixkit.MixTrain(len(train_set), op=args.op, device=device)          # mixkit
    train_loader = DataLoader(train_set, batch_sampler=mt.batch_sampler(64),  # mixkit
                              collate_fn=mt.collate, num_workers=args.workers)  # mixkit
    val_loader = DataLoader(val_set, batch_size=256)

    for epoch in range(args.epochs):
        model.train()
        for batch in train_loader:
            loss = mt.loss(model, batch)                                      # mixkit
            opt.zero_grad()
            loss.backward()
            opt.step()
        stats = mt.end_epoch()                                                # mixkit
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val_loader:
                correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}  val_acc {correct / len(val_set):.3f}"
              f"  mixed {stats['mixed_fraction']:.0%} of the samples")


if __name__ == "__main__":
    main()
