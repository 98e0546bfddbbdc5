"""Interactions as arrays: the :class:`RecData` container (training and test
pairs with 0-based ids and the raw ids behind them), the splits that make it,
the seen-pair index, and DataFrames in. NumPy and pandas only.

Rules stated once, here: a repeated (user, item) pair counts once (its
earliest interaction is kept); a test pair that is also a training pair is
removed from training; users with a single interaction are kept for training
and not tested; items seen only in the test set stay in the catalogue. Each
comes with a warning that counts the cases.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ._warn import warn
from .tables import (
    ROLES,
    DataError,
    resolve_columns,
    to_seconds,
    warn_low_ratings,
    warn_untimed,
)

__all__ = ["RecData", "SeenIndex", "count_once", "frame_digest", "from_frame", "from_raw",
           "index_ids",
           "items_by_user", "latest_rows", "leave_last_out", "seq_aware_rows",
           "validation_split"]


class SeenIndex:
    """The seen ``(user, item)`` pairs as sorted ``user * num_items + item``
    keys: which items each user has seen, how many it has not, and its n-th
    unseen item, all vectorized over many users.

    Parameters
    ----------
    keys
        Sorted unique keys (see :meth:`from_pairs`).
    num_items
        Size of the catalogue.
    """

    def __init__(self, keys: np.ndarray, num_items: int):
        self.keys = np.asarray(keys, dtype=np.int64)
        self.num_items = int(num_items)
        users = self.keys // self.num_items
        items = self.keys - users * self.num_items
        self._starts = np.searchsorted(self.keys, np.arange(int(users.max(initial=-1)) + 2)
                                       * self.num_items)
        # Unseen items before each seen item, offset per user so that one sorted
        # array serves every user's search: item_j - (j - start of its user).
        before = items - (np.arange(len(items)) - self._starts[users])
        self._ranks = users * (self.num_items + 1) + before

    @classmethod
    def from_pairs(cls, users: np.ndarray, items: np.ndarray, num_items: int) -> SeenIndex:
        """The index of the given pairs (repeats count once)."""
        users = np.asarray(users, dtype=np.int64)
        return cls(np.unique(users * num_items + np.asarray(items, dtype=np.int64)), num_items)

    def _bounds(self, users: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Positions ``[start, stop)`` of each user's keys."""
        users = np.asarray(users, dtype=np.int64)
        known = users < len(self._starts) - 1
        inside = np.where(known, users, 0)
        starts = np.where(known, self._starts[inside], 0)
        return starts, np.where(known, self._starts[np.minimum(inside + 1, len(self._starts) - 1)],
                                0)

    def seen_counts(self, users: np.ndarray) -> np.ndarray:
        """How many distinct items each of ``users`` has seen, int64."""
        starts, stops = self._bounds(users)
        return stops - starts

    def unseen_counts(self, users: np.ndarray) -> np.ndarray:
        """How many items each of ``users`` never interacted with, int64."""
        return self.num_items - self.seen_counts(users)

    def contains(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Elementwise: has ``users[n]`` seen ``items[n]``."""
        if self.keys.size == 0:
            return np.zeros(np.shape(users), dtype=bool)
        query = np.asarray(users, dtype=np.int64) * self.num_items + np.asarray(items)
        pos = np.searchsorted(self.keys, query).clip(max=len(self.keys) - 1)
        return self.keys[pos] == query

    def mask(self, users: np.ndarray) -> np.ndarray:
        """Boolean (len(users), num_items): the items each of ``users`` has seen;
        no user x item matrix beyond these rows."""
        starts, stops = self._bounds(users)
        lengths = stops - starts
        rows = np.repeat(np.arange(len(lengths)), lengths)
        offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths,
                                                           lengths)
        keys = self.keys[np.repeat(starts, lengths) + offsets]
        mask = np.zeros((len(lengths), self.num_items), dtype=bool)
        mask[rows, keys % self.num_items] = True
        return mask

    def item_of_rank(self, users: np.ndarray, ranks: np.ndarray) -> np.ndarray:
        """The ``ranks[n]``-th (0-based) unseen item of ``users[n]``, in item order.
        Ranks must be below :meth:`unseen_counts`."""
        users = np.asarray(users, dtype=np.int64)
        ranks = np.asarray(ranks, dtype=np.int64)
        if self.keys.size == 0:
            return ranks
        # keys of lower users = seen items of this user before its rank's item
        offset = users * (self.num_items + 1)
        # seen keys of lower users: where the user's own keys start (no search)
        lower = self._starts[np.minimum(users, len(self._starts) - 1)]
        return ranks + np.searchsorted(self._ranks, offset + ranks, side="right") - lower


@dataclass
class RecData:
    """Training and test interactions with 0-based ids, and the raw ids behind them.

    ``user_ids[u]`` and ``item_ids[i]`` are the raw ids (as strings) of user
    ``u`` and item ``i``. ``test_negatives``, when given, holds one row of
    negative items per test pair (the sampled protocol; -1 pads short rows).
    ``train_times``, when known, holds the training rows' timestamps (else
    row order is time order). Ids and shapes are checked on construction.
    """

    name: str
    train_users: np.ndarray
    train_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    num_users: int
    num_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    test_negatives: np.ndarray | None = None
    train_times: np.ndarray | None = None

    def __post_init__(self):
        self.num_users, self.num_items = int(self.num_users), int(self.num_items)
        for part, bound in (("train_users", self.num_users), ("train_items", self.num_items),
                            ("test_users", self.num_users), ("test_items", self.num_items)):
            values = np.asarray(getattr(self, part), dtype=np.int64)
            if values.ndim != 1 or (values.size and (values.min() < 0 or values.max() >= bound)):
                raise DataError(f"{self.name}: {part} must be 1-D ids in 0..{bound - 1}")
            setattr(self, part, values)
        if len(self.train_users) != len(self.train_items) or \
                len(self.test_users) != len(self.test_items):
            raise DataError(f"{self.name}: users and items of a split differ in length")
        self.user_ids = np.asarray(self.user_ids).astype(str)
        self.item_ids = np.asarray(self.item_ids).astype(str)
        if (len(self.user_ids), len(self.item_ids)) != (self.num_users, self.num_items):
            raise DataError(f"{self.name}: {len(self.user_ids)} user ids and "
                            f"{len(self.item_ids)} item ids for {self.num_users} users and "
                            f"{self.num_items} items")
        if self.test_negatives is not None:
            self.test_negatives = np.asarray(self.test_negatives, dtype=np.int64)
            if self.test_negatives.ndim != 2 or \
                    self.test_negatives.shape[0] != len(self.test_users) or \
                    (self.test_negatives.size and self.test_negatives.max() >= self.num_items):
                raise DataError(f"{self.name}: test_negatives must have one row of item ids "
                                "(-1 padded) per test pair")
        if self.train_times is not None:
            self.train_times = np.asarray(self.train_times, dtype=np.int64)
            if self.train_times.shape != self.train_users.shape:
                raise DataError(f"{self.name}: one training timestamp per training pair")

    def __repr__(self) -> str:
        return (f"RecData({self.name!r}: {self.num_users} users x {self.num_items} items, "
                f"{len(self.train_users)} training and {len(self.test_users)} test pairs)")

    def all_pairs(self) -> Tuple[np.ndarray, np.ndarray]:
        """Every (user, item) pair of the data set, training and test."""
        return (np.concatenate([self.train_users, self.test_users]),
                np.concatenate([self.train_items, self.test_items]))

    def candidates(self) -> Dict[int, List[int]]:
        """The tutorial's ``candidates``: user -> its training items."""
        return items_by_user(self.train_users, self.train_items)

    def test_input(self) -> Dict[int, List[int]]:
        """The tutorial's ``test_input``: user -> its test items."""
        return items_by_user(self.test_users, self.test_items)


