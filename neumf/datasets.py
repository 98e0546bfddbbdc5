"""Data sets as train/test arrays with id maps: MovieLens-100K and -1M, any
delimited file of raw ids, and the NCF authors' published format."""

from __future__ import annotations

import csv
import itertools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from .data import (
    TIMESTAMP_RANGE,
    DataError,
    items_by_user,
    latest_rows,
    load_data_ml100k,
    read_data_ml100k,
    split_data_ml100k,
)
from .download import data_home

__all__ = ["DATASETS", "RecData", "from_frame", "leave_last_out", "load_dataset",
           "validation_split",
           "write_ncf"]

DATASETS = ("ml-100k", "ml-1m", "csv", "ncf")


@dataclass
class RecData:
    """Training and test interactions with 0-based ids, and the raw ids behind them.

    ``user_ids[u]`` and ``item_ids[i]`` are the raw ids (as strings) of user
    ``u`` and item ``i``. ``test_negatives``, when given, holds one row of
    negative items per test pair (the NCF protocol). ``train_times``, when
    known, holds the training rows' timestamps (else file order is time order).
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
    latest = latest_rows(users, stamps)
    single = np.bincount(users)[users[latest]] < 2
    if single.any():
        warnings.warn(f"{int(single.sum())} users have a single interaction: kept for "
                      "training, not tested", UserWarning, stacklevel=3)
    mask = np.zeros(len(users), dtype=bool)
    mask[latest[~single]] = True
    return mask


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


def _index(raw: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Raw ids -> (sorted distinct raw ids as strings, 0-based index per row).
    Integer ids are sorted as numbers and only the distinct ones become strings."""
    raw = np.asarray(raw)
    if raw.dtype.kind in "iu":
        distinct, index = np.unique(raw, return_inverse=True)
        return distinct.astype(str), index
    return np.unique(raw.astype(str), return_inverse=True)


def _from_raw(name: str, raw_users: np.ndarray, raw_items: np.ndarray,
              stamps: np.ndarray) -> RecData:
    """Map raw ids to contiguous indices (sorted raw order) and hold out the latest."""
    user_ids, users = _index(raw_users)
    item_ids, items = _index(raw_items)
    test = leave_last_out(users, stamps)
    test_only = np.setdiff1d(items[test], items[~test])
    if test_only.size:  # kept: they are ranked like any item, from untrained embeddings
        warnings.warn(f"{test_only.size} items appear only in the test set; they stay in "
                      "the catalogue with untrained embeddings", UserWarning, stacklevel=3)
    return RecData(name, users[~test], items[~test], users[test], items[test],
                   len(user_ids), len(item_ids), user_ids, item_ids,
                   train_times=np.asarray(stamps)[~test])


def _ml100k(data_dir, split_mode: str, seed: int | None) -> RecData:
    data, num_users, num_items = read_data_ml100k(data_dir)
    train, test = split_data_ml100k(data, num_users, num_items, split_mode, seed=seed)
    users, items, _, _ = load_data_ml100k(train, num_users, num_items, "implicit")
    test_users, test_items, _, _ = load_data_ml100k(test, num_users, num_items, "implicit")
    raw_users = np.arange(1, num_users + 1).astype(str)
    raw_items = np.arange(1, num_items + 1).astype(str)
    return RecData("ml-100k", np.asarray(users), np.asarray(items), np.asarray(test_users),
                   np.asarray(test_items), num_users, num_items, raw_users, raw_items,
                   train_times=train.iloc[:, 3].to_numpy(dtype=np.int64))


def _field_problem(kind: str, field: str) -> str | None:
    """What is wrong with one field of the given kind (``id``, ``int``, ``rating``,
    ``timestamp``), or None."""
    if kind == "id":
        return None if field.strip() else "is empty"
    try:
        value = float(field) if kind == "rating" else int(field)
    except ValueError:
        return f"is not {'a number' if kind == 'rating' else 'an integer'}: {field[:40]!r}"
    if kind == "rating" and not np.isfinite(value):
        return f"is not a finite number: {field[:40]!r}"
    if kind == "int" and not 0 <= value < 2**63:
        return f"{field[:40]} is not a non-negative 64-bit id"
    if kind == "timestamp" and not TIMESTAMP_RANGE[0] <= value <= TIMESTAMP_RANGE[1]:
        return f"{field[:40]} is out of range (Unix seconds from 1970 to 2100)"
    return None


