"""Top-k recommendations for users given by their raw ids."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Dict, List, Sequence

import mxnet as mx
import numpy as np
import pandas as pd

from ._util import check_positive_int
from .evaluation import score_users
from .interactions import SeenIndex

__all__ = ["Recommendations", "as_raw_ids", "recommend", "top_k"]


@dataclass
class Recommendations:
    """``items[n]`` and ``scores[n]``: user ``users[n]``'s recommended raw item ids,
    best first, and their scores (fewer than ``k`` where fewer items qualify)."""

    users: List[str]
    items: List[List[str]]
    scores: List[np.ndarray]

    def to_dict(self) -> Dict[str, List[Dict[str, object]]]:
        """``{user: [{'item': ..., 'score': ...}, ...]}``, JSON-ready."""
        return {user: [{"item": item, "score": float(score)} for item, score in zip(items, scores)]
                for user, items, scores in zip(self.users, self.items, self.scores)}

    def to_frame(self) -> pd.DataFrame:
        """One row per recommendation: ``user, rank`` (1-based), ``item, score``."""
        rows = [(user, rank, item, float(score))
                for user, items, scores in zip(self.users, self.items, self.scores)
                for rank, (item, score) in enumerate(zip(items, scores), start=1)]
        return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])


def as_raw_ids(ids, what: str = "users") -> List[str]:
    """Raw ids as strings: one id (a string or a number) is a list of one; any
    other iterable lists them. Whole-number floats read as integers."""
    if isinstance(ids, (str, bytes, numbers.Number)) or np.ndim(ids) == 0:
        ids = [ids]
    try:
        items = list(ids)
    except TypeError:
        raise TypeError(f"{what} must be a raw id or a list of raw ids; got {ids!r}") from None
    out = []
    for value in items:
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                float(value).is_integer():
            value = int(value)
        out.append(str(value))
    return out


def _indices(raw_ids: np.ndarray, wanted: Sequence, what: str) -> np.ndarray:
    lookup = {raw: index for index, raw in enumerate(raw_ids.astype(str).tolist())}
    unknown = [str(raw) for raw in wanted if str(raw) not in lookup]
    if unknown:
        raise KeyError(f"unknown {what} id(s): {', '.join(unknown[:10])}")
    return np.asarray([lookup[str(raw)] for raw in wanted], dtype=np.int64)


def recommend(model, users: Sequence, k: int = 10, exclude_seen: bool = True, *,
              items: Sequence | None = None, exclude: Sequence | None = None,
              devices: Sequence[mx.Context] | None = None,
              users_per_batch: int = 1024) -> Recommendations:
    """The ``k`` best-scoring items for each user, by raw ids.

    Parameters
    ----------
    model
        A :class:`neumf.FitResult` (from :func:`neumf.fit` or :func:`neumf.load_model`).
    users
        Raw user ids (as in the data file).
    k
        Items per user.
    exclude_seen
        Leave out the items each user interacted with in training.
    items
        If given, recommend only among these raw item ids.
    exclude
        Raw item ids never to recommend.
    devices
        Contexts for scoring networks without a NumPy scorer.
    users_per_batch
        Users scored together (a memory bound: ``users_per_batch * num_items`` floats).
    """
    k = check_positive_int("k", k)
    if k > model.num_items:
        raise ValueError(f"k={k} is larger than the catalogue of {model.num_items} items")
    data = model.data
    users = as_raw_ids(users)
    user_index = _indices(data.user_ids, users, "user")
    allowed = np.ones(model.num_items, dtype=bool)
    if items is not None:
        allowed[:] = False
        allowed[_indices(data.item_ids, as_raw_ids(items, "items"), "item")] = True
    if exclude is not None:
        allowed[_indices(data.item_ids, as_raw_ids(exclude, "exclude"), "item")] = False
    devices = list(devices) if devices is not None else [mx.cpu()]
    seen = SeenIndex.from_pairs(data.train_users, data.train_items, model.num_items) \
        if exclude_seen else None
    out_items: List[List[str]] = []
    out_scores: List[np.ndarray] = []
    for start in range(0, len(user_index), users_per_batch):
        block = user_index[start:start + users_per_batch]
        scores = score_users(model.net, block, model.num_items, devices).astype(np.float64)
        scores[:, ~allowed] = -np.inf
        if seen is not None:
            scores[seen.mask(block)] = -np.inf
        best, best_scores = top_k(scores, k)
        for row in range(len(block)):
            keep = np.isfinite(best_scores[row])
            out_items.append(data.item_ids[best[row][keep]].astype(str).tolist())
            out_scores.append(best_scores[row][keep].astype(np.float32))
    return Recommendations(users, out_items, out_scores)


def top_k(scores: np.ndarray, k: int):
    """Per row, the ``k`` best columns (best first; ties by column order) and
    their scores, by partial selection: no full sort of each row."""
    top = min(k, scores.shape[1])
    best = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    order = np.lexsort((best, -np.take_along_axis(scores, best, axis=1)), axis=1)
    best = np.take_along_axis(best, order, axis=1)
    return best, np.take_along_axis(scores, best, axis=1)
