"""The MixTraining schedule, Eq. (1) and Algorithm 1, as pure functions of (e_ssl, e_sl, rho).

``e_mix = floor(rho * min(e_ssl, e_sl))`` epochs of each objective are merged into one mix phase:
SSL for ``e_ssl - e_mix`` epochs, mix for ``e_mix``, SL for ``e_sl - e_mix``. The SSL+SL baseline
is the same schedule at ``rho = 0`` and the SL baseline the same at ``e_ssl = 0``, so all three
arms of ``mixkit mixtraining`` are one arm class with three schedules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

SSL, MIX, SL = "ssl", "mix", "sl"


def mix_epochs(e_ssl: int, e_sl: int, rho: float) -> int:
    """Eq. (1). ``rho`` is read as the decimal it was written as (0.29 * 100 is 29, not 28)."""
    if e_ssl < 0 or e_sl < 0 or not 0.0 <= rho <= 1.0:
        raise ValueError(f"need e_ssl, e_sl >= 0 and rho in [0, 1]; got {e_ssl}, {e_sl}, {rho}")
    return math.floor(Fraction(repr(float(rho))) * min(e_ssl, e_sl))


@dataclass(frozen=True)
class Schedule:
    """Which phase each epoch of an arm is in."""

    e_ssl: int
    e_sl: int
    rho: float

    @property
    def e_mix(self) -> int:
        return mix_epochs(self.e_ssl, self.e_sl, self.rho)

    @property
    def phases(self) -> list[tuple[str, int]]:
        """``[(phase, epochs), ...]`` in order, Algorithm 1 (phases of zero epochs left out)."""
        m = self.e_mix
        return [(p, n) for p, n in ((SSL, self.e_ssl - m), (MIX, m), (SL, self.e_sl - m)) if n]

    @property
    def epochs(self) -> int:
        """Epochs the arm trains: ``e_ssl + e_sl - e_mix``."""
        return self.e_ssl + self.e_sl - self.e_mix

    @property
    def sl_start(self) -> int:
        """The arm epoch where the SL recipe starts (with the mix phase)."""
        return self.e_ssl - self.e_mix

    def phase_at(self, epoch: int) -> str:
        if not 0 <= epoch < self.epochs:
            raise IndexError(f"epoch {epoch} outside 0..{self.epochs - 1}")
        for phase, n in self.phases:
            if epoch < n:
                return phase
            epoch -= n
        raise AssertionError("unreachable")