def _scan(path: Path, sep: str, names: Tuple[str, ...], kinds: Tuple[str, ...],
          header: str | None) -> DataError:
    """The first malformed line of ``path``, as a DataError naming it. Runs only
    after the fast parser or a vectorized check has refused the file."""
    expected = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            if header is not None and lineno == 1:
                continue
            if header is not None and text == header:
                return DataError(f"{path} line {lineno}: the header line is repeated")
            fields = text.split(sep)
            expected = expected or len(fields)
            if len(fields) != expected or len(fields) < len(kinds):
                return DataError(f"{path} line {lineno}: expected {max(expected, len(kinds))} "
                                 f"{sep!r}-separated fields, got {len(fields)}: {text[:80]!r}")
            for name, kind, field in zip(names, kinds, fields):
                problem = _field_problem(kind, field)
                if problem:
                    return DataError(f"{path} line {lineno}: {name} {problem}")
    return DataError(f"{path}: could not be read as {sep!r}-separated "
                     f"{', '.join(names)}")


def _read_table(path: Path, sep: str, names: Tuple[str, ...], kinds: Tuple[str, ...],
                header: bool = False, min_columns: int | None = None) -> pd.DataFrame:
    """Read ``path`` as strings and check every field of the named columns,
    vectorized; any problem is reported by :func:`_scan` with its line. With
    ``min_columns``, the trailing named columns are optional: the file's width
    decides which are read. Returns only the named columns present."""
    header_text = None
    if header:
        with open(path, encoding="utf-8", errors="replace") as handle:
            header_text = handle.readline().rstrip("\r\n")
    numeric = _read_numeric(path, sep, kinds, header, min_columns)
    if numeric is not None:
        return numeric
    try:
        frame = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False,
                            engine="python" if len(sep) > 1 else "c",
                            skiprows=1 if header else 0, quoting=3)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (pd.errors.ParserError, ValueError, csv.Error):
        raise _scan(path, sep, names, kinds, header_text) from None
    if frame.empty:
        raise DataError(f"{path}: no interactions")
    if min_columns is not None:
        width = max(min_columns, min(frame.shape[1], len(kinds)))
        names, kinds = names[:width], kinds[:width]
    if frame.shape[1] < len(kinds) or not _fields_ok(frame, kinds, header_text, sep):
        raise _scan(path, sep, names, kinds, header_text)
    return frame.iloc[:, :len(kinds)] if min_columns is not None else frame


def _read_numeric(path: Path, sep: str, kinds: Tuple[str, ...], header: bool,
                  min_columns: int | None) -> pd.DataFrame | None:
    """The fast path for files of numbers only (large data): parse the checked
    columns as int64 (ratings float64) and range-check them, vectorized. None
    when any field is not such a number: the caller's string path then finds
    and names the line, or reads string ids."""
    if len(sep) > 1:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [handle.readline() for _ in range(2 if header else 1)]
    except (OSError, UnicodeDecodeError):
        return None
    fields = lines[-1].rstrip("\r\n").split(sep)
    width = len(kinds) if min_columns is None else max(min_columns,
                                                      min(len(fields), len(kinds)))
    if len(fields) < width or not all(_is_number(field) for field in fields[:width]):
        return None
    dtypes = {column: np.float64 if kind == "rating" else np.int64
              for column, kind in enumerate(kinds[:width])}
    try:
        frame = pd.read_csv(path, sep=sep, header=None, usecols=range(width), dtype=dtypes,
                            skiprows=1 if header else 0, engine="c", quoting=3)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error,
            OverflowError):
        return None
    if frame.empty or frame.isna().to_numpy().any():
        return None
    for column, kind in enumerate(kinds[:width]):
        values = frame.iloc[:, column].to_numpy()
        if kind == "rating" and not np.isfinite(values).all():
            return None
        low, high = TIMESTAMP_RANGE if kind == "timestamp" else (
            (0, 2**63 - 1024) if kind in ("int", "rating") else (-(2**63), 2**63 - 1))
        if len(values) and (values.min() < low or values.max() > high):
            return None
    return frame


def _fields_ok(frame: pd.DataFrame, kinds: Tuple[str, ...], header: str | None,
               sep: str) -> bool:
    """Vectorized: every field of every checked column is well formed, and no
    row repeats the header."""
    if header is not None:
        fields = header.split(sep)
        if len(fields) == frame.shape[1] and np.logical_and.reduce(
                [frame.iloc[:, c].str.strip() == field.strip()
                 for c, field in enumerate(fields)]).any():
            return False
    for column, kind in enumerate(kinds):
        values = frame.iloc[:, column]
        if kind == "id":
            if (values.str.strip() == "").any():
                return False
            continue
        if kind in ("int", "timestamp") and not values.str.fullmatch(r"\s*[+-]?\d+\s*").all():
            return False  # int() must accept it: no exponents, no decimals
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().any():
            return False
        numbers = numbers.to_numpy(dtype=np.float64)
        if kind == "rating" and not np.isfinite(numbers).all():
            return False
        if kind in ("int", "timestamp") and (numbers != np.floor(numbers)).any():
            return False
        low, high = TIMESTAMP_RANGE if kind == "timestamp" else (0, 2.0**63 - 1024)
        if (numbers < low).any() or (numbers > high).any():
            return False
    return True


