"""SeTa (Zhou et al., "Scale Efficient Training for Large Datasets", CVPR 2025), as a comparison
arm: dynamic data pruning by loss clusters and a sliding window, this year's alternative to
InfoBatch (both wrap the dataset in three lines; code ``mrazhou/SeTa``, ``seta.py``).

Per epoch, as the official code does it:

* every sample's *score* is its loss from the last epoch it was trained in (the training
  forward's own cross-entropy, no extra pass), 3.0 before the first; pruned samples keep
  their old score (InfoBatch's bookkeeping);
* **a pruning epoch** (``e + 1 <= delta * E``; ``k`` = the number of earlier pruning epochs):
  1. keep a uniform random ``int(N * keep)`` of the samples, ``keep = clip(1 - prune_ratio,
     0.1, 1)``;
  2. cluster the kept samples' scores with 1-D k-means into ``num_group`` clusters, ordered
     from easy (low loss) to hard (equal scores: equal chunks, ``torch.chunk``);
  3. **sliding window**: at ``k = 0`` every cluster; otherwise ``w = round(num_group *
     window_scale)`` (Python's rounding), ``start = k mod (num_group - w + 1)``, and the
     clusters ``[start, start + w)`` — the window slides from easy to hard and wraps;
  4. train on the plain mean of the losses: **no rescaling** (the bias is SeTa's curriculum,
     unlike InfoBatch's ``1 / (1 - r)``);
* **partial annealing** (the last ``1 - delta`` of the epochs): a random ``keep`` fraction of
  all samples, not the full data.

What differs from the official code, and why (``docs/mixtrain.md``):

* **k-means**: the official code calls scikit-learn's ``KMeans(random_state=0)`` (k-means++
  seeding, Lloyd's iterations). Here it is Lloyd's algorithm on the sorted 1-D scores from
  quantile seeds, in torch: deterministic with no seed at all, the same on every DDP rank
  (the scores are synced at epoch end), and exact 1-D clusters are contiguous score ranges.
  Both reach a local optimum of the same objective; on well-separated scores they agree
  (tested on hand-computed clusters).
* **matched cost** (``prune_ratio=None``, the default of the comparison arm): every arm of
  ``--compare`` trains on the method's measured inputs. SeTa does not set its saving directly
  (it follows from the cluster sizes), so ``keep`` is tuned *per epoch*: the largest number of
  randomly kept samples whose window selection is at most the method's inputs of that epoch
  (a bisection over the kept count, each step one 1-D k-means of at most ``N`` scores, on the
  host, once per epoch); annealing epochs keep exactly that many. Everything else is the
  published rule. A number for ``prune_ratio`` runs SeTa's own fixed rule instead, and its
  cost is reported as measured.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from mixkit.data.plan import EpochPlan
from mixkit.data.sources import Batch
from mixkit.engine.distributed import Dist
from mixkit.engine.optim import Recipe
from mixkit.methods.settings import check_settings, setting
from mixkit.methods.infobatch import ScoredMethod, pruning_epoch
from mixkit.methods.method import MethodArm
from mixkit.methods.supervised import smoothed

INITIAL_SCORE = 3.0        # the official code's; any constant is the same (epoch 0 sees ties)
KEEP_MIN = 0.1             # keep = clip(1 - prune_ratio, 0.1, 1), as the official code
KMEANS_ITERS = 100


@dataclass(frozen=True)
class SeTaSettings:
    """SeTa's options, with the official names. The defaults are the official CIFAR script's
    grouping (``num_group`` 5, ``window_scale`` 0.9: a window of 4 of 5 clusters) with ``keep``
    matched to the method's inputs: the class defaults (10 groups, window 0.5) select about
    half of the kept samples in every pruning epoch, below any mixTrain epoch's inputs (~65 %),
    so at matched cost they could not be compared at all."""

    prune_ratio: float | None = setting(
        None, "SeTa's prune_ratio (keep = clip(1 - r, 0.1, 1) random samples before "
        "clustering). Default: keep tuned per epoch so SeTa trains on the method's inputs; a "
        "number runs SeTa's own fixed rule (official CIFAR script: 0.1) at its own cost.",
        min=0.0, max=0.99)
    num_group: int = setting(5, "SeTa's num_group: loss clusters per pruning epoch (1-D "
                             "k-means; official CIFAR script: 5, class default: 10).",
                             min=1, max=1000)
    window_scale: float = setting(
        0.9, "SeTa's window_scale: the sliding window keeps round(num_group * window_scale) "
        "clusters, easy to hard (official CIFAR script: 0.9, class default: 0.5).", gt=0.0,
        max=1.0)
    delta: float = setting(0.875, "SeTa's delta: prune in the first delta of the epochs, then "
                           "partial annealing (a random keep fraction).", gt=0.0, max=1.0)

    def __post_init__(self) -> None:
        check_settings(self)
        if window_size(self.num_group, self.window_scale) < 1:
            raise ValueError(f"window_scale {self.window_scale} with num_group "
                             f"{self.num_group} gives an empty window (round(num_group * "
                             "window_scale) must be at least 1)")

    @property
    def keep(self) -> float | None:
        """The official ``keep_ratio``, or None when matched per epoch."""
        if self.prune_ratio is None:
            return None
        return min(1.0, max(KEEP_MIN, 1.0 - self.prune_ratio))


# ------------------------------------------------------------------------------------------
# the pure rules (tested by hand)
# ------------------------------------------------------------------------------------------


def window_size(num_group: int, window_scale: float) -> int:
    """``round(num_group * window_scale)`` with Python's rounding (half to even: 2.5 -> 2)."""
    return round(num_group * window_scale)


