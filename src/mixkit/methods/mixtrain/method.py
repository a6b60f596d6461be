"""The ``mixtrain`` arm: selective mixing plans + the CutMix/MixUp training step.

Each epoch the arm asks :class:`MixState` which samples to mix, pairs them at random into an
epoch plan with ``singles + pairs`` inputs, and trains on it with one forward and one backward
per batch. The step records every constituent's loss into the state from that same forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mixkit.data.plan import pair_plan, shuffled
from mixkit.data.sources import Batch
from mixkit.engine.distributed import Dist, all_reduce_sum
from mixkit.engine.arm import Arm, EpochSpec
from mixkit.engine.optim import Recipe
from mixkit.errors import UserError
from mixkit.methods.mixtrain import ops
from mixkit.methods.mixtrain.selection import MixState
from mixkit.methods.mixtrain.settings import MixTrainSettings
from mixkit.methods.supervised import smoothed
from mixkit.models import ModelInfo
from mixkit.models.split_propagation import region_logits


def check_op(op: str, info: ModelInfo, img_size: int) -> None:
    """CutMix with split propagation needs at least two cells in the final feature grid, and
    boxes aligned to that grid: the image size must be a whole number of cells."""
    if op != "cutmix":
        return
    if info.grid[0] * info.grid[1] < 2:
        raise UserError(
            f"--op cutmix needs a final feature grid of at least 2 cells, but `{info.name}` "
            f"ends on {info.grid[0]}x{info.grid[1]} at this --img-size.",
            hint="Use a larger --img-size, a smaller --patch-size, or --op mixup.")
    if img_size % info.grid[0] or img_size % info.grid[1]:
        good = [s for s in range(img_size - 16, img_size + 17)
                if s >= 8 and s % info.grid[0] == 0 and s % info.grid[1] == 0]
        raise UserError(
            f"--op cutmix pastes boxes aligned to the final {info.grid[0]}x{info.grid[1]} "
            f"feature grid of `{info.name}`, but --img-size {img_size} is not a multiple of it "
            "(the boxes would not line up with the regions split propagation pools).",
            hint=f"Use an --img-size that is a multiple of {info.grid[0]} "
            f"(e.g. {', '.join(map(str, good[:3])) or 32}), or --op mixup.")


class MixTrainArm(Arm):
    """mixTrain with ``settings.op`` in {cutmix, mixup}; ablation switches as in Fig. 10A.
    ``seed`` seeds the plan and box streams (the same on every rank: the plan is global)."""

    name = "mixtrain"

    def __init__(self, settings: MixTrainSettings, epochs: int, num_samples: int,
                 recipe: Recipe, info: ModelInfo, img_size: int, device: torch.device,
                 seed: int = 0, dist: Dist = Dist()) -> None:
        check_op(settings.op, info, img_size)
        self.dist = dist
        self.settings, self.epochs, self.recipe, self.info = settings, epochs, recipe, info
        self.state = MixState(num_samples, device, settings.thresholds, settings.r1_entry,
                              settings.r3_from)
        self.plan_generator = torch.Generator().manual_seed(seed)
        self.box_generator = torch.Generator(device=device).manual_seed(
            dist.stream_seed(seed, 1))
        self.stride = info.input_stride(img_size)
        self.box_shapes = torch.tensor(ops.box_shapes(info.grid, settings.cutmix_area),
                                       device=device) if settings.op == "cutmix" else None
        self.mixed_fraction = 0.0

    # --- checkpoints (exact resume) ---------------------------------------------------------
    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"plan": self.plan_generator, "box": self.box_generator}

    def state_dict(self) -> dict[str, Any]:
        return {"mix": self.state.state_dict(), "mixed_fraction": self.mixed_fraction}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state["mix"])
        self.mixed_fraction = state["mixed_fraction"]

    # --- plans ------------------------------------------------------------------------------
    def epoch(self, epoch: int) -> EpochSpec:
        self.state.begin_epoch()
        if not self.settings.selective:
            self.state.naive(self.settings.naive_fraction, self.plan_generator)
        mix = self.state.mix_mask()
        unmixed = epoch >= self.epochs - self.settings.final_unmixed_epochs
        if (epoch == 0 and self.settings.selective) or unmixed:
            plan = shuffled(self.state.n, self.plan_generator)
        else:
            plan = pair_plan(mix, self.plan_generator)
        self.mixed_fraction = plan.num_pairs * 2 / self.state.n
        note = f"mixed {self.mixed_fraction:.0%}"
        return EpochSpec("sl", plan, self.recipe, self.loss, note=note)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's mixed fraction, and the regions/thresholds that shape the next plan."""
        if self.dist.enabled:
            self.state.all_reduce(all_reduce_sum)      # every rank: the same next plan
        return {"mixed_fraction": self.mixed_fraction, **self.state.end_epoch()}

    # --- the step ---------------------------------------------------------------------------
    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        if batch.x2 is None:
            return self._single(model, batch)
        if self.settings.op == "cutmix":
            return self._cutmix(model, batch)
        return self._mixup(model, batch)

    def _single(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.x)
        ce = F.cross_entropy(logits, batch.y, reduction="none")
        self.state.record(batch.ids, ce, logits.argmax(-1) == batch.y,
                          torch.ones_like(batch.y, dtype=torch.bool))
        return smoothed(ce, logits, self.recipe.smoothing).mean()

    def _record_pair(self, batch: Batch, ce1: torch.Tensor, ok1: torch.Tensor,
                     ce2: torch.Tensor, ok2: torch.Tensor) -> None:
        self.state.record(batch.ids, ce1, ok1, ~batch.paired)
        self.state.record(self.state.slot(batch.ids2, batch.paired), ce2, ok2,
                          torch.zeros_like(batch.paired))

    def _cutmix(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """§4.1.1: grid-aligned CutMix; split propagation gives each constituent its logits."""
        boxes = ops.sample_cell_boxes(batch.size, self.info.grid, self.box_shapes,
                                      self.box_generator, self.settings.cutmix_anchor == "edge")
        cells = ops.cell_mask(boxes, self.info.grid) & batch.paired.view(-1, 1, 1)
        x = ops.cutmix(batch.x, batch.x2, ops.pixel_mask(cells, self.stride))
        feats = model.forward_features(x)
        if self.settings.split_prop:
            la, lb = region_logits(model, feats, self.info, [~cells, cells])
            ce1 = F.cross_entropy(la, batch.y, reduction="none")
            ce2 = F.cross_entropy(lb, batch.y2, reduction="none")
            self._record_pair(batch, ce1, la.argmax(-1) == batch.y, ce2, lb.argmax(-1) == batch.y2)
            share = cells.flatten(1).float().mean(1) if self.settings.split_loss == "share" else None
            s = self.recipe.smoothing
            return ops.split_propagation_loss(smoothed(ce1, la, s), smoothed(ce2, lb, s),
                                              batch.paired, share)
        logits = model.forward_head(feats)
        lam = 1.0 - cells.flatten(1).float().mean(1)          # x1's share of the grid
        per_row, ce1, ce2 = ops.mixed_cross_entropy(logits, batch.y, batch.y2, lam)
        pred = logits.argmax(-1)
        self._record_pair(batch, ce1, pred == batch.y, ce2, pred == batch.y2)
        return smoothed(per_row, logits, self.recipe.smoothing).mean()

    def _mixup(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """§4.1.2: MixUp with the adaptive ratio of Eq. (5) from last epoch's losses."""
        if self.settings.adaptive:
            r = ops.adaptive_ratio(self.state.loss[batch.ids], self.state.loss[batch.ids2])
        else:
            r = torch.full_like(batch.y, 0.5, dtype=torch.float32)
        r = torch.where(batch.paired, r, torch.ones_like(r))
        logits = model(ops.mixup(batch.x, batch.x2, r))
        per_row, ce1, ce2 = ops.mixed_cross_entropy(logits, batch.y, batch.y2, r)
        pred = logits.argmax(-1)
        self._record_pair(batch, ce1, pred == batch.y, ce2, pred == batch.y2)
        return smoothed(per_row, logits, self.recipe.smoothing).mean()
