"""Named data sets as :class:`neumf.RecData`: MovieLens-100K and -1M, any
delimited file of raw ids, and the NCF authors' published format; the files
each came from (with their SHA-256, so a resumed run can check its source);
and :func:`write_ncf`, any data set in the NCF format."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from ._util import atomic_write, file_digest
from ._warn import warn
from .config import SPLIT_MODES
from .download import download_ml100k, find_file
from .interactions import (
    Columns,
    RecData,
    count_once,
    from_raw,
    leave_last_out,
    seq_aware_rows,
)
from .sampling import sampled_negatives
from .tables import ROLES, DataError, Layout, line_of, normal_columns, read_table

__all__ = ["DATASETS", "U_DATA", "load_dataset", "ncf_validation_split", "open_dataset",
           "read_u_data", "sources_of", "write_ncf"]

DATASETS = ("ml-100k", "ml-1m", "csv", "ncf")
U_DATA = Layout(sep="\t", header=False, columns=ROLES, exact=True, dates=False,
                types=(("user", "int"), ("item", "int"), ("rating", "int"),
                       ("timestamp", "timestamp")),
                labels=(("user", "user_id"), ("item", "item_id")))
_ML1M = Layout(sep="::", header=False, columns=ROLES, exact=True, dates=False)
_NCF_RATINGS = Layout(sep="\t", header=False, dates=False,
                      types=(("user", "index"), ("item", "index"), ("rating", "number"),
                             ("timestamp", "timestamp")))
# The random split's share of test rows (the tutorial's default).
TEST_RATIO = 0.1
Sources = Dict[str, str]


def read_u_data(path: str | os.PathLike, sep: str = "\t") -> Tuple[np.ndarray, ...]:
    """``(users, items, ratings, timestamps)`` int64 arrays of a ``u.data``-style
    file (``sep``-separated, 1-based integer ids that run from 1 to their count,
    since they index embedding rows); a :class:`DataError` names the file and
    line of the first problem."""
    path = Path(path)
    frame = read_table(path, replace(U_DATA, sep=sep))
    for role, label in (("user", "user_id"), ("item", "item_id")):
        ids = frame[role].to_numpy()
        if ids.min() < 1:
            row = int(np.flatnonzero(ids < 1)[0])
            raise DataError(f"{path} line {line_of(path, row, False)}: {label} {ids[row]} is "
                            "below 1 (ids are 1-based)")
        distinct = len(np.unique(ids))
        if ids.max() != distinct:
            row = int(np.flatnonzero(ids > distinct)[0])
            raise DataError(f"{path} line {line_of(path, row, False)}: {label} {ids[row]} "
                            f"exceeds the {distinct} distinct {label}s; ids must be "
                            "contiguous from 1")
    return tuple(frame[role].to_numpy(dtype=np.int64) for role in ROLES)


def _ml100k(data_dir, split_mode: str, seed: int | None, progress: bool
            ) -> Tuple[RecData, Sources]:
    """The tutorial's split of ``ml-100k/u.data``, as arrays."""
    path = download_ml100k(data_dir, progress=progress)
    users, items, _, stamps = read_u_data(path)
    num_users, num_items = int(users.max()), int(items.max())
    if split_mode == "seq-aware":
        train, test = seq_aware_rows(users, stamps)
    else:
        keep = np.random.default_rng(seed).uniform(0, 1, len(users)) < 1 - TEST_RATIO
        train, test = np.flatnonzero(keep), np.flatnonzero(~keep)
    data = RecData("ml-100k", users[train] - 1, items[train] - 1, users[test] - 1,
                   items[test] - 1, num_users, num_items, np.arange(1, num_users + 1),
                   np.arange(1, num_items + 1), train_times=stamps[train])
    return count_once(data), {str(path): file_digest(path)}


def _find(data_dir, relative: str, what: str) -> Path:
    try:
        return find_file(relative, data_dir)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise DataError(f"{what}: {exc}") from None


