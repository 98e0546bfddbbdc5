"""``fit()``: the tutorial's MovieLens-100K experiment in one call."""

from __future__ import annotations

import dataclasses
import math
import os
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
import pandas as pd
from mxnet import autograd, gluon

from .data import SPLIT_MODES
from .datasets import DATASETS, RecData, from_frame, load_dataset, validation_split
from .evaluation import evaluate_model
from .losses import BPRLoss, HingeLossbRec, PointwiseLogLoss
from .model import GMF, MLP, NeuMF, Popularity
from .parallel import check_devices, try_all_gpus
from .sampling import PRDataset, sampled_negatives
from .training import train_ranking

__all__ = ["PRESETS", "FitConfig", "FitResult", "build_model", "fit", "sampled_negatives"]

LOSSES = {"bpr": BPRLoss, "hinge": HingeLossbRec, "log": PointwiseLogLoss}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad", "nag", "ftrl")
PROTOCOLS = ("full", "sampled")
MODELS = ("neumf", "gmf", "mlp", "mf", "popularity")
DENSE_INITS = ("normal", "xavier")
KVSTORES = ("device", "local", "dist_sync", "dist_async")
# FitConfig fields that take one of a few names (also the CLI's choices)
CHOICES: Mapping[str, Tuple[str, ...]] = types.MappingProxyType({
    "optimizer": OPTIMIZERS, "pretrain_optimizer": OPTIMIZERS, "loss": tuple(LOSSES),
    "split_mode": SPLIT_MODES, "protocol": PROTOCOLS, "model": MODELS,
    "dense_init": DENSE_INITS, "kvstore": KVSTORES})

# The NCF paper's protocol (He et al., 2017, section 4.1): 4 negatives per
# positive, log loss, batch 256, 99 sampled negatives, HR@10 and NDCG@10,
# predictive factors 64 (GMF width, and the MLP tower's last layer), Adam at
# 1e-3, Xavier dense layers as the authors' code; pretrained NeuMF fine-tuned
# with plain SGD (the paper: Adam's state is not pretrained). Epoch caps keep
# a run under an hour of CPU on ML-1M (measured on data of its size).
_NCF = {"dense_init": "xavier", "protocol": "sampled", "k": 10, "ks": (10,), "loss": "log",
        "num_negatives": 4, "batch_size": 256, "wd": 0.0, "lr": 1e-3, "num_factors": 64,
        "mlp_factors": 64, "nums_hiddens": (128, 64), "num_epochs": 20, "validation": True,
        "patience": 5, "monitor": "ndcg@10"}
