"""mixkit: cheaper image-classifier training with MixTraining and mixTrain.

Two published methods on one data core, one model core, one training engine and one timing
core, each ending in a speedup report measured against baselines run side by side — and the
same methods as a public API for your own loop (``docs/api.md``)::

    mt = mixkit.MixTrain(len(train_set), op="cutmix")
    loader = DataLoader(train_set, batch_sampler=mt.batch_sampler(64), collate_fn=mt.collate)
    for epoch in range(epochs):
        for batch in loader:
            loss = mt.loss(model, batch); loss.backward(); opt.step(); opt.zero_grad()
        mt.end_epoch()

The public names are imported on first use (``import mixkit`` stays light: the command line
redirects third-party caches before torch and timm are imported).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (semver promise: docs/api.md)
_PUBLIC = {
    "Method": "mixkit.methods.method",
    "LoaderBatch": "mixkit.methods.method",
    "UsageError": "mixkit.methods.method",
    "MixTrain": "mixkit.methods.mixtrain.method",
    "MixTrainSettings": "mixkit.methods.mixtrain.settings",
    "Baseline": "mixkit.methods.supervised",
    "Skip": "mixkit.methods.supervised",
    "short_epochs": "mixkit.methods.supervised",
    "InfoBatch": "mixkit.methods.infobatch",
    "SeTa": "mixkit.methods.seta",
    "SeTaSettings": "mixkit.methods.seta",
    "MixTraining": "mixkit.methods.mixtraining.library",
    "create_timm_model": "mixkit.models.factory",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mixkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