def _ml1m(data_dir, name: str | None) -> Tuple[RecData, Sources]:
    path = _find(data_dir, name or os.path.join("ml-1m", "ratings.dat"), "ml-1m")
    frame = read_table(path, _ML1M)
    data = from_raw("ml-1m", frame["user"].to_numpy(), frame["item"].to_numpy(),
                    frame["timestamp"].to_numpy())
    return data, {str(path): file_digest(path)}


def _csv_path(data_dir, name: str) -> Path:
    """A file where the user points (from the working folder, or absolute) is
    read whatever ``$NEUMF_DATA_DIR`` says, unless ``data_dir`` is given; a
    name that is no such file is looked up in the data folders."""
    if data_dir is None and Path(name).is_file():
        return Path(name).resolve()
    return _find(data_dir, name, "csv")


def _csv(data_dir, name: str | None, columns: Columns, header: bool | None
         ) -> Tuple[RecData, Sources]:
    if not name:
        raise ValueError("dataset 'csv' needs name=, the file's path, or its name in the data "
                         "directory")
    path = _csv_path(data_dir, name)
    frame = read_table(path, Layout(header=header, columns=normal_columns(columns)))
    if "timestamp" not in frame.columns and frame.shape[1] == 3 and _looks_like_seconds(
            frame["rating"].to_numpy()):
        warn(f"{path}: the third column is read as a rating, but its values look "
             "like Unix timestamps; if they are, name the columns (a header "
             "user,item,timestamp, or columns=user,item,timestamp)", UserWarning)
    stamps = (frame["timestamp"].to_numpy() if "timestamp" in frame.columns
              else np.arange(len(frame)))  # no timestamp: file order is time order
    data = from_raw(Path(name).stem, frame["user"].to_numpy(), frame["item"].to_numpy(),
                    stamps)
    return data, {str(path): file_digest(path)}


def _looks_like_seconds(values: np.ndarray) -> bool:
    return bool(values.size and (values == np.floor(values)).all()
                and values.min() > 100_000_000)


def _ncf(data_dir, name: str | None) -> Tuple[RecData, Sources]:
    """The NCF authors' files. The catalogue is what the training file holds:
    test pairs whose user or item is outside it are dropped, and negatives
    outside it or equal to their test item are removed (rows padded with -1);
    warnings count both."""
    if not name:
        raise ValueError("dataset 'ncf' needs name=, e.g. 'ml-1m' for ml-1m.train.rating")
    paths = [_find(data_dir, f"{name}.{suffix}", "ncf")
             for suffix in ("train.rating", "test.rating", "test.negative")]
    train, test = (read_table(path, _NCF_RATINGS) for path in paths[:2])
    train_users, train_items = (train[role].to_numpy(dtype=np.int64) for role in ("user", "item"))
    test_users, test_items = (test[role].to_numpy(dtype=np.int64) for role in ("user", "item"))
    negatives = _read_negatives(paths[2], test_users, test_items)
    num_users = _dense_id_space(train_users, paths[0], "user")
    num_items = _dense_id_space(train_items, paths[0], "item")
    inside = (test_users < num_users) & (test_items < num_items)
    if not inside.all():
        warn(f"{paths[1]}: {int((~inside).sum())} test pairs name a user or "
             "item the training file does not have; they are not evaluated",
             UserWarning)
    test_users, test_items, negatives = test_users[inside], test_items[inside], negatives[inside]
    outside = negatives >= num_items
    is_target = negatives == test_items[:, None]
    if outside.any() or is_target.any():
        warn(f"{paths[2]}: removed {int(outside.sum())} negatives outside "
             f"the catalogue and {int(is_target.sum())} equal to their test item",
             UserWarning)
        negatives = np.where(outside | is_target, -1, negatives)
    times = train["timestamp"].to_numpy() if "timestamp" in train.columns else None
    data = RecData(name, train_users, train_items, test_users, test_items, num_users,
                   num_items, np.arange(num_users), np.arange(num_items), negatives, times)
    return count_once(data), {str(path): file_digest(path) for path in paths}


