"""Full-ranking evaluation: every user's test items against all items it did not train on."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon, use_np

from .metrics import auc_from_counts, hit_rate_from_counts, rank_counts, ranking_metrics
from .parallel import split_and_load
from .sampling import Candidates, candidate_pairs

__all__ = ["evaluate_model", "evaluate_ranking", "score_pairs", "score_users"]

# Pairs scored per block of users: 16 MiB of float32 scores (ML-100K in one block).
DEFAULT_MAX_PAIRS = 1 << 22
# Pairs per forward pass of the network: each holds every layer's activations.
FORWARD_PAIRS = 1 << 18
# Peak bytes per (user, item) pair of a full-ranking block: the scores, their
# gathered copy, candidate and comparison masks, with headroom for temporaries.
BYTES_PER_PAIR = 32
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


def evaluate_ranking(
    net: gluon.Block,
    test_input: Candidates,
    seq,
    candidates: Candidates,
    num_users: int,
    num_items: int,
    devices: Sequence[mx.Context],
    *,
    k: int = 50,
    max_pairs: int = DEFAULT_MAX_PAIRS,
) -> Tuple[float, float]:
    """Hit rate at ``k`` and AUC of the test items, ranked over the whole catalogue.

    Parameters
    ----------
    net
        The scoring network (see :func:`score_users`).
    test_input
        User -> its test item ids (a dict, as ``load_data_ml100k(..., 'implicit')``
        returns, or a list indexed by user).
    seq
        Optional per-user input rows passed to ``net``; ``None`` for NeuMF.
    candidates
        User -> the items it trained on (the tutorial's name). These are not
        ranked; every other item of ``0 .. num_items - 1`` is (the tutorial
        ranked only ids below ``num_users``).
    num_users, num_items
        Sizes of the id spaces.
    devices
        Contexts to score on.
    k
        Cut-off of the hit rate.
    max_pairs
        Upper bound on the pairs scored in one pass (a memory bound).

    Returns
    -------
    ``(hit_rate, auc)`` averaged over users with test items. A user's hit count
    is the number of its test items in its top ``k``; its AUC is that of its
    best-ranked test item, the fraction of other candidates ranked below it.
    Tie rule: ties are broken uniformly at random, in expectation. A tied test
    item counts as a hit with probability ``(k - higher) / (ties + 1)`` and
    half of its ties count as ranked below it, so a model that scores every
    item equally gets the chance values ``k / num_candidates`` and 0.5.
    A test item the user also trained on is not ranked: a miss, AUC 0.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if k > num_items:
        raise ValueError(f"k={k} is larger than the catalogue of {num_items} items")
    pair_users, pair_items = candidate_pairs(test_input)
    seen_users, seen_items = candidate_pairs(candidates)
    for name, ids, bound in (("test_input users", pair_users, num_users),
                             ("test_input items", pair_items, num_items),
                             ("candidates users", seen_users, num_users),
                             ("candidates items", seen_items, num_items)):
        if ids.size and (ids.min() < 0 or ids.max() >= bound):
            raise ValueError(f"{name} must be in 0..{bound - 1}; got {ids.min()}..{ids.max()}")
    if pair_users.size == 0:
        return float("nan"), float("nan")

    eval_users = np.unique(pair_users)
    row_of_user = np.full(num_users, -1, dtype=np.int64)
    row_of_user[eval_users] = np.arange(len(eval_users))
    pair_rows = row_of_user[pair_users]
    seen_index = _seen_index(seen_users, num_users)

    hits = np.zeros(len(pair_users))
    aucs = np.zeros(len(pair_users))
    users_per_pass = max(1, max_pairs // num_items)
    for start in range(0, len(eval_users), users_per_pass):
        stop = start + users_per_pass
        scores = score_users(net, eval_users[start:stop], num_items, devices,
                             seq, max_pairs=max_pairs)
        if np.isnan(scores).any():
            raise FloatingPointError("the network produced NaN scores; cannot rank")
        seen = _seen_mask(eval_users[start:stop], seen_index, seen_items, num_items)
        pairs = np.flatnonzero((pair_rows >= start) & (pair_rows < stop))
        rows, items = pair_rows[pairs] - start, pair_items[pairs]
        pair_scores = scores[rows]
        rankable = ~seen[rows, items]
        pair_candidates = ~seen[rows]
        pair_candidates[np.arange(len(rows)), items] = True  # scored, then zeroed if seen
        higher, ties, num_candidates = rank_counts(
            pair_scores, pair_scores[np.arange(len(rows)), items], pair_candidates)
        hits[pairs] = np.where(rankable, hit_rate_from_counts(higher, ties, k), 0.0)
        aucs[pairs] = np.where(rankable, auc_from_counts(higher, ties, num_candidates), 0.0)

    user_hits = np.bincount(pair_rows, weights=hits, minlength=len(eval_users))
    user_auc = np.full(len(eval_users), -np.inf)
    np.fmax.at(user_auc, pair_rows, aucs)  # fmax: a NaN AUC (no other candidate) loses
    user_auc[np.isneginf(user_auc)] = np.nan
    auc = float(np.nanmean(user_auc)) if np.isfinite(user_auc).any() else float("nan")
    return float(user_hits.mean()), auc


def _seen_index(seen_users: np.ndarray, num_users: int) -> Tuple[np.ndarray, np.ndarray]:
    """The training pairs grouped by user (CSR): ``order`` sorts them by user,
    user ``u``'s are ``order[indptr[u]:indptr[u + 1]]``."""
    order = np.argsort(seen_users, kind="stable")
    return order, np.searchsorted(seen_users[order], np.arange(num_users + 1))


def _seen_mask(users: np.ndarray, index: Tuple[np.ndarray, np.ndarray],
               seen_items: np.ndarray, num_items: int) -> np.ndarray:
    """Boolean (len(users), num_items): the items each of ``users`` trained on,
    from :func:`_seen_index`; no user x item matrix beyond the block."""
    order, indptr = index
    starts, stops = indptr[users], indptr[users + 1]
    lengths = stops - starts
    rows = np.repeat(np.arange(len(users)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    mask = np.zeros((len(users), num_items), dtype=bool)
    mask[rows, seen_items[order[np.repeat(starts, lengths) + offsets]]] = True
    return mask


def score_pairs(net: gluon.Block, users: np.ndarray, items: np.ndarray,
                devices: Sequence[mx.Context], *, max_pairs: int = FORWARD_PAIRS
                ) -> np.ndarray:
    """Scores of the given (user, item) pairs through the network, in batches of
    at most ``max_pairs`` split across ``devices``; shape (n,), float32."""
    return _forward(net, [np.asarray(users, dtype=np.int32), np.asarray(items, dtype=np.int32)],
                    devices, max_pairs)


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
) -> Dict[str, float]:
    """``hr@k`` and ``ndcg@k`` for each ``k``, ``auc`` and ``mrr``, averaged over
    the test pairs (one per user under leave-last-out).

    Parameters
    ----------
    test_users, test_items
        Shape (n,): the held-out pairs, 0-based.
    seen_users, seen_items
        The training pairs; with the full protocol these items are not ranked.
    num_items
        Catalogue size.
    devices
        Contexts to score on.
    negatives
        Shape (n, m): the sampled protocol, each test item ranked against its
        row of ``m`` negatives (the NCF paper's 99; -1 pads shorter rows).
        ``None``: the full protocol, against every item the user did not train on.
    ks
        Cut-offs.
    max_pairs
        (user, item) scores held at once; users are evaluated in blocks of
        ``max_pairs // num_items``.
    memory_mb
        A memory bound for those blocks instead of ``max_pairs`` (about
        :data:`BYTES_PER_PAIR` bytes per pair).

    The tie rule is :func:`evaluate_ranking`'s: ties broken uniformly at random,
    in expectation, so a constant model scores at chance. With a catalogue much
    larger than the sampled candidates, only the candidates are scored.
    """
    test_users = np.asarray(test_users, dtype=np.int64)
    test_items = np.asarray(test_items, dtype=np.int64)
    if any(int(k) != k or not 1 <= k <= num_items for k in ks):
        raise ValueError(f"every k must be a positive integer at most the catalogue size "
                         f"{num_items}; got {list(ks)}")
    if memory_mb is not None:
        if not memory_mb > 0:
            raise ValueError(f"memory_mb must be positive; got {memory_mb!r}")
        max_pairs = max(1, int(memory_mb * 2**20) // BYTES_PER_PAIR)
    if negatives is not None:
        negatives = np.asarray(negatives, dtype=np.int64)
        if negatives.shape[0] != len(test_users):
            raise ValueError(f"negatives must have one row per test pair ({len(test_users)}); "
                             f"got {negatives.shape[0]}")
    if len(test_users) == 0:
        return {name: float("nan") for name in _metric_names(ks)}
    if negatives is not None and num_items > PAIRWISE_RATIO * (negatives.shape[1] + 1):
        return _evaluate_sampled_pairs(net, test_users, test_items, negatives, devices, ks,
                                       max_pairs)
    order = np.argsort(test_users, kind="stable")
    seen_users = np.asarray(seen_users, dtype=np.int64)
    seen_index = _seen_index(
        seen_users, int(max(seen_users.max(initial=-1), test_users.max())) + 1)
    seen_items = np.asarray(seen_items, dtype=np.int64)
    per_pair = _per_pair_metrics(len(test_users), ks)
    pairs_per_pass = max(1, max_pairs // num_items)
    for start in range(0, len(order), pairs_per_pass):
        pairs = order[start:start + pairs_per_pass]
        users, rows = np.unique(test_users[pairs], return_inverse=True)
        scores = score_users(net, users, num_items, devices, max_pairs=max_pairs)[rows]
        index = np.arange(len(pairs))
        target = scores[index, test_items[pairs]]
        if negatives is None:
            candidates = ~_seen_mask(users, seen_index, seen_items, num_items)[rows]
            rankable = candidates[index, test_items[pairs]].copy()
            candidates[index, test_items[pairs]] = True
        else:  # -1 pads rows with fewer negatives
            rows_negatives = negatives[pairs]
            scores = np.concatenate([target[:, None], np.take_along_axis(
                scores, np.maximum(rows_negatives, 0), axis=1)], 1)
            candidates = np.concatenate([np.ones((len(pairs), 1), dtype=bool),
                                         rows_negatives >= 0], 1)
            rankable = None
        _rank_block(per_pair, pairs, scores, target, candidates, ks, rankable)
    return _means(per_pair)


def _means(per_pair: Dict[str, np.ndarray]) -> Dict[str, float]:
    """The mean of each metric over the pairs where it is defined (NaN if none)."""
    return {name: float(values[~np.isnan(values)].mean()) if (~np.isnan(values)).any()
            else float("nan") for name, values in per_pair.items()}


def _per_pair_metrics(num_pairs: int, ks: Sequence[int]) -> Dict[str, np.ndarray]:
    return {name: np.zeros(num_pairs) for name in _metric_names(ks)}


def _rank_block(per_pair: Dict[str, np.ndarray], pairs, scores: np.ndarray,
                target: np.ndarray, candidates: np.ndarray, ks: Sequence[int],
                rankable: np.ndarray | None = None) -> None:
    """Rank each row's ``target`` among its ``candidates`` and store the metrics
    of those test ``pairs`` (indices or a slice). Rows not ``rankable`` (a test
    item the user trained on, which is never recommended) score 0, as in
    :func:`evaluate_ranking`: a miss, never a memorised hit."""
    if np.isnan(scores).any():
        raise FloatingPointError("the network produced NaN scores; cannot rank")
    higher, ties, num_candidates = rank_counts(scores, target, candidates)
    for name, values in ranking_metrics(higher, ties, num_candidates, ks).items():
        per_pair[name][pairs] = values if rankable is None else np.where(rankable, values, 0.0)


def _evaluate_sampled_pairs(net, test_users, test_items, negatives, devices, ks,
                            max_pairs) -> Dict[str, float]:
    """The sampled protocol scoring only each test item and its negatives."""
    width = negatives.shape[1] + 1
    per_pair = _per_pair_metrics(len(test_users), ks)
    rows_per_pass = max(1, max_pairs // width)
    for start in range(0, len(test_users), rows_per_pass):
        block = slice(start, start + rows_per_pass)
        items = np.concatenate([test_items[block, None], negatives[block]], axis=1)
        users = np.repeat(test_users[block], width)
        scores = score_pairs(net, users, np.maximum(items, 0).reshape(-1), devices,
                             max_pairs=min(max_pairs, FORWARD_PAIRS)).reshape(-1, width)
        _rank_block(per_pair, block, scores, scores[:, 0], items >= 0, ks)
    return _means(per_pair)


def _metric_names(ks: Sequence[int]) -> List[str]:
    return [f"{kind}@{k}" for k in ks for kind in ("hr", "ndcg")] + ["auc", "mrr"]

