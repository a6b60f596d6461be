"""Optimiser recipes and learning-rate schedules as pure functions of progress.

Like timm's schedulers, the learning rate is a function of *progress* ``t`` (epochs, with the
batch fraction: ``epoch + k / batches``), not of a step counter, so resume needs no scheduler
state and a method with fewer batches per epoch (mixTrain) follows the same curve as its
baseline. The schedules and optimisers carry timm's names (``--sched cosine|step|multistep|none``,
``--opt adamw|sgd``); ``docs/engine.md`` documents each.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace

import torch

SCHEDULES = ("cosine", "step", "multistep", "none")
OPTIMIZERS = ("adamw", "sgd")


def cosine_lr(t: float, base_lr: float, min_lr: float, warmup: float, total: float) -> float:
    """Linear warmup from 0 over ``warmup`` epochs, then cosine from ``base_lr`` to ``min_lr``.

    ``warmup`` is clipped to half of ``total``: a run shorter than twice its recipe's warmup
    (a 5-epoch smoke test of a 20-epoch-warmup MAE recipe) still reaches ``base_lr`` and
    still decays to ``min_lr``.
    """
    warmup = min(warmup, 0.5 * total)
    if t < warmup:
        return base_lr * t / warmup
    span = max(total - warmup, 1e-12)
    frac = min(max((t - warmup) / span, 0.0), 1.0)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * frac))


def step_factor(t: float, decay_epochs: float, decay_rate: float) -> float:
    """timm's ``step``: ``decay_rate ** floor(t / decay_epochs)``, epochs counted from the
    recipe's start (warm-up included, as timm counts them). With integer ``decay_epochs`` the
    drop falls exactly on an epoch boundary, where timm's per-epoch scheduler makes it."""
    return decay_rate ** math.floor(t / decay_epochs + 1e-9)


def multistep_factor(t: float, milestones: tuple[float, ...], decay_rate: float) -> float:
    """timm's ``multistep`` (torch's ``MultiStepLR``): ``decay_rate ** k``, k the number of
    milestones reached (``bisect_right``). He et al.'s ImageNet recipe: 30, 60 of 90, rate 0.1."""
    return decay_rate ** bisect.bisect_right(milestones, t + 1e-9)


@dataclass(frozen=True)
class Recipe:
    """One optimiser, its schedule, and the span of epochs the schedule covers.

    ``start`` is the arm epoch at which the schedule's ``t = 0`` sits; ``total`` its length.
    A change of recipe between epochs (MixTraining's SSL -> SL) starts a fresh optimiser.
    Label smoothing is not here: it belongs to the loss (each method's ``smoothing``), so a
    smoothing change is no optimiser change.
    """

    name: str
    lr: float
    min_lr: float
    weight_decay: float
    warmup: float
    total: float
    start: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    layer_decay: float = 1.0
    opt: str = "adamw"
    momentum: float = 0.9
    nesterov: bool = False
    sched: str = "cosine"
    decay_epochs: float = 30.0
    decay_milestones: tuple[float, ...] = (30.0, 60.0)
    decay_rate: float = 0.1

    def lr_at(self, t: float) -> float:
        """The learning rate at arm progress ``t``: the linear warm-up from 0 (clipped to half
        the span, as :func:`cosine_lr`), then the schedule."""
        t = t - self.start
        if self.sched == "cosine":
            return cosine_lr(t, self.lr, self.min_lr, self.warmup, self.total)
        warmup = min(self.warmup, 0.5 * self.total)
        if t < warmup:
            return self.lr * t / warmup
        if self.sched == "step":
            return self.lr * step_factor(t, self.decay_epochs, self.decay_rate)
        if self.sched == "multistep":
            return self.lr * multistep_factor(t, self.decay_milestones, self.decay_rate)
        return self.lr                                    # none: constant after the warm-up

    def compressed(self, total: float) -> "Recipe":
        """The same recipe over ``total`` epochs: warm-up kept, the cosine or the step decays
        moved to the same fractions of the shorter run (mixTrain's ``short`` arm)."""
        k = total / self.total
        if self.sched == "step":
            return replace(self, total=total, decay_epochs=self.decay_epochs * k)
        if self.sched == "multistep":
            return replace(self, total=total,
                           decay_milestones=tuple(m * k for m in self.decay_milestones))
        return replace(self, total=total)

    @classmethod
    def from_state(cls, state: dict) -> "Recipe":
        """The inverse of ``dataclasses.asdict`` (a checkpoint stores tuples as lists)."""
        state = dict(state)
        state["betas"] = tuple(state["betas"])
        if "decay_milestones" in state:
            state["decay_milestones"] = tuple(state["decay_milestones"])
        return cls(**state)


