"""The MixTraining arm: Algorithm 1 on the shared engine.

One class runs all three arms of ``mixkit mixtraining`` (the schedule decides the phases):

* ``mixtraining``: SSL for ``e_ssl - e_mix`` epochs, mix for ``e_mix``, SL for ``e_sl - e_mix``;
* ``ssl+sl``: the same at ``rho = 0`` (SSL for ``e_ssl`` epochs, then SL for ``e_sl``);
* ``sl``: the same at ``e_ssl = 0`` (supervised only, no SSL head attached).

Mix phase, Eq. (3): ``alpha * l_ssl + (1 - alpha) * l_sl``, one backward. ``shared`` forward
(App. A.2): the backbone runs once on all patches; the classifier pools the full tokens and the
SSL objective reuses them. ``separate``: the SSL objective runs its own (masked) encoder pass.

Optimisation, Table 7 as we read it (`docs/mixtraining.md`): the SSL recipe spans the SSL phase
as if it ran ``e_ssl`` epochs; the SL recipe starts with the mix phase and spans ``e_sl`` epochs.
A change of recipe starts a fresh AdamW (the engine's rule), so the mix phase starts with fresh
moments.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mixkit.data.plan import shuffled
from mixkit.data.sources import Batch
from mixkit.engine.distributed import Dist, all_reduce_sum
from mixkit.engine.arm import Arm, EpochSpec
from mixkit.engine.optim import Recipe
from mixkit.methods.mixtraining.objectives import SSLObjective
from mixkit.methods.mixtraining.schedule import MIX, SSL, Schedule
from mixkit.methods.supervised import (cross_entropy_loss, supervised_loss_from_features,
                                       task_mean)
from mixkit.models import Classifier


def mix_objective(l_ssl: torch.Tensor, l_sl: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. (3): the mix phase's one loss, ``alpha * l_ssl + (1 - alpha) * l_sl`` (LOSS-RATIO
    ``alpha``), backpropagated once through the shared encoder."""
    return alpha * l_ssl + (1.0 - alpha) * l_sl


