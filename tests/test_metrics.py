import numpy as np
import pytest

from neumf.metrics import (
    auc_from_counts,
    hit_and_auc,
    hit_rate_from_counts,
    mrr_from_counts,
    ndcg_from_counts,
    rank_counts,
    ranking_metrics,
)

RANKED = [7, 3, 9, 1, 4, 0]  # 6 items: AUC denominator 5


@pytest.mark.parametrize(
    "test_items, k, expected",
    [
        ([7], 3, (1, 1.0)),          # at position 0
        ([9], 3, (1, 3 / 5)),        # at k - 1
        ([1], 3, (0, 2 / 5)),        # at k: not a hit, AUC still counts
        ([0], 3, (0, 0.0)),          # last
        ([5], 3, (0, 0.0)),          # absent
        ([1, 3], 3, (1, 4 / 5)),     # two test items: hits counted, AUC of the first
        ([3, 9, 7], 3, (3, 1.0)),
        ([7], 0, (0, 1.0)),
    ],
)
def test_hit_and_auc_hand_values(test_items, k, expected):
    hits, auc = hit_and_auc(RANKED, test_items, k)
    assert (hits, auc) == pytest.approx(expected)
    assert isinstance(hits, int) and isinstance(auc, float)


def test_hit_and_auc_rejects_negative_k():
    with pytest.raises(ValueError, match="k must be non-negative"):
        hit_and_auc(RANKED, [7], -1)


def test_rank_counts_and_tie_rule():
    # one target, 6 candidates with scores: target 0.5; 0.9 above; two 0.5 ties; 0.1, 0.2 below
    scores = np.array([[0.9, 0.5, 0.5, 0.5, 0.1, 0.2, 99.0]])
    mask = np.array([[True, True, True, True, True, True, False]])  # 99.0 is seen: excluded
    higher, ties, n = rank_counts(scores, np.array([0.5]), mask)
    assert (higher[0], ties[0], n[0]) == (1, 2, 6)
    # rank 1 + uniform over 3 tied places {1, 2, 3}: in top 2 w.p. 1/3, in top 3 w.p. 2/3
    assert hit_rate_from_counts(higher, ties, 1)[0] == 0.0
    assert hit_rate_from_counts(higher, ties, 2)[0] == pytest.approx(1 / 3)
    assert hit_rate_from_counts(higher, ties, 3)[0] == pytest.approx(2 / 3)
    assert hit_rate_from_counts(higher, ties, 4)[0] == 1.0
    # below: 2 strictly, plus half of 2 ties, out of 5 others
    assert auc_from_counts(higher, ties, n)[0] == pytest.approx(3 / 5)


def test_constant_scores_are_chance():
    scores = np.zeros((3, 100))
    mask = np.ones((3, 100), dtype=bool)
    higher, ties, n = rank_counts(scores, np.zeros(3), mask)
    np.testing.assert_allclose(hit_rate_from_counts(higher, ties, 10), 0.1)
    np.testing.assert_allclose(auc_from_counts(higher, ties, n), 0.5)


def test_auc_undefined_without_other_candidates():
    higher, ties, n = rank_counts(np.array([[1.0, 2.0]]), np.array([1.0]),
                                  np.array([[True, False]]))
    assert np.isnan(auc_from_counts(higher, ties, n)[0])
    assert hit_rate_from_counts(higher, ties, 1)[0] == 1.0


def test_ndcg_and_mrr_hand_values():
    # ranks 0, 2 and 5 without ties
    higher, ties = np.array([0, 2, 5]), np.zeros(3, dtype=int)
    np.testing.assert_allclose(ndcg_from_counts(higher, ties, 3), [1.0, 1 / np.log2(4), 0.0])
    np.testing.assert_allclose(mrr_from_counts(higher, ties), [1.0, 1 / 3, 1 / 6])
    # rank 1 with 2 ties: ranks 1, 2, 3 equally likely
    higher, ties = np.array([1]), np.array([2])
    assert ndcg_from_counts(higher, ties, 3)[0] == pytest.approx(
        (1 / np.log2(3) + 1 / np.log2(4)) / 3)
    assert mrr_from_counts(higher, ties)[0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)


def test_ranking_metrics_constant_model_is_chance():
    n = 200
    higher, ties, num = np.zeros(1, int), np.array([n - 1]), np.array([n])
    metrics = ranking_metrics(higher, ties, num, ks=(10,))
    assert set(metrics) == {"hr@10", "ndcg@10", "auc", "mrr"}
    assert metrics["hr@10"][0] == pytest.approx(10 / n)
    assert metrics["auc"][0] == pytest.approx(0.5)
    assert metrics["mrr"][0] == pytest.approx(np.sum(1 / np.arange(1, n + 1)) / n)
    assert metrics["ndcg@10"][0] == pytest.approx(np.sum(1 / np.log2(np.arange(10) + 2)) / n)
