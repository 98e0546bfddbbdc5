"""``fit()``: the tutorial's MovieLens-100K experiment in one call."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from .data import SPLIT_MODES
from .datasets import DATASETS, RecData, load_dataset
from .evaluation import evaluate_model, evaluate_ranking
from .losses import BPRLoss, HingeLossbRec, PointwiseLogLoss
from .model import NeuMF
from .parallel import check_devices, try_all_gpus
from .sampling import PRDataset, sample_negatives, seen_keys
from .training import train_ranking

__all__ = ["FitConfig", "FitResult", "fit"]

LOSSES = {"bpr": BPRLoss, "hinge": HingeLossbRec, "log": PointwiseLogLoss}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad", "nag", "ftrl")
PROTOCOLS = ("full", "sampled")


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit`; the defaults are the tutorial's.

    ``tutorial_exact=True`` trains through the tutorial's sigmoid output, which
    collapses under BPR with weight decay; the default trains on the raw score.
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
    split_mode: str = "seq-aware"
    protocol: str = "full"
    eval_negatives: int = 99
    k: int = 50
    eval_step: int = 1
    tutorial_exact: bool = False
    seed: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "nums_hiddens", tuple(int(h) for h in self.nums_hiddens))
        for name in ("num_factors", "batch_size", "k", "eval_step", "eval_negatives",
                     "num_negatives"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
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
        if self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        if self.split_mode not in SPLIT_MODES:
            raise ValueError(f"split_mode must be one of {SPLIT_MODES}; got {self.split_mode!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}; got {self.protocol!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {tuple(LOSSES)}; got {self.loss!r}")


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained network, its final metrics, the
    per-epoch history (see :func:`neumf.train_ranking`) and what is needed to
    save, resume, recommend and export (see :mod:`neumf.runs`)."""

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


def sampled_negatives(data: RecData, count: int, seed: int | None) -> np.ndarray:
    """``count`` uniform negatives per test pair, never a training or test item of its user."""
    keys = seen_keys(np.concatenate([data.train_users, data.test_users]),
                     np.concatenate([data.train_items, data.test_items]), data.num_items)
    rng = np.random.default_rng(None if seed is None else seed + 1)
    users = np.repeat(data.test_users, count)
    return sample_negatives(users, keys, data.num_items, rng).reshape(-1, count)