class MixTrainingArm(Arm):
    """An SSL -> mix -> SL schedule of epochs on one model."""

    def __init__(self, name: str, schedule: Schedule, ssl_recipe: Recipe, sl_recipe: Recipe,
                 objective: SSLObjective | None, *, alpha: float, mix_forward: str,
                 num_samples: int, plan_generator: torch.Generator, num_tasks: int = 1,
                 ssl_source: Any = None, mix_source: Any = None,
                 probe: tuple[torch.Tensor, Any] | None = None,
                 device: torch.device | str = "cpu", dist: Dist = Dist(),
                 smoothing: float = 0.0) -> None:
        if schedule.e_ssl and objective is None:
            raise ValueError("an arm with SSL epochs needs an SSL objective")
        self.name, self.schedule, self.epochs = name, schedule, schedule.epochs
        self.phased = len(schedule.phases) > 1       # the live view names each epoch's phase
        self.ssl_recipe, self.sl_recipe, self.objective = ssl_recipe, sl_recipe, objective
        self.alpha, self.mix_forward, self.num_tasks = alpha, mix_forward, num_tasks
        self.num_samples, self.generator = num_samples, plan_generator
        self.ssl_source, self.mix_source = ssl_source, mix_source
        self.probe = probe          # (fixed images, fixed mask) for the reconstruction figure
        self.dist, self.smoothing = dist, smoothing      # label smoothing of the SL loss
        self._parts = torch.zeros(2, device=device)    # mix phase: sample-weighted (l_ssl, l_sl)
        self._seen = 0
        self._model: nn.Module | None = None        # the model the arm trains (extend_model)
        self._recon: torch.Tensor | None = None     # Fig. 4, when the MAE objective last trained

    @property
    def generators(self) -> dict[str, torch.Generator]:
        """The arm's random streams (saved in checkpoints): plans, masks, Eq. (2) partners."""
        gens = {"plan": self.generator}
        if self.objective is not None and getattr(self.objective, "generator", None) is not None:
            gens["mask"] = self.objective.generator
        if self.mix_source is not None:
            gens["mix"] = self.mix_source.generator
        if self.ssl_source is not None:
            gens["ssl_augment"] = self.ssl_source.generator
        return gens

    def state_dict(self) -> dict[str, Any]:
        return {"parts": self._parts.clone(), "seen": self._seen, "recon": self._recon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._parts = state["parts"].to(self._parts.device)
        self._seen = state["seen"]
        recon = state.get("recon")
        self._recon = None if recon is None else recon.to(self._parts.device)

    @property
    def uses_ssl(self) -> bool:
        return self.schedule.e_ssl > 0

    def extend_model(self, model: nn.Module) -> None:
        """Attach the SSL head (MAE decoder) to the model, if this arm trains one."""
        if self.uses_ssl:
            model.ssl_head = self.objective.head()
            self._model = model                 # trained in place: the engine's model

    # --- the engine's interface ----------------------------------------------------------
    def epoch(self, epoch: int) -> EpochSpec:
        phase = self.schedule.phase_at(epoch)
        if phase == SSL:
            n = len(self.ssl_source) if self.ssl_source is not None else self.num_samples
            return EpochSpec(SSL, shuffled(n, self.generator), self.ssl_recipe, self.ssl_loss,
                             evaluate=False, source=self.ssl_source, note="MAE",
                             frozen=Classifier.CLASSIFIER_PARTS)
        plan = shuffled(self.num_samples, self.generator)
        if phase == MIX:
            return EpochSpec(MIX, plan, self.sl_recipe, self.mix_loss, source=self.mix_source,
                             note=f"alpha {self.alpha:g}")
        return EpochSpec(phase, plan, self.sl_recipe, self.sl_loss,
                         frozen=Classifier.SSL_PARTS)

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        if epoch == self.schedule.e_ssl - 1:     # the MAE objective's last epoch (SSL or mix)
            self._recon = self._reconstruct()
        if self.schedule.phase_at(epoch) != MIX or self._seen == 0:
            return {}
        parts = torch.cat([self._parts, self._parts.new_tensor([float(self._seen)])])
        if self.dist.enabled:
            all_reduce_sum(parts)                               # the epoch over every rank
        l_ssl, l_sl, seen = parts.tolist()                     # one device read per epoch
        l_ssl, l_sl = l_ssl / seen, l_sl / seen
        self._parts.zero_()
        self._seen = 0
        return {"ssl_loss": l_ssl, "sl_loss": l_sl}

    # --- losses ------------------------------------------------------------------------------
    def ssl_loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return task_mean(self.objective.standalone(model, batch.x), batch.task, self.num_tasks)

    def sl_loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return cross_entropy_loss(model, batch, self.smoothing)

    def mix_loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """Eq. (3) with one backward; ``shared`` also runs the backbone only once."""
        if self.mix_forward == "shared":
            feats = model.forward_features(batch.x)
            per_row = self.objective.reuse(model, batch.x, feats)
            l_sl = supervised_loss_from_features(model, feats, batch, self.smoothing)
        else:
            per_row = self.objective.standalone(model, batch.x)
            l_sl = self.sl_loss(model, batch)
        l_ssl = task_mean(per_row, batch.task, self.num_tasks)
        self._parts += torch.stack([l_ssl.detach(), l_sl.detach()]).float() * batch.size
        self._seen += batch.size
        return mix_objective(l_ssl, l_sl, self.alpha)

    # --- after the last epoch ------------------------------------------------------------------
    def _reconstruct(self) -> torch.Tensor | None:
        """The figure's fixed images reconstructed by the model as it is now (on the device)."""
        if not self.uses_ssl or self.probe is None or self._model is None:
            return None
        was_training = self._model.training
        self._model.eval()
        out = self.objective.reconstruct(self._model, *self.probe)
        self._model.train(was_training)
        return out

    def finish(self, model: nn.Module) -> dict[str, Any]:
        """Reconstructions of the figure's fixed images (Fig. 4), taken at the end of the last
        epoch that trained the MAE objective (SSL+SL: its last SSL epoch; MixTraining: its last
        mix epoch). After it the SL phase moves the encoder while the decoder is frozen, so a
        reconstruction taken at the very end shows the mismatch, not what MAE learned (on
        Fashion-MNIST SSL+SL's end-of-run reconstructions are coloured noise)."""
        return {} if self._recon is None else {"reconstruction": self._recon.cpu()}