def window(num_groups: int, k: int, num_group: int, window_scale: float) -> range:
    """The clusters a pruning epoch keeps: all of them at ``k = 0``, else ``w`` consecutive
    ones starting at ``k mod (num_group - w + 1)`` (``slide_easy2hard``). ``num_groups`` is how
    many clusters there are (fewer than ``num_group`` when equal scores were chunked)."""
    if k == 0:
        return range(num_groups)
    w = window_size(num_group, window_scale)
    start = k % (num_group - w + 1)
    return range(min(start, num_groups), min(start + w, num_groups))


def kmeans_1d(scores: torch.Tensor, k: int, iters: int = KMEANS_ITERS) -> list[torch.Tensor]:
    """1-D k-means of ``scores`` ``[m]`` into at most ``k`` clusters, ordered from the lowest
    mean to the highest; each cluster is the tensor of *positions* into ``scores``.

    Lloyd's algorithm on the sorted scores, seeded at the quantiles ``(j + 1/2) / k``: in one
    dimension every cluster is a contiguous run of the sorted scores, so an assignment is the
    ``k - 1`` boundaries (midpoints between neighbouring centres), found with one
    ``searchsorted``. A cluster left empty is re-seeded at the score farthest from its
    centre. All scores equal: ``k`` equal chunks in the given order (``torch.chunk``, as the
    official code)."""
    m = scores.numel()
    if k <= 1 or m == 0:
        return [torch.arange(m)]
    if bool(scores.max() == scores.min()):
        return list(torch.chunk(torch.arange(m), k))
    values, order = torch.sort(scores.double(), stable=True)
    centres = values[((torch.arange(k, dtype=torch.float64) + 0.5) / k * m).long()
                     .clamp_max(m - 1)].clone()
    label = None
    for _ in range(iters):
        centres, _ = torch.sort(centres)
        bounds = (centres[1:] + centres[:-1]) / 2
        new = torch.searchsorted(bounds, values, right=True)
        counts = torch.bincount(new, minlength=k)
        if bool((counts == 0).any()):
            far = (values - centres[new]).abs().argmax()
            centres[int(torch.nonzero(counts == 0)[0])] = values[far]
            continue
        if label is not None and torch.equal(new, label):
            break
        label = new
        centres = torch.bincount(new, weights=values, minlength=k) / counts
    if label is None:                                     # every try left a cluster empty
        label = torch.searchsorted((centres[1:] + centres[:-1]) / 2, values, right=True)
    return [order[label == j] for j in range(k) if bool((label == j).any())]


def select(scores: torch.Tensor, candidates: torch.Tensor, k: int,
           settings: SeTaSettings) -> torch.Tensor:
    """The sample ids a pruning epoch trains on: ``candidates`` (the randomly kept ids, in
    their random order) clustered by score, and the window's clusters. Empty: one sample."""
    groups = kmeans_1d(scores[candidates], settings.num_group)
    keep = window(len(groups), k, settings.num_group, settings.window_scale)
    chosen = [candidates[groups[g]] for g in keep]
    return torch.cat(chosen) if chosen else candidates[:1]


def matched_selection(scores: torch.Tensor, perm: torch.Tensor, k: int, target: int,
                      settings: SeTaSettings, tolerance: float = 0.005,
                      tries: int = 8) -> torch.Tensor:
    """The window selection of a kept prefix ``perm[:m]`` (``m >= 0.1 N``) holding at most
    ``target`` samples and as close to it as a few tries find (within ``tolerance``).

    The selection grows about in proportion to ``m`` (a uniform random prefix has the same
    score distribution, so the window keeps about the same share of it), so ``m`` is corrected
    by ``target / selected`` each try: two or three 1-D k-means a pruning epoch, not a full
    bisection. If every sample kept selects fewer than ``target`` (the window drops a large
    cluster), that selection is SeTa's epoch: its cost is then below the method's."""
    n = perm.numel()
    m_min = max(1, math.ceil(KEEP_MIN * n))
    full = select(scores, perm, k, settings)
    if full.numel() <= target:
        return full
    best: torch.Tensor | None = None    # the largest selection <= target found so far
    m, got = n, full.numel()            # the last prefix tried and what it selected
    lo, hi = m_min, n - 1               # where the prefix sought lies
    for _ in range(tries):
        step = min(hi, max(lo, math.floor(m * target / max(got, 1))))
        m = step if step != m else (lo + hi) // 2          # no progress: halve the bracket
        chosen = select(scores, perm[:m], k, settings)
        got = chosen.numel()
        if got <= target:
            if best is None or got > best.numel():
                best = chosen
            if got >= (1 - tolerance) * target:
                break
            lo = m + 1
        else:
            hi = m - 1
        if lo > hi:
            break
    return best if best is not None else select(scores, perm[:m_min], k, settings)


