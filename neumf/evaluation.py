"""Ranking evaluation over arrays: every test pair's item ranked against all the
items its user did not train on (the full protocol) or against its sampled
negatives (the sampled protocol), under one tie rule (:mod:`neumf.metrics`)."""

from __future__ import annotations

from typing import Dict, List, Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon, use_np

from ._util import check_int, check_number
from .devices import split_and_load
from .interactions import RecData, SeenIndex
from .metrics import popularity_percentiles, rank_counts, ranking_metrics, top_k

__all__ = ["ACTIVITY_BUCKETS", "BYTES_PER_PAIR", "DEFAULT_MAX_PAIRS", "RankingEvaluator",
           "catalogue_metrics", "evaluate_model", "metric_names", "score_pairs", "score_users"]

# Pairs scored per block of users: 16 MiB of float32 scores (ML-100K in one block).
DEFAULT_MAX_PAIRS = 1 << 22
# Pairs per forward pass of the network: each holds every layer's activations.
FORWARD_PAIRS = 1 << 18
# Peak bytes per (user, item) pair of a full-ranking block: the scores, their
# gathered copy, candidate and comparison masks, with headroom for temporaries.
BYTES_PER_PAIR = 32
# Test users by training interactions: the lowest, middle and top third.
ACTIVITY_BUCKETS = ("cold", "warm", "heavy")
# Sampled protocol: score only the candidates when the catalogue is this many
# times larger than a row of them (else one score matrix per user is cheaper).
PAIRWISE_RATIO = 8


def _as_numpy(array) -> np.ndarray:
    return array.asnumpy() if hasattr(array, "asnumpy") else np.asarray(array)


