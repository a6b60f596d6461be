"""mixTrain's settings (Krithivasan et al. 2024), typed and validated where they are defined.

The arm (:class:`~mixkit.methods.mixtrain.method.MixTrainArm`) takes these and nothing of the
command line's config; the command layer builds them from its options
(:meth:`MixTrainSettings.from_options`). The defaults are the paper's rules; every choice
beyond the paper is off by default (``docs/mixtrain.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from mixkit.methods.settings import check_settings, setting, settings_from

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

    op: str = setting("mixup", "Mixing operator: mixup (adaptive ratios, §4.1.2) or cutmix "
                      "(with split propagation, §4.1.1).", choices=OPS)
    split_prop: bool = setting(True, "CutMix split propagation (§4.1.1); --no-split-prop: plain "
                               "CutMix with the area-weighted loss of Eq. (2).")
    adaptive: bool = setting(True, "MixUp adaptive ratio r = L_a/(L_a+L_b) (§4.1.2); "
                             "--no-adaptive: r = 0.5.")
    selective: bool = setting(True, "Selective mixing by loss region (§4.2); --no-selective: "
                              "mix a random --naive-fraction of the dataset every epoch.")
    naive_fraction: float = setting(0.5, "Fraction of the dataset mixed per epoch with "
                                    "--no-selective.", gt=0.0, max=1.0)
    thresholds: str = setting(
        "cumulative", "How L_corr/L_incorr average unmixed losses: over every sample-epoch so "
        "far (the paper's running average), the last epoch only, or (beyond the paper) the mean "
        "of the per-epoch means.", choices=THRESHOLDS)
    cutmix_anchor: str = setting(
        "any", "Where a CutMix box may sit: `any` position on the grid (the paper) or, beyond "
        "the paper, `edge` (touching two borders: at area 0.5 always a half-image, never a "
        "middle band).", choices=ANCHORS)
    r3_from: str = setting(
        "unmixed", "Which samples the Region 3 rule (mix a hard sample whose loss rose) applies "
        "to: `unmixed` = those trained unmixed this epoch (the paper's text); `all` = mixed "
        "ones too, judged by their mixed loss.", choices=R3_FROM)
    r1_entry: str = setting(
        "loss", "Which samples may enter Region 1 (mixed): `loss` = loss below L_mid (the "
        "paper); `correct` = beyond the paper, also classified correctly (samples already mixed "
        "stay while below L_mid).", choices=R1_ENTRY)
    cutmix_area: float = setting(0.5, "Area of the pasted CutMix box, as a fraction of the "
                                 "final feature grid (snapped to whole cells).", gt=0.0,
                                 max=0.99)
    split_loss: str = setting(
        "sample", "How split-propagated CutMix weighs its two constituents: `sample` = each is "
        "a whole training sample (the paper, §4.1.1); `share` = beyond the paper, each weighted "
        "by the share of the image it owns, so a mixed input weighs one input.",
        choices=SPLIT_LOSS)
    final_unmixed_epochs: int = setting(
        0, "Beyond the paper: train the last K epochs without mixing (losses are still "
        "recorded). 0 = the paper's method.", min=0, max=100000)

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | Any) -> "MixTrainSettings":
        """The settings named in ``options``; the rest keep their defaults."""
        return settings_from(cls, options)
