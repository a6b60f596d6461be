"""Trained weights a user can load: ``RUN_DIR/weights/ARM.safetensors`` + ``ARM.json``.

A finished run keeps each saved arm's classifier (backbone + heads, float32, standard memory
format) in the ecosystem's format (safetensors: what timm and the Hugging Face hub load, no
pickle, memory-mappable) and, beside it, the small JSON that rebuilds the model: no optimiser
state, no RNGs, no MAE decoder (MixTraining's ``ssl_head`` is a training device, not part of
the classifier). The JSON is also stored in the safetensors header's metadata (key
``mixkit``), so the ``.safetensors`` file alone is enough.

    from mixkit.models.weights import load_weights
    model = load_weights("runs/NAME/weights/mixtrain.safetensors").eval()

    # or with safetensors alone (the tensors) and the JSON (how to build them):
    from safetensors.torch import load_file
    state = load_file("runs/NAME/weights/mixtrain.safetensors")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mixkit.models.factory import Classifier, create_model

FORMAT = "mixkit-weights/1"
SKIPPED = Classifier.SSL_PARTS     # trained beside the classifier, not part of it
META_KEY = "mixkit"                # the rebuild JSON inside the safetensors header


def weights_payload(model: torch.nn.Module, *, arm: str, model_name: str,
                    num_classes: int | list[int], img_size: int, patch_size: int | None,
                    native_size: int | None) -> dict[str, Any]:
    """What is saved: the classifier's tensors (CPU, float32, contiguous) + how to build it."""
    state = {k: v.detach().to("cpu", copy=True).contiguous()
             for k, v in model.state_dict().items() if not k.startswith(SKIPPED)}
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return {"format": FORMAT, "arm": arm, "model": model_name, "num_classes": num_classes,
            "img_size": img_size, "patch_size": patch_size, "native_size": native_size,
            "state_dict": state}


def rebuild_info(payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON beside the tensors: everything but them."""
    return {k: v for k, v in payload.items() if k != "state_dict"}


def to_safetensors(payload: dict[str, Any]) -> bytes:
    """The ``.safetensors`` file's bytes (the rebuild JSON in its metadata)."""
    from safetensors.torch import save

    return save(payload["state_dict"], metadata={META_KEY: json.dumps(rebuild_info(payload))})


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """The classifier saved in ``path`` (``ARM.safetensors``), rebuilt with
    :func:`create_model` and loaded strictly."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path} is not a mixkit weights file (weights/ARM.safetensors).")
    with safe_open(str(path), framework="pt") as f:
        meta = (f.metadata() or {}).get(META_KEY)
    info = json.loads(meta) if meta else json.loads(path.with_suffix(".json").read_text())
    blob = {**info, "state_dict": load_file(str(path), device=str(device))}
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a mixkit weights file ({FORMAT}).")
    model, _ = create_model(blob["model"], blob["num_classes"], blob["img_size"],
                            blob["patch_size"], blob["native_size"])
    model.load_state_dict(blob["state_dict"], strict=True)
    return model.to(device)
