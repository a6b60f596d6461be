"""Trained weights a user can load: ``RUN_DIR/weights/ARM.pt``.

A finished run keeps each saved arm's classifier (backbone + heads, float32, standard memory
format) with what it takes to rebuild it, and nothing else: no optimiser state, no RNGs, no
MAE decoder (MixTraining's ``ssl_head`` is a training device, not part of the classifier). A
ResNet-18 for 10 classes is 45 MB, against 129 MB for the resume checkpoint it replaces.

    from mixkit.models.weights import load_weights
    model = load_weights("runs/NAME/weights/mixtrain.pt").eval()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mixkit.models.factory import Classifier, create_model

FORMAT = "mixkit-weights/1"
SKIPPED = Classifier.SSL_PARTS     # trained beside the classifier, not part of it


def weights_payload(model: torch.nn.Module, *, arm: str, model_name: str,
                    num_classes: int | list[int], img_size: int, patch_size: int | None,
                    native_size: int | None) -> dict[str, Any]:
    """The file's content: the classifier's tensors (CPU, float32, contiguous) + how to build
    it. Plain tensors and containers only, so it loads with ``weights_only=True``."""
    state = {k: v.detach().to("cpu", copy=True).contiguous()
             for k, v in model.state_dict().items() if not k.startswith(SKIPPED)}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return {"format": FORMAT, "arm": arm, "model": model_name, "num_classes": num_classes,
            "img_size": img_size, "patch_size": patch_size, "native_size": native_size,
            "state_dict": state}


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """The classifier saved in ``path``, rebuilt with :func:`create_model` and loaded strictly."""
    blob = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a mixkit weights file ({FORMAT}).")
    model, _ = create_model(blob["model"], blob["num_classes"], blob["img_size"],
                            blob["patch_size"], blob["native_size"])
    model.load_state_dict(blob["state_dict"], strict=True)
    return model.to(device)
