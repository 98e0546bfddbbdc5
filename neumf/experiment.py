"""``fit()``: from a data set to a trained, evaluated and saved model in one call.

:func:`fit` plans (every setting and the run folder checked before any work),
loads the data (from the run itself when resuming), and trains with
:func:`train`, which :func:`neumf.fit` and pretraining share.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
import pandas as pd
from mxnet import gluon

from ._gluon import get_weights, parameters, set_weights
from ._util import check_bool
from .callbacks import Checkpoint, CollapseCheck, EarlyStopping, PrintEpochs
from .config import FitConfig
from .datasets import open_dataset
from .devices import check_devices, try_all_gpus
from .distributed import shard_rows
from .ease import default_lambda, lambda_grid
from .evaluation import RankingEvaluator
from .interactions import RecData, frame_digest, from_frame, validation_split
from .losses import BPRLoss, HingeLossbRec, PointwiseLogLoss
from .model import NeuMF, build_model, initialize
from .planning import Plan, check_sizes, fit_to_catalogue, plan, request, warn_about_test_pairs
from .plotting import LivePlot
from .result import FitResult
from .runs import (
    RunLock,
    SavedRun,
    TrainingState,
    claim_run_folder,
    restore_training,
    save_run,
    saved_data,
    saved_history,
)
from .sampling import PRDataset, sampled_negatives
from .sparse import SPARSE_OPTIMIZERS, SparseBatches
from .training import EpochStats, evaluate_into, fit_epochs

__all__ = ["fit", "train"]

PathLike = Union[str, os.PathLike]


def _load(planned: Plan, verbose: bool):
    """The data and its source description: the run's own on resume (its
    source checked by :func:`neumf.planning.plan`), else read from the data set."""
    asked, config = planned.request, planned.config
    if planned.saved is not None:
        data, validation_negatives = saved_data(planned.saved)
        return data, dict(planned.saved.source), validation_negatives
    dataset = asked["dataset"]
    source = {key: asked[key] for key in ("name", "preset", "columns", "header")}
    if isinstance(dataset, (pd.DataFrame, RecData)):
        data = dataset if isinstance(dataset, RecData) else from_frame(
            dataset, columns=asked["columns"])
        source.update(dataset="dataframe" if isinstance(dataset, pd.DataFrame) else "recdata",
                      data_dir=None, files={}, frame_sha256=frame_digest(dataset))
        return data, source, None
    data, files = open_dataset(dataset, asked["data_dir"], asked["name"],
                               split_mode=config.split_mode, seed=config.seed,
                               columns=asked["columns"], header=asked["header"],
                               progress=verbose)
    data_dir = asked["data_dir"]
    source.update(dataset=dataset, data_dir=None if data_dir is None else str(data_dir),
                  files=files)
    return data, source, None


def fit(
    *,
    dataset: Union[str, pd.DataFrame, None] = None,
    data_dir: PathLike | None = None,
    name: str | None = None,
    preset: str | None = None,
    devices: Sequence[mx.Context] | None = None,
    verbose: bool = True,
    resume: PathLike | None = None,
    out: PathLike | None = None,
    overwrite: bool = False,
    columns=None,
    header: bool | None = None,
    live_plot: bool = False,
    **overrides,
) -> FitResult:
    """Train and evaluate a ranking model; by default the tutorial's MovieLens-100K
    experiment (NeuMF, seq-aware split, BPR, evaluation over all items after
    every epoch).

    Parameters
    ----------
    dataset, data_dir, name, columns, header
        What to train on (see :func:`neumf.load_dataset`): ``'ml-100k'`` (the
        default; on resume, the run's data), ``'ml-1m'``, ``'csv'`` (the file
        ``name``, columns named by its header or by ``columns``) or ``'ncf'``;
        or a pandas DataFrame (see :func:`neumf.from_frame`).
    preset
        Named settings from :data:`neumf.PRESETS`, applied before ``overrides``.
    devices
        Contexts to train on (``[mx.cpu(0), mx.cpu(1)]``, or as text
        ``'cpu:0,cpu:1'``); default :func:`neumf.try_all_gpus`.
    verbose, live_plot
        Progress bars and a line per epoch; curves redrawn in a notebook.
    resume
        A run folder to continue, with its data, settings, optimizer and
        sampler state, up to ``num_epochs`` epochs in all. Settings that define
        the experiment cannot change; the data source is checked against the
        digests the run saved.
    out, overwrite
        Save the run into this folder (new, empty or this run's own; another
        run's only with ``overwrite``), locked while written, with a checkpoint
        after every epoch. Defaults to ``resume``.
    **overrides
        Any :class:`neumf.FitConfig` field by name; an unknown name raises
        TypeError before any work.

    Returns
    -------
    A :class:`neumf.FitResult`; ``metrics``: the test set's ``hr@k``, ``ndcg@k``, ``auc``, ``mrr``.
    """
    wall, cpu = time.perf_counter(), _cpu_seconds()
    check_bool("verbose", verbose)
    check_bool("live_plot", live_plot)
    asked = request(dataset, data_dir, name, preset, columns, header, resume)
    planned = plan(asked, preset, resume, out, overwrite, overrides)
    devices = check_devices(devices) if devices is not None else try_all_gpus()
    result = _run(planned, devices, overwrite=overwrite, verbose=verbose, live_plot=live_plot)
    result.seconds = {"wall": time.perf_counter() - wall, "cpu": _cpu_seconds() - cpu}
    return result


def _cpu_seconds() -> float:
    """CPU seconds of this process, every thread."""
    times = os.times()
    return times.user + times.system


def _run(planned: Plan, devices: List[mx.Context], *, overwrite: bool, verbose: bool,
         live_plot: bool) -> FitResult:
    """Train as planned: the distributed kvstore (and each worker's own folder),
    the run folder's lock, the data, then :func:`train`."""
    config, kvstore, out = planned.config, planned.config.kvstore, planned.out
    if config.seed is not None:
        mx.random.seed(config.seed)
    if config.training.distributed:
        if "DMLC_ROLE" not in os.environ:
            raise ValueError(f"kvstore {config.kvstore!r} trains across the processes that "
                             "'neumf launch' starts (or DMLC_* variables set by hand): run "
                             f"'neumf launch --num-workers N -- neumf train ... --kvstore "
                             f"{config.kvstore}'")
        kvstore = mx.kv.create(config.kvstore)  # waits for every worker and server
        if out is not None and kvstore.num_workers > 1:
            out = claim_run_folder(out / f"worker-{kvstore.rank}", overwrite=overwrite)
    lock = RunLock(out) if out is not None else None
    if lock is not None:
        lock.acquire()
    try:
        data, source, validation_negatives = _load(planned, verbose)
        config = fit_to_catalogue(config, data, planned.given)
        warn_about_test_pairs(data, config)
        result = train(data, config, devices, source=source, saved=planned.saved, out=out,
                       kvstore=kvstore, verbose=verbose, live_plot=live_plot,
                       validation_negatives=validation_negatives)
    finally:
        if lock is not None:
            lock.release()
    result.run_dir = out
    return result


class _EpochMetrics:
    """The per-epoch evaluation: the tutorial's ``hit_rate`` (at ``k``) and
    ``auc`` columns, and with validation every metric as ``val_*``."""

    def __init__(self, metrics: RankingEvaluator, k: int, prefix: str):
        self.metrics, self.k, self.prefix = metrics, k, prefix

    def __call__(self, net: gluon.Block) -> Dict[str, float]:
        values = self.metrics(net)
        extra = {f"{self.prefix}{key}": value for key, value in values.items()} \
            if self.prefix else {}
        return {"hit_rate": values[f"hr@{self.k}"], "auc": values["auc"], **extra}


def _loss(config: FitConfig) -> gluon.loss.Loss:
    if config.loss == "log":
        loss = PointwiseLogLoss(config.num_negatives)
    else:
        loss = BPRLoss() if config.loss == "bpr" else HingeLossbRec()
    loss.hybridize(static_alloc=True)  # one graph call per device and batch
    return loss


def train(data: RecData, config: FitConfig, devices: List[mx.Context], *,
          source: Dict[str, Any], saved: SavedRun | None = None, out: Path | None = None,
          kvstore: Any = "device", verbose: bool = True, live_plot: bool = False,
          validation_negatives: np.ndarray | None = None) -> FitResult:
    """Train ``config.model`` on ``data`` (continuing ``saved``), evaluate it on
    the test pairs and save it into ``out`` (a checkpoint every epoch)."""
    check_sizes(data, config)
    data, train_data, test_metrics, epoch_metrics, validation_negatives = _evaluations(
        data, config, devices, validation_negatives)
    net = build_model(config, data.num_users, data.num_items)
    initialize(net, config.model_spec, devices)
    net.hybridize(static_alloc=True)
    result = FitResult(net, config, [], data.num_users, data.num_items, data=data,
                       source=source, state=TrainingState(
                           validation_negatives=validation_negatives))
    if config.model in ("popularity", "ease"):  # counted or solved, not trained
        _fit_without_epochs(result, train_data, epoch_metrics, verbose)
        return _finish(result, test_metrics, out)
    if config.pretrain and saved is None:
        result.towers = _pretrain(net, data, config, devices, source, kvstore, verbose,
                                  validation_negatives)
    elif saved is not None:
        result.towers = saved.manifest.get("towers") or {}
    tables = net.tables() if _is_sparse(data, config) else {}
    sampler, loader = _sampler(train_data, data, config, kvstore, bool(tables))
    trainer = _trainer(net, config, kvstore, tables)
    servers = kvstore if isinstance(kvstore, mx.kvstore.KVStore) else None
    sparse = SparseBatches(net, devices, config.batch_size, config.optimizer, config.lr,
                           config.wd, kvstore=servers,
                           set_optimizer=trainer is None,
                           group=config.num_negatives if loader.grouped else 1
                           ) if tables else None
    # with a distributed kvstore the optimizer state lives on the servers
    result.state.trainer = None if isinstance(kvstore, mx.kvstore.KVStore) else trainer
    result.state.sampler, result.state.sparse = sampler, sparse
    if saved is not None:
        restore_training(saved, net, result.state, devices)
        result.history = saved_history(saved)
    early = None
    if config.validation:
        early = EarlyStopping(net, f"val_{config.monitor}", config.patience,
                              result.history, result.state.best_weights)
    callbacks = _callbacks(result, net, loader, trainer, devices, early, out, verbose,
                           live_plot)
    remaining = 0 if early is not None and early.should_stop() else \
        config.num_epochs - len(result.history)
    history = list(result.history)
    # a constant rate leaves the optimizers alone (a distributed one keeps it on its servers)
    schedule = None if config.lr_schedule == "constant" else config.training.learning_rate
    mx.nd.waitall()  # queued setup (initialising large tables) is not the first epoch's time
    history += fit_epochs(net, loader, _loss(config), trainer, devices, num_epochs=remaining,
                          evaluate=epoch_metrics, eval_every=config.evaluation.every,
                          callbacks=callbacks, initial_epoch=len(history), progress=verbose,
                          sparse=sparse, learning_rate=schedule)
    result.history = history
    if early is not None:
        _restore_best(result, early, verbose)
    return _finish(result, test_metrics, out)


def _fit_without_epochs(result: FitResult, train_data: RecData, evaluate,
                        verbose: bool) -> None:
    """The popularity baseline's counts, or EASE's weights and lambda."""
    if result.config.model == "popularity":
        result.net.fit_counts(train_data.train_items)
        return
    result.history, lam = _fit_ease(result.net, result.data, train_data, result.config,
                                    evaluate, verbose)
    result.config = dataclasses.replace(result.config, ease_lambda=lam)


def _fit_ease(net, data: RecData, train_data: RecData, config: FitConfig, evaluate,
              verbose: bool) -> Tuple[List[Dict[str, float]], float]:
    """EASE's weights on ``data``'s training pairs, its lambda as given or else,
    with validation, the best by the monitored validation metric of a grid
    around the default (each fitted on ``train_data``, the pairs left after
    the validation split); one history entry per lambda tried, with its
    metrics (validation, or test without it). Returns the history and lambda."""
    center = default_lambda(len(train_data.train_users), data.num_items)
    candidates = ([config.ease_lambda] if config.ease_lambda is not None
                  else lambda_grid(center) if config.validation else [center])
    history, key = [], f"val_{config.monitor}" if config.validation else None
    for number, lam in enumerate(candidates, start=1):
        start = time.perf_counter()
        net.fit_weights(train_data.train_users, train_data.train_items, lam)
        stats = EpochStats(number, float("nan"), time.perf_counter() - start, 0, float("nan"))
        if config.evaluation.every:
            evaluate_into(stats, net, evaluate)
        history.append({**stats.as_dict(list(stats.metrics)), "ease_lambda": lam})
        if verbose:
            print(f"ease lambda {lam:.4g}: " + ", ".join(
                f"{name} {value:.4f}" for name, value in stats.metrics.items()), flush=True)
    best = max(history, key=lambda stats: stats.get(key, 0.0))["ease_lambda"] \
        if key and len(history) > 1 else candidates[-1]
    if train_data is not data or best != candidates[-1]:  # the final weights: all pairs
        net.fit_weights(data.train_users, data.train_items, best)
    return history, best


def _evaluations(data: RecData, config: FitConfig, devices, validation_negatives):
    """The sampled protocol's negatives (drawn once, then kept with the data), the
    training pairs (without the validation pairs when asked), the test set's
    evaluation and the per-epoch one (on the validation pairs when asked)."""
    test_negatives = data.test_negatives
    # validation pairs get as many negatives as asked (or as the data set gives)
    count = config.eval_negatives if test_negatives is None else test_negatives.shape[1]
    if config.protocol == "sampled" and test_negatives is None:
        test_negatives = sampled_negatives(data, count, config.seed)
        data = dataclasses.replace(data, test_negatives=test_negatives)
    ks = config.evaluation.cutoffs(*config.selection.monitor_k)
    test_metrics = RankingEvaluator(data, test_negatives, ks, devices)
    if not config.validation:
        return data, data, test_metrics, _EpochMetrics(test_metrics, config.k, ""), None
    train_data = validation_split(data)
    if config.protocol == "sampled" and validation_negatives is None:
        validation_negatives = sampled_negatives(train_data, count, config.seed)
    epoch_metrics = _EpochMetrics(RankingEvaluator(train_data, validation_negatives, ks, devices),
                                  config.k, "val_")
    return data, train_data, test_metrics, epoch_metrics, validation_negatives


def _restore_best(result: FitResult, early: EarlyStopping, verbose: bool) -> None:
    """Keep early stopping's best epoch, and its weights when asked (the last
    epoch's stay in the run, for resuming)."""
    result.best_epoch, result.state.best_weights = early.best_epoch, early.best_weights
    if result.config.restore_best and early.best_weights is not None:
        result.state.last_weights = get_weights(result.net)
        set_weights(result.net, early.best_weights)
        if verbose:
            print(f"restored the weights of epoch {early.best_epoch} (best validation "
                  f"{result.config.monitor})")


def _is_sparse(data: RecData, config: FitConfig) -> bool:
    """Row-sparse tables when asked, or by default above SPARSE_ROWS users +
    items where the optimizer allows it (an explicit request the optimizer
    does not allow is refused by the sparse module)."""
    if config.sparse is None and config.optimizer not in SPARSE_OPTIMIZERS:
        return False
    return config.training.is_sparse(data.num_users, data.num_items)


def _trainer(net, config: FitConfig, kvstore, tables) -> gluon.Trainer | None:
    """The Trainer of every parameter but the row-sparse ``tables`` (None if
    nothing is left)."""
    params = [param for name, param in parameters(net).items() if name not in tables]
    if not params:
        return None
    return gluon.Trainer(params, config.optimizer,
                         {"learning_rate": config.lr, "wd": config.wd}, kvstore=kvstore)


def _sampler(train_data: RecData, data: RecData, config: FitConfig, kvstore,
             as_numpy: bool = False):
    """The negative sampler over the training pairs (a worker's shard of them),
    never drawing an item the user trains on. Held-out (validation and test)
    items stay possible negatives: excluding them would tell training about
    the held-out pairs (measured on ML-100K: HR@10 0.140 -> 0.170 for the
    NeuMF that was preset "best", all of it leakage)."""
    rows, seed = slice(None), config.seed
    if isinstance(kvstore, mx.kvstore.KVStore) and kvstore.num_workers > 1:
        rows = shard_rows(len(train_data.train_users), kvstore.rank, kvstore.num_workers,
                          config.batch_size)
        seed = None if seed is None else seed + kvstore.rank  # own negatives per worker
    sampler = PRDataset(train_data.train_users[rows], train_data.train_items[rows], None,
                        data.num_items, seed=seed,
                        seen=(train_data.train_users, train_data.train_items))
    return sampler, sampler.loader(config.batch_size, num_negatives=config.num_negatives,
                                   fill=not isinstance(rows, slice), as_numpy=as_numpy,
                                   grouped=config.group_negatives)


def _callbacks(result, net, loader, trainer, devices, early, out, verbose, live_plot) -> list:
    callbacks: list = []
    if verbose:
        callbacks.append(PrintEpochs(devices, "validation" if early is not None else "test"))
    callbacks.append(CollapseCheck(net, loader, trainer, result.config.batch_size))
    if early is not None:
        callbacks.append(early)
    if live_plot:
        callbacks.append(LivePlot(result.history))
    if out is not None:
        callbacks.append(Checkpoint(dataclasses.replace(result, history=list(result.history)),
                                     out, early))
    return callbacks


def _finish(result: FitResult, test_metrics: RankingEvaluator, out: Path | None) -> FitResult:
    """Rank the test set with the final weights, fill in the result, save it."""
    result.metrics = test_metrics(result.net)
    # the final weights' test hit rate and AUC (the tutorial's pair), whatever the
    # per-epoch evaluation saw last
    result.hit_rate = result.metrics.get(f"hr@{result.config.k}", float("nan"))
    result.auc = result.metrics.get("auc", float("nan"))
    if out is not None:
        save_run(result, out)
    return result


def _pretrain(net: NeuMF, data: RecData, config: FitConfig, devices: List[mx.Context],
              source: Dict[str, Any], kvstore, verbose: bool,
              validation_negatives: np.ndarray | None) -> Dict[str, Dict[str, float]]:
    """Train GMF (or MF, ``gmf_tower='mf'``) and MLP with ``config``'s sizes
    (and NeuMF's validation negatives), one after the other, and load them into
    ``net``; returns each tower's test metrics by model name."""
    gmf_config, mlp_config = (
        dataclasses.replace(config, pretrain=False, **config.pretraining.tower(tower,
                                                                               config.num_epochs))
        for tower in ("gmf", "mlp"))
    common = (devices, source, kvstore, validation_negatives)
    gmf = _train_tower(data, gmf_config, *common, verbose)
    mlp = _train_tower(data, mlp_config, *common, verbose)
    net.load_towers(gmf[0], mlp[0], config.pretraining.alpha)
    return {gmf_config.model: gmf[1], "mlp": mlp[1]}


def _train_tower(data: RecData, config: FitConfig, devices: List[mx.Context],
                 source: Dict[str, Any], kvstore,
                 validation_negatives: np.ndarray | None, verbose: bool):
    """One pretrained tower, a run of its own: its network and test metrics.
    The MLP tower starts from the run's seed afresh, as if trained alone."""
    if config.model == "mlp" and config.seed is not None:
        mx.random.seed(config.seed)
    if verbose:
        print(f"pretraining {config.model.upper()}")
    result = train(data, config, devices, source=source, kvstore=kvstore, verbose=verbose,
                   validation_negatives=validation_negatives)
    return result.net, result.metrics
