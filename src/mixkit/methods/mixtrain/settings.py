"""mixTrain's settings (Krithivasan et al. 2024), typed and validated where they are defined.

The arm (:class:`~mixkit.methods.mixtrain.method.MixTrainArm`) takes these and nothing of the
command line's config; the command layer builds them from its options
(:meth:`MixTrainSettings.from_options`). The defaults are the paper's rules; every choice
beyond the paper is off by default (``docs/mixtrain.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

OPS = ("cutmix", "mixup")
THRESHOLDS = ("cumulative", "last", "epochs")
ANCHORS = ("any", "edge")
R3_FROM = ("unmixed", "all")
R1_ENTRY = ("loss", "correct")
SPLIT_LOSS = ("sample", "share")


@dataclass(frozen=True)
class MixTrainSettings:
    """What a mixTrain arm does, beyond the recipe and the data it trains on.

    * ``op``: CutMix with split propagation (§4.1.1) or MixUp with adaptive ratios (§4.1.2);
    * ``split_prop`` / ``adaptive`` / ``selective``: the three parts of the method, each
      switchable for the Fig. 10A ablation (``naive_fraction`` is mixed per epoch without
      ``selective``);
    * ``thresholds``: how ``L_corr`` / ``L_incorr`` average the unmixed losses (§4.2: the
      running average over every sample-epoch, ``cumulative``);
    * ``cutmix_area`` (of the final feature grid), ``cutmix_anchor``, ``split_loss``,
      ``r3_from``, ``r1_entry``, ``final_unmixed_epochs``: the paper's rules by default, the
      alternatives measured in ``docs/benchmarks.md``.
    """

    op: str = "mixup"
    split_prop: bool = True
    adaptive: bool = True
    selective: bool = True
    naive_fraction: float = 0.5
    thresholds: str = "cumulative"
    cutmix_anchor: str = "any"
    r3_from: str = "unmixed"
    r1_entry: str = "loss"
    cutmix_area: float = 0.5
    split_loss: str = "sample"
    final_unmixed_epochs: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("op", OPS), ("thresholds", THRESHOLDS),
                              ("cutmix_anchor", ANCHORS), ("r3_from", R3_FROM),
                              ("r1_entry", R1_ENTRY), ("split_loss", SPLIT_LOSS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} must be one of "
                                 f"{', '.join(allowed)}")
        if not 0.0 < self.naive_fraction <= 1.0:
            raise ValueError(f"naive_fraction {self.naive_fraction} must lie in (0, 1]")
        if not 0.0 < self.cutmix_area < 1.0:
            raise ValueError(f"cutmix_area {self.cutmix_area} must lie in (0, 1)")
        if self.final_unmixed_epochs < 0:
            raise ValueError("final_unmixed_epochs must be >= 0")

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | Any) -> "MixTrainSettings":
        """The settings named in ``options`` (a mapping, or any object with those attributes,
        such as the command line's resolved config); the rest keep their defaults."""
        get = options.get if isinstance(options, Mapping) else (
            lambda k, d: getattr(options, k, d))
        return cls(**{f.name: get(f.name, f.default) for f in dataclasses.fields(cls)})
