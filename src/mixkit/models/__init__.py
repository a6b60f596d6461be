"""The model core: timm backbones adapted to small inputs, with one head per task."""

from mixkit.models.factory import (FAMILIES, Classifier, ModelInfo, create_model, family_of,
                                   supported_models)

__all__ = ["FAMILIES", "Classifier", "ModelInfo", "create_model", "family_of",
           "supported_models"]
