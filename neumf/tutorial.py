"""The D2L tutorial's functions, with its names, signatures and return values,
as thin adapters over the array core: reading, splitting and loading
MovieLens-100K (:mod:`neumf.datasets`, :mod:`neumf.interactions`), ranking
every user's test items (:mod:`neumf.evaluation`) and the training loop
(:mod:`neumf.training`). d2l 1.0.3 is the oracle they are tested against."""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np
import pandas as pd
from mxnet import gluon

from ._util import check_int
from .callbacks import CallOnEpochEnd, CollapseCheck, PrintEpochs
from .config import SPLIT_MODES
from .datasets import TEST_RATIO, read_u_data
from .devices import check_devices
from .download import download_ml100k
from .evaluation import DEFAULT_MAX_PAIRS, score_users
from .interactions import SeenIndex, items_by_user, seq_aware_rows
from .metrics import auc_from_counts, hit_rate_from_counts, rank_counts
from .sampling import Candidates, candidate_pairs
from .tables import DataError
from .training import fit_epochs

__all__ = ["COLUMNS", "evaluate_ranking", "load_data_ml100k", "read_data_ml100k",
           "read_ratings", "split_data_ml100k", "train_ranking"]

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
FEEDBACK_KINDS = ("explicit", "implicit")


def read_ratings(path: str | os.PathLike, sep: str = "\t") -> Tuple[pd.DataFrame, int, int]:
    """Read a ``u.data``-style file: one ``user item rating timestamp`` line
    per interaction, 1-based integer ids.

    Returns ``(data, num_users, num_items)`` as the tutorial's reader does:
    ``data`` has columns ``user_id, item_id, rating, timestamp`` (int64) and
    the counts are the numbers of distinct ids. Ids must run from 1 to those
    counts, since they index embedding rows; otherwise a :class:`DataError`
    names the file and line.
    """
    data = pd.DataFrame(dict(zip(COLUMNS, read_u_data(path, sep))))
    return data, int(data["user_id"].max()), int(data["item_id"].max())


def read_data_ml100k(data_dir: str | os.PathLike | None = None) -> Tuple[pd.DataFrame, int, int]:
    """Read MovieLens-100K's ``u.data`` as ``(data, num_users, num_items)``.

    The file is ``<data_dir>/ml-100k/u.data``; ``data_dir`` defaults to
    ``$NEUMF_DATA_DIR``, else a user cache folder. If it is missing there,
    GroupLens' archive is downloaded, checked against its SHA-1 and extracted.
    """
    return read_ratings(download_ml100k(data_dir))


def _positional(data: pd.DataFrame) -> Tuple[np.ndarray, ...]:
    """The first four columns as int64 arrays, whatever their names (the tutorial's
    seq-aware split returns columns 0..3, its reader named ones)."""
    if data.shape[1] < len(COLUMNS):
        raise DataError(f"expected at least {len(COLUMNS)} columns ({', '.join(COLUMNS)}), "
                        f"got {data.shape[1]}")
    return tuple(data.iloc[:, col].to_numpy(dtype=np.int64) for col in range(len(COLUMNS)))


