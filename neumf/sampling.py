"""Negative sampling: vectorized draws that never return an item the user has seen."""

from __future__ import annotations

import itertools
from typing import Iterator, Mapping, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import gluon

__all__ = ["PRDataset", "TripletLoader", "candidate_pairs", "is_seen", "sample_negatives",
           "seen_keys"]

Candidates = Union[Mapping[int, Sequence[int]], Sequence[Sequence[int]]]


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
    Shape (n,), int64. Each draw is uniform over the user's unseen items:
    rejected draws are redrawn in vectorized rounds.
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    negatives = rng.integers(0, num_items, size=len(user_ids))
    if keys.size == 0:
        return negatives
    redo = np.arange(len(user_ids))
    while redo.size:
        redo = redo[is_seen(user_ids[redo] * num_items + negatives[redo], keys)]
        negatives[redo] = rng.integers(0, num_items, size=redo.size)
    return negatives


def _check_room(keys: np.ndarray, num_items: int) -> None:
    """Raise if a user has seen every item: no negative exists for it."""
    if keys.size:
        users, counts = np.unique(keys // num_items, return_counts=True)
        full = users[counts >= num_items]
        if full.size:
            raise ValueError(f"user {int(full[0])} has seen all {num_items} items, "
                             "so no negative item can be sampled for it")


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
        and they are more than ``users``/``items`` (a worker's shard).

    Indexing draws a fresh negative on every access, as the tutorial's does,
    with rejection against a sorted key array (no per-sample set). For
    training, :meth:`loader` draws a whole batch of negatives at once.
    """

    def __init__(self, users, items, candidates: Candidates | None, num_items: int,
                 *, seed: int | None = None,
                 seen: Tuple[np.ndarray, np.ndarray] | None = None):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        if self.users.shape != self.items.shape or self.users.ndim != 1:
            raise ValueError(f"users and items must be 1-D and of one length; got shapes "
                             f"{self.users.shape} and {self.items.shape}")
        self.num_items = int(num_items)
        if candidates is not None:
            seen = candidate_pairs(candidates)
        elif seen is None:
            seen = (self.users, self.items)
        self.keys = seen_keys(*seen, self.num_items)
        _check_room(self.keys, self.num_items)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, idx):
        user = self.users[idx]
        negative = sample_negatives(np.atleast_1d(user), self.keys, self.num_items, self.rng)
        return user, self.items[idx], negative[0] if np.ndim(user) == 0 else negative

    def loader(self, batch_size: int, shuffle: bool = True, as_numpy: bool = False,
               num_negatives: int = 1) -> TripletLoader:
        """Batches of ``(users, items, negatives)``; each pass (epoch) shuffles and
        draws all its negatives in one vectorized call. See :class:`TripletLoader`."""
        return TripletLoader(self, batch_size, shuffle=shuffle, as_numpy=as_numpy,
                             num_negatives=num_negatives)


class TripletLoader:
    """Iterable over a :class:`PRDataset` in batches, re-shuffled and re-sampled
    on every pass. The last batch may be smaller; every triplet is used once
    per pass. Draws from the dataset's generator, so a seeded dataset repeats.

    Batches are ``mx.np`` int32 arrays (copied to MXNet once per pass, then
    sliced), or NumPy int64 arrays with ``as_numpy=True``. With
    ``num_negatives=k`` every positive appears in ``k`` triplets per pass, each
    with its own negative (the NCF paper's k negatives per positive).
    """

    def __init__(self, dataset: PRDataset, batch_size: int, shuffle: bool = True,
                 as_numpy: bool = False, num_negatives: int = 1):
        for name, value in (("batch_size", batch_size), ("num_negatives", num_negatives)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), shuffle
        self.as_numpy, self.num_negatives = as_numpy, int(num_negatives)

    @property
    def num_triplets(self) -> int:
        """Triplets per pass."""
        return len(self.dataset) * self.num_negatives

    def __len__(self) -> int:
        return -(-self.num_triplets // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        data = self.dataset
        order = np.tile(np.arange(len(data)), self.num_negatives)
        if self.shuffle:
            order = order[data.rng.permutation(len(order))]
        users, items = data.users[order], data.items[order]
        columns = (users, items, sample_negatives(users, data.keys, data.num_items, data.rng))
        if not self.as_numpy:
            columns = tuple(mx.np.array(column, dtype=np.int32) for column in columns)
        for start in range(0, len(order), self.batch_size):
            stop = start + self.batch_size
            yield tuple(column[start:stop] for column in columns)