def layer_scales(model: torch.nn.Module, layer_decay: float) -> dict[str, float]:
    """Layer-wise learning-rate decay (BEiT §2.5; MAE's fine-tuning recipe, App. A.1): the lr
    scale of each backbone parameter, ``layer_decay ** (top - layer)``.

    Layers are timm's fine-grained groups (``group_matcher(coarse=False)``: for a ViT the patch
    embedding and positions are layer 0, block ``i`` is layer ``i + 1``), numbered as
    ``timm.optim.param_groups_layer_decay`` numbers them; parameters no group names (the
    pooling norm, timm's head) sit at the top with scale 1, as do the task heads and the SSL
    head outside the backbone. Empty for ``layer_decay == 1`` (every scale 1).
    """
    backbone = getattr(model, "backbone", None)
    if layer_decay == 1.0 or backbone is None or not hasattr(backbone, "group_matcher"):
        return {}
    from timm.models import group_parameters

    ids = group_parameters(backbone, backbone.group_matcher(coarse=False), reverse=True)
    top = max(ids.values())
    return {f"backbone.{n}": layer_decay ** (top - i) for n, i in ids.items()}


def weight_decay_groups(model: torch.nn.Module, weight_decay: float,
                        layer_decay: float = 1.0) -> list[dict]:
    """timm's grouping (no decay on 1-d parameters and biases) over *every* parameter, split
    further by :func:`layer_scales` (each group's ``lr_scale``) when ``layer_decay < 1``.

    Unlike ``timm.optim.param_groups_weight_decay`` it keeps parameters that are frozen right
    now: a phase may freeze a head (MixTraining), and the optimiser built for a recipe must
    hold the same parameters whatever was frozen when it was built (exact resume).
    """
    scales = layer_scales(model, layer_decay)
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        decayed = not (p.ndim <= 1 or name.endswith(".bias"))
        groups.setdefault((scales.get(name, 1.0), decayed), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decayed else 0.0, "lr_scale": scale}
            for (scale, decayed), ps in sorted(groups.items())]   # keys (scale, decayed)


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """``recipe.opt`` without weight decay on norms, biases and 1-d parameters (timm's grouping).

    * ``adamw``: decoupled weight decay (Loshchilov & Hutter), ``betas`` from the recipe;
    * ``sgd``: momentum SGD with coupled (L2) weight decay, as He et al. (2015) and the
      CIFAR ResNet recipe train; ``nesterov`` as asked (timm's ``--opt sgd`` is Nesterov, its
      ``momentum`` is not: here ``--nesterov`` says which, default off as the papers).

    The fused implementation is used wherever this torch has it for the device (CUDA and CPU,
    for both optimisers; MPS in recent releases): besides being the fastest, it accepts a
    device-side ``found_inf`` flag and then skips the whole update on the device, which is how
    the engine stops at a NaN/Inf loss without a host sync per step. Elsewhere the plain
    implementation is returned and :func:`is_fused` tells the engine to skip a bad step itself.
    """
    groups = weight_decay_groups(model, recipe.weight_decay, recipe.layer_decay)
    if recipe.opt == "sgd":
        cls: type = torch.optim.SGD
        kw: dict = dict(lr=recipe.lr_at(recipe.start), momentum=recipe.momentum,
                        nesterov=recipe.nesterov)
    else:
        cls, kw = torch.optim.AdamW, dict(lr=recipe.lr_at(recipe.start), betas=recipe.betas)
    try:
        return cls(groups, fused=True, **kw)
    except (RuntimeError, ValueError, TypeError):      # no fused kernel for this device
        return cls(groups, **kw)


def is_fused(optimizer: torch.optim.Optimizer) -> bool:
    """Does ``optimizer.step`` honour a device-side ``found_inf`` (the fused kernels do)?"""
    return bool(optimizer.defaults.get("fused"))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The recipe's lr, times each group's layer-decay ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
