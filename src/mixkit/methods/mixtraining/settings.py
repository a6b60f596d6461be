"""MixTraining's settings (Li et al. 2025), typed and validated where they are defined: the mix
phase (Eq. 1-3) and the MAE objective it shares a forward with (App. A.2-A.3). The schedule's
epochs and the two optimiser recipes are the command's (``mixkit mixtraining``); the command
line's flags for these fields are built from this declaration (``settings_options``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from mixkit.methods.settings import check_settings, setting, settings_from

MIX_FORWARDS = ("shared", "separate")


@dataclass(frozen=True)
class MixTrainingSettings:
    """The mix phase and the MAE objective; the defaults are the paper's."""

    rho: float = setting(0.5, "MIX-RATIO rho: e_mix = floor(rho * min(e_ssl, e_sl)), Eq. (1).",
                         min=0.0, max=1.0)
    alpha: float = setting(0.5, "LOSS-RATIO alpha: mix-phase loss alpha*l_ssl + "
                           "(1-alpha)*l_sl, Eq. (3).", min=0.0, max=1.0)
    lam: float = setting(0.5, "lambda of the mixed dataset, Eq. (2): x = lam*x_sl + "
                         "(1-lam)*x_ssl (only with --ssl-data).", min=0.0, max=1.0)
    mix_forward: str = setting(
        "shared", "Mix-phase forward: `shared` runs the encoder once on all patches for both "
        "heads (App. A.2); `separate` adds a masked MAE encoder pass (one backward either "
        "way).", choices=MIX_FORWARDS)
    mask_ratio: float = setting(0.75, "MAE mask ratio (fraction of patches hidden).", gt=0.0,
                                max=0.99)
    norm_pix_loss: bool = setting(False, "MAE target: per-patch normalised pixels.")
    decoder_depth: int = setting(2, "MAE decoder blocks (App. A.3: 2).", min=1, max=64)
    decoder_dim: int = setting(192, "MAE decoder width (App. A.3: 192 for ViT-Tiny).", min=8,
                               max=8192)
    decoder_heads: int = setting(3, "MAE decoder attention heads (App. A.3: 3).", min=1,
                                 max=128)

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | Any) -> "MixTrainingSettings":
        """The settings named in ``options``; the rest keep their defaults."""
        return settings_from(cls, options)