# ------------------------------------------------------------------------------------------
# the arm
# ------------------------------------------------------------------------------------------


class SeTa(ScoredMethod):
    """Supervised training on SeTa's epoch selections (see the module doc). ``settings`` (or
    its fields as keywords: ``SeTa(n, epochs, prune_ratio=0.1)``); ``targets``: the inputs per
    epoch to match (another run's cost), used when ``settings.prune_ratio`` is None."""

    name = "seta"

    def __init__(self, num_samples: int, epochs: int, settings: SeTaSettings | None = None, *,
                 targets: Sequence[int] | None = None, **kwargs: Any) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs)
                   if k in {f.name for f in dataclasses.fields(SeTaSettings)}}
        if settings is None:
            settings = SeTaSettings(**{"prune_ratio": 0.1, **options})
        elif options:
            settings = dataclasses.replace(settings, **options)
        super().__init__(num_samples, epochs=epochs, **kwargs)
        if settings.prune_ratio is None and (targets is None or len(targets) < epochs):
            raise ValueError("matched SeTa (prune_ratio None) needs a target per epoch")
        self.settings, self.targets = settings, targets
        self.init_scores(INITIAL_SCORE)
        self.k = 0                                             # pruning epochs so far
        self.window_k, self.selected, self.keep = -1, 0, 1.0   # this epoch's, for its row

    def note(self) -> str:
        return f"kept {self.keep:.0%}"

    def own_state(self) -> dict[str, Any]:
        return {**self.score_state(), "k": self.k,
                "stats": [self.window_k, self.selected, self.keep]}

    def load_own_state(self, state: dict[str, Any]) -> None:
        self.load_score_state(state)
        self.k = int(state["k"])
        self.window_k, self.selected, self.keep = state["stats"]

    def _ids(self, epoch: int) -> torch.Tensor:
        """This epoch's sample ids (unshuffled), from one host copy of the scores."""
        s, n = self.settings, self.num_samples
        perm = torch.randperm(n, generator=self.plan_generator)
        target = self.targets[epoch] if s.keep is None else int(n * s.keep)
        if not pruning_epoch(epoch, self.epochs, s.delta):     # partial annealing
            self.window_k = -1
            return perm[:max(1, min(target, n))]
        scores = self.score.cpu()                              # the epoch's one host read
        if s.keep is None:
            chosen = matched_selection(scores, perm, self.k, target, s)
        else:
            chosen = select(scores, perm[:int(n * s.keep)], self.k, s)
        self.window_k, self.k = self.k, self.k + 1
        return chosen

    def plan(self, epoch: int) -> EpochPlan:
        self.begin_scores()
        ids = self._ids(epoch)
        self.selected, self.keep = int(ids.numel()), ids.numel() / self.num_samples
        return self.shuffled_plan(ids)

    def compute_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """The plain mean cross-entropy (no rescaling); the rows' losses become scores."""
        logits, ce = self.scored_ce(model, batch)
        return smoothed(ce, logits, self.smoothing).mean()

    def close_epoch(self, epoch: int) -> dict[str, Any]:
        """Trained samples take their new score; the others keep theirs (the official code)."""
        self.end_scores()
        # the fraction trained, and which window (k; -1: an annealing epoch)
        return {"seta_kept": self.keep, "seta_window": self.window_k}


class SeTaArm(MethodArm):
    """The CLI's ``seta`` comparison arm: :class:`SeTa`, matched to ``targets`` unless
    ``settings.prune_ratio`` is set."""

    def __init__(self, name: str, epochs: int, num_samples: int, recipe: Recipe,
                 plan_generator: torch.Generator, settings: SeTaSettings, device: torch.device,
                 targets: list[int] | None = None, dist: Dist = Dist(),
                 smoothing: float = 0.0) -> None:
        method = SeTa(num_samples, epochs, settings, targets=targets, device=device, dist=dist,
                      smoothing=smoothing, generator=plan_generator)
        super().__init__(name, method, epochs, recipe)
