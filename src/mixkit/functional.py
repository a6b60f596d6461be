"""The methods' pieces as plain tensor functions (Composer's ``composer.functional`` shape):
for a loop that wants one piece of a method rather than the whole :class:`mixkit.MixTrain`,
and for measuring a piece on its own. Semver promise: ``docs/api.md``.

mixTrain (Krithivasan et al. 2024):

* CutMix on the backbone's final grid (§3, §4.1.1): :func:`box_shapes`,
  :func:`sample_cell_boxes` → :func:`cell_mask` → :func:`pixel_mask` → :func:`cutmix`;
* split propagation (§4.1.1): :func:`region_logits` — each constituent's logits from the mean
  of its own cells of the final feature map; :func:`model_info` reads a timm model's grid;
* MixUp with adaptive ratios (Eq. 1, 3, 5): :func:`mixup`, :func:`adaptive_ratio`,
  :func:`mixed_cross_entropy` (Eq. 2);
* selection (§4.2, Algorithm 1): :class:`SelectionState` (every sample's last loss and
  correctness as device tensors, the L_corr / L_incorr averages and the three regions),
  :func:`thresholds`, :func:`regions`, and :func:`pair_plan` — an epoch's order with each
  mixed sample next to its partner;

MixTraining (Li et al. 2025): :class:`Schedule`, Eq. (1)'s phases of each epoch.
"""

from __future__ import annotations

from mixkit.data.plan import EpochPlan, pair_plan, shuffled
from mixkit.methods.mixtrain.ops import (adaptive_ratio, box_shapes, cell_mask, cutmix,
                                         mixed_cross_entropy, mixup, pixel_mask,
                                         sample_cell_boxes)
from mixkit.methods.mixtrain.selection import SelectionState
from mixkit.methods.mixtrain.selection import regions, thresholds
from mixkit.methods.mixtraining.schedule import Schedule
from mixkit.models import ModelInfo
from mixkit.models.split_propagation import infer_info as model_info
from mixkit.models.split_propagation import region_logits

__all__ = ["EpochPlan", "ModelInfo", "Schedule", "SelectionState", "adaptive_ratio",
           "box_shapes", "cell_mask", "cutmix", "mixed_cross_entropy", "mixup", "model_info",
           "pair_plan", "pixel_mask", "region_logits", "regions", "sample_cell_boxes",
           "shuffled", "thresholds"]
