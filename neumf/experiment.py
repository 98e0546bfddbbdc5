"""``fit()``: the tutorial's MovieLens-100K experiment in one call."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple, Union

import mxnet as mx
from mxnet import gluon

from .data import SPLIT_MODES, load_data_ml100k, read_data_ml100k, split_data_ml100k
from .evaluation import evaluate_ranking
from .losses import BPRLoss, HingeLossbRec
from .model import NeuMF
from .parallel import try_all_gpus
from .sampling import PRDataset
from .training import train_ranking

__all__ = ["FitConfig", "FitResult", "fit"]

LOSSES = {"bpr": BPRLoss, "hinge": HingeLossbRec}
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad", "nag", "ftrl")


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
    init_sigma: float = 0.01
    split_mode: str = "seq-aware"
    k: int = 50
    eval_step: int = 1
    tutorial_exact: bool = False
    seed: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "nums_hiddens", tuple(int(h) for h in self.nums_hiddens))
        for name in ("num_factors", "batch_size", "k", "eval_step"):
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
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {tuple(LOSSES)}; got {self.loss!r}")


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained network, its final metrics and the
    per-epoch history (see :func:`neumf.train_ranking`)."""

    net: NeuMF
    config: FitConfig
    history: List[Dict[str, float]]
    num_users: int
    num_items: int
    hit_rate: float = float("nan")
    auc: float = float("nan")
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> Dict[str, float]:
        """Final metrics with lowercase keys, e.g. ``{'hr@50': ..., 'auc': ...}``."""
        return {f"hr@{self.config.k}": self.hit_rate, "auc": self.auc}


def fit(
    *,
    data_dir: Union[str, os.PathLike, None] = None,
    devices: Sequence[mx.Context] | None = None,
    verbose: bool = True,
    **overrides,
) -> FitResult:
    """Run the tutorial's MovieLens-100K experiment: seq-aware split, NeuMF, BPR,
    evaluation over all items after every epoch.

    Parameters
    ----------
    data_dir
        Folder holding ``ml-100k/u.data`` (else ``$NEUMF_DATA_DIR``, else the
        user cache, downloading if needed).
    devices
        Contexts to train on; default :func:`neumf.try_all_gpus`.
    verbose
        Print one line per epoch and the tutorial's closing lines.
    **overrides
        Any :class:`FitConfig` field by name (``num_factors``, ``nums_hiddens``,
        ``num_epochs``, ``batch_size``, ``lr``, ``wd``, ``optimizer``, ``loss``,
        ``seed``, ``tutorial_exact``, ...); an unknown name raises TypeError.

    Example
    -------
    >>> result = neumf.fit(seed=0, num_epochs=10)          # doctest: +SKIP
    >>> result.hit_rate, result.auc, result.history[-1]    # doctest: +SKIP
    """
    config = dataclasses.replace(FitConfig(), **overrides)
    devices = list(devices) if devices is not None else try_all_gpus()
    if config.seed is not None:
        mx.random.seed(config.seed)

    data, num_users, num_items = read_data_ml100k(data_dir)
    train_data, test_data = split_data_ml100k(data, num_users, num_items, config.split_mode,
                                              seed=config.seed)
    users, items, _, candidates = load_data_ml100k(train_data, num_users, num_items, "implicit")
    _, _, _, test_input = load_data_ml100k(test_data, num_users, num_items, "implicit")
    train_iter = PRDataset(users, items, candidates, num_items,
                           seed=config.seed).loader(config.batch_size)

    net = NeuMF(config.num_factors, num_users, num_items, config.nums_hiddens,
                output_activation="sigmoid" if config.tutorial_exact else None)
    net.initialize(mx.init.Normal(config.init_sigma), ctx=devices)
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), config.optimizer,
                            {"learning_rate": config.lr, "wd": config.wd})

    loss = LOSSES[config.loss]()
    loss.hybridize()

    def evaluator(*args):
        return evaluate_ranking(*args, k=config.k)

    history = train_ranking(net, train_iter, test_input, loss,
                            trainer, None, num_users, num_items, config.num_epochs, devices,
                            evaluator, candidates, config.eval_step, verbose=verbose)
    evaluated = [h for h in history if not math.isnan(h["hit_rate"])]
    last = evaluated[-1] if evaluated else {"hit_rate": float("nan"), "auc": float("nan")}
    return FitResult(net=net, config=config, history=history, num_users=num_users,
                     num_items=num_items, hit_rate=last["hit_rate"], auc=last["auc"])
