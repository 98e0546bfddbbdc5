"""One checked reader for every delimited file of interactions.

A :class:`Layout` says what a format holds: the delimiter, whether line 1 is
a header, which column plays which role (``user``, ``item``, ``rating``,
``timestamp``) and what each field must look like. Files of numbers take a
vectorized fast path; anything else is read as text under the csv module's
quoting rules, checked field by field with vectorized tests, and only when a
test fails is the file scanned line by line to name the first bad line in a
:class:`DataError`. Headers map to roles by name (``userId``, ``item_id``,
``movieId``, ``ts``, ...); :func:`resolve_columns` is the one rule for files
and DataFrames alike.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ._warn import warn

__all__ = ["ROLES", "DataError", "Layout", "line_of", "normal_columns", "read_table",
           "resolve_columns", "role_of", "to_seconds", "warn_low_ratings", "warn_untimed"]

ROLES = ("user", "item", "rating", "timestamp")
TIMESTAMP_RANGE = (0, 4_102_444_800)  # Unix seconds, 1970 to 2100
_INT64 = (-(2**63), 2**63 - 1)
# Column names each role answers to, compared lower-case without punctuation.
_NAMES = {
    "user": ("user", "userid", "users", "uid", "customer", "customerid", "client", "clientid",
             "member", "memberid", "visitor", "visitorid", "reviewer", "reviewerid",
             "account", "accountid", "person", "personid", "session", "sessionid"),
    "item": ("item", "itemid", "items", "iid", "movie", "movieid", "product", "productid",
             "sku", "article", "articleid", "track", "trackid", "song", "songid", "book",
             "bookid", "isbn", "asin", "business", "businessid", "video", "videoid",
             "artist", "artistid", "game", "gameid", "recipe", "recipeid", "title",
             "titleid", "contentid"),
    "rating": ("rating", "ratings", "score", "stars", "star", "value", "weight", "count",
               "plays", "playcount", "preference", "feedback", "label", "interaction"),
    "timestamp": ("timestamp", "ts", "time", "unixtime", "unixtimestamp", "datetime",
                  "date", "eventtime", "createdat", "when", "epoch", "timestampunix"),
}
_ROLE_OF_NAME = {name: role for role, names in _NAMES.items() for name in names}
_SKIP = ("-", "_", "skip", "")
# Rows inspected to decide whether line 1 is a header.
_SNIFF_ROWS = 200


class DataError(ValueError):
    """Malformed or inconsistent interaction data; the message names the file and line."""


def role_of(name) -> str | None:
    """The role a column name plays (``'userId'`` -> ``'user'``), or None."""
    return _ROLE_OF_NAME.get(re.sub(r"[^a-z0-9]", "", str(name).lower()))


def normal_columns(columns):
    """``columns`` as given (``'user,item,-'``, a sequence of roles or a mapping
    from role to column name) in one spelling: None, a tuple of lower-case
    roles, or a dict."""
    if columns is None or isinstance(columns, Mapping):
        return None if columns is None else dict(columns)
    if isinstance(columns, str):
        columns = columns.split(",")
    return tuple(str(role).strip().lower() for role in columns)


def resolve_columns(names: Sequence, columns=None, where: str = "") -> Dict[str, int]:
    """Role -> column position, from ``columns`` if given, else from ``names``.

    ``columns`` is either a sequence of roles in column order (``'-'`` skips a
    column) or a mapping from role to column name. ``user`` and ``item`` are
    required, each role at most once. A DataError names what was found.
    """
    names = list(names)
    prefix = f"{where}: " if where else ""
    if columns is None:
        roles = [role_of(name) for name in names]
        source = "the column names"
    elif isinstance(columns, Mapping):
        unknown = [role for role in columns if role not in ROLES]
        missing = [name for name in columns.values() if name not in names]
        if unknown or missing:
            raise DataError(f"{prefix}columns must map roles {ROLES} to column names "
                            f"{names}; got {dict(columns)}")
        roles = [next((role for role, name in columns.items() if name == column), None)
                 for column in names]
        source = "columns="
    else:
        columns = list(normal_columns(columns))
        bad = [role for role in columns if role not in ROLES and role not in _SKIP]
        if bad or len(columns) > len(names):
            raise DataError(f"{prefix}columns must list up to {len(names)} of {ROLES} (or '-' "
                            f"to skip a column) in column order; got {columns}")
        roles = [role if role in ROLES else None for role in columns]
        roles += [None] * (len(names) - len(roles))
        source = "columns="
    found: Dict[str, int] = {}
    for position, role in enumerate(roles):
        if role is None:
            continue
        if role in found:
            raise DataError(f"{prefix}{source} give the {role} twice: "
                            f"{names[found[role]]!r} and {names[position]!r}")
        found[role] = position
    if "user" not in found or "item" not in found:
        raise DataError(
            f"{prefix}cannot tell which columns hold the users and the items from "
            f"{source} {[str(name) for name in names]}: name them (user, item, rating, "
            "timestamp, or the usual spellings such as userId, item_id, movieId, ts), or "
            "say which is which with columns=... (neumf train --columns user,item,timestamp)")
    return found


def to_seconds(values: pd.Series, where: str,
               locate: Callable[[int], str] = "row {}".format) -> np.ndarray:
    """Timestamps as int64 Unix seconds: integers as they are, datetimes and ISO
    8601 strings converted. A DataError names (``locate(row)``) the first value
    that is neither, or the first of each form when numbers and text mix."""
    if pd.api.types.is_datetime64_any_dtype(values):
        converted = pd.to_datetime(values, utc=True)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        numeric = np.isfinite(numbers)
        if numeric.all() and (numbers == np.floor(numbers)).all():
            return numbers.astype(np.int64)
        if numeric.any():
            number, text = int(np.argmax(numeric)), int(np.argmax(~numeric))
            raise DataError(f"{where}: timestamps mix numbers ({locate(number)}: "
                            f"{values.iloc[number]!r}) and text ({locate(text)}: "
                            f"{values.iloc[text]!r}): give every one as Unix seconds, or every "
                            "one as an ISO 8601 date")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converted = pd.to_datetime(values.astype(str), utc=True, errors="coerce",
                                       format="ISO8601")
    bad = np.flatnonzero(converted.isna().to_numpy())
    if bad.size:
        raise DataError(f"{where}: {locate(int(bad[0]))}: timestamp {values.iloc[bad[0]]!r} "
                        "is neither Unix seconds nor an ISO 8601 date")
    return (converted - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


@dataclass(frozen=True)
class Layout:
    """What a file of interactions holds.

    ``sep``: the delimiter (None: sniffed from line 1 among tab, ``::``,
    comma, semicolon, pipe and whitespace). ``header``: whether line 1 names
    the columns (None: decided from the file, see :func:`read_table`).
    ``columns``: the roles in column order (None: from the header, or user,
    item[, rating][, timestamp] by position). ``types``: per role, ``'id'``
    (any non-empty text), ``'int'`` (a 64-bit integer), ``'index'`` (a
    non-negative 64-bit integer), ``'number'`` (finite) or ``'timestamp'``
    (Unix seconds from 1970 to 2100; ISO dates too when ``dates``).
    ``labels``: the roles' names in messages. ``exact``: every line has
    exactly the roles' columns (else trailing columns may be absent or extra).
    """

    sep: str | None = None
    header: bool | None = None
    columns: Tuple[str, ...] | None = None
    types: Tuple[Tuple[str, str], ...] = (("user", "id"), ("item", "id"),
                                          ("rating", "number"), ("timestamp", "timestamp"))
    labels: Tuple[Tuple[str, str], ...] = ()
    exact: bool = False
    dates: bool = True

    def kind(self, role: str) -> str:
        return dict(self.types)[role]

    def label(self, role: str) -> str:
        return dict(self.labels).get(role, role)


def _sniff_sep(line: str) -> str:
    if "::" in line:
        return "::"
    for sep in ("\t", ",", ";", "|"):
        if sep in line:
            return sep
    return r"\s+" if line.strip() and len(line.split()) > 1 else ","


def _split(line: str, sep: str) -> List[str]:
    """One line's fields under the csv module's rules (whitespace and ``::``
    delimiters split plainly)."""
    if sep == r"\s+":
        return line.split()
    if len(sep) > 1:
        return [field.strip() for field in line.split(sep)]
    return next(csv.reader([line], delimiter=sep, skipinitialspace=True), [])


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file of interactions") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _names_or_numbers_say_header(first: List[str], rows: List[List[str]]) -> bool:
    """Line 1 names columns if its fields name at least two roles, or if a
    column that holds numbers in every later row has text there."""
    if sum(role_of(field) is not None for field in first) >= 2:
        return True
    rows = [row for row in rows if len(row) == len(first)]
    return bool(rows) and any(
        not _is_number(field) and all(_is_number(row[column]) for row in rows)
        for column, field in enumerate(first))


def _first_lines(text: str, count: int) -> List[str]:
    """The first ``count`` non-blank lines of ``text``, splitting only as much
    of it as they need (splitting a 20M-line file took 10 s)."""
    size = 1 << 16
    while True:
        whole = size >= len(text)
        lines = text[:size].splitlines()
        if not whole:
            lines = lines[:-1]  # the last may be cut short
        lines = [line for line in lines if line.strip()]
        if whole or len(lines) >= count:
            return lines[:count]
        size *= 4


def _resolve_layout(path: Path, text: str, layout: Layout) -> Layout:
    """The layout with its delimiter decided, and its header too where the first
    lines tell (else ``header`` stays None: see :func:`_header_by_recurrence`)."""
    lines = _first_lines(text, _SNIFF_ROWS)
    if not lines:
        raise DataError(f"{path}: the file is empty: it holds no interactions")
    sep = layout.sep or _sniff_sep(lines[0])
    first = _split(lines[0], sep)
    header = layout.header
    if header is None:
        sample = [_split(line, sep) for line in lines[1:_SNIFF_ROWS]]
        if _names_or_numbers_say_header(first, sample):
            header = True
        elif all(_is_number(field) for field in first[:2]):
            header = False  # numeric ids: data
    columns = layout.columns
    if isinstance(columns, Mapping):  # role -> column name: the names of line 1
        header = True
        columns = _by_position(resolve_columns(first, columns, where=f"{path} line 1"),
                               len(first))
    elif columns is not None and not layout.exact:  # a caller's roles: checked up front
        resolve_columns(first, columns, where=f"{path} (columns=, line 1 has {len(first)} "
                        f"field{'s' if len(first) > 1 else ''})")
    given = layout.columns  # roles in order ('-' skips one on purpose), or role -> name
    if given is not None and not layout.exact and "timestamp" not in given \
            and len(first) > len(given):
        warn_untimed(str(path), given, len(first) - len(given))
    if columns is None and header is not False:
        columns = _header_roles(path, first) if header else None
    if columns is None:
        columns = ROLES[:max(2, min(len(first), len(ROLES)))]
    return replace(layout, sep=sep, header=header, columns=tuple(columns))


def warn_untimed(where: str, columns, unread: int) -> None:
    """Columns named by the caller that leave out a timestamp the data may hold:
    the seq-aware split then takes row order as time order; say so."""
    warn(f"{where}: columns={columns!r} names no timestamp and leaves {unread} column(s) "
         "unread, so row order is taken as time order (the seq-aware split holds out "
         "each user's last row); name the timestamp column to split by time",
         UserWarning)


def _header_roles(path: Path, first: List[str]) -> Tuple[str, ...]:
    """The roles a header line names, in column order ('-' for other columns)."""
    try:
        found = resolve_columns(first, where=f"{path} line 1")
    except DataError as exc:
        raise DataError(f"{exc}; if line 1 is an interaction rather than a header, say "
                        "header=False (--no-header)") from None
    return _by_position(found, len(first))


def _by_position(found: Mapping[str, int], num_columns: int) -> Tuple[str, ...]:
    """Roles in column order ('-' for other columns) from role -> position."""
    roles = ["-"] * num_columns
    for role, position in found.items():
        roles[position] = role
    return tuple(roles)


def _header_by_recurrence(path: Path, frame: pd.DataFrame, layout: Layout,
                          named: bool) -> Tuple[pd.DataFrame, Layout]:
    """Settle an undecided header on text data: line 1 is a header when neither
    its user nor its item appears on any other line (an interaction's user and
    item recur: leave-last-out needs two interactions per user). ``frame`` was
    read with line 1 as data; returns it without line 1 if that is a header."""
    users, items = frame["user"], frame["item"]
    if len(frame) < 3 or (users.iloc[1:] == users.iloc[0]).any() or \
            (items.iloc[1:] == items.iloc[0]).any():
        return frame, replace(layout, header=False)
    if not named:  # a header whose names say nothing: refuse, naming them
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = next(line for line in handle if line.strip())
        _header_roles(path, _split(first.rstrip("\r\n"), layout.sep))
    return frame.iloc[1:].reset_index(drop=True), replace(layout, header=True)


def line_of(path: Path, row: int, header: bool) -> int:
    """1-based line of data row ``row``, counting past blank lines and the header
    (error path only)."""
    seen = -1 - int(bool(header))
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            seen += bool(line.strip())
            if seen == row:
                return number
    return row + 1 + int(bool(header))


def _used(layout: Layout) -> List[Tuple[int, str]]:
    return [(position, role) for position, role in enumerate(layout.columns) if role in ROLES]


def _csv_options(layout: Layout, header: bool) -> Dict:
    """pandas.read_csv options for the layout's delimiter."""
    options = {"header": None, "skiprows": 1 if header else 0, "skip_blank_lines": True}
    if layout.sep == r"\s+":
        options.update(sep=r"\s+", engine="c")
    elif len(layout.sep) > 1:
        options.update(sep=re.escape(layout.sep), engine="python")
    else:
        options.update(sep=layout.sep, engine="c", skipinitialspace=True)
    return options