PRESETS: Mapping[str, Mapping[str, Any]] = types.MappingProxyType({
    "tutorial": types.MappingProxyType({}),
    # examples/sweep_ml100k.py, benchmarks/QUALITY.md: chosen on validation
    # NDCG@10 (epochs: the median best epoch, 8/11/9), refit on all training
    # pairs; evaluated once, at the end
    "best": types.MappingProxyType({
        "num_factors": 128, "nums_hiddens": (128, 64), "lr": 1e-3, "wd": 0.0,
        "loss": "bpr", "num_negatives": 4, "batch_size": 1024, "num_epochs": 9,
        "eval_step": 0}),
    "gmf": types.MappingProxyType({**_NCF, "model": "gmf"}),
    "mlp": types.MappingProxyType({**_NCF, "model": "mlp"}),
    "neumf": types.MappingProxyType({**_NCF, "model": "neumf"}),
    "neumf-pretrained": types.MappingProxyType({
        **_NCF, "model": "neumf", "pretrain": True, "pretrain_epochs": 10,
        "num_epochs": 12, "optimizer": "sgd", "lr": 0.05}),
})


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit`; the defaults are the tutorial's (see
    :data:`PRESETS` for tuned ones).

    ``tutorial_exact=True`` trains through the tutorial's sigmoid output, which
    collapses under BPR with weight decay; the default trains on the raw score.
    ``model`` is ``'neumf'``, one of its towers (``'gmf'``, ``'mlp'``), or a
    baseline (``'mf'``: dot-product MF; ``'popularity'``: no training).
    ``mlp_factors`` sizes the MLP embeddings (default ``num_factors``).
    Every weight starts from Normal(0, ``init_sigma``) as in the tutorial;
    ``dense_init='xavier'`` starts the dense layers from Xavier instead (as the
    NCF authors' code does), which a deep MLP tower needs to leave its plateau.
    ``kvstore`` aggregates gradients across ``devices``: ``'device'`` (on the
    devices) or ``'local'`` (on the CPU); ``'dist_sync'``/``'dist_async'`` train
    across processes started by ``neumf launch``, each worker on its own shard
    of the training pairs with ``batch_size`` per worker.
    ``ks`` are the cut-offs of the final ``hr@k``/``ndcg@k`` (with ``k``).
    ``eval_step=0`` skips per-epoch evaluation: the test set is ranked once, at
    the end.
    ``validation=True`` holds out each user's latest training interaction;
    per-epoch evaluation then uses those pairs (``val_*`` history keys), and
    with ``patience=N`` training stops after N evaluations without a better
    ``monitor`` value, restoring the best epoch's weights (``restore_best``).
    ``pretrain=True`` first trains GMF and MLP (``pretrain_epochs``, default
    ``num_epochs``, with ``pretrain_optimizer`` at ``pretrain_lr``) and starts
    NeuMF from both, its output layer weighted by ``alpha``.
    """

    num_factors: int = 10
    nums_hiddens: Tuple[int, ...] = (10, 10, 10)
    num_epochs: int = 10
    batch_size: int = 1024
    lr: float = 0.01
    wd: float = 1e-5
    optimizer: str = "adam"
    loss: str = "bpr"
    num_negatives: int = 1
    init_sigma: float = 0.01
    dense_init: str = "normal"
    split_mode: str = "seq-aware"
    protocol: str = "full"
    eval_negatives: int = 99
    k: int = 50
    eval_step: int = 1
    tutorial_exact: bool = False
    seed: int | None = None
    model: str = "neumf"
    mlp_factors: int | None = None
    ks: Tuple[int, ...] = (10, 50)
    validation: bool = False
    patience: int = 0
    monitor: str = "ndcg@10"
    restore_best: bool = True
    pretrain: bool = False
    pretrain_epochs: int | None = None
    pretrain_optimizer: str = "adam"
    pretrain_lr: float = 1e-3
    alpha: float = 0.5
    kvstore: str = "device"

    def __post_init__(self):
        object.__setattr__(self, "nums_hiddens", tuple(int(h) for h in self.nums_hiddens))
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if int(self.eval_step) != self.eval_step or self.eval_step < 0:
            raise ValueError(f"eval_step must be a non-negative integer; got {self.eval_step!r}")
        if self.eval_step == 0 and self.validation:
            raise ValueError("validation needs per-epoch evaluation: eval_step >= 1")
        for name in ("num_factors", "batch_size", "k", "eval_negatives",
                     "num_negatives"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("mlp_factors", "pretrain_epochs"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer or None; got {value!r}")
        if int(self.patience) != self.patience or self.patience < 0:
            raise ValueError(f"patience must be a non-negative integer; got {self.patience!r}")
        if self.patience and not self.validation:
            raise ValueError("patience (early stopping) needs validation=True: stopping on the "
                             "test set would select the model on it")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be a non-empty list of positive integers; got {self.ks!r}")
        if self.pretrain and self.model != "neumf":
            raise ValueError(f"pretrain applies to model 'neumf' only; got {self.model!r}")
        if self.model != "neumf" and self.tutorial_exact:
            raise ValueError("tutorial_exact applies to model 'neumf' only")
        metric = self.monitor.split("@")
        if not (self.monitor in ("auc", "mrr") or (
                len(metric) == 2 and metric[0] in ("hr", "ndcg") and metric[1].isdigit())):
            raise ValueError(f"monitor must be 'hr@K', 'ndcg@K', 'auc' or 'mrr'; "
                             f"got {self.monitor!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {self.alpha!r}")
        if not self.pretrain_lr > 0:
            raise ValueError(f"pretrain_lr must be positive; got {self.pretrain_lr!r}")
        if int(self.num_epochs) != self.num_epochs or self.num_epochs < 0:
            raise ValueError(f"num_epochs must be a non-negative integer; got {self.num_epochs!r}")
        if not self.nums_hiddens or min(self.nums_hiddens) < 1:
            raise ValueError(f"nums_hiddens must be a non-empty list of positive integers; "
                             f"got {list(self.nums_hiddens)!r}")
        for name in ("lr", "init_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not self.wd >= 0:
            raise ValueError(f"wd must be non-negative; got {self.wd!r}")
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if (value.lower() if name.endswith("optimizer") else value) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained network, its final test metrics, the
    per-epoch history (see :func:`neumf.train_ranking`; with validation, also
    ``val_*`` metrics) and what is needed to save, resume, recommend and export
    (see :mod:`neumf.runs`). ``best_epoch`` is the epoch whose weights ``net``
    holds when early stopping restored them; ``towers`` the test metrics of
    the pretrained GMF and MLP; ``seconds`` the ``wall`` and ``cpu`` (process,
    all threads) seconds of the :func:`fit` call; ``run_dir`` the folder the
    run was saved in (``out``, or ``out/worker-RANK`` for distributed workers)."""

    net: NeuMF
    config: FitConfig
    history: List[Dict[str, float]]
    num_users: int
    num_items: int
    hit_rate: float = float("nan")
    auc: float = float("nan")
    metrics: Dict[str, float] = field(default_factory=dict)
    data: RecData | None = None
    source: Dict[str, Any] = field(default_factory=dict)
    trainer: gluon.Trainer | None = None
    sampler: PRDataset | None = None
    best_epoch: int | None = None
    best_params: Dict[str, np.ndarray] | None = None
    towers: Dict[str, Dict[str, float]] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None

    def save(self, run_dir: Union[str, os.PathLike], *, final: bool = True) -> Path:
        """Write the run (model, configuration, id maps, optimizer and sampler
        state, metrics) into ``run_dir``; see :func:`neumf.runs.save_run` and
        :func:`neumf.load_model`."""
        from .runs import save_run
        return save_run(self, run_dir, final=final)

    def export(self, prefix: Union[str, os.PathLike]) -> Tuple[Path, Path]:
        """The hybridized network as MXNet symbol and parameter files for serving
        (``<prefix>-symbol.json``, ``<prefix>-0000.params``); inputs are
        ``data0`` (user indices) and ``data1`` (item indices)."""
        from .runs import export_net
        return export_net(self.net, prefix)


def build_model(config: FitConfig, num_users: int, num_items: int) -> gluon.HybridBlock:
    """The (uninitialised) block that ``config.model`` names, sized for the data."""
    activation = "sigmoid" if config.tutorial_exact else None
    if config.model == "neumf":
        return NeuMF(config.num_factors, num_users, num_items, config.nums_hiddens,
                     output_activation=activation, mlp_factors=config.mlp_factors)
    if config.model in ("gmf", "mf"):
        return GMF(config.num_factors, num_users, num_items,
                   output_weights=config.model == "gmf")
    if config.model == "mlp":
        return MLP(config.mlp_factors or config.num_factors, num_users, num_items,
                   config.nums_hiddens)
    return Popularity(num_users, num_items)


def _final_ks(config: FitConfig, num_items: int) -> List[int]:
    return sorted(k for k in {*config.ks, config.k} if k <= num_items)


def _epochs_since_best(history: List[Dict[str, float]], key: str) -> Tuple[int | None, int]:
    """The best epoch by ``key`` (higher is better; the first of equals) and how
    many evaluations came after it."""
    evaluated = [h for h in history if not math.isnan(h.get(key, float("nan")))]
    if not evaluated:
        return None, 0
    best = max(range(len(evaluated)), key=lambda index: (evaluated[index][key], -index))
    return int(evaluated[best]["epoch"]), len(evaluated) - 1 - best


def _params(net: gluon.Block) -> Dict[str, np.ndarray]:
    return {name: param.data().asnumpy()
            for name, param in net._collect_params_with_prefix().items()}


def _set_params(net: gluon.Block, values: Dict[str, np.ndarray]) -> None:
    for name, param in net._collect_params_with_prefix().items():
        param.set_data(values[name])


def fit(
    *,
    dataset: Union[str, pd.DataFrame] = "ml-100k",
    data_dir: Union[str, os.PathLike, None] = None,
    name: str | None = None,
    preset: str | None = None,
    devices: Sequence[mx.Context] | None = None,
    verbose: bool = True,
    resume: Union[str, os.PathLike, None] = None,
    out: Union[str, os.PathLike, None] = None,
    live_plot: bool = False,
    **overrides,
) -> FitResult:
    """Train and evaluate a ranking model; by default the tutorial's MovieLens-100K
    experiment (NeuMF, seq-aware split, BPR, evaluation over all items after
    every epoch).

    Parameters
    ----------
    dataset, data_dir, name
        What to train on (see :func:`neumf.load_dataset`): ``'ml-100k'`` (default),
        ``'ml-1m'``, ``'csv'`` (the file ``name``) or ``'ncf'`` (files ``name.*``),
        found in ``data_dir``, else ``$NEUMF_DATA_DIR``, else the user cache; or a
        pandas DataFrame of ``user, item[, rating][, timestamp]`` (see
        :func:`neumf.from_frame`).
    preset
        Named settings from :data:`PRESETS`, applied before ``overrides``:
        ``'tutorial'`` (the defaults), ``'best'`` (tuned on ML-100K), and the NCF
        paper's protocol ``'gmf'``, ``'mlp'``, ``'neumf'``, ``'neumf-pretrained'``.
    devices
        Contexts to train on; default :func:`neumf.try_all_gpus`.
    verbose
        A progress bar, one line per epoch and the tutorial's closing lines.
    resume
        A run folder written by :meth:`FitResult.save`: training continues from
        its last epoch, with its settings, optimizer and sampler state, up to
        ``num_epochs`` in all (overridable).
    out
        Save the run into this folder: a checkpoint after every epoch, the final
        metrics and curves at the end. Defaults to ``resume``.
    live_plot
        Redraw loss and metric curves after every epoch (in a notebook).
    **overrides
        Any :class:`FitConfig` field by name (``model``, ``num_factors``,
        ``nums_hiddens``, ``num_epochs``, ``lr``, ``loss``, ``validation``,
        ``patience``, ``seed``, ...); an unknown name raises TypeError before
        any work.

    Returns
    -------
    A :class:`FitResult`; ``metrics`` holds the test set's ``hr@k`` and
    ``ndcg@k`` for each cut-off, ``auc`` and ``mrr``.

    Example
    -------
    >>> result = neumf.fit(preset="best", seed=0)          # doctest: +SKIP
    >>> result.metrics["hr@10"], result.best_epoch         # doctest: +SKIP
    """
    wall, cpu = time.perf_counter(), time.process_time()
    saved = None
    if resume is not None and out is None:
        out = resume  # continuing a run keeps checkpointing it
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}; got {preset!r}")
    if resume is not None:
        from .runs import read_run
        saved = read_run(resume)
        config = dataclasses.replace(saved.config, **overrides)
        dataset, name = saved.source["dataset"], saved.source.get("name")
        data_dir = data_dir if data_dir is not None else saved.source.get("data_dir")
    else:
        config = FitConfig(**{**(PRESETS[preset] if preset else {}), **overrides})
    frame = dataset if isinstance(dataset, pd.DataFrame) else None
    if frame is None and dataset not in DATASETS and not (saved and dataset == "dataframe"):
        raise ValueError(f"dataset must be one of {DATASETS} or a pandas DataFrame; "
                         f"got {dataset!r}")
    if config.kvstore.startswith("dist") and (config.pretrain or resume is not None):
        raise ValueError(f"kvstore {config.kvstore!r} does not support pretrain or resume")
    if config.kvstore == "dist_async" and config.patience:
        raise ValueError("early stopping (patience) needs kvstore 'dist_sync': asynchronous "
                         "workers would stop at different epochs")
    devices = check_devices(devices) if devices is not None else try_all_gpus()
    if config.seed is not None:
        mx.random.seed(config.seed)
    kvstore: Any = config.kvstore
    if config.kvstore.startswith("dist"):
        kvstore = mx.kv.create(config.kvstore)  # waits for every worker and server
        if out is not None and kvstore.num_workers > 1:
            out = Path(out) / f"worker-{kvstore.rank}"

    if frame is not None:
        data, dataset = from_frame(frame), "dataframe"
    elif saved is not None and dataset == "dataframe":
        from .runs import saved_data
        data = saved_data(saved)
    else:
        data = load_dataset(dataset, data_dir, name, split_mode=config.split_mode,
                            seed=config.seed)
    if config.k > data.num_items:
        raise ValueError(f"k={config.k} is larger than the catalogue of {data.num_items} items")
    source = {"dataset": dataset, "name": name, "preset": preset,
              "data_dir": None if data_dir is None else str(data_dir)}
    result = _fit_data(data, config, devices, source=source, saved=saved, out=out,
                       verbose=verbose, live_plot=live_plot, kvstore=kvstore)
    result.seconds = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    result.run_dir = None if out is None else Path(out)
    return result


def shard_rows(num_rows: int, rank: int, num_workers: int, multiple: int = 1) -> np.ndarray:
    """Row indices of worker ``rank``'s shard: every ``num_workers``-th row,
    padded by repeating its first rows to the same length for every worker,
    a multiple of ``multiple``: synchronous workers must take the same number
    of steps, and MXNet's server-side optimizer needs one batch size."""
    if num_rows < num_workers:
        raise ValueError(f"{num_rows} training pairs cannot be shared by {num_workers} "
                         "workers: every worker needs at least one")
    rows = np.arange(rank, num_rows, num_workers)
    length = -(-num_rows // num_workers)
    length = -(-length // multiple) * multiple
    return np.resize(rows, length)


def _fit_data(data: RecData, config: FitConfig, devices: List[mx.Context], *,
              source: Dict[str, Any], saved=None, out=None, verbose: bool = True,
              live_plot: bool = False, kvstore: Any = "device") -> FitResult:
    """Train ``config.model`` on ``data`` and evaluate it on the test pairs."""
    test_negatives = None
    if config.protocol == "sampled":
        test_negatives = (data.test_negatives if data.test_negatives is not None
                          else sampled_negatives(data, config.eval_negatives, config.seed))
    train_data, valid_negatives = data, None
    if config.validation:
        train_data = validation_split(data)
        if config.protocol == "sampled":
            valid_negatives = sampled_negatives(train_data, test_negatives.shape[1],
                                                config.seed)
    rows, seed = slice(None), config.seed
    if isinstance(kvstore, mx.kvstore.KVStore) and kvstore.num_workers > 1:
        rows = shard_rows(len(train_data.train_users), kvstore.rank, kvstore.num_workers,
                          config.batch_size)
        seed = None if seed is None else seed + kvstore.rank  # own negatives per worker
    sampler = PRDataset(train_data.train_users[rows], train_data.train_items[rows], None,
                        data.num_items, seed=seed,
                        seen=(np.concatenate([data.train_users, data.test_users]),
                              np.concatenate([data.train_items, data.test_items])))
    net = build_model(config, data.num_users, data.num_items)
    net.initialize(mx.init.Normal(config.init_sigma), ctx=devices)
    if config.dense_init == "xavier":
        for name, param in net._collect_params_with_prefix().items():
            if name.endswith("weight") and name.startswith(("mlp.", "prediction_layer.")):
                param.initialize(mx.init.Xavier(), ctx=devices, force_reinit=True)
    net.hybridize(static_alloc=True)
    ks = _final_ks(config, data.num_items)

    def test_metrics(model) -> Dict[str, float]:
        with autograd.predict_mode():
            return evaluate_model(model, data.test_users, data.test_items, data.train_users,
                                  data.train_items, data.num_items, devices,
                                  negatives=test_negatives, ks=ks)

    def make_result(metrics: Dict[str, float], trainer=None, history=(), best=(None, None),
                    towers=None) -> FitResult:
        evaluated = [h for h in history if not math.isnan(h["hit_rate"])]
        last = evaluated[-1] if evaluated else {"hit_rate": float("nan"), "auc": float("nan")}
        if config.eval_step == 0:  # no per-epoch evaluation: the final test metrics
            last = {"hit_rate": metrics.get(f"hr@{config.k}", float("nan")),
                    "auc": metrics.get("auc", float("nan"))}
        return FitResult(net=net, config=config, history=list(history),
                         num_users=data.num_users, num_items=data.num_items,
                         hit_rate=last["hit_rate"], auc=last["auc"], metrics=metrics,
                         data=data, trainer=trainer, sampler=sampler, source=source,
                         best_epoch=best[0], best_params=best[1], towers=towers or {})

    if config.model == "popularity":
        net.fit_counts(train_data.train_items)
        result = make_result(test_metrics(net))
        if out is not None:
            result.save(out)
        return result

    history: List[Dict[str, float]] = []
    towers: Dict[str, Dict[str, float]] = {}
    best_params = None
    if config.pretrain and saved is None:
        towers = _pretrain(net, data, config, devices, source, verbose)
    trainer = gluon.Trainer(net.collect_params(), config.optimizer,
                            {"learning_rate": config.lr, "wd": config.wd}, kvstore=kvstore)
    # with a distributed kvstore the optimizer state lives on the servers
    saved_trainer = None if isinstance(kvstore, mx.kvstore.KVStore) else trainer
    if saved is not None:
        from .runs import restore_training_state
        history, best_params = restore_training_state(saved, net, trainer, sampler, devices)
        towers = saved.manifest.get("towers") or {}

    loss = (PointwiseLogLoss(config.num_negatives) if config.loss == "log"
            else LOSSES[config.loss]())
    loss.hybridize()
    monitor_key = f"val_{config.monitor}"
    validation_metrics: Dict[str, float] = {}

    def evaluator(net, test_input, seq, candidates, num_users, num_items, devices):
        if config.validation:
            validation_metrics.clear()
            validation_metrics.update(evaluate_model(
                net, train_data.test_users, train_data.test_items, train_data.train_users,
                train_data.train_items, num_items, devices, negatives=valid_negatives,
                ks=sorted({*ks, *_monitor_k(config)})))
            return validation_metrics[f"hr@{config.k}"], validation_metrics["auc"]
        metrics = test_metrics(net)  # the final evaluator: both always agree
        return metrics[f"hr@{config.k}"], metrics["auc"]

    plot = None
    if live_plot:
        from .plotting import LivePlot
        plot = LivePlot(history)

    def on_epoch_end(stats: Dict[str, float]) -> bool:
        nonlocal best_params
        if config.validation:
            stats.update({f"val_{key}": (value if not math.isnan(stats["hit_rate"])
                                         else float("nan"))
                          for key, value in validation_metrics.items()})
        history.append(stats)
        best_epoch, stale = _epochs_since_best(history, monitor_key)
        if config.validation and best_epoch == stats["epoch"]:
            best_params = _params(net)
        if plot is not None:
            plot(stats)
        if out is not None:  # a checkpoint per epoch: a killed run resumes from here
            make_result({}, saved_trainer, history, (best_epoch, best_params), towers).save(
                out, final=False)
        return bool(config.patience) and stale >= config.patience

    remaining = config.num_epochs - len(history)
    if config.patience and _epochs_since_best(history, monitor_key)[1] >= config.patience:
        remaining = 0  # a resumed run that had already stopped early
    train_ranking(
        net, sampler.loader(config.batch_size, num_negatives=config.num_negatives,
                            fill=not isinstance(rows, slice)),
        None, loss, trainer, None,
        data.num_users, data.num_items, remaining, devices, evaluator,
        None, config.eval_step or config.num_epochs + 1, verbose=verbose,
        on_epoch_end=on_epoch_end,
        initial_epoch=len(history))
    best_epoch = _epochs_since_best(history, monitor_key)[0] if config.validation else None
    if best_epoch is not None and config.restore_best and best_params is not None:
        _set_params(net, best_params)
        if verbose:
            print(f"restored the weights of epoch {best_epoch} (best validation "
                  f"{config.monitor})")
    result = make_result(test_metrics(net), saved_trainer, history, (best_epoch, best_params),
                         towers)
    if out is not None:
        result.save(out)
    return result


def _monitor_k(config: FitConfig) -> Tuple[int, ...]:
    k = config.monitor.partition("@")[2]
    return (int(k),) if k else ()


def _pretrain(net: NeuMF, data: RecData, config: FitConfig, devices: List[mx.Context],
              source: Dict[str, Any], verbose: bool) -> Dict[str, Dict[str, float]]:
    """Train GMF and MLP with ``config``'s sizes and load them into ``net``;
    returns each tower's test metrics."""
    towers, metrics = {}, {}
    for model in ("gmf", "mlp"):
        tower_config = dataclasses.replace(
            config, model=model, pretrain=False, optimizer=config.pretrain_optimizer,
            lr=config.pretrain_lr, num_epochs=config.pretrain_epochs or config.num_epochs)
        if verbose:
            print(f"pretraining {model.upper()}")
        result = _fit_data(data, tower_config, devices, source=source, verbose=verbose,
                           kvstore=config.kvstore)
        towers[model], metrics[model] = result.net, result.metrics
    net.load_towers(towers["gmf"], towers["mlp"], config.alpha)
    return metrics
