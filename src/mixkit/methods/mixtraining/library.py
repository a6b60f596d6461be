"""MixTraining (Li et al. 2025) in your own loop: the Eq. (1) schedule and the three losses for a
timm ViT, with the MAE decoder kept beside it.

::

    mt = mixkit.MixTraining(vit, img_size=32, epochs_ssl=100, epochs_sl=100, rho=0.3)
    opt = torch.optim.AdamW([*vit.parameters(), *mt.decoder.parameters()], lr=1e-3)
    for epoch in range(mt.epochs):
        phase = mt.phase(epoch)                  # "ssl", "mix" or "sl" (Algorithm 1)
        for x, y in loader:
            loss = mt.loss(vit, x, y, phase)     # MAE, Eq. (3) on one forward, or CE
            loss.backward(); opt.step(); opt.zero_grad()

The CLI's ``mixtraining`` arm uses the same objective (:class:`~.objectives.MAE`) and schedule
(:class:`~.schedule.Schedule`); this class only binds them to a model built outside mixkit.
The SSL phase trains the encoder and decoder, the SL phase the encoder and head, the mix phase
all three with ``alpha * l_ssl + (1 - alpha) * l_sl`` from one encoder pass over all patches
(App. A.2's reuse; ``shared=False``: MAE's own masked pass plus a plain forward).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mixkit.methods.method import UsageError
from mixkit.methods.mixtraining.method import mix_objective
from mixkit.methods.mixtraining.objectives import MAE, check_mae
from mixkit.methods.mixtraining.schedule import MIX, SL, SSL, Schedule
from mixkit.models.split_propagation import infer_info


class MixTraining:
    """The schedule of ``epochs_ssl`` MAE epochs and ``epochs_sl`` supervised ones with
    ``floor(rho * min(...))`` of each merged into mix epochs (Eq. 1), and each phase's loss on
    ``vit`` (a timm ViT; its ``forward_features`` / ``forward_head`` seam). ``seed`` seeds the
    mask stream (``device``: where it draws)."""

    def __init__(self, vit: nn.Module, img_size: int, *, epochs_ssl: int, epochs_sl: int,
                 rho: float = 0.3, alpha: float = 0.5, mask_ratio: float = 0.75,
                 norm_pix_loss: bool = False, decoder_dim: int = 192, decoder_depth: int = 2,
                 decoder_heads: int = 3, in_chans: int = 3, shared: bool = True,
                 seed: int = 0, device: torch.device | str | None = None,
                 smoothing: float = 0.0) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha {alpha} must lie in [0, 1]")
        self.schedule = Schedule(epochs_ssl, epochs_sl, rho)
        device = torch.device(device) if device is not None else next(vit.parameters()).device
        try:
            info = infer_info(vit, torch.zeros(1, in_chans, img_size, img_size, device=device),
                              regions=False)
        except ValueError as err:
            raise UsageError(f"MixTraining needs a timm ViT: {err}") from None
        why = check_mae(info, mask_ratio)
        if why:
            raise UsageError(why)
        self.alpha, self.shared, self.smoothing = alpha, shared, smoothing
        self.objective = MAE(info, in_chans, mask_ratio, norm_pix_loss, decoder_dim,
                             decoder_depth, decoder_heads,
                             torch.Generator(device=device).manual_seed(seed + 1))
        self.decoder = self.objective.head().to(device)

    @property
    def epochs(self) -> int:
        """Epochs of the whole schedule: ``e_ssl + e_sl - e_mix``."""
        return self.schedule.epochs

    def phase(self, epoch: int) -> str:
        """``"ssl"``, ``"mix"`` or ``"sl"``: the phase of ``epoch`` (from 0), Algorithm 1."""
        return self.schedule.phase_at(epoch)

    def _pair(self, vit: nn.Module) -> SimpleNamespace:
        """The objective's view of a model: the encoder and the SSL head beside it."""
        return SimpleNamespace(backbone=getattr(vit, "module", vit), ssl_head=self.decoder)

    def ssl_loss(self, vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Standard MAE: the encoder sees the visible patches only; MSE on the hidden ones."""
        return self.objective.standalone(self._pair(vit), x).mean()

    def sl_loss(self, vit: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(vit(x), y, label_smoothing=self.smoothing)

    def mix_loss(self, vit: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Eq. (3): ``alpha * l_ssl + (1 - alpha) * l_sl``, one backward; with ``shared``,
        one encoder pass feeds both the decoder and the classifier (App. A.2)."""
        if not self.shared:
            return mix_objective(self.ssl_loss(vit, x), self.sl_loss(vit, x, y), self.alpha)
        inner = getattr(vit, "module", vit)
        feats = inner.forward_features(x)
        l_ssl = self.objective.reuse(self._pair(vit), x, feats).mean()
        l_sl = F.cross_entropy(inner.forward_head(feats), y, label_smoothing=self.smoothing)
        return mix_objective(l_ssl, l_sl, self.alpha)

    def loss(self, vit: nn.Module, x: torch.Tensor, y: torch.Tensor | None,
             phase: str) -> torch.Tensor:
        """The loss of one batch in ``phase`` (labels are unused in the SSL phase)."""
        if phase == SSL:
            return self.ssl_loss(vit, x)
        if y is None:
            raise UsageError(f"the {phase} phase needs labels")
        return self.mix_loss(vit, x, y) if phase == MIX else self.sl_loss(vit, x, y)

    def state_dict(self) -> dict[str, Any]:
        """The decoder's weights and the mask stream."""
        return {"decoder": self.decoder.state_dict(),
                "mask_generator": self.objective.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decoder.load_state_dict(state["decoder"])
        self.objective.generator.set_state(state["mask_generator"])


__all__ = ["MixTraining", "SSL", "MIX", "SL"]
