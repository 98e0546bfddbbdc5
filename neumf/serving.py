"""A trained model served by raw ids: an export (:mod:`neumf.export`) loaded as a
:class:`Recommender` that recommends and scores with nothing else from the
run, in NumPy (thread-safe). :mod:`neumf.service` answers for one over HTTP."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Dict, Iterator, Sequence, Union

import mxnet as mx
import numpy as np

from ._gluon import get_weights
from ._util import check_bool, check_path
from .export import EXPORT_IDS, EXPORT_PARAMS, EXPORT_SEEN, read_export
from .interactions import SeenIndex
from .recommend import IdMap, Recommendations, as_raw_ids, recommend_blocks
from .runs import RunError
from .scoring import ScorerSpec, score_all

__all__ = ["Recommender", "load"]

PathLike = Union[str, os.PathLike]


class Recommender:
    """A trained model that recommends and scores by raw ids: its weights (as
    NumPy arrays), its id maps and each user's training items.

    A raw id is a string, or a number read as its decimal text (an integer of
    any size, a whole-number float as that integer: ``7.0`` is ``"7"``, as in
    the data); an id the model does not know raises KeyError naming it."""

    def __init__(self, weights: Dict[str, np.ndarray], spec: ScorerSpec, user_ids: Sequence,
                 item_ids: Sequence, seen: SeenIndex, info: Dict | None = None):
        self.weights, self.spec, self.seen = weights, spec, seen
        self.user_ids, self.item_ids = IdMap(user_ids, "user"), IdMap(item_ids, "item")
        self.info = dict(info or {})

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def __repr__(self) -> str:
        return (f"Recommender({self.info.get('model', '?')}: {self.num_users} users x "
                f"{self.num_items} items)")

    @classmethod
    def from_result(cls, result) -> Recommender:
        """A trained or loaded run's model (see :func:`neumf.load_model`)."""
        data = result.data
        return cls(get_weights(result.net), result.net.scorer_spec(), data.user_ids,
                   data.item_ids, SeenIndex.from_pairs(data.train_users, data.train_items,
                                                       result.num_items),
                   {"model": result.config.model, "metrics": result.metrics})

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return score_all(self.weights, users, self.spec)

    def recommend_blocks(self, users, k: int = 10, exclude_seen: bool = True, *,
                         items=None, exclude=None) -> Iterator[Recommendations]:
        """:meth:`recommend` a block of users at a time (bounded memory)."""
        return recommend_blocks(self._scores, users, self.user_ids, self.item_ids, k,
                                seen=self.seen if check_bool("exclude_seen", exclude_seen)
                                else None, items=items,
                                exclude=exclude)

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, *, items=None,
                  exclude=None) -> Recommendations:
        """The ``k`` best items of each of ``users`` (one raw id or a list), best
        first, leaving out each user's training items unless ``exclude_seen``
        is False; ``items`` restricts the candidates, ``exclude`` removes some.
        An unknown id raises KeyError naming it."""
        blocks = list(self.recommend_blocks(users, k, exclude_seen, items=items,
                                            exclude=exclude))
        return Recommendations([user for block in blocks for user in block.users],
                               [row for block in blocks for row in block.items],
                               [row for block in blocks for row in block.scores])

    def score(self, users, items) -> np.ndarray:
        """Scores of every listed item for every listed user, by raw ids: shape
        (len(users), len(items)), float32 (higher ranks first)."""
        user_index = self.user_ids.index(as_raw_ids(users))
        item_index = self.item_ids.index(as_raw_ids(items, "items"))
        return self._scores(user_index)[:, item_index]


def _recommender(folder: Path, manifest: Dict, contents: Dict[str, bytes]) -> Recommender:
    try:
        with mx.util.np_shape(True), mx.util.np_array(True):
            arrays = mx.nd.load_frombuffer(contents[EXPORT_PARAMS])
            by_name = {key.split(":", 1)[-1]: value.asnumpy() for key, value in arrays.items()}
        weights = {structural: by_name[name]
                   for structural, name in manifest["parameters"].items()}
        ids = json.loads(contents[EXPORT_IDS].decode("utf-8"))
        with np.load(io.BytesIO(contents[EXPORT_SEEN]), allow_pickle=False) as seen:
            indptr, items = seen["indptr"], seen["items"]
        users = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        return Recommender(weights, ScorerSpec(**manifest["scorer"]), ids["users"],
                           ids["items"], SeenIndex.from_pairs(users, items,
                                                              manifest["num_items"]),
                           {"model": manifest["model"], "metrics": manifest.get("metrics", {}),
                            "version": manifest["version"], "folder": str(folder)})
    except (mx.base.MXNetError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{folder}: the export's files do not make a model ({reason}): it "
                       "was not written by this neumf, or was damaged") from None


def load(folder: PathLike) -> Recommender:
    """Load an export written by :meth:`neumf.FitResult.export` (or ``neumf
    export``): files checked against their SHA-256, parameters read under the
    shape semantics they were saved in, nothing else needed from the run.

    The folder is opened once and every file read through it, so an export
    being replaced (``neumf export --overwrite``) is read whole, old or new,
    never a mixture; a file that is a symbolic link, and a manifest naming a
    file an export does not have, are refused."""
    folder = check_path("folder", folder)
    return _recommender(folder, *read_export(folder))