def fit(
    *,
    dataset: str = "ml-100k",
    data_dir: Union[str, os.PathLike, None] = None,
    name: str | None = None,
    devices: Sequence[mx.Context] | None = None,
    verbose: bool = True,
    resume: Union[str, os.PathLike, None] = None,
    out: Union[str, os.PathLike, None] = None,
    live_plot: bool = False,
    **overrides,
) -> FitResult:
    """Train and evaluate NeuMF; by default the tutorial's MovieLens-100K experiment
    (seq-aware split, BPR, evaluation over all items after every epoch).

    Parameters
    ----------
    dataset, data_dir, name
        What to train on (see :func:`neumf.load_dataset`): ``'ml-100k'`` (default),
        ``'ml-1m'``, ``'csv'`` (the file ``name``) or ``'ncf'`` (files ``name.*``),
        found in ``data_dir``, else ``$NEUMF_DATA_DIR``, else the user cache.
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
        Any :class:`FitConfig` field by name (``num_factors``, ``nums_hiddens``,
        ``num_epochs``, ``batch_size``, ``lr``, ``wd``, ``optimizer``, ``loss``,
        ``seed``, ``tutorial_exact``, ``protocol``, ...); an unknown name raises
        TypeError before any work.

    Example
    -------
    >>> result = neumf.fit(seed=0, num_epochs=10)          # doctest: +SKIP
    >>> result.metrics["hr@10"], result.history[-1]        # doctest: +SKIP
    """
    saved = None
    if resume is not None and out is None:
        out = resume  # continuing a run keeps checkpointing it
    if resume is not None:
        from .runs import read_run
        saved = read_run(resume)
        config = dataclasses.replace(saved.config, **overrides)
        dataset, name = saved.source["dataset"], saved.source.get("name")
        data_dir = data_dir if data_dir is not None else saved.source.get("data_dir")
    else:
        config = dataclasses.replace(FitConfig(), **overrides)
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}")
    devices = check_devices(devices) if devices is not None else try_all_gpus()
    if config.seed is not None:
        mx.random.seed(config.seed)

    data = load_dataset(dataset, data_dir, name, split_mode=config.split_mode, seed=config.seed)
    if config.k > data.num_items:
        raise ValueError(f"k={config.k} is larger than the catalogue of {data.num_items} items")
    candidates = data.candidates()
    negatives = None
    if config.protocol == "sampled":
        negatives = (data.test_negatives if data.test_negatives is not None
                     else sampled_negatives(data, config.eval_negatives, config.seed))
    sampler = PRDataset(data.train_users, data.train_items, candidates, data.num_items,
                        seed=config.seed)
    net = NeuMF(config.num_factors, data.num_users, data.num_items, config.nums_hiddens,
                output_activation="sigmoid" if config.tutorial_exact else None)
    net.initialize(mx.init.Normal(config.init_sigma), ctx=devices)
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), config.optimizer,
                            {"learning_rate": config.lr, "wd": config.wd})
    history: List[Dict[str, float]] = []
    if saved is not None:
        from .runs import restore_training_state
        history = restore_training_state(saved, net, trainer, sampler, devices)

    loss = (PointwiseLogLoss(config.num_negatives) if config.loss == "log"
            else LOSSES[config.loss]())
    loss.hybridize()

    def evaluator(net, test_input, seq, candidates, num_users, num_items, devices):
        if negatives is None:
            return evaluate_ranking(net, test_input, seq, candidates, num_users, num_items,
                                    devices, k=config.k)
        metrics = evaluate_model(net, data.test_users, data.test_items, data.train_users,
                                 data.train_items, num_items, devices, negatives=negatives,
                                 ks=(config.k,))
        return metrics[f"hr@{config.k}"], metrics["auc"]

    source = {"dataset": dataset, "name": name,
              "data_dir": None if data_dir is None else str(data_dir)}

    def make_result(metrics: Dict[str, float]) -> FitResult:
        evaluated = [h for h in history if not math.isnan(h["hit_rate"])]
        last = evaluated[-1] if evaluated else {"hit_rate": float("nan"), "auc": float("nan")}
        return FitResult(net=net, config=config, history=list(history),
                         num_users=data.num_users, num_items=data.num_items,
                         hit_rate=last["hit_rate"], auc=last["auc"], metrics=metrics,
                         data=data, trainer=trainer, sampler=sampler, source=source)

    plot = None
    if live_plot:
        from .plotting import LivePlot
        plot = LivePlot(history)

    def on_epoch_end(stats: Dict[str, float]) -> None:
        history.append(stats)
        if plot is not None:
            plot(stats)
        if out is not None:  # a checkpoint per epoch: a killed run resumes from here
            make_result({}).save(out, final=False)

    train_ranking(
        net, sampler.loader(config.batch_size, num_negatives=config.num_negatives),
        data.test_input(), loss, trainer, None,
        data.num_users, data.num_items, config.num_epochs - len(history), devices, evaluator,
        candidates, config.eval_step, verbose=verbose, on_epoch_end=on_epoch_end,
        initial_epoch=len(history))
    with autograd.predict_mode():
        metrics = evaluate_model(net, data.test_users, data.test_items, data.train_users,
                                 data.train_items, data.num_items, devices, negatives=negatives,
                                 ks=sorted(k for k in {10, 50, config.k} if k <= data.num_items))
    result = make_result(metrics)
    if out is not None:
        result.save(out)
    return result