@use_np
def score_users(
    net: gluon.Block,
    user_ids: np.ndarray,
    num_items: int,
    devices: Sequence[mx.Context],
    seq=None,
    *,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> np.ndarray:
    """Scores of every item for each user, through the network in large batches,
    or by the network's own ``score_matrix(user_ids)`` when it has one (NeuMF).

    Parameters
    ----------
    net
        Called as ``net(users, items)``, or ``net(users, seq_rows, items)``
        when ``seq`` is given; returns scores of shape (batch, 1) or (batch,).
    user_ids
        Shape (n,), 0-based.
    num_items
        Items ``0 .. num_items - 1`` are scored.
    devices
        Contexts the pairs are split across.
    seq
        Optional per-user input rows (the tutorial's ``seq``), indexed by user id.
    max_pairs
        Upper bound on the (user, item) pairs in one forward pass.

    Returns
    -------
    Shape (n, num_items), float32.
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    if seq is None and callable(getattr(net, "score_matrix", None)):
        return net.score_matrix(user_ids)  # the block knows a faster way than pairs
    seq_np = None if seq is None else _as_numpy(seq)
    users_per_pass = max(1, max_pairs // num_items)
    all_items = np.arange(num_items, dtype=np.int32)
    blocks = []
    for start in range(0, len(user_ids), users_per_pass):
        block = user_ids[start:start + users_per_pass]
        pair_users = np.repeat(block, num_items)
        inputs = [pair_users.astype(np.int32)]
        if seq_np is not None:
            inputs.append(seq_np[pair_users])
        inputs.append(np.tile(all_items, len(block)))
        blocks.append(_forward(net, inputs, devices, max_pairs).reshape(len(block), num_items))
    if not blocks:
        return np.zeros((0, num_items), dtype=np.float32)
    return np.concatenate(blocks)


@use_np
def _forward(net: gluon.Block, columns: Sequence[np.ndarray], devices: Sequence[mx.Context],
             max_pairs: int) -> np.ndarray:
    """``net(*columns)`` in batches of at most ``max_pairs`` rows split across
    ``devices``; shape (rows,), float32."""
    out = np.empty(len(columns[0]), dtype=np.float32)
    for start in range(0, len(out), max_pairs):
        batch = [np.asarray(values[start:start + max_pairs]) for values in columns]
        shards = split_and_load([mx.np.array(values, dtype=values.dtype) for values in batch],
                                devices)
        out[start:start + max_pairs] = np.concatenate(
            [net(*shard).asnumpy().reshape(-1) for shard in zip(*shards)])
    return out


def score_pairs(net: gluon.Block, users: np.ndarray, items: np.ndarray,
                devices: Sequence[mx.Context], *, max_pairs: int = FORWARD_PAIRS
                ) -> np.ndarray:
    """Scores of the given (user, item) pairs through the network, in batches of
    at most ``max_pairs`` split across ``devices``; shape (n,), float32."""
    return _forward(net, [np.asarray(users, dtype=np.int32), np.asarray(items, dtype=np.int32)],
                    devices, max_pairs)


def _by_pairs(net: gluon.Block, num_items: int, negatives: np.ndarray | None) -> bool:
    """Whether the sampled protocol scores only its pairs (a catalogue much
    larger than a row of negatives) rather than whole rows of users' scores
    (which a block with ``score_by_rows``, such as EASE, always prefers)."""
    return negatives is not None and not getattr(net, "score_by_rows", False) \
        and num_items > PAIRWISE_RATIO * (negatives.shape[1] + 1)


def metric_names(ks: Sequence[int]) -> List[str]:
    """The keys :func:`evaluate_model` returns for cut-offs ``ks``."""
    return [f"{kind}@{k}" for k in ks for kind in ("hr", "ndcg")] + ["auc", "mrr"]


def evaluate_model(
    net: gluon.Block,
    test_users: np.ndarray,
    test_items: np.ndarray,
    seen_users: np.ndarray,
    seen_items: np.ndarray,
    num_items: int,
    devices: Sequence[mx.Context],
    *,
    negatives: np.ndarray | None = None,
    ks: Sequence[int] = (10, 50),
    max_pairs: int = DEFAULT_MAX_PAIRS,
    memory_mb: float | None = None,
    beyond_accuracy: bool = False,
) -> Dict[str, float]:
    """``hr@k`` and ``ndcg@k`` for each ``k``, ``auc`` and ``mrr``, averaged over
    the test pairs (one per user under leave-last-out).

    Parameters
    ----------
    test_users, test_items, seen_users, seen_items
        The held-out pairs, shape (n,), and the training pairs (not ranked
        under the full protocol), 0-based.
    num_items, devices
        Catalogue size; contexts to score on.
    negatives
        Shape (n, m): the sampled protocol, each test item ranked against its
        row (-1 pads shorter rows); ``None``: the full protocol, against every
        item the user did not train on.
    ks, max_pairs, memory_mb
        Cut-offs; (user, item) scores held at once, or a memory bound for them
        (about :data:`BYTES_PER_PAIR` bytes a pair).
    beyond_accuracy
        Also ``hr@k_cold``/``_warm``/``_heavy`` (test users in thirds by training
        interactions) and :func:`catalogue_metrics` of their top-k lists.

    Ties are broken at random, in expectation; a test item its user trained on
    is a miss; a metric is averaged where defined.
    """
    test_users = np.asarray(test_users, dtype=np.int64)
    test_items = np.asarray(test_items, dtype=np.int64)
    ks, max_pairs, negatives = _checked_options(ks, num_items, max_pairs, memory_mb,
                                                negatives, len(test_users))
    per_pair = {name: np.zeros(len(test_users)) for name in metric_names(ks)}
    if len(test_users) == 0:
        return _means(per_pair)
    seen = SeenIndex.from_pairs(seen_users, seen_items, num_items)
    if _by_pairs(net, num_items, negatives):
        _rank_sampled_pairs(per_pair, net, test_users, test_items, negatives, devices, ks,
                            max_pairs)
    else:
        _rank_by_user(per_pair, net, test_users, test_items, seen, negatives, devices, ks,
                      max_pairs)
    metrics = _means(per_pair)
    if beyond_accuracy:
        metrics.update(_by_activity(per_pair, seen.seen_counts(test_users), ks))
        counts = np.bincount(np.asarray(seen_items, dtype=np.int64), minlength=num_items)
        metrics.update(catalogue_metrics(net, np.unique(test_users), seen, counts, ks,
                                         devices, max_pairs))
    return metrics


def _by_activity(per_pair: Dict[str, np.ndarray], activity: np.ndarray,
                 ks: Sequence[int]) -> Dict[str, float]:
    """``hr@k`` of the test pairs whose users are in each third by activity."""
    low, high = np.quantile(activity, [1 / 3, 2 / 3])
    buckets = {"cold": activity <= low, "warm": (activity > low) & (activity <= high),
               "heavy": activity > high}
    return {f"hr@{k}_{name}": float(per_pair[f"hr@{k}"][mask].mean()) if mask.any()
            else float("nan") for k in ks for name, mask in buckets.items()}


def catalogue_metrics(net: gluon.Block, users: np.ndarray, seen: SeenIndex,
                      item_counts: np.ndarray, ks: Sequence[int],
                      devices: Sequence[mx.Context], max_pairs: int = DEFAULT_MAX_PAIRS
                      ) -> Dict[str, float]:
    """What the top-k lists of ``users`` (over the whole catalogue, their
    training items left out) look like: ``coverage@k``, the share of the
    catalogue in at least one list, and ``popularity@k``, the mean popularity
    percentile (0-100, by ``item_counts``) of the items recommended."""
    num_items = seen.num_items
    percentile = popularity_percentiles(item_counts)
    shown = {k: np.zeros(num_items, dtype=bool) for k in ks}
    totals = {k: [0.0, 0] for k in ks}
    users_per_pass = max(1, max_pairs // num_items)
    for start in range(0, len(users), users_per_pass):
        block = users[start:start + users_per_pass]
        scores = score_users(net, block, num_items, devices, max_pairs=max_pairs)
        scores = np.where(seen.mask(block), -np.inf, scores.astype(np.float64))
        best, best_scores = top_k(scores, max(ks))
        for k in ks:
            items = best[:, :k][np.isfinite(best_scores[:, :k])]
            shown[k][items] = True
            totals[k][0] += float(percentile[items].sum())
            totals[k][1] += items.size
    metrics = {}
    for k in ks:
        metrics[f"coverage@{k}"] = float(shown[k].mean())
        metrics[f"popularity@{k}"] = totals[k][0] / totals[k][1] if totals[k][1] else float("nan")
    return metrics


def _checked_options(ks, num_items, max_pairs, memory_mb, negatives, num_pairs):
    ks = [check_int("k", k, 1) for k in ks]
    if max(ks, default=0) > num_items:
        raise ValueError(f"every k must be at most the catalogue size {num_items}; "
                         f"got {list(ks)}")
    if memory_mb is not None:
        max_pairs = max(1, int(check_number("memory_mb", memory_mb, positive=True) * 2**20)
                        // BYTES_PER_PAIR)
    if negatives is not None:
        negatives = np.asarray(negatives, dtype=np.int64)
        if negatives.ndim != 2 or negatives.shape[0] != num_pairs:
            raise ValueError(f"negatives must have one row per test pair ({num_pairs}); "
                             f"got shape {negatives.shape}")
    return ks, max_pairs, negatives


def _rank_by_user(per_pair, net, test_users, test_items, seen: SeenIndex, negatives,
                  devices, ks, max_pairs) -> None:
    """Rank the test pairs in blocks of users, each user's scores for every item
    computed once: against unseen items, or against the pair's negatives."""
    num_items = seen.num_items
    order = np.argsort(test_users, kind="stable")
    pairs_per_pass = max(1, max_pairs // num_items)
    for start in range(0, len(order), pairs_per_pass):
        pairs = order[start:start + pairs_per_pass]
        users, rows = np.unique(test_users[pairs], return_inverse=True)
        scores = score_users(net, users, num_items, devices, max_pairs=max_pairs)[rows]
        index = np.arange(len(pairs))
        target = scores[index, test_items[pairs]]
        rankable = None
        if negatives is None:
            candidates = ~seen.mask(users)[rows]
            rankable = candidates[index, test_items[pairs]].copy()
            candidates[index, test_items[pairs]] = True
        else:  # -1 pads rows with fewer negatives
            rows_negatives = negatives[pairs]
            scores = np.concatenate([target[:, None], np.take_along_axis(
                scores, np.maximum(rows_negatives, 0), axis=1)], 1)
            candidates = np.concatenate([np.ones((len(pairs), 1), dtype=bool),
                                         rows_negatives >= 0], 1)
        _rank_block(per_pair, pairs, scores, target, candidates, ks, rankable)


def _rank_sampled_pairs(per_pair, net, test_users, test_items, negatives, devices, ks,
                        max_pairs) -> None:
    """The sampled protocol scoring only each test item and its negatives."""
    width = negatives.shape[1] + 1
    rows_per_pass = max(1, max_pairs // width)
    for start in range(0, len(test_users), rows_per_pass):
        block = slice(start, start + rows_per_pass)
        items = np.concatenate([test_items[block, None], negatives[block]], axis=1)
        users = np.repeat(test_users[block], width)
        scores = score_pairs(net, users, np.maximum(items, 0).reshape(-1), devices,
                             max_pairs=min(max_pairs, FORWARD_PAIRS)).reshape(-1, width)
        _rank_block(per_pair, block, scores, scores[:, 0], items >= 0, ks)


def _rank_block(per_pair: Dict[str, np.ndarray], pairs, scores: np.ndarray,
                target: np.ndarray, candidates: np.ndarray, ks: Sequence[int],
                rankable: np.ndarray | None = None) -> None:
    """Rank each row's ``target`` among its ``candidates`` and store the metrics
    of those test ``pairs`` (indices or a slice); rows not ``rankable`` score 0."""
    if np.isnan(scores).any():
        raise FloatingPointError("the network produced NaN scores, so nothing can be "
                                 "ranked: training diverged (lower the learning rate, lr)")
    higher, ties, num_candidates = rank_counts(scores, target, candidates)
    for name, values in ranking_metrics(higher, ties, num_candidates, ks).items():
        per_pair[name][pairs] = values if rankable is None else np.where(rankable, values, 0.0)


def _means(per_pair: Dict[str, np.ndarray]) -> Dict[str, float]:
    """The mean of each metric over the pairs where it is defined (NaN if none)."""
    return {name: float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any()
            else float("nan") for name, values in per_pair.items()}


class RankingEvaluator:
    """:func:`evaluate_model` on the test pairs of ``pairs`` (ranked against its
    training pairs' unseen items, or against ``negatives``), as a function of
    the network."""

    def __init__(self, pairs: RecData, negatives: np.ndarray | None, ks: Sequence[int],
                 devices: Sequence[mx.Context]):
        self.pairs, self.negatives, self.ks, self.devices = pairs, negatives, ks, devices

    def __call__(self, net: gluon.Block) -> Dict[str, float]:
        pairs = self.pairs
        return evaluate_model(net, pairs.test_users, pairs.test_items, pairs.train_users,
                              pairs.train_items, pairs.num_items, self.devices,
                              negatives=self.negatives, ks=self.ks)