def items_by_user(users: np.ndarray, items: np.ndarray) -> Dict[int, List[int]]:
    """``{user: [items in data order]}``, users in order of first appearance."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if len(users) == 0:
        return {}
    order = np.argsort(users, kind="stable")
    uniq, starts = np.unique(users[order], return_index=True)
    groups = np.split(items[order], starts[1:])
    _, first = np.unique(users, return_index=True)
    by_appearance = np.argsort(first, kind="stable")
    return {int(uniq[g]): groups[g].tolist() for g in by_appearance}


def latest_rows(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Row index of each user's latest interaction, users in ascending order;
    among equal timestamps the first in file order (the tutorial's rule)."""
    users = np.asarray(users)
    order = np.lexsort((np.arange(len(users)), -np.asarray(stamps), users))
    first = np.ones(len(order), dtype=bool)
    first[1:] = users[order][1:] != users[order][:-1]
    return order[first]


def seq_aware_rows(users: np.ndarray, stamps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The tutorial's seq-aware split as row indices: ``(train_rows, test_rows)``.
    The test row is each user's latest (:func:`latest_rows`), users in order of
    first appearance; training rows are the others, by user then timestamp,
    ties in file order. O(n log n)."""
    users = np.asarray(users, dtype=np.int64)
    test_rows = latest_rows(users, stamps)
    uniq, first = np.unique(users, return_index=True)
    rank = np.zeros(int(uniq.max(initial=0)) + 1, dtype=np.int64)
    rank[uniq[np.argsort(first, kind="stable")]] = np.arange(len(uniq))
    test_rows = test_rows[np.argsort(rank[users[test_rows]], kind="stable")]
    order = np.lexsort((stamps, users))
    is_test = np.zeros(len(users), dtype=bool)
    is_test[test_rows] = True
    return order[~is_test[order]], test_rows


def leave_last_out(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Boolean mask of each user's latest row (the first in file order among equal
    timestamps, as the tutorial). ``users`` are 0-based; users with a single
    row keep it for training and are not tested (a warning counts them)."""
    users = np.asarray(users, dtype=np.int64)
    latest = latest_rows(users, stamps)
    single = np.bincount(users)[users[latest]] < 2
    if single.any():
        warn(f"{int(single.sum())} users have a single interaction: kept for "
             "training, not tested", UserWarning)
    mask = np.zeros(len(users), dtype=bool)
    mask[latest[~single]] = True
    return mask


def index_ids(raw: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Raw ids -> (sorted distinct raw ids as strings, 0-based index per row).
    Integer ids (and whole-number floats) sort as numbers."""
    raw = np.asarray(raw)
    if raw.dtype.kind == "f" and np.isfinite(raw).all() and (raw == np.floor(raw)).all():
        raw = raw.astype(np.int64)
    if raw.dtype.kind in "iu":
        distinct, index = np.unique(raw, return_inverse=True)
        return distinct.astype(str), index
    return np.unique(raw.astype(str), return_inverse=True)


def _first_of_each_pair(users: np.ndarray, items: np.ndarray, num_items: int,
                        stamps: np.ndarray | None = None) -> np.ndarray:
    """Sorted row indices keeping one row per (user, item) pair: the earliest
    (by ``stamps``, then row order)."""
    keys = users * num_items + items
    order = np.lexsort((np.arange(len(keys)),) + (() if stamps is None else (stamps,))
                       + (keys,))
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    return np.sort(order[first])


def count_once(data: RecData) -> RecData:
    """``data`` with repeated training pairs and repeated test pairs counted once
    and test pairs removed from training, each case counted in a warning."""
    keep_train = _first_of_each_pair(data.train_users, data.train_items, data.num_items)
    keep_test = _first_of_each_pair(data.test_users, data.test_items, data.num_items)
    repeats = len(data.train_users) - len(keep_train) + len(data.test_users) - len(keep_test)
    test_index = SeenIndex.from_pairs(data.test_users, data.test_items, data.num_items)
    leaked = test_index.contains(data.train_users[keep_train], data.train_items[keep_train])
    if repeats:
        warn(f"{data.name}: {repeats} repeated (user, item) pairs counted once",
             UserWarning)
    if leaked.any():
        warn(f"{data.name}: {int(leaked.sum())} test pairs also appear in training: "
             "removed from training, so no test item is memorised", UserWarning)
    if not repeats and not leaked.any():
        return data
    keep_train = keep_train[~leaked]
    return RecData(data.name, data.train_users[keep_train], data.train_items[keep_train],
                   data.test_users[keep_test], data.test_items[keep_test], data.num_users,
                   data.num_items, data.user_ids, data.item_ids,
                   None if data.test_negatives is None else data.test_negatives[keep_test],
                   None if data.train_times is None else data.train_times[keep_train])


def from_raw(name: str, raw_users: np.ndarray, raw_items: np.ndarray,
             stamps: np.ndarray) -> RecData:
    """Interactions with raw ids -> :class:`RecData`: ids mapped to 0-based indices
    (sorted raw order), each (user, item) pair once (its earliest interaction),
    each user's latest pair held out (leave-last-out)."""
    user_ids, users = index_ids(raw_users)
    item_ids, items = index_ids(raw_items)
    stamps = np.asarray(stamps, dtype=np.int64)
    keep = _first_of_each_pair(users, items, len(item_ids), stamps)
    if len(keep) < len(users):
        warn(f"{name}: {len(users) - len(keep)} repeated (user, item) pairs counted "
             "once (each pair's earliest interaction kept)", UserWarning)
        users, items, stamps = users[keep], items[keep], stamps[keep]
    test = leave_last_out(users, stamps)
    test_only = np.setdiff1d(items[test], items[~test])
    if test_only.size:  # kept: they are ranked like any item, from untrained embeddings
        warn(f"{test_only.size} item{'s appear' if test_only.size > 1 else ' appears'} "
             "only in the test set; they stay in the catalogue with untrained "
             "embeddings", UserWarning)
    return RecData(name, users[~test], items[~test], users[test], items[test],
                   len(user_ids), len(item_ids), user_ids, item_ids,
                   train_times=stamps[~test])


def validation_split(data: RecData) -> RecData:
    """Hold out each user's latest training interaction (leave-one-more-out) as
    the test pairs of a new :class:`RecData`, for early stopping and model
    selection without the test set. Users with one training row are not held out."""
    times = (data.train_times if data.train_times is not None
             else np.arange(len(data.train_users)))
    with warnings.catch_warnings():  # single-interaction users: expected, not tested
        warnings.simplefilter("ignore", UserWarning)
        held = leave_last_out(data.train_users, times)
    return RecData(data.name, data.train_users[~held], data.train_items[~held],
                   data.train_users[held], data.train_items[held], data.num_users,
                   data.num_items, data.user_ids, data.item_ids, train_times=times[~held])


Columns = Union[Sequence[str], Mapping[str, str], None]


def from_frame(frame: pd.DataFrame, name: str = "dataframe", columns: Columns = None
               ) -> RecData:
    """A :class:`RecData` from a DataFrame of interactions with any raw ids.

    Columns are taken by name (``user``, ``item``, ``rating``, ``timestamp``
    and the usual spellings: ``user_id``, ``userId``, ``item_id``, ``movieId``,
    ``ts``, ...), or as ``columns`` says: roles in column order, or a mapping
    from role to column name. A frame with integer column labels (as the
    tutorial's splits return) is read by position: user, item[, rating][,
    timestamp]. Timestamps are Unix seconds or datetimes; without them, row
    order is time order. Each user's latest row is held out.
    """
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] < 2:
        raise TypeError("frame must be a pandas DataFrame of user, item[, rating]"
                        "[, timestamp] columns")
    if frame.empty:
        raise DataError(f"{name}: no interactions")
    labels = list(frame.columns)
    if columns is None and all(isinstance(label, (int, np.integer)) for label in labels):
        columns = ROLES[:min(len(labels), len(ROLES))]
    found = resolve_columns(labels, columns, where=name)
    values = {role: frame.iloc[:, position] for role, position in found.items()}
    for role in ("user", "item", "timestamp"):
        missing = np.flatnonzero(values[role].isna().to_numpy()) if role in values else []
        if len(missing):
            raise DataError(f"{name}: row {missing[0]} has no {role}")
    if "rating" in values:
        warn_low_ratings(values["rating"], name, lambda row: f"row {row}")
    if columns is not None and "timestamp" not in values and len(labels) > len(found):
        warn_untimed(name, columns, len(labels) - len(found))
    stamps = (to_seconds(values["timestamp"], name) if "timestamp" in values
              else np.arange(len(frame)))
    return from_raw(name, values["user"].to_numpy(), values["item"].to_numpy(), stamps)



def frame_digest(frame: Union[pd.DataFrame, RecData]) -> str:
    """SHA-256 of a DataFrame's contents (values, column names and row order),
    or of a :class:`RecData`'s arrays and id maps."""
    digest = hashlib.sha256()
    if isinstance(frame, RecData):
        for part in ("train_users", "train_items", "test_users", "test_items", "user_ids",
                     "item_ids", "test_negatives", "train_times"):
            value = getattr(frame, part)
            digest.update(part.encode() + (b"-" if value is None else np.ascontiguousarray(
                value if value.dtype != object else value.astype(str)).tobytes()))
        return digest.hexdigest()
    digest.update(repr(list(map(str, frame.columns))).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
