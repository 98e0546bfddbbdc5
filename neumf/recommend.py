"""Top-k recommendations for users given by their raw ids, in blocks of users
with bounded memory: a user x catalogue score block at a time, partial
selection of the top k, never a users x items matrix."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Sequence

import mxnet as mx
import numpy as np
import pandas as pd

from ._util import check_bool, check_positive_int
from .evaluation import score_users
from .interactions import SeenIndex
from .metrics import top_k

__all__ = ["IdMap", "Recommendations", "as_raw_ids", "recommend", "recommend_blocks"]

# Users scored together: at most this many, and at most SCORES_PER_BATCH
# user x item scores (128 MiB of float64) in a block.
USERS_PER_BATCH = 1024
SCORES_PER_BATCH = 1 << 24


@dataclass
class Recommendations:
    """``items[n]`` and ``scores[n]``: user ``users[n]``'s recommended raw item ids,
    best first, and their scores (fewer than ``k`` where fewer items qualify)."""

    users: List[str]
    items: List[List[str]]
    scores: List[np.ndarray]

    def to_records(self) -> List[Dict[str, object]]:
        """One JSON-ready record per user, in order: ``{"user": "42", "items":
        [{"item": "50", "score": 1.23}, ...]}``, best first. The one shape a
        user's recommendations are written in: ``neumf recommend --json`` and
        ``--out x.jsonl`` (a line each), ``GET /recommend`` (one user), ``POST
        /recommend`` (a list under ``"recommendations"``)."""
        return [{"user": user, "items": [{"item": item, "score": float(score)}
                                         for item, score in zip(items, scores)]}
                for user, items, scores in zip(self.users, self.items, self.scores)]

    def to_dict(self) -> Dict[str, List[Dict[str, object]]]:
        """``{user: [{'item': ..., 'score': ...}, ...]}``, JSON-ready (a user
        listed twice appears once; :meth:`to_records` keeps the order)."""
        return {record["user"]: record["items"] for record in self.to_records()}

    def to_frame(self) -> pd.DataFrame:
        """One row per recommendation: ``user, rank`` (1-based), ``item, score``."""
        rows = [(user, rank, item, float(score))
                for user, items, scores in zip(self.users, self.items, self.scores)
                for rank, (item, score) in enumerate(zip(items, scores), start=1)]
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])


def _raw_id(value, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be raw ids (strings or numbers); got {value!r} "
                        f"({type(value).__name__})")
    if isinstance(value, numbers.Integral):
        return str(int(value))  # any size: a long number is an id like any other
    if not math.isfinite(value):
        raise ValueError(f"{what} must be raw ids; got {value!r}")
    return str(int(value)) if float(value).is_integer() else str(value)


def as_raw_ids(ids, what: str = "users") -> List[str]:
    """Raw ids as strings: one id (a string or a number) is a list of one; any
    other iterable lists them. A number is its decimal text: an integer of any
    size as it is, a whole-number float as that integer (``7.0`` is ``"7"``,
    as data files' ids are read); a bool, NaN or infinity is refused."""
    if isinstance(ids, (str, bytes, numbers.Number)) or np.ndim(ids) == 0:
        ids = [ids]
    try:
        values = list(ids)
    except TypeError:
        raise TypeError(f"{what} must be a raw id or a list of raw ids; got {ids!r}") from None
    return [_raw_id(value, what) for value in values]


class IdMap:
    """Raw ids (as strings) and their 0-based indices, looked up in one dict."""

    def __init__(self, raw_ids: Sequence, what: str):
        self.raw = np.asarray(raw_ids).astype(str)
        self.what = what
        self._index = {raw: index for index, raw in enumerate(self.raw.tolist())}

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, raw) -> bool:
        return str(raw) in self._index

    def index(self, raw_ids: Sequence[str]) -> np.ndarray:
        """Indices of ``raw_ids``; a KeyError names the unknown ones."""
        unknown = [raw for raw in raw_ids if raw not in self._index]
        if unknown:
            raise KeyError(f"unknown {self.what} id(s): {', '.join(unknown[:10])}"
                           + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""))
        return np.fromiter((self._index[raw] for raw in raw_ids), dtype=np.int64,
                           count=len(raw_ids))


