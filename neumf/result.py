"""What :func:`neumf.fit` returns and :func:`neumf.load` gives back: one object
that recommends, scores, evaluates, saves and exports.

:class:`FitResult` holds the trained network, its configuration, history,
metrics and data; :func:`load_model` reads it back from a run folder
(:mod:`neumf.runs`), and :func:`load` reads a run folder or a serving export
(:mod:`neumf.export`), telling them apart by their manifests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import gluon

from ._gluon import get_weights, set_weights
from ._util import check_path, check_positive_int
from .config import PROTOCOLS, FitConfig
from .devices import try_all_gpus
from .evaluation import evaluate_model, score_users
from .export import EXPORT_MANIFEST, export_run
from .interactions import RecData
from .model import build_model
from .recommend import IdMap, Recommendations, as_raw_ids, recommend
from .runs import (
    MANIFEST,
    RunError,
    RunLock,
    TrainingState,
    claim_run_folder,
    load_params,
    read_run,
    restore_training,
    save_run,
    saved_data,
    saved_history,
    saved_metrics,
)
from .sampling import sampled_negatives
from .serving import Recommender
from .serving import load as load_export

__all__ = ["FitResult", "load", "load_model"]

PathLike = Union[str, os.PathLike]


@dataclass
class FitResult:
    """What :func:`neumf.fit` returns: the trained network, its final test
    metrics, the per-epoch history (see :func:`neumf.train_ranking`; with
    validation, also ``val_*`` metrics) and the data. ``best_epoch`` is the
    epoch whose weights ``net`` holds when early stopping restored them;
    ``towers`` the test metrics of the pretrained towers by model (gmf or mf,
    and mlp); ``seconds`` the ``wall`` and ``cpu`` (process, all threads)
    seconds of the call; ``run_dir`` the folder the run was saved in.

    It is the model too: :meth:`recommend` and :meth:`score` by raw ids (as
    what :func:`neumf.load` returns for an export), :meth:`evaluate` on the
    test pairs, :meth:`save` and :meth:`export`."""

    net: gluon.Block
    config: FitConfig
    history: List[Dict[str, float]]
    num_users: int
    num_items: int
    hit_rate: float = float("nan")
    auc: float = float("nan")
    metrics: Dict[str, float] = field(default_factory=dict)
    data: RecData | None = None
    source: Dict[str, Any] = field(default_factory=dict)
    best_epoch: int | None = None
    towers: Dict[str, Dict[str, float]] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    state: TrainingState | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        data = self.data.name if self.data is not None else "?"
        headline = ", ".join(f"{key} {value:.4f}" for key, value in self.metrics.items()
                             if key.startswith(("hr@", "ndcg@")) or key == "auc")
        return (f"FitResult({self.config.model} on {data}: {self.num_users} users x "
                f"{self.num_items} items, {len(self.history)} epochs"
                + (f", {headline}" if headline else "")
                + (f", saved in {self.run_dir}" if self.run_dir else "") + ")")

    def save(self, run_dir: PathLike, *, final: bool = True, overwrite: bool = False) -> Path:
        """Write the run (model, configuration, id maps, optimizer and sampler
        state, metrics) into ``run_dir``, which must be new, empty, this run's
        own folder, or (with ``overwrite``) another run's; see
        :func:`save_run` and :func:`neumf.load_model`."""
        run_dir = Path(run_dir)
        if self.run_dir is None or run_dir.resolve() != Path(self.run_dir).resolve():
            claim_run_folder(run_dir, overwrite=overwrite)
        with RunLock(run_dir):
            return save_run(self, run_dir, final=final)

    def export(self, folder: PathLike, *, overwrite: bool = False) -> Path:
        """A self-contained folder for serving (see :func:`neumf.export.export_run`),
        which :func:`neumf.load` reads with nothing else from the run."""
        return export_run(self, folder, overwrite=overwrite)

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, *,
                  items: Sequence | None = None,
                  exclude: Sequence | None = None) -> Recommendations:
        """The ``k`` best items for each of ``users`` (one raw id or a list), best
        first, leaving out each user's training items unless ``exclude_seen``
        is False; ``items`` restricts the candidates, ``exclude`` removes some
        (see :func:`neumf.recommend`)."""
        return recommend(self, users, k, exclude_seen, items=items, exclude=exclude)

    def score(self, users, items) -> np.ndarray:
        """Scores of every listed item for every listed user, by raw ids: shape
        (len(users), len(items)), float32 (higher ranks first)."""
        user_index = IdMap(self.data.user_ids, "user").index(as_raw_ids(users))
        item_index = IdMap(self.data.item_ids, "item").index(as_raw_ids(items, "items"))
        return score_users(self.net, user_index, self.num_items, [mx.cpu()])[:, item_index]

    def evaluate(self, protocol: str | None = None, eval_negatives: int | None = None, *,
                 beyond_accuracy: bool = False) -> Dict[str, float]:
        """The test pairs ranked again: ``hr@k``, ``ndcg@k``, ``auc``, ``mrr`` at
        the run's cut-offs, under ``protocol`` (default: the run's; ``'full'``
        against every item not trained on, ``'sampled'`` against the data's
        negatives or ``eval_negatives`` drawn ones); ``beyond_accuracy`` adds
        the measures of :func:`neumf.evaluation.evaluate_model`."""
        protocol = self.config.protocol if protocol is None else protocol
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}")
        if eval_negatives is not None and protocol != "sampled":
            raise ValueError("eval_negatives applies to the sampled protocol: add "
                             "protocol='sampled' (--protocol sampled)")
        data, negatives = self.data, None
        if protocol == "sampled":
            negatives = data.test_negatives
            if negatives is None or eval_negatives is not None:
                count = self.config.eval_negatives if eval_negatives is None \
                    else check_positive_int("eval_negatives", eval_negatives)
                negatives = sampled_negatives(data, count, self.config.seed)
        ks = [k for k in self.config.evaluation.cutoffs() if k <= self.num_items]
        return evaluate_model(self.net, data.test_users, data.test_items, data.train_users,
                              data.train_items, self.num_items, [mx.cpu()],
                              negatives=negatives, ks=ks, beyond_accuracy=beyond_accuracy)


def load_model(run_dir: PathLike, devices: Sequence[mx.Context] | None = None) -> FitResult:
    """Load a saved run as a :class:`FitResult` (network, configuration,
    history, metrics, data and id maps), ready to evaluate, recommend or export.
    The network holds the best epoch's weights when early stopping restored
    them; the run's optimizer and sampler state ride along, so saving the
    result again keeps the run resumable."""
    if (check_path("run_dir", run_dir) / EXPORT_MANIFEST).is_file():
        raise RunError(f"{run_dir} is a serving export, not a run folder: load it with "
                       "neumf.load (a Recommender: recommend and score), or pass it to "
                       "'neumf recommend --export'")
    saved = read_run(run_dir)
    manifest, config = saved.manifest, saved.config
    devices = list(devices) if devices is not None else try_all_gpus()
    net = build_model(config, manifest["num_users"], manifest["num_items"])
    state = TrainingState()
    load_params(saved, net, devices)
    restore_training(saved, net, state, devices)
    if state.best_weights is not None and config.restore_best and \
            manifest.get("best_epoch") is not None:
        state.last_weights = get_weights(net)
        set_weights(net, state.best_weights)
    net.hybridize(static_alloc=True)
    data, state.validation_negatives = saved_data(saved)
    metrics = saved_metrics(saved)
    return FitResult(net=net, config=config, history=saved_history(saved),
                     num_users=manifest["num_users"], num_items=manifest["num_items"],
                     hit_rate=metrics.get(f"hr@{config.k}", float("nan")),
                     auc=metrics.get("auc", float("nan")), metrics=metrics, data=data,
                     source=saved.source, best_epoch=manifest.get("best_epoch"),
                     towers=manifest.get("towers") or {}, run_dir=saved.path, state=state)



def load(path: PathLike, devices: Sequence[mx.Context] | None = None
         ) -> Union[FitResult, Recommender]:
    """What ``path`` holds, ready to recommend and score by raw ids: a run folder
    (``run.json``: a :class:`FitResult`, as :func:`load_model`, which can also
    evaluate, save and export) or a serving export (``export.json``: a
    :class:`neumf.serving.Recommender`, as :func:`neumf.serving.load`)."""
    path = check_path("path", path)
    if (path / MANIFEST).is_file():
        return load_model(path, devices)
    if (path / EXPORT_MANIFEST).is_file():
        return load_export(path)
    if path.is_file():
        raise RunError(f"{path} is a file: give the run or export folder that holds it "
                       f"({path.parent})")
    if not path.is_dir():
        raise RunError(f"{path}: no such run or export folder")
    raise RunError(f"{path}: neither a run folder (no {MANIFEST}) nor an export (no "
                   f"{EXPORT_MANIFEST})")