def _dense_id_space(ids: np.ndarray, path: Path, what: str) -> int:
    """``max(ids) + 1``, refusing id spaces far sparser than the format's 0-based
    contiguous ids (an embedding row per id must fit in memory)."""
    size = int(ids.max()) + 1
    if size > 10 * len(np.unique(ids)) + 100_000:
        row = int(np.argmax(ids))
        raise DataError(f"{path} line {line_of(path, row, False)}: {what} id {size - 1} is far "
                        f"beyond the {len(np.unique(ids))} distinct {what} ids; ids must be "
                        "0-based and contiguous")
    return size


def _read_negatives(path: Path, test_users: np.ndarray, test_items: np.ndarray) -> np.ndarray:
    """Rows ``(user,item)<TAB>neg<TAB>neg...`` in test order, as an (n, m) array
    padded with -1 where rows are shorter."""
    rows = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file of negatives") from None
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


def open_dataset(dataset: str = "ml-100k", data_dir=None, name: str | None = None, *,
                 split_mode: str = "seq-aware", seed: int | None = None,
                 columns: Columns = None, header: bool | None = None,
                 progress: bool = False) -> Tuple[RecData, Sources]:
    """:func:`load_dataset`, and the files read with their SHA-256."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS} or a pandas DataFrame; "
                         f"got {dataset!r}")
    if split_mode not in SPLIT_MODES:
        raise ValueError(f"split_mode must be one of {SPLIT_MODES}; got {split_mode!r}")
    if (columns is not None or header is not None) and dataset != "csv":
        raise ValueError(f"columns= and header= apply to dataset 'csv'; {dataset!r} has a "
                         "fixed layout")
    if dataset == "ml-100k":
        return _ml100k(data_dir, split_mode, seed, progress)
    if split_mode != "seq-aware":
        raise ValueError(f"split_mode {split_mode!r} is only available for ml-100k")
    if dataset == "ml-1m":
        return _ml1m(data_dir, name)
    if dataset == "csv":
        return _csv(data_dir, name, columns, header)
    return _ncf(data_dir, name)


def load_dataset(dataset: str = "ml-100k", data_dir=None, name: str | None = None, *,
                 split_mode: str = "seq-aware", seed: int | None = None,
                 columns: Columns = None, header: bool | None = None) -> RecData:
    """Load a data set and its held-out test pairs.

    ``'ml-100k'``: ``ml-100k/u.data``, the tutorial's seq-aware split (or
    ``split_mode='random'`` with ``seed``, ML-100K only). ``'ml-1m'``:
    ``ml-1m/ratings.dat`` (``::``-separated), each user's latest held out.
    ``'csv'``: the file ``name`` of interactions with raw ids (a path from
    the working folder or absolute, else a name in the data folders), columns named
    by its header or by ``columns`` (roles in column order, e.g.
    ``('user', 'item', 'timestamp')``), ``header`` True/False when line 1's
    nature should not be inferred; each user's latest (or last in the file)
    held out. ``'ncf'``: the NCF authors' ``<name>.train.rating``,
    ``<name>.test.rating`` and ``<name>.test.negative``. Files are looked up
    in ``data_dir``, else ``$NEUMF_DATA_DIR``, else the user cache.
    """
    return open_dataset(dataset, data_dir, name, split_mode=split_mode, seed=seed,
                        columns=columns, header=header)[0]


def write_ncf(data: RecData, data_dir: str | os.PathLike, name: str,
              negatives: np.ndarray | None = None) -> Tuple[Path, Path, Path]:
    """Write ``data`` in the NCF authors' format, readable by
    ``load_dataset('ncf', data_dir, name)``: ``<name>.train.rating`` and
    ``<name>.test.rating`` (``user item rating timestamp``, 0-based, rating 1),
    and ``<name>.test.negative`` from ``negatives`` (shape (n_test, m), -1 pads
    rows), default ``data.test_negatives`` (see :func:`neumf.sampled_negatives`).
    Timestamps are ``train_times`` or the row number. Each file is written
    atomically. Returns the three paths."""
    negatives = data.test_negatives if negatives is None else np.asarray(negatives)
    if negatives is None or negatives.shape[0] != len(data.test_users):
        raise ValueError("negatives must have one row per test pair; sample them with "
                         "neumf.sampled_negatives")
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = tuple(folder / f"{name}.{suffix}"
                  for suffix in ("train.rating", "test.rating", "test.negative"))
    times = data.train_times if data.train_times is not None else np.arange(len(data.train_users))
    test_times = np.full(len(data.test_users), int(times.max(initial=0)) + 1)
    for path, users, items, stamps in ((paths[0], data.train_users, data.train_items, times),
                                       (paths[1], data.test_users, data.test_items, test_times)):
        table = np.column_stack([users, items, np.ones(len(users), dtype=np.int64), stamps])
        atomic_write(path, lambda tmp, table=table: np.savetxt(
            tmp, table.astype(np.int64), fmt="%d", delimiter="\t"))
    lines = [f"({user},{item})\t" + "\t".join(map(str, row[row >= 0].tolist())) + "\n"
             for user, item, row in zip(data.test_users.tolist(), data.test_items.tolist(),
                                        negatives)]
    atomic_write(paths[2], lambda tmp: Path(tmp).write_text("".join(lines), encoding="utf-8"))
    return paths


def sources_of(dataset: str, data_dir, name: str | None) -> Sequence[Path]:
    """The files a named data set is read from (for checking a resumed run's
    source without reading it)."""
    relative = {"ml-100k": [os.path.join("ml-100k", "u.data")],
                "ml-1m": [name or os.path.join("ml-1m", "ratings.dat")],
                "csv": [name or ""],
                "ncf": [f"{name}.{suffix}" for suffix in ("train.rating", "test.rating",
                                                          "test.negative")]}[dataset]
    found = []
    for path in relative:
        try:
            found.append(_csv_path(data_dir, path) if dataset == "csv" and path
                         else find_file(path, data_dir))
        except (FileNotFoundError, DataError):
            continue
    return found


def ncf_validation_split(data_dir, name: str, out_dir: str | os.PathLike, *,
                         out_name: str | None = None, negatives: int = 99,
                         seed: int | None = 0) -> Tuple[Path, Path, Path]:
    """A development protocol for the NCF format: from ``<name>.train.rating``
    alone, hold out each user's newest line (latest timestamp; among equal
    ones, the first in the file, as in the authors' newest-first files), draw
    ``negatives`` distinct items the user never rated for each, and write the
    rest as ``<out_name>.train.rating``, the held-out lines as
    ``<out_name>.test.rating`` and ``<out_name>.test.negative`` into
    ``out_dir`` (``out_name`` default ``<name>-validation``). Tune on it; the
    real test files are never read. Ids keep their values."""
    path = _find(data_dir, f"{name}.train.rating", "ncf")
    frame = read_table(path, _NCF_RATINGS)
    users, items = (frame[role].to_numpy(dtype=np.int64) for role in ("user", "item"))
    stamps = (frame["timestamp"].to_numpy() if "timestamp" in frame.columns
              else np.zeros(len(users), dtype=np.int64))
    num_users = _dense_id_space(users, path, "user")
    num_items = _dense_id_space(items, path, "item")
    held = leave_last_out(users, stamps)
    data = RecData(name, users[~held], items[~held], users[held], items[held], num_users,
                   num_items, np.arange(num_users), np.arange(num_items),
                   train_times=stamps[~held])
    return write_ncf(data, out_dir, out_name or f"{name}-validation",
                     sampled_negatives(data, negatives, seed))
