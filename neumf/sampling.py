"""Negative sampling: exact, vectorized draws among the items each user never
interacted with; every draw terminates, whatever the data.

A draw is a *rank* among the user's unseen items, mapped to the item id by one
``searchsorted`` over the seen pairs (:class:`SeenIndex`): no rejection loop,
so a user with one unseen item costs what any other user costs.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Mapping, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import gluon

from ._util import check_bool, check_memory, check_positive_int
from ._warn import warn
from .interactions import SeenIndex

__all__ = ["PRDataset", "TripletLoader", "candidate_pairs", "is_seen",
           "sample_distinct", "sample_negatives", "sampled_negatives", "seen_keys"]

Candidates = Union[Mapping[int, Sequence[int]], Sequence[Sequence[int]]]
# Distinct draws redraw duplicate ranks in rounds while a row asks for at most
# half of its unseen items (each round then keeps at least half of the redraws);
# denser rows, and rows still short after this many rounds, take the smallest
# of random keys over all their unseen ranks.
_ROUNDS = 32
# Random keys per block of the dense path (bounded memory: 128 MiB of float64).
_DENSE_BLOCK = 1 << 24


def candidate_pairs(candidates: Candidates) -> Tuple[np.ndarray, np.ndarray]:
    """Flatten the tutorial's ``candidates`` (user -> items seen in training, a
    dict or a list indexed by user) into ``(users, items)`` int64 arrays."""
    if isinstance(candidates, Mapping):
        keys = list(candidates.keys())
        lists = [candidates[key] for key in keys]
    else:
        keys = list(range(len(candidates)))
        lists = list(candidates)
    lengths = np.fromiter((len(items) for items in lists), dtype=np.int64, count=len(lists))
    users = np.repeat(np.asarray(keys, dtype=np.int64), lengths)
    items = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64,
                        count=int(lengths.sum()))
    return users, items


def seen_keys(users: np.ndarray, items: np.ndarray, num_items: int) -> np.ndarray:
    """Sorted unique ``user * num_items + item`` keys of the seen pairs, int64."""
    users = np.asarray(users, dtype=np.int64)
    return np.unique(users * num_items + np.asarray(items, dtype=np.int64))


def is_seen(query_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Elementwise: is each ``user * num_items + item`` key among the sorted ``keys``."""
    if keys.size == 0:
        return np.zeros(np.shape(query_keys), dtype=bool)
    pos = np.searchsorted(keys, query_keys).clip(max=len(keys) - 1)
    return keys[pos] == query_keys


def sample_negatives(
    user_ids: np.ndarray, keys: np.ndarray, num_items: int, rng: np.random.Generator
) -> np.ndarray:
    """One uniform negative item per entry of ``user_ids``, never a seen one.

    Parameters
    ----------
    user_ids
        Shape (n,), 0-based user ids.
    keys
        Sorted ``user * num_items + item`` keys of the seen pairs (:func:`seen_keys`).
    num_items
        Items are drawn from ``0 .. num_items - 1``.
    rng
        The generator to draw from.

    Returns
    -------
    Shape (n,), int64: each draw uniform over its user's unseen items. A
    ValueError names a user who has seen every item (no negative exists).
    """
    return _one_each(np.asarray(user_ids, dtype=np.int64), SeenIndex(keys, num_items), rng)


def _one_each(user_ids: np.ndarray, index: SeenIndex, rng: np.random.Generator) -> np.ndarray:
    available = index.unseen_counts(user_ids)
    if user_ids.size and available.min() < 1:
        user = int(user_ids[np.argmin(available)])
        raise ValueError(f"user {user} has seen all {index.num_items} items, so no negative "
                         "item can be sampled for it")
    return index.item_of_rank(user_ids, rng.integers(0, np.maximum(available, 1)))