def split_data_ml100k(
    data: pd.DataFrame,
    num_users: int,
    num_items: int,
    split_mode: str = "random",
    test_ratio: float = TEST_RATIO,
    *,
    seed: int | None = None,
    rng: np.random.Generator | None = None,
) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Split interactions into ``(train_data, test_data)`` as the tutorial does.

    ``'seq-aware'``: each user's latest interaction (the first one in file
    order among equal timestamps) is the test row; the training rows are the
    rest, ordered by user id then timestamp. Both frames have the tutorial's
    integer column labels 0..3. Runs in O(n log n).

    ``'random'``: each row goes to test with probability ``test_ratio``, drawn
    from ``rng`` (or ``np.random.default_rng(seed)``); rows keep their labels.
    """
    if split_mode not in SPLIT_MODES:
        raise ValueError(f"split_mode must be one of {SPLIT_MODES}; got {split_mode!r}")
    if split_mode == "random":
        if not 0.0 <= test_ratio <= 1.0:
            raise ValueError(f"test_ratio must be in [0, 1]; got {test_ratio}")
        rng = rng if rng is not None else np.random.default_rng(seed)
        mask = rng.uniform(0, 1, len(data)) < 1 - test_ratio
        return data[mask], data[~mask]

    users, items, ratings, stamps = _positional(data)
    if len(users) == 0 or users.min() < 1 or users.max() > num_users:
        raise DataError(f"user ids must be in 1..{num_users} for a seq-aware split")
    present = np.zeros(num_users + 1, dtype=bool)
    present[users] = True
    if not present[1:].all():
        missing = int(np.flatnonzero(~present[1:])[0]) + 1
        raise DataError(f"user {missing} has no interactions; seq-aware split needs one per user")
    train_rows, test_rows = seq_aware_rows(users, stamps)
    rows = np.column_stack([users, items, ratings, stamps])
    # The tutorial drops every training row equal to a test row, duplicates included.
    keys = _row_keys(users, items, ratings, stamps)
    train_rows = train_rows[~np.isin(keys[train_rows], keys[test_rows])]
    return pd.DataFrame(rows[train_rows]), pd.DataFrame(rows[test_rows])


def _row_keys(*columns: np.ndarray) -> np.ndarray:
    """One comparable key per row of integer columns (a structured view)."""
    stacked = np.ascontiguousarray(np.column_stack(columns))
    return stacked.view([("", stacked.dtype)] * stacked.shape[1]).ravel()


def load_data_ml100k(
    data: pd.DataFrame, num_users: int, num_items: int, feedback: str = "explicit"
) -> Tuple[List[int], List[int], List[int], object]:
    """Turn a ratings frame into the tutorial's ``(users, items, scores, inter)``.

    ``users`` and ``items`` are 0-based ids, ``scores`` the ratings (all 1 for
    ``'implicit'``). ``inter`` is, for ``'explicit'``, a float32 array of shape
    (num_items, num_users) holding each rating (a NumPy array where the tutorial
    has an MXNet one); for ``'implicit'``, a dict from user to the list of its
    items in data order (the tutorial's ``candidates``).
    """
    if feedback not in FEEDBACK_KINDS:
        raise ValueError(f"feedback must be one of {FEEDBACK_KINDS}; got {feedback!r}")
    users_1, items_1, ratings, _ = _positional(data)
    users, items = users_1 - 1, items_1 - 1
    if len(users) and (users.min() < 0 or users.max() >= num_users):
        raise DataError(f"user ids must be in 1..{num_users}; got {users_1.min()}..{users_1.max()}")
    if len(items) and (items.min() < 0 or items.max() >= num_items):
        raise DataError(f"item ids must be in 1..{num_items}; got {items_1.min()}..{items_1.max()}")
    inter: object
    if feedback == "explicit":
        inter = np.zeros((num_items, num_users), dtype=np.float32)
        inter[items, users] = ratings
        scores = ratings.tolist()
    else:
        inter = items_by_user(users, items)
        scores = [1] * len(users)
    return users.tolist(), items.tolist(), scores, inter


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
        The scoring network (see :func:`neumf.score_users`).
    test_input, candidates
        User -> its test items, and user -> the items it trained on (the
        tutorial's name): dicts, as ``load_data_ml100k(..., 'implicit')`` returns,
        or lists indexed by user. Every item of ``0 .. num_items - 1`` but a
        user's candidates is ranked (the tutorial ranked only ids below
        ``num_users``).
    seq
        Optional per-user input rows passed to ``net``; ``None`` for NeuMF.
    num_users, num_items, devices
        Sizes of the id spaces; contexts to score on.
    k, max_pairs
        Cut-off of the hit rate; pairs scored in one pass (a memory bound).

    Returns
    -------
    ``(hit_rate, auc)`` averaged over users with test items: a user's hits are
    its test items in its top ``k``, its AUC that of its best-ranked test item.
    Ties are broken uniformly at random, in expectation (a constant model
    scores ``k / num_candidates`` and 0.5). A test item the user also trained
    on is not ranked: a miss, AUC 0.
    """
    k = check_int("k", k, 1)
    if k > num_items:
        raise ValueError(f"k={k} is larger than the catalogue of {num_items} items")
    pair_users, pair_items = _checked_pairs(test_input, "test_input", num_users, num_items)
    seen_users, seen_items = _checked_pairs(candidates, "candidates", num_users, num_items)
    if pair_users.size == 0:
        return float("nan"), float("nan")
    seen = SeenIndex.from_pairs(seen_users, seen_items, num_items)
    return _rank_per_user(net, seq, pair_users, pair_items, seen, devices, k, max_pairs)


def _rank_per_user(net, seq, pair_users, pair_items, seen: SeenIndex, devices, k: int,
                   max_pairs: int) -> Tuple[float, float]:
    """The tutorial's per-user hit rate (test items in the top ``k``) and AUC (of
    the best-ranked test item), scoring users in blocks."""
    num_items = seen.num_items
    eval_users, pair_rows = np.unique(pair_users, return_inverse=True)
    hits, aucs = np.zeros(len(pair_users)), np.zeros(len(pair_users))
    users_per_pass = max(1, max_pairs // num_items)
    for start in range(0, len(eval_users), users_per_pass):
        block = eval_users[start:start + users_per_pass]
        scores = score_users(net, block, num_items, devices, seq, max_pairs=max_pairs)
        if np.isnan(scores).any():
            raise FloatingPointError("the network produced NaN scores, so nothing can be "
                                     "ranked: training diverged (lower the learning rate, lr)")
        pairs = np.flatnonzero((pair_rows >= start) & (pair_rows < start + len(block)))
        hits[pairs], aucs[pairs] = _hits_and_aucs(scores, ~seen.mask(block),
                                                  pair_rows[pairs] - start, pair_items[pairs], k)
    user_hits = np.bincount(pair_rows, weights=hits, minlength=len(eval_users))
    user_auc = np.full(len(eval_users), -np.inf)
    np.fmax.at(user_auc, pair_rows, aucs)  # fmax: a NaN AUC (no other candidate) loses
    user_auc[np.isneginf(user_auc)] = np.nan
    auc = float(np.nanmean(user_auc)) if np.isfinite(user_auc).any() else float("nan")
    return float(user_hits.mean()), auc


def _checked_pairs(lists: Candidates, name: str, num_users: int, num_items: int):
    """The tutorial's per-user lists as ``(users, items)`` arrays, ids checked."""
    users, items = candidate_pairs(lists)
    for what, ids, bound in (("users", users, num_users), ("items", items, num_items)):
        if ids.size and (ids.min() < 0 or ids.max() >= bound):
            raise ValueError(f"{name} {what} must be in 0..{bound - 1}; got "
                             f"{ids.min()}..{ids.max()}")
    return users, items


def _hits_and_aucs(scores: np.ndarray, unseen: np.ndarray, rows: np.ndarray,
                   items: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per test pair (``rows`` index the users' ``scores``): the hit probability
    at ``k`` and the AUC among the user's unseen items; 0 and 0 for a test
    item the user trained on."""
    index = np.arange(len(rows))
    rankable = unseen[rows, items]
    pair_candidates = unseen[rows]
    pair_candidates[index, items] = True  # scored, then zeroed if seen
    pair_scores = scores[rows]
    higher, ties, num_candidates = rank_counts(pair_scores, pair_scores[index, items],
                                               pair_candidates)
    return (np.where(rankable, hit_rate_from_counts(higher, ties, k), 0.0),
            np.where(rankable, auc_from_counts(higher, ties, num_candidates), 0.0))


def train_ranking(
    net: gluon.Block,
    train_iter,
    test_iter,
    loss: gluon.loss.Loss,
    trainer: gluon.Trainer,
    test_seq_iter,
    num_users: int,
    num_items: int,
    num_epochs: int,
    devices: Sequence[mx.Context],
    evaluator: Callable,
    candidates,
    eval_step: int = 1,
    *,
    verbose: bool = True,
    collapse_check: bool = True,
    on_epoch_end: Callable[[Dict[str, float]], bool | None] | None = None,
    initial_epoch: int = 0,
) -> List[Dict[str, float]]:
    """Train ``net`` on ``(user, positive, negative)`` batches with a pairwise loss
    (the tutorial's loop; see :func:`neumf.training.fit_epochs`, which runs it).

    Parameters follow the tutorial's ``train_ranking``: ``train_iter`` yields
    batches whose last two columns are positive and negative items (any
    leading columns are passed first); each batch is split across ``devices``
    with ``split_and_load``; ``evaluator(net, test_iter, test_seq_iter,
    candidates, num_users, num_items, devices)`` returns ``(hit_rate, auc)``
    and runs every ``eval_step`` epochs.

    Returns
    -------
    One dict per epoch: ``epoch`` (1-based), ``loss`` (mean per training
    triplet), ``hit_rate`` and ``auc`` (NaN in epochs without evaluation),
    ``train_seconds`` (the batch loop only), ``eval_seconds``,
    ``examples_per_sec``, ``score_spread`` (max - min score of the last batch),
    ``lr``. A :class:`neumf.CollapseWarning` warns when every pair scores alike, unless
    ``collapse_check`` is False. ``verbose``: a progress bar and a line per
    epoch. Epochs are numbered from ``initial_epoch + 1``; ``on_epoch_end(stats)``
    returning True stops training.
    """
    num_epochs = check_int("num_epochs", num_epochs, 0)
    eval_step = check_int("eval_step", eval_step, 1)
    devices = check_devices(devices)

    def evaluate(model: gluon.Block) -> Dict[str, float]:
        hit_rate, auc = evaluator(model, test_iter, test_seq_iter, candidates, num_users,
                                  num_items, devices)
        return {"hit_rate": hit_rate, "auc": auc}

    callbacks = [PrintEpochs(devices)] if verbose else []
    if collapse_check:
        callbacks.append(CollapseCheck(net, train_iter, trainer))
    if on_epoch_end is not None:
        callbacks.append(CallOnEpochEnd(on_epoch_end))
    return fit_epochs(net, train_iter, loss, trainer, devices, num_epochs=num_epochs,
                      evaluate=evaluate, eval_every=eval_step, callbacks=callbacks,
                      initial_epoch=initial_epoch, progress=verbose)
