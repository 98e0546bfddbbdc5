"""Data sets as train/test arrays with id maps: MovieLens-100K and -1M, any
delimited file of raw ids, and the NCF authors' published format."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from .data import DataError, items_by_user, load_data_ml100k, read_data_ml100k, split_data_ml100k
from .download import data_home

__all__ = ["DATASETS", "RecData", "leave_last_out", "load_dataset"]

DATASETS = ("ml-100k", "ml-1m", "csv", "ncf")


@dataclass
class RecData:
    """Training and test interactions with 0-based ids, and the raw ids behind them.

    ``user_ids[u]`` and ``item_ids[i]`` are the raw ids (as strings) of user
    ``u`` and item ``i``. ``test_negatives``, when given, holds one row of
    negative items per test pair (the NCF protocol).
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

    def candidates(self) -> Dict[int, List[int]]:
        """The tutorial's ``candidates``: user -> its training items."""
        return items_by_user(self.train_users, self.train_items)

    def test_input(self) -> Dict[int, List[int]]:
        """The tutorial's ``test_input``: user -> its test items."""
        return items_by_user(self.test_users, self.test_items)


def leave_last_out(users: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """Boolean mask of each user's latest row (the first in file order among equal
    timestamps, as the tutorial). ``users`` are 0-based; users with a single
    row keep it for training and are not tested (a warning counts them)."""
    users = np.asarray(users, dtype=np.int64)
    order = np.lexsort((np.arange(len(users)), -np.asarray(stamps), users))
    first = np.ones(len(order), dtype=bool)
    first[1:] = users[order][1:] != users[order][:-1]
    latest = order[first]
    single = np.bincount(users)[users[latest]] < 2
    if single.any():
        warnings.warn(f"{int(single.sum())} users have a single interaction: kept for "
                      "training, not tested", UserWarning, stacklevel=3)
    mask = np.zeros(len(users), dtype=bool)
    mask[latest[~single]] = True
    return mask


def _from_raw(name: str, raw_users: np.ndarray, raw_items: np.ndarray,
              stamps: np.ndarray) -> RecData:
    """Map raw ids to contiguous indices (sorted raw order) and hold out the latest."""
    user_ids, users = np.unique(raw_users.astype(str), return_inverse=True)
    item_ids, items = np.unique(raw_items.astype(str), return_inverse=True)
    test = leave_last_out(users, stamps)
    return RecData(name, users[~test], items[~test], users[test], items[test],
                   len(user_ids), len(item_ids), user_ids, item_ids)


def _ml100k(data_dir, split_mode: str, seed: int | None) -> RecData:
    data, num_users, num_items = read_data_ml100k(data_dir)
    train, test = split_data_ml100k(data, num_users, num_items, split_mode, seed=seed)
    users, items, _, _ = load_data_ml100k(train, num_users, num_items, "implicit")
    test_users, test_items, _, _ = load_data_ml100k(test, num_users, num_items, "implicit")
    raw_users = np.arange(1, num_users + 1).astype(str)
    raw_items = np.arange(1, num_items + 1).astype(str)
    return RecData("ml-100k", np.asarray(users), np.asarray(items), np.asarray(test_users),
                   np.asarray(test_items), num_users, num_items, raw_users, raw_items)


def _read_table(path: Path, sep: str, columns: int) -> pd.DataFrame:
    """Read ``columns`` fields per line as strings, naming the file and line on error."""
    try:
        frame = pd.read_csv(path, sep=sep, header=None, dtype=str, engine="python"
                            if len(sep) > 1 else "c", keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {exc}") from None
    if frame.shape[1] < columns:
        raise DataError(f"{path} line 1: expected at least {columns} {sep!r}-separated fields, "
                        f"got {frame.shape[1]}")
    return frame


def _ml1m(data_dir, name: str | None) -> RecData:
    path = data_home(data_dir) / (name or os.path.join("ml-1m", "ratings.dat"))
    frame = _read_table(path, "::", 4)
    stamps = _integers(frame.iloc[:, 3], path, "timestamp")
    return _from_raw("ml-1m", frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1].to_numpy(), stamps)


def _integers(column: pd.Series, path: Path, what: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path} line {row + 1}: {what} is not a number: {column.iloc[row]!r}")
    return values.to_numpy(dtype=np.int64)


def _sniff(path: Path) -> Tuple[str, bool]:
    """The delimiter (tab, comma, semicolon or space) and whether line 1 is a header."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        first = handle.readline().rstrip("\r\n")
    if not first:
        raise DataError(f"{path}: the file is empty")
    sep = next((s for s in ("\t", ",", ";", " ") if s in first), ",")
    fields = first.split(sep)
    lowered = first.lower()
    named = "user" in lowered and ("item" in lowered or "movie" in lowered)
    return sep, named or (len(fields) >= 3 and not _is_number(fields[2]))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_interactions(path: str | os.PathLike) -> pd.DataFrame:
    """Read a delimited file of ``user, item[, rating][, timestamp]`` with any raw
    ids (tab, comma, semicolon or space separated, optional header line)."""
    path = Path(path)
    sep, header = _sniff(path)
    frame = _read_table(path, sep, 2)
    if header:
        frame = frame.iloc[1:].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{path}: no interactions")
    return frame


def _csv(data_dir, name: str | None) -> RecData:
    if not name:
        raise ValueError("dataset 'csv' needs name=, the file's name in the data directory")
    path = data_home(data_dir) / name
    frame = read_interactions(path)
    stamps = (_integers(frame.iloc[:, 3], path, "timestamp") if frame.shape[1] >= 4
              else np.arange(len(frame)))  # no timestamp: file order is time order
    return _from_raw(Path(name).stem, frame.iloc[:, 0].to_numpy(),
                     frame.iloc[:, 1].to_numpy(), stamps)


def _ncf(data_dir, name: str | None) -> RecData:
    if not name:
        raise ValueError("dataset 'ncf' needs name=, e.g. 'ml-1m' for ml-1m.train.rating")
    base = data_home(data_dir) / name
    train = _read_table(Path(f"{base}.train.rating"), "\t", 2)
    test = _read_table(Path(f"{base}.test.rating"), "\t", 2)
    train_users = _integers(train.iloc[:, 0], Path(f"{base}.train.rating"), "user")
    train_items = _integers(train.iloc[:, 1], Path(f"{base}.train.rating"), "item")
    test_users = _integers(test.iloc[:, 0], Path(f"{base}.test.rating"), "user")
    test_items = _integers(test.iloc[:, 1], Path(f"{base}.test.rating"), "item")
    negatives = _read_negatives(Path(f"{base}.test.negative"), test_users, test_items)
    num_users = int(max(train_users.max(), test_users.max())) + 1
    num_items = int(max(train_items.max(), test_items.max(), negatives.max())) + 1
    return RecData(name, train_users, train_items, test_users, test_items, num_users,
                   num_items, np.arange(num_users).astype(str),
                   np.arange(num_items).astype(str), negatives)


def _read_negatives(path: Path, test_users: np.ndarray, test_items: np.ndarray) -> np.ndarray:
    """Rows ``(user,item)<TAB>neg<TAB>neg...`` in test order, as a (n, m) array."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if not fields[0]:
                continue
            try:
                user, item = (int(v) for v in fields[0].strip("()").split(","))
                rows.append([int(v) for v in fields[1:] if v])
            except ValueError:
                raise DataError(f"{path} line {lineno}: expected '(user,item)' then negative "
                                f"item ids, got {line[:60]!r}") from None
            index = len(rows) - 1
            if index >= len(test_users) or (user, item) != (test_users[index],
                                                             test_items[index]):
                raise DataError(f"{path} line {lineno}: ({user},{item}) does not match "
                                "the test file's pair on the same line")
    if len(rows) != len(test_users) or len({len(r) for r in rows}) > 1:
        raise DataError(f"{path}: expected {len(test_users)} lines of equally many negatives")
    return np.asarray(rows, dtype=np.int64)


def load_dataset(dataset: str = "ml-100k", data_dir=None, name: str | None = None, *,
                 split_mode: str = "seq-aware", seed: int | None = None) -> RecData:
    """Load a data set and its held-out test pairs.

    ``'ml-100k'``: ``ml-100k/u.data``, the tutorial's seq-aware split.
    ``'ml-1m'``: ``ml-1m/ratings.dat`` (``::``-separated), each user's latest held out.
    ``'csv'``: the file ``name`` of ``user, item[, rating][, timestamp]`` with raw ids,
    each user's latest (or last in the file) held out. ``'ncf'``: the NCF authors'
    ``<name>.train.rating``, ``<name>.test.rating`` and ``<name>.test.negative``.
    Files are looked up in ``data_dir`` (default ``$NEUMF_DATA_DIR``).
    ``split_mode='random'`` (with ``seed``) is the tutorial's random split, for
    ML-100K only.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}")
    if dataset == "ml-100k":
        return _ml100k(data_dir, split_mode, seed)
    if split_mode != "seq-aware":
        raise ValueError(f"split_mode {split_mode!r} is only available for ml-100k")
    if dataset == "ml-1m":
        return _ml1m(data_dir, name)
    if dataset == "csv":
        return _csv(data_dir, name)
    return _ncf(data_dir, name)