def sample_distinct(user_ids: np.ndarray, index: SeenIndex, count: int,
                    rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct unseen items per entry of ``user_ids``, uniform among
    the subsets of the user's unseen items (drawn without replacement).

    Returns
    -------
    Shape (n, count), int64; where a user has fewer than ``count`` unseen items,
    all of them, in random order, then -1 padding.
    """
    check_positive_int("count", count)
    user_ids = np.asarray(user_ids, dtype=np.int64)
    available = index.unseen_counts(user_ids)
    take = np.minimum(available, count)
    check_memory(user_ids.size * count * 24, f"{count} negatives for each of "
                 f"{user_ids.size} rows")
    ranks = np.full((user_ids.size, count), -1, dtype=np.int64)
    slots = np.arange(count)[None, :] < take[:, None]
    sparse = 2 * take <= available
    rows = np.flatnonzero(sparse)
    ranks[rows] = np.where(slots[rows], rng.integers(0, np.maximum(available[rows], 1)[:, None],
                                                     size=(rows.size, count)), -1)
    for _ in range(_ROUNDS):
        repeated = _repeats(ranks[rows])
        if not repeated.any():
            break
        redo_rows, redo_cols = np.nonzero(repeated)
        ranks[rows[redo_rows], redo_cols] = rng.integers(0, available[rows[redo_rows]])
    else:
        sparse[rows[_repeats(ranks[rows]).any(axis=1)]] = False
    dense = np.flatnonzero(~sparse & (take > 0))
    per_block = max(1, _DENSE_BLOCK // max(1, int(available[dense].max(initial=1))))
    for start in range(0, dense.size, per_block):
        block = dense[start:start + per_block]
        width = int(available[block].max())
        order = np.argsort(np.where(np.arange(width)[None, :] < available[block, None],
                                    rng.random((block.size, width)), np.inf), axis=1)
        ranks[block] = np.where(slots[block], order[:, :count] if width >= count else np.pad(
            order, ((0, 0), (0, count - width))), -1)
    items = index.item_of_rank(np.repeat(user_ids, count), np.maximum(ranks, 0).reshape(-1))
    return np.where(ranks >= 0, items.reshape(ranks.shape), -1)


def _repeats(ranks: np.ndarray) -> np.ndarray:
    """Boolean mask of every entry that repeats an earlier entry of its row
    (padding -1 excepted)."""
    if ranks.shape[1] < 2:  # one per row: nothing repeats
        return np.zeros(ranks.shape, dtype=bool)
    order = np.argsort(ranks, axis=1, kind="stable")
    ordered = np.take_along_axis(ranks, order, axis=1)
    later = np.zeros(ranks.shape, dtype=bool)
    later[:, 1:] = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    mask = np.zeros(ranks.shape, dtype=bool)
    np.put_along_axis(mask, order, later, axis=1)
    return mask


class PRDataset(gluon.data.Dataset):
    """Training triplets ``(user, positive_item, negative_item)`` for pairwise ranking.

    Parameters
    ----------
    users, items
        Shape (n,): the training interactions, 0-based ids.
    candidates
        Per-user items seen in training (the tutorial's name): a negative is
        never one of them. ``None``: the pairs in ``seen``, else ``users`` and
        ``items`` themselves (no per-user lists are built: large data).
    num_items
        Negatives are drawn from ``0 .. num_items - 1``.
    seed
        Seed of the generator that draws negatives (``None``: fresh entropy).
    seen
        ``(users, items)`` arrays of the seen pairs, when ``candidates`` is None
        and they are more than ``users``/``items`` (a worker's shard, or every
        interaction of the data set, test pairs included).

    Indexing draws a fresh negative on every access, as the tutorial's does.
    For training, :meth:`loader` draws a whole epoch's negatives at once. A
    user who has interacted with every item has no negative: its pairs are
    left out of the loader's triplets (a warning counts them).
    """

    def __init__(self, users, items, candidates: Candidates | None, num_items: int,
                 *, seed: int | None = None,
                 seen: Tuple[np.ndarray, np.ndarray] | None = None):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        if self.users.shape != self.items.shape or self.users.ndim != 1:
            raise ValueError(f"users and items must be 1-D and of one length; got shapes "
                             f"{self.users.shape} and {self.items.shape}")
        self.num_items = check_positive_int("num_items", num_items)
        if candidates is not None:
            seen = candidate_pairs(candidates)
        elif seen is None:
            seen = (self.users, self.items)
        self.index = SeenIndex.from_pairs(*seen, self.num_items)
        self.available = self.index.unseen_counts(self.users)
        self.rng = np.random.default_rng(seed)
        # the generator's state before the next epoch's draw, while that epoch is
        # drawn ahead of its training (what a checkpoint keeps; see neumf.training)
        self.resume_state: dict | None = None
        saturated = self.available < 1
        if saturated.any():
            warn(f"{np.unique(self.users[saturated]).size} users have interacted "
                 f"with every one of the {self.num_items} items: their "
                 f"{int(saturated.sum())} training pairs have no negative item and "
                 "are not trained on", UserWarning)

    @property
    def keys(self) -> np.ndarray:
        """Sorted ``user * num_items + item`` keys of the seen pairs."""
        return self.index.keys

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, idx):
        user = self.users[idx]
        negative = _one_each(np.atleast_1d(user).astype(np.int64), self.index, self.rng)
        return user, self.items[idx], negative[0] if np.ndim(user) == 0 else negative

    def loader(self, batch_size: int, shuffle: bool = True, as_numpy: bool = False,
               num_negatives: int = 1, fill: bool = False, grouped: bool = False
               ) -> TripletLoader:
        """Batches of ``(users, items, negatives)``; each pass (epoch) shuffles and
        draws all its negatives in one vectorized call. See :class:`TripletLoader`."""
        return TripletLoader(self, batch_size, shuffle=shuffle, as_numpy=as_numpy,
                             num_negatives=num_negatives, fill=fill, grouped=grouped)


class TripletLoader:
    """Iterable over a :class:`PRDataset` in batches, re-shuffled and re-sampled
    on every pass. The last batch may be smaller; every triplet is used once
    per pass. Draws from the dataset's generator, so a seeded dataset repeats.

    Batches are ``mx.np`` int32 arrays (copied to MXNet once per pass, then
    sliced), or NumPy int64 arrays with ``as_numpy=True``. With
    ``num_negatives=k`` every positive appears in ``k`` triplets per pass, each
    with its own negative, the ``k`` distinct (the NCF paper's k negatives per
    positive); a user with fewer than ``k`` unseen items gets all of them.
    With ``fill``, every pass has exactly ``k`` triplets per positive, the
    missing ones repeated from the pass's others (synchronous workers must all
    take the same number of equal batches).
    With ``grouped``, a batch holds ``batch_size // k`` positives (at least
    one), each once, with its ``k`` negatives as a ``(rows, k)`` column: the
    same triplets per pass, which a model scores as ``1 + k`` pairs per
    positive instead of ``2k``; a user with fewer than ``k`` unseen items has
    them repeated to ``k``. With ``fill`` (workers) batches stay flat.
    """

    def __init__(self, dataset: PRDataset, batch_size: int, shuffle: bool = True,
                 as_numpy: bool = False, num_negatives: int = 1, fill: bool = False,
                 grouped: bool = False):
        self.dataset, self.shuffle, self.fill = dataset, shuffle, fill
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.num_negatives = check_positive_int("num_negatives", num_negatives)
        self.as_numpy = as_numpy
        short = (dataset.available > 0) & (dataset.available < self.num_negatives)
        if short.any():
            warn(f"{np.unique(dataset.users[short]).size} users have fewer than "
                 f"num_negatives={self.num_negatives} items they never interacted "
                 "with: each of their pairs is trained against all of them",
                 UserWarning)
        self.grouped = check_bool("grouped", grouped) and self.num_negatives > 1 and not fill

    @property
    def num_triplets(self) -> int:
        """Triplets per pass."""
        if self.fill:
            return len(self.dataset) * self.num_negatives
        if self.grouped:
            return int(np.count_nonzero(self.dataset.available)) * self.num_negatives
        return int(np.minimum(self.dataset.available, self.num_negatives).sum())

    @property
    def _rows(self) -> int:
        """Positives per grouped batch."""
        return max(1, self.batch_size // self.num_negatives)

    def __len__(self) -> int:
        if self.grouped:
            return -(-int(np.count_nonzero(self.dataset.available)) // self._rows)
        return -(-self.num_triplets // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        data, count = self.dataset, self.num_negatives
        if self.grouped:
            yield from self._groups()
            return
        negatives = sample_distinct(data.users, data.index, count, data.rng).reshape(-1)
        order = np.flatnonzero(negatives >= 0)  # triplet t: positive t // count
        if self.fill and 0 < len(order) < len(negatives):
            order = np.concatenate([order, data.rng.choice(order, len(negatives) - len(order))])
        if self.shuffle:
            order = order[data.rng.permutation(len(order))]
        positives = order // count
        columns = (data.users[positives], data.items[positives], negatives[order])
        if not self.as_numpy:
            columns = tuple(mx.np.array(column, dtype=np.int32) for column in columns)
        for start in range(0, len(order), self.batch_size):
            stop = start + self.batch_size
            yield tuple(column[start:stop] for column in columns)

    def _groups(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Grouped batches: users (rows,), items (rows,), negatives (rows, k)."""
        data, count = self.dataset, self.num_negatives
        negatives = sample_distinct(data.users, data.index, count, data.rng)
        take = np.minimum(data.available, count)
        if (take < count).any():  # valid negatives come first, then -1: repeat them
            negatives = np.take_along_axis(
                negatives, np.arange(count)[None, :] % np.maximum(take, 1)[:, None], axis=1)
        order = np.flatnonzero(take)  # a user who has seen every item: no triplet
        if self.shuffle:
            order = order[data.rng.permutation(len(order))]
        columns = (data.users[order], data.items[order], negatives[order])
        if not self.as_numpy:
            columns = tuple(mx.np.array(column, dtype=np.int32) for column in columns)
        for start in range(0, len(order), self._rows):
            yield tuple(column[start:start + self._rows] for column in columns)


