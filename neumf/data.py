"""Reading, splitting and loading MovieLens-100K, with the D2L tutorial's return values."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from .download import download_ml100k
from .generate import synthetic

__all__ = [
    "COLUMNS",
    "DataError",
    "load_data_ml100k",
    "read_data_ml100k",
    "read_ratings",
    "split_data_ml100k",
    "synthetic",
]

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
SPLIT_MODES = ("random", "seq-aware")
FEEDBACK_KINDS = ("explicit", "implicit")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
TIMESTAMP_RANGE = (0, 4_102_444_800)  # Unix seconds, 1970 to 2100


class DataError(ValueError):
    """Malformed or inconsistent interaction data; the message names the file and line."""


def _first_bad_line(path: Path, sep: str) -> DataError:
    """Scan ``path`` for the first line that is not four integer fields.

    Only called after the fast parser has refused the file, so its Python loop
    is on the error path, never on the normal one.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue  # pandas skips blank lines too
            fields = text.split(sep)
            if len(fields) != len(COLUMNS):
                return DataError(
                    f"{path} line {lineno}: expected {len(COLUMNS)} {sep!r}-separated fields "
                    f"({', '.join(COLUMNS)}), got {len(fields)}: {text[:80]!r}"
                )
            for name, field in zip(COLUMNS, fields):
                try:
                    value = int(field)
                except ValueError:
                    return DataError(
                        f"{path} line {lineno}: {name} is not an integer: {field[:40]!r}"
                    )
                if not _INT64_MIN <= value <= _INT64_MAX:
                    return DataError(f"{path} line {lineno}: {name} {field[:40]} does not fit "
                                     "in a 64-bit integer")
    return DataError(f"{path}: could not be parsed as {len(COLUMNS)} integer columns")


def _line_of(path: Path, mask: np.ndarray) -> Tuple[int, int]:
    """(row, 1-based file line) of the first row where ``mask`` holds, counting
    past the blank lines that the parser skipped (error path only)."""
    row = int(np.flatnonzero(mask)[0])
    seen = -1
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            seen += bool(line.strip())
            if seen == row:
                return row, lineno
    return row, row + 1


def read_ratings(path: str | os.PathLike, sep: str = "\t") -> Tuple[pd.DataFrame, int, int]:
    """Read a ``u.data``-style file: one ``user item rating timestamp`` line
    per interaction, 1-based integer ids.

    Returns ``(data, num_users, num_items)`` as the tutorial's reader does:
    ``data`` has columns ``user_id, item_id, rating, timestamp`` (int64) and
    the counts are the numbers of distinct ids. Ids must run from 1 to those
    counts, since they index embedding rows; otherwise a :class:`DataError`
    names the file and line.
    """
    path = Path(path)
    try:
        data = pd.read_csv(path, sep=sep, header=None, names=list(COLUMNS), dtype=np.int64)
    except FileNotFoundError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (ValueError, pd.errors.ParserError, OverflowError):
        raise _first_bad_line(path, sep) from None
    if data.empty:
        raise DataError(f"{path}: the file is empty: it holds no interactions")
    for column in ("user_id", "item_id"):
        ids = data[column].to_numpy()
        if ids.min() < 1:
            row, line = _line_of(path, ids < 1)
            raise DataError(f"{path} line {line}: {column} {ids[row]} is below 1 (ids are 1-based)")
        distinct = len(np.unique(ids))
        if ids.max() != distinct:
            row, line = _line_of(path, ids > distinct)
            raise DataError(
                f"{path} line {line}: {column} {ids[row]} exceeds the {distinct} distinct "
                f"{column}s; ids must be contiguous from 1"
            )
    stamps = data["timestamp"].to_numpy()
    bad_stamps = (stamps < TIMESTAMP_RANGE[0]) | (stamps > TIMESTAMP_RANGE[1])
    if bad_stamps.any():
        row, line = _line_of(path, bad_stamps)
        raise DataError(f"{path} line {line}: timestamp {stamps[row]} is out of range (Unix "
                        "seconds from 1970 to 2100)")
    num_users = int(data["user_id"].max())
    num_items = int(data["item_id"].max())
    return data, num_users, num_items


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
    test_ratio: float = 0.1,
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
    # Rows sorted by (user, timestamp), ties in file order: the training order.
    order = np.lexsort((stamps, users))
    # The test row is each user's latest; among equal timestamps, the first in file order.
    test_rows = latest_rows(users, stamps)
    test_rows = test_rows[np.argsort(_first_seen_rank(users)[users[test_rows]], kind="stable")]
    test = np.column_stack([users, items, ratings, stamps])[test_rows]
    # The tutorial drops every training row equal to a test row, duplicates included.
    keys = _row_keys(users, items, ratings, stamps)
    is_test = np.isin(keys, keys[test_rows])
    keep = order[~is_test[order]]
    train = np.column_stack([users, items, ratings, stamps])[keep]
    return pd.DataFrame(train), pd.DataFrame(test)


def latest_rows(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Row index of each user's latest interaction, users in ascending order;
    among equal timestamps the first in file order (the tutorial's rule)."""
    users = np.asarray(users)
    order = np.lexsort((np.arange(len(users)), -np.asarray(stamps), users))
    first = np.ones(len(order), dtype=bool)
    first[1:] = users[order][1:] != users[order][:-1]
    return order[first]


def _first_seen_rank(users: np.ndarray) -> np.ndarray:
    """For each user id, the rank of its first appearance in ``users``."""
    uniq, first = np.unique(users, return_index=True)
    rank = np.zeros(uniq.max() + 1, dtype=np.int64)
    rank[uniq[np.argsort(first, kind="stable")]] = np.arange(len(uniq))
    return rank


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
    if feedback == "explicit":
        inter: object = np.zeros((num_items, num_users), dtype=np.float32)
        inter[items, users] = ratings
        scores = ratings.tolist()
    else:
        inter = items_by_user(users, items)
        scores = [1] * len(users)
    return users.tolist(), items.tolist(), scores, inter


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
