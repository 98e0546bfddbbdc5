"""Ranking metrics in NumPy: the tutorial's ``hit_and_auc`` and tie-aware rank counts."""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

__all__ = [
    "auc_from_counts",
    "hit_and_auc",
    "hit_rate_from_counts",
    "mrr_from_counts",
    "ndcg_from_counts",
    "rank_counts",
    "popularity_percentiles",
    "ranking_metrics",
    "top_k",
]


def hit_and_auc(rankedlist: Sequence[int], test_matrix: Sequence[int], k: int) -> Tuple[int, float]:
    """Hits in the top ``k`` and the AUC of a ranked list, as the tutorial defines them.

    Parameters
    ----------
    rankedlist
        Item ids, best first.
    test_matrix
        The user's test item ids (the tutorial's name).
    k
        Cut-off.

    Returns
    -------
    ``(hits, auc)``: how many test items are among the first ``k`` entries,
    and ``(n - 1 - p) / (n - 1)`` where ``p`` is the 0-based position of the
    first test item in the list of ``n`` items (0.0 if none is there). A
    one-item list gives AUC 1.0 when that item is a test item.
    """
    if k < 0:
        raise ValueError(f"k must be non-negative; got {k}")
    ranked = np.asarray(rankedlist)
    hit_positions = np.flatnonzero(np.isin(ranked, np.asarray(test_matrix)))
    hits = int(np.count_nonzero(hit_positions < k))
    if hit_positions.size == 0:
        return hits, 0.0
    last = len(ranked) - 1
    return hits, float((last - hit_positions[0]) / last) if last else 1.0


def rank_counts(
    scores: np.ndarray, target_scores: np.ndarray, candidate_mask: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each target stands among its candidates.

    Parameters
    ----------
    scores
        Shape (n, num_items): the scores of all items for each of ``n`` targets.
    target_scores
        Shape (n,): the score of each target item.
    candidate_mask
        Shape (n, num_items), bool: the items the target is ranked against,
        the target itself included.

    Returns
    -------
    ``(higher, ties, num_candidates)``, each shape (n,): candidates scoring
    strictly above the target, candidates other than the target scoring exactly
    the same, and the number of candidates.
    """
    target = np.asarray(target_scores)[:, None]
    higher = np.count_nonzero((scores > target) & candidate_mask, axis=1)
    ties = np.count_nonzero((scores == target) & candidate_mask, axis=1) - 1
    return higher, ties, np.count_nonzero(candidate_mask, axis=1)


def hit_rate_from_counts(higher: np.ndarray, ties: np.ndarray, k: int) -> np.ndarray:
    """Probability that each target lands in the top ``k`` when ties are broken
    uniformly at random: ``clip((k - higher) / (ties + 1), 0, 1)``.

    Without ties this is 1 for a target at 0-based rank below ``k``, else 0. A
    model that scores every item equally gets ``k / num_candidates``: chance.
    """
    higher = np.asarray(higher, dtype=np.float64)
    ties = np.asarray(ties, dtype=np.float64)
    return np.clip((k - higher) / (ties + 1.0), 0.0, 1.0)


def auc_from_counts(higher: np.ndarray, ties: np.ndarray, num_candidates: np.ndarray) -> np.ndarray:
    """Fraction of the other candidates ranked below each target, ties counting
    one half (the expectation under random tie-breaking, Mann-Whitney's rule).

    Without ties this is the tutorial's ``(n - 1 - rank) / (n - 1)``; constant
    scores give 0.5. NaN where the target has no other candidate.
    """
    others = np.asarray(num_candidates, dtype=np.float64) - 1.0
    below = others - np.asarray(higher, dtype=np.float64) - np.asarray(ties, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(others > 0, (below + 0.5 * np.asarray(ties)) / others, np.nan)


def _expected_over_ties(prefix: np.ndarray, higher: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Mean of ``gain[r]`` over the 0-based ranks ``higher .. higher + ties``,
    given ``prefix[n] = gain[0] + ... + gain[n - 1]``."""
    last = len(prefix) - 1
    upper = np.minimum(higher + ties + 1, last)
    lower = np.minimum(higher, last)
    return (prefix[upper] - prefix[lower]) / (ties + 1.0)


def ndcg_from_counts(higher: np.ndarray, ties: np.ndarray, k: int) -> np.ndarray:
    """NDCG at ``k`` of one relevant item, ``1 / log2(rank + 2)`` inside the top
    ``k`` (0-based rank), in expectation over random tie-breaking."""
    higher = np.asarray(higher, dtype=np.int64)
    ties = np.asarray(ties, dtype=np.int64)
    prefix = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    return _expected_over_ties(prefix, higher, ties)


def mrr_from_counts(higher: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Reciprocal rank ``1 / (rank + 1)`` (0-based rank, no cut-off), in
    expectation over random tie-breaking."""
    higher = np.asarray(higher, dtype=np.int64)
    ties = np.asarray(ties, dtype=np.int64)
    size = int((higher + ties).max(initial=0)) + 1
    prefix = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1.0, size + 1.0))])
    return _expected_over_ties(prefix, higher, ties)


def ranking_metrics(higher: np.ndarray, ties: np.ndarray, num_candidates: np.ndarray,
                    ks: Sequence[int] = (10, 50)) -> Dict[str, np.ndarray]:
    """Per-target ``hr@k`` and ``ndcg@k`` for each ``k``, ``auc`` and ``mrr``, all
    under the one tie rule (ties broken uniformly at random, in expectation)."""
    metrics: Dict[str, np.ndarray] = {}
    for k in ks:
        metrics[f"hr@{k}"] = hit_rate_from_counts(higher, ties, k)
        metrics[f"ndcg@{k}"] = ndcg_from_counts(higher, ties, k)
    metrics["auc"] = auc_from_counts(higher, ties, num_candidates)
    metrics["mrr"] = mrr_from_counts(higher, ties)
    return metrics


def top_k(scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best columns (best first; ties by column order) and
    their scores, by partial selection: no full sort of each row."""
    top = min(k, scores.shape[1])
    best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    order = np.lexsort((best, -np.take_along_axis(scores, best, axis=1)), axis=1)
    best = np.take_along_axis(best, order, axis=1)
    return best, np.take_along_axis(scores, best, axis=1)


def popularity_percentiles(counts: np.ndarray) -> np.ndarray:
    """Each item's popularity percentile (0-100): the share of items with fewer
    interactions, ties counting one half."""
    counts = np.asarray(counts)
    ordered = np.sort(counts)
    below = np.searchsorted(ordered, counts, side="left")
    ties = np.searchsorted(ordered, counts, side="right") - below - 1
    return 100.0 * (below + 0.5 * ties) / max(len(counts) - 1, 1)