def recommend_blocks(score_block: Callable[[np.ndarray], np.ndarray], users: Sequence[str],
                     user_ids: IdMap, item_ids: IdMap, k: int, *,
                     seen: SeenIndex | None = None, items: Sequence | None = None,
                     exclude: Sequence | None = None,
                     users_per_batch: int | None = None) -> Iterator[Recommendations]:
    """The top ``k`` of each user, a block of users at a time.

    ``score_block(indices)`` gives the (n, catalogue) scores of those users;
    ``seen`` (if given) are never recommended, nor ``exclude``; with ``items``,
    only those are. Unknown ids raise KeyError before any scoring. Blocks hold
    ``users_per_batch`` users (default: as many as keep the block's scores
    within 128 MiB, at most 1024).
    """
    k = check_positive_int("k", k)
    if k > len(item_ids):
        raise ValueError(f"k={k} is larger than the catalogue of {len(item_ids)} items")
    users = as_raw_ids(users)
    index = user_ids.index(users)
    allowed = np.ones(len(item_ids), dtype=bool)
    if items is not None:
        allowed[:] = False
        allowed[item_ids.index(as_raw_ids(items, "items"))] = True
    if exclude is not None:
        allowed[item_ids.index(as_raw_ids(exclude, "exclude"))] = False
    if users_per_batch is None:
        users_per_batch = max(1, min(USERS_PER_BATCH, SCORES_PER_BATCH // len(item_ids)))
    for start in range(0, len(index), check_positive_int("users_per_batch", users_per_batch)):
        block = index[start:start + users_per_batch]
        scores = np.asarray(score_block(block), dtype=np.float64)
        scores[:, ~allowed] = -np.inf
        if seen is not None:
            scores[seen.mask(block)] = -np.inf
        best, best_scores = top_k(scores, k)
        keep = np.isfinite(best_scores)
        yield Recommendations(users[start:start + len(block)],
                              [item_ids.raw[row[ok]].tolist() for row, ok in zip(best, keep)],
                              [row[ok].astype(np.float32) for row, ok in zip(best_scores, keep)])


def recommend(model, users, k: int = 10, exclude_seen: bool = True, *,
              items: Sequence | None = None, exclude: Sequence | None = None,
              devices: Sequence[mx.Context] | None = None,
              users_per_batch: int | None = None) -> Recommendations:
    """The ``k`` best-scoring items for each user, by raw ids.

    Parameters
    ----------
    model
        A :class:`neumf.FitResult` (from :func:`neumf.fit` or :func:`neumf.load_model`),
        or a :class:`neumf.serving.Recommender`.
    users
        One raw user id (a string or a number) or a list of them, as in the data.
    k
        Items per user.
    exclude_seen
        Leave out the items each user interacted with in training.
    items, exclude
        Recommend only among these raw item ids; never these.
    devices, users_per_batch
        Contexts for networks without a NumPy scorer; users scored together (a
        memory bound: ``users_per_batch * num_items`` scores; default adaptive).
    """
    if not hasattr(model, "data") and callable(getattr(model, "recommend", None)):
        return model.recommend(users, k, check_bool("exclude_seen", exclude_seen),
                               items=items, exclude=exclude)  # a serving.Recommender
    if not hasattr(model, "data") or not hasattr(model, "net"):
        raise TypeError(f"model must be a FitResult (neumf.fit, neumf.load_model) or a "
                        f"Recommender (neumf.serving.load); got {type(model).__name__}"
                        + (": load a run folder with neumf.load_model(path)"
                           if isinstance(model, (str, os.PathLike)) else ""))
    data = model.data
    devices = list(devices) if devices is not None else [mx.cpu()]
    seen = SeenIndex.from_pairs(data.train_users, data.train_items, model.num_items) \
        if check_bool("exclude_seen", exclude_seen) else None
    blocks = list(recommend_blocks(
        lambda block: score_users(model.net, block, model.num_items, devices), users,
        IdMap(data.user_ids, "user"), IdMap(data.item_ids, "item"), k, seen=seen,
        items=items, exclude=exclude, users_per_batch=users_per_batch))
    return Recommendations([user for block in blocks for user in block.users],
                           [row for block in blocks for row in block.items],
                           [row for block in blocks for row in block.scores])