def sampled_negatives(data, count: int, seed: int | None) -> np.ndarray:
    """The sampled protocol's negatives: ``count`` distinct items per test pair
    of ``data`` (a :class:`neumf.RecData`) that its user never interacted with,
    in training or in the test set, drawn without replacement.

    Returns
    -------
    Shape (n_test, m), int64, ``m = min(count, most unseen items of a test
    user)``; a user with fewer unseen items gets all of them, then -1 padding
    (a warning counts such users). Seeded by ``seed + 1``.
    """
    count = check_positive_int("eval_negatives", count)
    index = SeenIndex.from_pairs(np.concatenate([data.train_users, data.test_users]),
                                 np.concatenate([data.train_items, data.test_items]),
                                 data.num_items)
    available = index.unseen_counts(data.test_users)
    width = int(min(count, available.max(initial=0)))
    short = available < count
    if short.any():
        warn(f"{int(short.sum())} of {len(short)} test users have fewer than "
             f"{count} items they never interacted with (fewest: "
             f"{int(available.min())}): each is ranked against all of its unseen "
             "items", UserWarning)
    if width == 0:
        return np.full((len(data.test_users), 0), -1, dtype=np.int64)
    rng = np.random.default_rng(None if seed is None else seed + 1)
    return sample_distinct(data.test_users, index, width, rng)