def _ml1m(data_dir, name: str | None) -> RecData:
    path = data_home(data_dir) / (name or os.path.join("ml-1m", "ratings.dat"))
    frame = _read_table(path, "::", ("user", "item", "rating", "timestamp"),
                        ("id", "id", "rating", "timestamp"))
    stamps = frame.iloc[:, 3].astype(np.int64).to_numpy()
    return _from_raw("ml-1m", frame.iloc[:, 0].to_numpy(), frame.iloc[:, 1].to_numpy(), stamps)


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
    ids (tab, comma, semicolon or space separated, optional header line),
    checking every line: a problem raises :class:`DataError` naming the line."""
    path = Path(path)
    sep, header = _sniff(path)
    return _read_table(path, sep, ("user", "item", "rating", "timestamp"),
                       ("id", "id", "rating", "timestamp"), header=header, min_columns=2)


def _csv(data_dir, name: str | None) -> RecData:
    if not name:
        raise ValueError("dataset 'csv' needs name=, the file's name in the data directory")
    path = data_home(data_dir) / name
    frame = read_interactions(path)
    stamps = (frame.iloc[:, 3].astype(np.int64).to_numpy() if frame.shape[1] >= 4
              else np.arange(len(frame)))  # no timestamp: file order is time order
    return _from_raw(Path(name).stem, frame.iloc[:, 0].to_numpy(),
                     frame.iloc[:, 1].to_numpy(), stamps)


def from_frame(frame: pd.DataFrame, name: str = "dataframe") -> RecData:
    """A :class:`RecData` from a DataFrame of ``user, item[, rating][, timestamp]``
    with any raw ids: columns named ``user``, ``item`` (and ``timestamp``) if it
    has them, else by position. Each user's latest row is held out (the last
    in frame order without timestamps)."""
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] < 2:
        raise ValueError("frame must be a pandas DataFrame of user, item[, rating]"
                         "[, timestamp] columns")
    if frame.empty:
        raise DataError(f"{name}: no interactions")
    named = {"user", "item"} <= set(frame.columns)
    columns = [frame["user"], frame["item"]] if named else [frame.iloc[:, 0], frame.iloc[:, 1]]
    if named and "timestamp" in frame.columns:
        columns.append(frame["timestamp"])
    elif not named and frame.shape[1] >= 4:
        columns.append(frame.iloc[:, 3])
    for column, what in zip(columns, ("user", "item", "timestamp")):
        missing = np.flatnonzero(column.isna().to_numpy())
        if missing.size:
            raise DataError(f"{name}: row {missing[0]} has no {what}")
    stamps = np.arange(len(frame))
    if len(columns) == 3:
        values = pd.to_numeric(columns[2], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.floor(values)))
        if bad.size:
            raise DataError(f"{name}: row {bad[0]}: timestamp {columns[2].iloc[bad[0]]!r} is "
                            "not an integer")
        stamps = values.astype(np.int64)
    return _from_raw(name, columns[0].to_numpy(), columns[1].to_numpy(), stamps)


def _ncf(data_dir, name: str | None) -> RecData:
    """The NCF authors' files. The catalogue is what the training file holds:
    test pairs whose user or item is outside it are dropped, and negatives
    outside it or equal to their test item are removed (rows padded with -1);
    warnings count both."""
    if not name:
        raise ValueError("dataset 'ncf' needs name=, e.g. 'ml-1m' for ml-1m.train.rating")
    base = data_home(data_dir) / name
    names, kinds = ("user", "item", "rating", "timestamp"), ("int", "int", "rating", "timestamp")
    train = _read_table(Path(f"{base}.train.rating"), "\t", names, kinds, min_columns=2)
    test = _read_table(Path(f"{base}.test.rating"), "\t", names, kinds, min_columns=2)
    train_users, train_items = (train.iloc[:, c].astype(np.int64).to_numpy() for c in (0, 1))
    test_users, test_items = (test.iloc[:, c].astype(np.int64).to_numpy() for c in (0, 1))
    negatives = _read_negatives(Path(f"{base}.test.negative"), test_users, test_items)
    train_path = Path(f"{base}.train.rating")
    num_users = _dense_id_space(train_users, train_path, "user")
    num_items = _dense_id_space(train_items, train_path, "item")

    inside = (test_users < num_users) & (test_items < num_items)
    if not inside.all():
        warnings.warn(f"{base}.test.rating: {int((~inside).sum())} test pairs name a user or "
                      "item the training file does not have; they are not evaluated",
                      UserWarning, stacklevel=3)
    test_users, test_items, negatives = test_users[inside], test_items[inside], negatives[inside]
    outside = (negatives >= num_items)
    is_target = negatives == test_items[:, None]
    if outside.any() or is_target.any():
        warnings.warn(f"{base}.test.negative: removed {int(outside.sum())} negatives outside "
                      f"the catalogue and {int(is_target.sum())} equal to their test item",
                      UserWarning, stacklevel=3)
        negatives = np.where(outside | is_target, -1, negatives)
    times = (train.iloc[:, 3].astype(np.int64).to_numpy() if train.shape[1] >= 4
             else None)  # without timestamps, file order is time order
    return RecData(name, train_users, train_items, test_users, test_items, num_users,
                   num_items, np.arange(num_users).astype(str),
                   np.arange(num_items).astype(str), negatives, times)


def _dense_id_space(ids: np.ndarray, path: Path, what: str) -> int:
    """``max(ids) + 1``, refusing id spaces far sparser than the format's 0-based
    contiguous ids (an embedding row per id must fit in memory)."""
    size = int(ids.max()) + 1
    if size > 10 * len(np.unique(ids)) + 100_000:
        line = int(np.argmax(ids)) + 1
        raise DataError(f"{path} line {line}: {what} id {size - 1} is far beyond the "
                        f"{len(np.unique(ids))} distinct {what} ids; ids must be 0-based "
                        "and contiguous")
    return size


def _read_negatives(path: Path, test_users: np.ndarray, test_items: np.ndarray) -> np.ndarray:
    """Rows ``(user,item)<TAB>neg<TAB>neg...`` in test order, as an (n, m) array
    padded with -1 where rows are shorter."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    for lineno, line in enumerate(lines, start=1):
        fields = line.rstrip("\r\n").split("\t")
        if not fields[0].strip():
            continue
        try:
            user, item = (int(v) for v in fields[0].strip().strip("()").split(","))
            negatives = [int(v) for v in fields[1:] if v.strip()]
        except ValueError:
            raise DataError(f"{path} line {lineno}: expected '(user,item)' then tab-separated "
                            f"negative item ids, got {line[:60]!r}") from None
        if min(negatives, default=0) < 0 or max(negatives, default=0) >= 2**62:
            raise DataError(f"{path} line {lineno}: negative item ids must be non-negative")
        index = len(rows)
        if index >= len(test_users) or (user, item) != (test_users[index], test_items[index]):
            raise DataError(f"{path} line {lineno}: ({user},{item}) does not match "
                            "the test file's pair on the same line")
        rows.append(negatives)
    if len(rows) != len(test_users):
        raise DataError(f"{path}: {len(rows)} lines for {len(test_users)} test pairs")
    width = max((len(row) for row in rows), default=0)
    if width == 0:
        raise DataError(f"{path}: no negative items")
    padded = np.full((len(rows), width), -1, dtype=np.int64)
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    padded[np.arange(width)[None, :] < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return padded


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


def write_ncf(data: RecData, data_dir: str | os.PathLike, name: str,
              negatives: np.ndarray | None = None) -> Tuple[Path, Path, Path]:
    """Write ``data`` in the NCF authors' format, readable by
    ``load_dataset('ncf', data_dir, name)``: ``<name>.train.rating`` and
    ``<name>.test.rating`` (``user item rating timestamp``, 0-based, rating 1),
    and ``<name>.test.negative`` from ``negatives`` (shape (n_test, m), -1 pads
    rows), default ``data.test_negatives``. Timestamps are ``train_times`` or
    the row number. Returns the three paths."""
    negatives = data.test_negatives if negatives is None else np.asarray(negatives)
    if negatives is None or negatives.shape[0] != len(data.test_users):
        raise ValueError("negatives must have one row per test pair; sample them with "
                         "neumf.experiment.sampled_negatives")
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = tuple(folder / f"{name}.{suffix}"
                  for suffix in ("train.rating", "test.rating", "test.negative"))
    times = data.train_times if data.train_times is not None else np.arange(len(data.train_users))
    test_times = np.full(len(data.test_users), int(times.max(initial=0)) + 1)
    for path, users, items, stamps in ((paths[0], data.train_users, data.train_items, times),
                                       (paths[1], data.test_users, data.test_items, test_times)):
        table = np.column_stack([users, items, np.ones(len(users), dtype=np.int64), stamps])
        np.savetxt(path, table.astype(np.int64), fmt="%d", delimiter="\t")
    with open(paths[2], "w", encoding="utf-8") as handle:
        handle.writelines(
            f"({user},{item})\t" + "\t".join(map(str, row[row >= 0].tolist())) + "\n"
            for user, item, row in zip(data.test_users.tolist(), data.test_items.tolist(),
                                       negatives))
    return paths
