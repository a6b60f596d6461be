"""Selective mixing (mixTrain §4.2): per-sample state on the device and the region rules.

Every sample's loss is recorded from the training forward itself (no extra pass): a single's
own cross-entropy, a split-propagated constituent's own cross-entropy, or a mixed input's
Eq. (4) estimate. At the end of epoch E:

* ``L_corr`` / ``L_incorr`` are running averages of the losses of correctly / incorrectly
  classified unmixed samples — by default cumulative means over every unmixed sample-epoch
  from epoch 0 to E (the paper's "running average from epoch 0"); ``averages="last"`` uses
  epoch E's unmixed samples alone — and ``L_mid = (L_corr + L_incorr) / 2`` (Eq. 7).
* A sample that was **not mixed** in epoch E is placed by its region (§4.2.2: "for samples
  that are not mixed in epoch E, we determine their amenability ... based on the region"):
  Region 1, ``loss < L_mid``, is mixed in E+1; Region 2, ``L_mid <= loss <= L_incorr``, is not;
  Region 3, ``loss > L_incorr``, is mixed in E+1 only if its loss rose since epoch E−1 (k = 1).
* A sample **mixed for Region 1** stays mixed while its own (mixed-forward) loss stays below
  ``L_mid``, and otherwise returns to the unmixed set (§4.2.3).
* A sample **mixed for Region 3** returns to the unmixed set for at least one epoch (§4.2.4).
* ``r3_from="all"`` (the reading of earlier versions) lets mixed samples enter Region 3 too, by
  their mixed-forward loss; ``r1_entry="correct"`` (beyond the paper) lets a sample *enter*
  Region 1 only if it was also classified correctly. See :func:`next_mix`.

Epoch 0 mixes nothing (there is no loss yet). All state lives in device tensors indexed by
sample id, with one extra *trash* slot at index ``N`` that absorbs the writes of rows that have
no second constituent, so recording a batch needs no boolean indexing and no host sync.
"""

from __future__ import annotations

from typing import Any

import torch


NONE, R1, R2, R3 = 0, 1, 2, 3


def thresholds(corr_sum: torch.Tensor, corr_n: torch.Tensor, incorr_sum: torch.Tensor,
               incorr_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L_corr, L_incorr, L_mid)`` from running sums (Eq. 7).

    With no correct sample seen yet ``L_corr = 0``; with no incorrect one ``L_incorr =
    L_corr`` (Region 1 is then "below the average correct loss"). Both happen only in the
    first epochs of a run.
    """
    l_corr = torch.where(corr_n > 0, corr_sum / corr_n.clamp_min(1), torch.zeros_like(corr_sum))
    l_incorr = torch.where(incorr_n > 0, incorr_sum / incorr_n.clamp_min(1), l_corr)
    return l_corr, l_incorr, 0.5 * (l_corr + l_incorr)


def regions(loss: torch.Tensor, l_mid: torch.Tensor, l_incorr: torch.Tensor) -> torch.Tensor:
    """Region of each sample's loss: 1 below ``L_mid``, 3 above ``L_incorr``, else 2."""
    r = torch.full_like(loss, R2, dtype=torch.int8)
    r = torch.where(loss < l_mid, torch.full_like(r, R1), r)
    return torch.where(loss > l_incorr, torch.full_like(r, R3), r)


def next_mix(region: torch.Tensor, loss: torch.Tensor, prev_loss: torch.Tensor,
             why: torch.Tensor, mixed: torch.Tensor, correct: torch.Tensor | None = None,
             r3_from: str = "unmixed") -> torch.Tensor:
    """Why each sample is mixed next epoch: ``R1``, ``R3`` or ``NONE``.

    ``why`` is this epoch's reason and ``mixed`` whether the sample actually trained mixed this
    epoch (an odd one out, or an epoch of ``--final-unmixed-epochs``, trains single).

    * Region 1 mixes: an unmixed sample enters, a mixed one stays while its loss stays below
      ``L_mid`` (§4.2.3); above it, it falls in Region 2/3 and returns to the unmixed set.
    * A sample mixed *for Region 3* this epoch is "brought back" (§4.2.4: "mixed for the next
      epoch, following which it is brought back"), whatever its loss: even one that fell below
      ``L_mid`` trains unmixed for an epoch, and only then may enter Region 1.
    * Region 3 mixes a sample whose loss rose since the previous epoch (k = 1) — by default only
      a sample that trained *unmixed* this epoch (§4.2.2 applies the regions to "samples that are
      not mixed in epoch E"), so one that was just mixed for Region 3 returns (§4.2.4) and a
      mixed one whose split/Eq. (4) loss jumped returns too. ``r3_from="all"``: any sample not
      mixed *for Region 3* this epoch, judged by whatever loss it has.
    * ``correct`` (``--r1-entry correct``, beyond the paper) gates the *entry* into Region 1: a
      sample not mixed for Region 1 this epoch enters only if it was also classified correctly —
      §4.2.2's premise that Region 1 holds the "likely correct" samples, enforced where the loss
      threshold alone does not separate them (a barely trained model).
    """
    rose = (region == R3) & (loss > prev_loss)
    r3 = rose & (~mixed if r3_from == "unmixed" else why != R3)
    back = mixed & (why == R3)      # §4.2.4: mixed for Region 3 -> unmixed next epoch, always
    r1 = (region == R1) & ~back
    if correct is not None:
        r1 = r1 & (correct | (mixed & (why == R1)))
    out = torch.where(r1, torch.full_like(why, R1), torch.full_like(why, NONE))
    return torch.where(r3, torch.full_like(why, R3), out)


