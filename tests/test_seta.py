"""SeTa (Zhou et al., CVPR 2025) as a comparison arm: its rules against hand-computed values
and the official code's behaviour (``mrazhou/SeTa``, ``seta.py``): 1-D k-means clusters and
their easy-to-hard order, the sliding window, the pruning/annealing boundary, partial
annealing, no rescaling, and the matched-cost selection."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixkit.data.sources import Batch
from mixkit.methods.seta import (SeTa, SeTaSettings, kmeans_1d, matched_selection,
                                 pruning_epoch, window, window_size)



def _arm(n: int, epochs: int, settings: SeTaSettings, targets=None) -> SeTa:
    return SeTa(n, epochs, settings, targets=targets)


def test_kmeans_clusters_a_small_score_vector_from_easy_to_hard() -> None:
    # three well-separated groups, shuffled: means 0.15, 5.1, 9.95
    scores = torch.tensor([0.1, 5.0, 0.2, 5.2, 9.9, 10.0, 0.15])
    groups = [sorted(g.tolist()) for g in kmeans_1d(scores, 3)]
    assert groups == [[0, 2, 6], [1, 3], [4, 5]]
    # two clusters: of the contiguous splits of the sorted scores, {0.1, 0.15, 0.2} |
    # {5.0, 5.2, 9.9, 10.0} has the least squares (0.005 + 23.55, by hand; {..5.2} | {9.9, 10}
    # 29.44, {..5.0} | {5.2, ..} 32.7), and Lloyd's reaches it from the quantile seeds
    # (0.15, 9.9) -> (1.3625, 8.367) -> (0.15, 7.525), stable
    two = [sorted(g.tolist()) for g in kmeans_1d(scores, 2)]
    assert two == [[0, 2, 6], [1, 3, 4, 5]]


def test_equal_scores_are_equal_chunks_in_the_given_order() -> None:
    """The official code: ``max == min`` -> ``torch.chunk`` (which may give fewer chunks)."""
    assert [g.tolist() for g in kmeans_1d(torch.full((10,), 3.0), 4)] == [
        [0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert len(kmeans_1d(torch.full((6,), 1.0), 4)) == 3            # 2 + 2 + 2


@pytest.mark.parametrize("scale,w,starts", [
    (0.5, 2, [1, 2, 3, 0, 1, 2]),      # round(2.5) = 2 (half to even); 4 window positions
    (0.6, 3, [1, 2, 0, 1, 2, 0]),      # round(3.0) = 3; 3 positions
    (0.9, 4, [1, 0, 1, 0, 1, 0]),      # round(4.5) = 4; 2 positions
])
def test_the_window_slides_from_easy_to_hard_and_wraps(scale, w, starts) -> None:
    assert window_size(5, scale) == w
    assert window(5, 0, 5, scale) == range(5)                        # k = 0: every cluster
    for k, start in enumerate(starts, start=1):
        assert window(5, k, 5, scale) == range(start, start + w), k


def test_pruning_stops_where_the_official_sampler_stops() -> None:
    """``iterations > num_epochs * delta`` anneals, iterations counting from 1."""
    assert [pruning_epoch(e, 8, 0.875) for e in range(8)] == [True] * 7 + [False]
    assert [pruning_epoch(e, 10, 0.875) for e in range(10)] == [True] * 8 + [False] * 2
    assert [pruning_epoch(e, 4, 0.75) for e in range(4)] == [True] * 3 + [False]


def test_a_pruning_epoch_trains_the_windows_clusters_without_rescaling() -> None:
    """keep 1 (prune_ratio 0), 2 groups, window 0.5 -> w = 1; the second pruning epoch
    (k = 1) keeps cluster 1 % 2 = 1: the hard half."""
    arm = _arm(10, 4, SeTaSettings(prune_ratio=0.0, num_group=2, window_scale=0.5))
    first = arm.plan(0).first
    assert sorted(first.tolist()) == list(range(10))                 # k = 0: everything
    arm.score = torch.tensor([0.1] * 5 + [5.0] * 5)
    assert sorted(arm.plan(1).first.tolist()) == [5, 6, 7, 8, 9]
    # the loss is the plain mean cross-entropy of the batch: no 1 / keep factor
    model = torch.nn.Linear(3, 2)
    model.forward_features = model.forward                           # not used by the arm
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    batch = Batch(x, y, torch.tensor([5, 6, 7, 8]))
    assert torch.allclose(arm.loss(model, batch), F.cross_entropy(model(x), y))
    assert arm.score_new[5:9].tolist() == pytest.approx(
        F.cross_entropy(model(x), y, reduction="none").tolist())     # the scores it records


def test_partial_annealing_trains_a_random_keep_fraction_of_all_samples() -> None:
    arm = _arm(100, 2, SeTaSettings(prune_ratio=0.3, delta=0.5))    # epoch 1 anneals
    arm.plan(0)
    arm.score = torch.linspace(0, 5, 100)                            # not chosen by score
    ids = arm.plan(1).first
    assert ids.numel() == 70 and ids.unique().numel() == 70           # int(0.7 * 100)
    assert arm.close_epoch(1)["seta_window"] == -1
    assert not torch.equal(ids.sort().values, torch.arange(70))


def test_matched_selection_stays_at_or_below_the_target_and_close_to_it() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(1000, generator=g) * 3
    perm = torch.randperm(1000, generator=g)
    s = SeTaSettings()                                                # 5 groups, window 4
    for k, target in ((0, 1000), (1, 650), (2, 700), (3, 500)):
        chosen = matched_selection(scores, perm, k, target, s)
        assert chosen.numel() <= target and chosen.numel() >= 0.97 * target, (k, target)
        assert chosen.unique().numel() == chosen.numel()


def test_matched_arm_follows_the_method_inputs_per_epoch() -> None:
    targets = [200, 130, 140, 150]
    arm = _arm(200, 4, SeTaSettings(delta=0.75), targets=targets)
    got = []
    for e in range(4):
        got.append(arm.plan(e).first.numel())
        arm.score = torch.rand(200, generator=torch.Generator().manual_seed(e))
        arm.close_epoch(e)
    assert got[0] == 200 and got[3] == 150                  # all of epoch 0; annealing exact
    assert all(g <= t for g, t in zip(got, targets))


def test_settings_refuse_an_empty_window() -> None:
    with pytest.raises(ValueError, match="empty window"):
        SeTaSettings(num_group=2, window_scale=0.2)                   # round(0.4) = 0