# An integer written another way than Python writes it ("007", "+7"): as text ids,
# "007" and "7" are two ids, which parsing them as numbers would merge.
_SEPARATORS = np.zeros(256, dtype=bool)
_SEPARATORS[np.frombuffer(b" \t\r\n\x0b\x0c,;|:", dtype=np.uint8)] = True
_CHUNK = 1 << 24  # bytes scanned at a time: bounded memory on files of any size


def _uncanonical_numbers(text: str) -> bool:
    """Whether a field of ``text`` is a number written as a number parser
    would not write it back: a leading zero (``007``, ``-07``) or a plus sign
    (``+7``). Vectorized over the field starts (a regex took 2 s per million
    lines)."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    for begin in range(0, data.size, _CHUNK):
        chunk = data[max(0, begin - 1):begin + _CHUNK + 2]
        starts = np.flatnonzero(_SEPARATORS[chunk[:-1]]) + 1
        if begin == 0:
            starts = np.concatenate(([0], starts))
        starts = starts[starts < min(chunk.size, _CHUNK + (begin > 0))]
        padded = np.concatenate((chunk, np.zeros(2, dtype=np.uint8)))
        first, second, third = padded[starts], padded[starts + 1], padded[starts + 2]
        digit2, digit3 = (second >= 48) & (second <= 57), (third >= 48) & (third <= 57)
        signed = (first == 43) | (first == 45)
        if ((first == 48) & digit2 | (first == 43) & digit2
                | signed & (second == 48) & digit3).any():
            return True
    return False


def _read_numeric(path: Path, layout: Layout, text: str) -> pd.DataFrame | None:
    """The fast path for files of numbers (large data): int64 ids and timestamps,
    float64 ratings, range-checked vectorized. None when it does not apply."""
    used = _used(layout)
    if any(layout.kind(role) == "id" for _, role in used) and _uncanonical_numbers(text):
        return None
    dtypes = {position: np.float64 if layout.kind(role) == "number" else np.int64
              for position, role in used}
    try:
        frame = pd.read_csv(path, dtype=dtypes, **_csv_options(layout, bool(layout.header)))
    except (ValueError, IndexError, KeyError, TypeError, pd.errors.ParserError,
            pd.errors.EmptyDataError, csv.Error, OverflowError, UnicodeDecodeError):
        return None  # not a clean file of numbers: the checked path reads it
    width = len(layout.columns)
    if frame.empty or frame.shape[1] < width or (layout.exact and frame.shape[1] != width) \
            or frame[list(dtypes)].isna().to_numpy().any():
        return None
    out = {}
    for position, role in used:
        values = frame[position].to_numpy()
        if values.dtype.kind not in "if" or not _values_ok(values, layout.kind(role)):
            return None
        out[role] = values
    return pd.DataFrame(out)


def _values_ok(values: np.ndarray, kind: str) -> bool:
    if kind == "number":
        return bool(np.isfinite(values).all())
    if kind == "index":
        return bool(values.size == 0 or values.min() >= 0)
    if kind == "timestamp":
        return bool(values.size == 0 or (values.min() >= TIMESTAMP_RANGE[0]
                                         and values.max() <= TIMESTAMP_RANGE[1]))
    return True


def _field_problem(kind: str, field: str, dates: bool) -> str | None:
    """What is wrong with one field of the given kind, or None."""
    if kind == "id":
        return None if field.strip() else "is empty"
    if kind == "number":
        try:
            value = float(field)
        except ValueError:
            return f"is not a number: {field[:40]!r}"
        return None if np.isfinite(value) else f"is not a finite number: {field[:40]!r}"
    try:
        value = int(field)
    except ValueError:
        if kind == "timestamp" and dates and not pd.isna(pd.to_datetime(
                field, utc=True, errors="coerce", format="ISO8601")):
            return None
        return f"is not an integer: {field[:40]!r}"
    if not _INT64[0] <= value <= _INT64[1]:
        return f"{field[:40]} does not fit in a 64-bit integer"
    if kind == "index" and value < 0:
        return f"{field[:40]} is not a non-negative 64-bit id"
    if kind == "timestamp" and not TIMESTAMP_RANGE[0] <= value <= TIMESTAMP_RANGE[1]:
        return f"{field[:40]} is out of range (Unix seconds from 1970 to 2100)"
    return None


def _scan(path: Path, layout: Layout) -> DataError:
    """The first malformed line of ``path``, as a DataError naming it. Runs only
    after a vectorized check has refused the file."""
    sep, used = layout.sep, _used(layout)
    header = None
    width = len(layout.columns)
    shown = "'\\t'" if sep == "\t" else repr(sep)
    names = ", ".join(layout.label(role) for _, role in used)
    expected = None
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            fields = _split(text, sep)
            if layout.header and header is None:
                header = fields
                continue
            if header is not None and fields == header:
                return DataError(f"{path} line {number}: the header line is repeated")
            expected = expected or (width if layout.exact else max(len(fields), width))
            if len(fields) < width or (layout.exact and len(fields) != width) or \
                    len(fields) != expected:
                return DataError(f"{path} line {number}: expected {max(expected, width)} "
                                 f"{shown}-separated fields ({names}), got {len(fields)}: "
                                 f"{text[:80]!r}")
            for position, role in used:
                problem = _field_problem(layout.kind(role), fields[position], layout.dates)
                if problem:
                    return DataError(f"{path} line {number}: {layout.label(role)} {problem}")
    return DataError(f"{path}: could not be read as {shown}-separated {names}")


def _read_strings(path: Path, text: str, layout: Layout) -> pd.DataFrame:
    """Every field as text, checked vectorized; the scan names any problem."""
    header = bool(layout.header)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False,
                            na_filter=False, **_csv_options(layout, header))
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty: it holds no interactions") from None
    except (pd.errors.ParserError, ValueError, csv.Error):
        raise _scan(path, layout) from None
    if frame.empty:
        raise DataError(f"{path}: no interactions after the header")
    width = len(layout.columns)
    if frame.shape[1] < width or (layout.exact and frame.shape[1] != width):
        raise _scan(path, layout)
    out = {}
    for position, role in _used(layout):
        values = frame[position].astype(str)
        if layout.kind(role) == "id":
            values = values.str.strip()
        if not _strings_ok(values, layout.kind(role), layout.dates):
            raise _scan(path, layout)
        out[role] = values
    if header:
        fields = _split(text.lstrip("\r\n").splitlines()[0], layout.sep)
        if frame.shape[1] == len(fields) and np.logical_and.reduce(
                [frame[c].str.strip() == field.strip() for c, field in enumerate(fields)]).any():
            raise _scan(path, layout)
    return pd.DataFrame(out)


def _strings_ok(values: pd.Series, kind: str, dates: bool) -> bool:
    """Vectorized: every field of a column is well formed for its kind."""
    if kind == "id":
        return not (values == "").any()
    if kind == "number":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        return bool(np.isfinite(numbers).all())
    integral = values.str.fullmatch(r"\s*[+-]?\d+\s*")
    if not integral.all():
        if kind != "timestamp" or not dates:
            return False
        parsed = pd.to_datetime(values[~integral], utc=True, errors="coerce", format="ISO8601")
        if parsed.isna().any():
            return False
    numbers = pd.to_numeric(values[integral], errors="coerce").to_numpy(dtype=np.float64)
    low, high = {"index": (0, 2.0**63 - 1024), "timestamp": TIMESTAMP_RANGE}.get(
        kind, (-(2.0**63), 2.0**63 - 1024))
    return bool(not np.isnan(numbers).any() and (numbers >= low).all()
                and (numbers <= high).all())


def _typed(frame: pd.DataFrame, layout: Layout, path: Path) -> pd.DataFrame:
    """Checked text columns as their types: ids stay text, the rest numbers."""
    frame = frame.copy()
    for role in frame.columns:
        kind = layout.kind(role)
        if kind == "number":
            frame[role] = pd.to_numeric(frame[role]).astype(np.float64)
        elif kind == "timestamp":
            frame[role] = to_seconds(frame[role], str(path), lambda row: (
                f"line {line_of(path, row, bool(layout.header))}"))
        elif kind in ("int", "index"):
            frame[role] = frame[role].astype(np.int64)
    return frame


def read_table(path: Union[str, Path], layout: Layout = Layout()) -> pd.DataFrame:
    """Read a delimited file of interactions into a frame with one column per
    role found (``user``, ``item``, then ``rating`` and ``timestamp`` when the
    file has them), every field checked.

    Whether line 1 is a header, when ``layout.header`` is None: it is if it
    names two roles, if a column that holds numbers below holds text there, or
    if its (text) user and item appear on no other line; a header whose names
    do not say which column holds users and items is refused with those names
    unless ``layout.columns`` says. Ids are text (int64 when every id of the
    file is an integer); quotes and whitespace follow the csv module's rules.
    A :class:`DataError` names the file and the first bad line.
    """
    path = Path(path)
    text = _read_text(path)
    named = layout.columns is not None
    layout = _resolve_layout(path, text, layout)
    frame = None if layout.header is None else _read_numeric(path, layout, text)
    if frame is None:
        frame = _read_strings(path, text, replace(layout, header=bool(layout.header)))
        if layout.header is None:
            frame, layout = _header_by_recurrence(path, frame, layout, named)
        frame = _typed(frame, layout, path)
    if "rating" in frame.columns:
        warn_low_ratings(frame["rating"], str(path),
                         lambda row: f"line {line_of(path, row, bool(layout.header))}")
    return frame


def warn_low_ratings(ratings, where: str, locate: Callable[[int], str]) -> None:
    """Warn when ratings hold values of 0 or below (``locate(row)`` says where
    the first is): every row is an interaction, dislikes too."""
    low = np.flatnonzero(pd.to_numeric(pd.Series(ratings), errors="coerce").to_numpy() <= 0)
    if low.size:
        warn(f"{where}: {low.size} row{'s' if low.size > 1 else ''} with a rating of "
             f"0 or below (first: {locate(int(low[0]))}); every row counts as an "
             "interaction, whatever its rating: remove them first if they are "
             "dislikes", UserWarning)