def below_mid(loss: torch.Tensor, correct: torch.Tensor, mixed: torch.Tensor,
              l_mid: torch.Tensor) -> torch.Tensor:
    """Fig. 6's check of the ``L_mid`` boundary, over the samples trained unmixed this epoch:
    ``[correct below L_mid, correct, incorrect below L_mid, incorrect]`` (counts). The paper
    reports > 95 % of the correct and < 10 % of the incorrect samples below ``L_mid``."""
    below = loss < l_mid
    ok, bad = correct & ~mixed, ~correct & ~mixed
    return torch.stack([(below & ok).sum(), ok.sum(), (below & bad).sum(), bad.sum()])


class SelectionState:
    """Per-sample selection state for ``n`` samples, on ``device`` (§4.2): each sample's last
    loss and correctness, whether it is mixed this epoch and why, its region, and the sums
    behind L_corr / L_incorr. (Named apart from the engine's ``TrainState`` and from the
    checkpoint dicts: three different things.)"""

    def __init__(self, n: int, device: torch.device, averages: str = "cumulative",
                 r1_entry: str = "loss", r3_from: str = "unmixed") -> None:
        self.n, self.averages, self.r1_entry, self.r3_from = n, averages, r1_entry, r3_from
        f32 = dict(device=device, dtype=torch.float32)
        self.loss = torch.full((n + 1,), float("inf"), **f32)       # last finished epoch
        self.prev_loss = torch.full((n + 1,), float("inf"), **f32)  # the epoch before
        self.loss_new = torch.zeros(n + 1, **f32)                   # the epoch in progress
        self.correct = torch.zeros(n + 1, device=device, dtype=torch.bool)
        self.mixed = torch.zeros(n + 1, device=device, dtype=torch.bool)    # this epoch
        self.why = torch.zeros(n + 1, device=device, dtype=torch.int8)      # this epoch's mix
        self.region = torch.zeros(n + 1, device=device, dtype=torch.int8)   # last computed
        self.sums = torch.zeros(4, device=device, dtype=torch.float64)
        # corr_sum, corr_n, incorr_sum, incorr_n: from epoch 0 on, and of this epoch alone
        self.epoch_sums = torch.zeros_like(self.sums)
        # sum of per-epoch L_corr means, epochs with one, the same for L_incorr (``epochs``)
        self.mean_sums = torch.zeros_like(self.sums)

    _STATE = ("loss", "prev_loss", "loss_new", "correct", "mixed", "why", "region", "sums",
              "epoch_sums", "mean_sums")

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).clone() for k in self._STATE}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        # checkpoints from before the ``mixed`` table: rebuild it from ``why`` (this epoch's
        # plan). Exact at an epoch boundary (the table is cleared when an epoch begins);
        # mid-epoch, up to an odd-one-out single, and rows not yet trained are overwritten.
        state = {"mixed": state["why"] != NONE, "mean_sums": torch.zeros_like(self.sums),
                 **state}
        for k in self._STATE:
            setattr(self, k, state[k].to(getattr(self, k).device))

    # --- per batch (no host sync) ------------------------------------------------------------
    def record(self, ids: torch.Tensor, loss: torch.Tensor, correct: torch.Tensor,
               unmixed: torch.Tensor) -> None:
        """Store this epoch's loss/correctness of ``ids``; unmixed rows feed the averages."""
        loss = loss.detach().float()
        self.loss_new[ids] = loss
        self.correct[ids] = correct
        self.mixed[ids] = ~unmixed
        u = unmixed.to(torch.float64)
        c = correct.to(torch.float64)
        l64 = loss.to(torch.float64)
        self.epoch_sums += torch.stack([(l64 * c * u).sum(), (c * u).sum(),
                                        (l64 * (1 - c) * u).sum(), ((1 - c) * u).sum()])

    def slot(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``ids`` where ``keep``, else the trash slot ``n`` (write-only, never read)."""
        return torch.where(keep, ids, torch.full_like(ids, self.n))

    # --- per epoch ---------------------------------------------------------------------------
    def begin_epoch(self) -> None:
        """Clear the epoch's records (every sample is recorded once per epoch, on one rank)."""
        self.loss_new.zero_()
        self.correct.zero_()
        self.mixed.zero_()

    def all_reduce(self, reduce_sum) -> None:
        """Combine the ranks' records of this epoch (DDP): each sample was trained on exactly one
        rank, so a sum of the per-index tables (zero elsewhere) is the whole epoch's."""
        correct, mixed = self.correct.to(torch.int32), self.mixed.to(torch.int32)
        reduce_sum(self.loss_new, correct, mixed, self.epoch_sums)
        self.correct, self.mixed = correct > 0, mixed > 0

    def end_epoch(self) -> dict[str, Any]:
        """Roll the losses over, recompute thresholds and regions, choose next epoch's mix."""
        self.sums += self.epoch_sums
        e = self.epoch_sums
        has = torch.stack([e[1] > 0, e[3] > 0]).to(e.dtype)
        self.mean_sums += torch.stack([e[0] / e[1].clamp_min(1) * has[0], has[0],
                                       e[2] / e[3].clamp_min(1) * has[1], has[1]])
        self.prev_loss, self.loss = self.loss, self.loss_new.clone()
        l_corr, l_incorr, l_mid = thresholds(*self._threshold_sums())
        self.epoch_sums.zero_()
        self.region = regions(self.loss, l_mid, l_incorr)
        reasons = torch.stack([(self.mixed & (self.why == R1))[: self.n].sum(),
                               (self.mixed & (self.why == R3))[: self.n].sum()])
        gate = self.correct if self.r1_entry == "correct" else None
        self.why = next_mix(self.region, self.loss, self.prev_loss, self.why, self.mixed, gate,
                            self.r3_from)
        self.why[self.n] = NONE
        n, reg = self.n, self.region[: self.n]
        parts = [torch.stack([(reg == R1).sum(), (reg == R2).sum(), (reg == R3).sum()]),
                 below_mid(self.loss[:n], self.correct[:n], self.mixed[:n], l_mid),
                 below_mid(self.loss[:n], self.correct[:n],
                           torch.zeros_like(self.mixed[:n]), l_mid),      # every sample
                 torch.stack([l_corr, l_incorr, l_mid]), reasons]
        stats = torch.cat([t.to(torch.float64) for t in parts]).tolist()   # one host read
        (r1, r2, r3, ok_below, ok, bad_below, bad, a_ok_below, a_ok, a_bad_below, a_bad,
         l_corr, l_incorr, l_mid, m1, m3) = stats
        share = lambda k, m: k / m if m else None  # noqa: E731
        return {"region_counts": {"r1": int(r1), "r2": int(r2), "r3": int(r3)},
                "mixed_counts": {"r1": int(m1), "r3": int(m3)},
                "l_corr": l_corr, "l_incorr": l_incorr, "l_mid": l_mid,
                "correct_below_mid": share(ok_below, ok),
                "incorrect_below_mid": share(bad_below, bad),
                "correct_below_mid_all": share(a_ok_below, a_ok),
                "incorrect_below_mid_all": share(a_bad_below, a_bad)}

    def _threshold_sums(self) -> torch.Tensor:
        """``cumulative``: every unmixed sample-epoch so far (the paper). ``last``: this epoch's
        unmixed samples, falling back to the cumulative figure where this epoch has none.
        ``epochs`` (beyond the paper): the mean of the per-epoch means, so epoch 0's near-chance
        losses weigh one epoch, not the ~all-unmixed sample count of the first epochs."""
        if self.averages == "cumulative":
            return self.sums
        if self.averages == "epochs":
            return self.mean_sums
        s, e = self.sums, self.epoch_sums
        has = torch.stack([e[1], e[1], e[3], e[3]]) > 0
        return torch.where(has, e, s)

    def mix_mask(self) -> torch.Tensor:
        """Samples chosen for mixing in the coming epoch."""
        return self.why[: self.n] != NONE

    def naive(self, fraction: float, generator: torch.Generator) -> None:
        """``--no-selective``: a random ``fraction`` of the dataset is mixed (naive mixing)."""
        pick = torch.randperm(self.n, generator=generator)[: int(round(fraction * self.n))]
        why = torch.zeros(self.n + 1, dtype=torch.int8)
        why[pick] = R1
        self.why = why.to(self.why.device)
