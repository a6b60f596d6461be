"""mixTrain: selective mixing plans + the CutMix/MixUp training step (:class:`MixTrain`, also
the CLI's ``mixtrain`` arm).

Each epoch the method asks its :class:`SelectionState` which samples to mix, pairs them at
random into an epoch plan with ``singles + pairs`` inputs, and trains on it with one forward and
one backward per batch. The step records every constituent's loss into the state from that
same forward.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from mixkit.data.plan import EpochPlan, pair_plan, shuffled
from mixkit.data.sources import Batch
from mixkit.engine.distributed import Dist, all_reduce_sum
from mixkit.engine.optim import Recipe
from mixkit.errors import UserError
from mixkit.methods.method import Method, MethodArm, UsageError
from mixkit.methods.mixtrain import ops
from mixkit.methods.mixtrain.selection import SelectionState
from mixkit.methods.mixtrain.settings import MixTrainSettings
from mixkit.methods.supervised import smoothed
from mixkit.models import ModelInfo
from mixkit.models.split_propagation import infer_info, region_logits


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


class MixTrain(Method):
    """mixTrain (Krithivasan et al. 2024) for any loop: selective mixing plans (§4.2) and the
    CutMix-with-split-propagation (§4.1.1) or adaptive-MixUp (§4.1.2) step.

    ``settings`` (or its fields as keywords: ``MixTrain(n, op="cutmix")``) are the paper's
    rules by default. ``info`` describes the model's last feature map (CutMix); without it,
    the first CutMix batch reads it off the model (:func:`infer_info`). The plan stream is
    seeded by ``seed``, the box stream by ``seed + 1`` (differing by rank under DDP)."""

    name = "mixtrain"

    def __init__(self, num_samples: int, settings: MixTrainSettings | None = None, *,
                 epochs: int | None = None, seed: int = 0,
                 device: torch.device | str | None = None, smoothing: float = 0.0,
                 info: ModelInfo | None = None, img_size: int | None = None,
                 dist: Dist | None = None, **options: Any) -> None:
        super().__init__(num_samples, epochs=epochs, seed=seed, device=device,
                         smoothing=smoothing, dist=dist)
        if settings is None:
            settings = MixTrainSettings(**options)
        elif options:
            settings = dataclasses.replace(settings, **options)
        if settings.final_unmixed_epochs and epochs is None:
            raise ValueError("final_unmixed_epochs needs epochs= (the run's length)")
        self.settings = settings
        self.selection = SelectionState(num_samples, self.device, settings.thresholds,
                              settings.r1_entry, settings.r3_from)
        self.box_generator = torch.Generator(device=self.device).manual_seed(
            self.dist.stream_seed(seed, 1))
        self.info: ModelInfo | None = None
        self.mixed_fraction = 0.0
        if info is not None:
            if img_size is None:
                raise ValueError("info= needs img_size= (the input's side in pixels)")
            self._set_info(info, img_size)

    def _set_info(self, info: ModelInfo, img_size: int) -> None:
        if self.settings.op == "cutmix":
            check_op("cutmix", info, img_size)
            self.box_shapes = torch.tensor(ops.box_shapes(info.grid, self.settings.cutmix_area),
                                           device=self.device)
        self.info, self.stride = info, info.input_stride(img_size)

    def _infer_info(self, model: torch.nn.Module, x: torch.Tensor) -> None:
        """A model built outside mixkit: its feature grid, read once at the first step (one
        dry forward of one image; the run's only setup sync)."""
        try:
            self._set_info(infer_info(model, x), int(x.shape[-1]))
        except (ValueError, UserError) as err:
            raise UsageError(f"op='cutmix': {err}") from None

    # --- checkpoints (exact resume) ---------------------------------------------------------
    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"plan": self.plan_generator, "box": self.box_generator}

    def own_state(self) -> dict[str, Any]:
        return {"mix": self.selection.state_dict(), "mixed_fraction": self.mixed_fraction}

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.selection.load_state_dict(state["mix"])
        self.mixed_fraction = state["mixed_fraction"]

    # --- plans ------------------------------------------------------------------------------
    def plan(self, epoch: int) -> EpochPlan:
        self.selection.begin_epoch()
        if not self.settings.selective:
            self.selection.naive(self.settings.naive_fraction, self.plan_generator)
        mix = self.selection.mix_mask()
        unmixed = (self.epochs is not None and
                   epoch >= self.epochs - self.settings.final_unmixed_epochs)
        if (epoch == 0 and self.settings.selective) or unmixed:
            plan = shuffled(self.selection.n, self.plan_generator)
        else:
            plan = pair_plan(mix, self.plan_generator)
        self.mixed_fraction = plan.num_pairs * 2 / self.selection.n
        return plan

    def note(self) -> str:
        return f"mixed {self.mixed_fraction:.0%}"

    def close_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's mixed fraction, and the regions/thresholds that shape the next plan."""
        if self.dist.enabled:
            self.selection.all_reduce(all_reduce_sum)      # every rank: the same next plan
        return {"mixed_fraction": self.mixed_fraction, **self.selection.end_epoch()}

    # --- the step ---------------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        if self.info is None and self.settings.op == "cutmix":
            self._infer_info(model, batch.x)
        if batch.x2 is None:
            return self._single(model, batch)
        if self.settings.op == "cutmix":
            return self._cutmix(model, batch)
        return self._mixup(model, batch)

    def _single(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        logits = model(batch.x)
        ce = F.cross_entropy(logits, batch.y, reduction="none")
        self.selection.record(batch.ids, ce, logits.argmax(-1) == batch.y,
                          torch.ones_like(batch.y, dtype=torch.bool))
        return smoothed(ce, logits, self.smoothing).mean()

    def _record_pair(self, batch: Batch, ce1: torch.Tensor, ok1: torch.Tensor,
                     ce2: torch.Tensor, ok2: torch.Tensor) -> None:
        self.selection.record(batch.ids, ce1, ok1, ~batch.paired)
        self.selection.record(self.selection.slot(batch.ids2, batch.paired), ce2, ok2,
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
            share = (cells.flatten(1).float().mean(1) if self.settings.split_loss == "share"
                     else None)
            s = self.smoothing
            return ops.split_propagation_loss(smoothed(ce1, la, s), smoothed(ce2, lb, s),
                                              batch.paired, share)
        logits = model.forward_head(feats)
        lam = 1.0 - cells.flatten(1).float().mean(1)          # x1's share of the grid
        per_row, ce1, ce2 = ops.mixed_cross_entropy(logits, batch.y, batch.y2, lam)
        pred = logits.argmax(-1)
        self._record_pair(batch, ce1, pred == batch.y, ce2, pred == batch.y2)
        return smoothed(per_row, logits, self.smoothing).mean()

    def _mixup(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """§4.1.2: MixUp with the adaptive ratio of Eq. (5) from last epoch's losses."""
        if self.settings.adaptive:
            r = ops.adaptive_ratio(self.selection.loss[batch.ids], self.selection.loss[batch.ids2])
        else:
            r = torch.full_like(batch.y, 0.5, dtype=torch.float32)
        r = torch.where(batch.paired, r, torch.ones_like(r))
        logits = model(ops.mixup(batch.x, batch.x2, r))
        per_row, ce1, ce2 = ops.mixed_cross_entropy(logits, batch.y, batch.y2, r)
        pred = logits.argmax(-1)
        self._record_pair(batch, ce1, pred == batch.y, ce2, pred == batch.y2)
        return smoothed(per_row, logits, self.smoothing).mean()


class MixTrainArm(MethodArm):
    """The CLI's ``mixtrain`` arm: :class:`MixTrain` over ``epochs`` epochs of ``recipe``."""

    def __init__(self, settings: MixTrainSettings, epochs: int, num_samples: int,
                 recipe: Recipe, info: ModelInfo, img_size: int, device: torch.device,
                 seed: int = 0, dist: Dist = Dist(), smoothing: float = 0.0) -> None:
        method = MixTrain(num_samples, settings, epochs=epochs, seed=seed, device=device,
                          smoothing=smoothing, info=info, img_size=img_size, dist=dist)
        super().__init__("mixtrain", method, epochs, recipe)
