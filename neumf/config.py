"""Every setting of :func:`neumf.fit`, checked where it is declared.

Settings come in frozen sections, each checking itself: :class:`ModelSpec` (the
network), :class:`TrainSpec` (the optimisation), :class:`EvalSpec` (the split
and the ranking protocol), :class:`Selection` (validation and early stopping)
and :class:`Pretrain` (the NCF paper's pretraining, or None). :class:`FitConfig`
is their flat face: one namespace of leaf names shared by ``fit(**keywords)``,
the ``neumf train`` flags (made from its fields) and ``run.json``. No MXNet here.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Sequence, Tuple

from ._util import check_bool, check_int, check_number

__all__ = ["CHOICES", "EXPERIMENT_SETTINGS", "SPARSE_ROWS", "EvalSpec", "FitConfig", "ModelSpec",
           "Pretrain", "Selection", "TrainSpec"]

LOSSES = ("bpr", "hinge", "log")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad", "nag", "ftrl")
PROTOCOLS = ("full", "sampled")
MODELS = ("neumf", "gmf", "mlp", "mf", "popularity", "ease")
DENSE_INITS = ("normal", "xavier")
GMF_TOWERS = ("gmf", "mf")
KVSTORES = ("device", "local", "dist_sync", "dist_async")
LR_SCHEDULES = ("constant", "linear")
SPLIT_MODES = ("random", "seq-aware")
MONITORS = ("hr@K", "ndcg@K", "auc", "mrr")
# Users + items above which the embedding tables train row-sparse by default
# (sparse=None): below it the two are about level (bench_catalogue.py), and
# dense keeps the tutorial's dense Adam and numbers.
SPARSE_ROWS = 50_000


def _choice(name: str, value, allowed: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {tuple(allowed)}; got {value!r}")
    if value.lower() not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}; got {value!r}")
    return value.lower()


def _sizes(name: str, values, *, minimum: int = 1) -> Tuple[int, ...]:
    """A non-empty tuple of integers; a single integer is a one-element tuple."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        values = (values,)
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} must be a non-empty list of positive integers; got []")
    return tuple(check_int(name, value, minimum) for value in values)


def _set_checked(spec, **values) -> None:
    """Store checked values on a frozen section."""
    for name, value in values.items():
        object.__setattr__(spec, name, value)


@dataclass(frozen=True)
class ModelSpec:
    """The network: which model, its sizes and its initialisation."""

    model: str
    num_factors: int
    nums_hiddens: Tuple[int, ...]
    mlp_factors: int | None
    init_sigma: float
    dense_init: str
    tutorial_exact: bool
    biases: bool
    ease_lambda: float | None

    def __post_init__(self):
        _set_checked(self, model=_choice("model", self.model, MODELS),
                num_factors=check_int("num_factors", self.num_factors, 1),
                nums_hiddens=_sizes("nums_hiddens", self.nums_hiddens),
                mlp_factors=None if self.mlp_factors is None
                else check_int("mlp_factors", self.mlp_factors, 1),
                init_sigma=check_number("init_sigma", self.init_sigma, positive=True),
                dense_init=_choice("dense_init", self.dense_init, DENSE_INITS),
                tutorial_exact=check_bool("tutorial_exact", self.tutorial_exact),
                biases=check_bool("biases", self.biases),
                ease_lambda=None if self.ease_lambda is None
                else check_number("ease_lambda", self.ease_lambda, positive=True))
        if self.tutorial_exact and self.model != "neumf":
            raise ValueError("tutorial_exact applies to model 'neumf' only")
        if self.ease_lambda is not None and self.model != "ease":
            raise ValueError(f"ease_lambda applies to model 'ease' only; got model "
                             f"{self.model!r}")
        if self.biases and self.model not in ("neumf", "gmf", "mf"):
            raise ValueError(f"biases apply to models neumf, gmf and mf (a GMF pathway); got "
                             f"model {self.model!r}")

    @property
    def mlp_width(self) -> int:
        """Width of the MLP tower's embeddings."""
        return self.mlp_factors or self.num_factors

    def num_weights(self, num_users: int, num_items: int) -> int:
        """How many weights the network has for these sizes (a memory estimate)."""
        rows = num_users + num_items
        gmf = rows * (self.num_factors + self.biases) + self.num_factors
        widths = (2 * self.mlp_width, *self.nums_hiddens)
        mlp = rows * self.mlp_width + sum((a + 1) * b for a, b in zip(widths, widths[1:]))
        mlp += self.nums_hiddens[-1]
        return {"neumf": gmf + mlp, "gmf": gmf, "mf": gmf, "mlp": mlp,
                "popularity": num_items,
                "ease": num_items * (num_items + num_users)}[self.model]


@dataclass(frozen=True)
class TrainSpec:
    """The optimisation: epochs, batches, optimizer and its rate schedule, loss
    and negatives."""

    num_epochs: int
    batch_size: int
    lr: float
    wd: float
    optimizer: str
    loss: str
    num_negatives: int
    kvstore: str
    sparse: bool | None
    group_negatives: bool
    lr_schedule: str

    def __post_init__(self):
        if self.sparse is not None:
            check_bool("sparse", self.sparse)
        check_bool("group_negatives", self.group_negatives)
        _set_checked(self, num_epochs=check_int("num_epochs", self.num_epochs, 0),
                batch_size=check_int("batch_size", self.batch_size, 1),
                lr=check_number("lr", self.lr, positive=True),
                wd=check_number("wd", self.wd, non_negative=True),
                optimizer=_choice("optimizer", self.optimizer, OPTIMIZERS),
                loss=_choice("loss", self.loss, LOSSES),
                num_negatives=check_int("num_negatives", self.num_negatives, 1),
                kvstore=_choice("kvstore", self.kvstore, KVSTORES),
                lr_schedule=_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES))
        if self.distributed and self.lr_schedule != "constant":
            # the parameter servers hold the optimizer, and its rate, once set
            raise ValueError(f"lr_schedule {self.lr_schedule!r} needs a kvstore of one process "
                             f"(device or local); got kvstore {self.kvstore!r}; across "
                             "processes train with lr_schedule='constant' (--lr-schedule "
                             "constant)")

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1 to ``num_epochs``): ``lr``, or with
        the linear schedule ``lr * (num_epochs - epoch + 1) / num_epochs``."""
        epoch = check_int("epoch", epoch, 1)
        if epoch > self.num_epochs:
            raise ValueError(f"epoch must be at most num_epochs ({self.num_epochs}); "
                             f"got {epoch}")
        if self.lr_schedule == "constant":
            return self.lr
        return self.lr * (self.num_epochs - epoch + 1) / self.num_epochs

    @property
    def distributed(self) -> bool:
        """Whether training runs across processes (a parameter-server kvstore)."""
        return self.kvstore.startswith("dist")

    def is_sparse(self, num_users: int, num_items: int) -> bool:
        """Row-sparse tables for these sizes: as asked, else above SPARSE_ROWS."""
        return self.sparse if self.sparse is not None else num_users + num_items > SPARSE_ROWS


@dataclass(frozen=True)
class EvalSpec:
    """How the test set is held out and ranked, and at which cut-offs."""

    split_mode: str
    protocol: str
    eval_negatives: int
    k: int
    ks: Tuple[int, ...]
    eval_step: int

    def __post_init__(self):
        _set_checked(self, split_mode=_choice("split_mode", self.split_mode, SPLIT_MODES),
                protocol=_choice("protocol", self.protocol, PROTOCOLS),
                eval_negatives=check_int("eval_negatives", self.eval_negatives, 1),
                k=check_int("k", self.k, 1), ks=_sizes("ks", self.ks),
                eval_step=check_int("eval_step", self.eval_step, 0))

    @property
    def every(self) -> int | None:
        """Evaluate every this many epochs; None: only once, after training."""
        return self.eval_step or None

    def cutoffs(self, *extra: int) -> Tuple[int, ...]:
        """``k``, ``ks`` and ``extra`` cut-offs, sorted, each once."""
        return tuple(sorted({self.k, *self.ks, *extra}))


@dataclass(frozen=True)
class Selection:
    """Model selection on a validation split: early stopping, best-epoch restore."""

    validation: bool
    patience: int
    monitor: str
    restore_best: bool

    def __post_init__(self):
        _set_checked(self, validation=check_bool("validation", self.validation),
                patience=check_int("patience", self.patience, 0),
                monitor=self._checked_monitor(self.monitor),
                restore_best=check_bool("restore_best", self.restore_best))
        if self.patience and not self.validation:
            raise ValueError("patience (early stopping) needs validation=True: stopping on the "
                             "test set would select the model on it")

    @staticmethod
    def _checked_monitor(monitor) -> str:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be one of {MONITORS}; got {monitor!r}")
        kind, _, k = monitor.lower().partition("@")
        if monitor.lower() in ("auc", "mrr") or (kind in ("hr", "ndcg") and k.isdigit()
                                                 and int(k) > 0):
            return monitor.lower()
        raise ValueError(f"monitor must be one of {MONITORS} (K a positive integer); "
                         f"got {monitor!r}")

    @property
    def monitor_k(self) -> Tuple[int, ...]:
        """The cut-off the monitored metric needs (none for auc and mrr)."""
        k = self.monitor.partition("@")[2]
        return (int(k),) if k else ()


@dataclass(frozen=True)
class Pretrain:
    """The NCF paper's pretraining: GMF and MLP first, NeuMF started from both."""

    pretrain_epochs: int | None
    pretrain_optimizer: str
    pretrain_lr: float
    alpha: float
    gmf_tower: str
    mlp_pretrain_epochs: int | None
    mlp_pretrain_lr: float | None

    def __post_init__(self):
        _set_checked(self, pretrain_epochs=None if self.pretrain_epochs is None
                else check_int("pretrain_epochs", self.pretrain_epochs, 1),
                pretrain_optimizer=_choice("pretrain_optimizer", self.pretrain_optimizer,
                                           OPTIMIZERS),
                pretrain_lr=check_number("pretrain_lr", self.pretrain_lr, positive=True),
                alpha=check_number("alpha", self.alpha),
                gmf_tower=_choice("gmf_tower", self.gmf_tower, GMF_TOWERS),
                mlp_pretrain_epochs=None if self.mlp_pretrain_epochs is None
                else check_int("mlp_pretrain_epochs", self.mlp_pretrain_epochs, 1),
                mlp_pretrain_lr=None if self.mlp_pretrain_lr is None
                else check_number("mlp_pretrain_lr", self.mlp_pretrain_lr, positive=True))
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {self.alpha!r}")

    def tower(self, tower: str, num_epochs: int) -> Dict[str, Any]:
        """The settings that train the pretrained ``tower`` ('gmf' or 'mlp'):
        its model, optimizer, learning rate and epochs (``num_epochs``, the
        run's, where none is given)."""
        if tower not in ("gmf", "mlp"):
            raise ValueError(f"tower must be 'gmf' or 'mlp'; got {tower!r}")
        mlp = tower == "mlp"
        epochs = (mlp and self.mlp_pretrain_epochs) or self.pretrain_epochs or num_epochs
        lr = (mlp and self.mlp_pretrain_lr) or self.pretrain_lr
        settings = {"model": "mlp" if mlp else self.gmf_tower,
                    "optimizer": self.pretrain_optimizer, "lr": lr, "num_epochs": epochs}
        # the biases belong to the GMF tower (NeuMF takes them from it)
        return {**settings, "biases": False} if mlp else settings


def _setting(default, help_text: str, *, experiment: bool = False):
    """A FitConfig field: its default, its help (the CLI's) and whether it defines
    the experiment (then a resumed run cannot change it)."""
    return field(default=default, metadata={"help": help_text, "experiment": experiment})


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`neumf.fit`; the defaults are the tutorial's (see
    :data:`neumf.presets.PRESETS` for tuned ones). Each field's help is in its metadata and in
    ``neumf train --help``; the checks live in the sections, reached as
    :attr:`model_spec`, :attr:`training`, :attr:`evaluation`, :attr:`selection`
    and :attr:`pretraining` (None without pretraining).
    """

    num_factors: int = _setting(10, "embedding width of the GMF and MLP pathways",
                                experiment=True)
    nums_hiddens: Tuple[int, ...] = _setting((10, 10, 10), "units of each ReLU layer of the "
                                             "MLP tower", experiment=True)
    num_epochs: int = _setting(10, "training epochs (on resume: the total, counting the "
                               "epochs already trained)")
    batch_size: int = _setting(1024, "training triplets per batch")
    lr: float = _setting(0.01, "learning rate")
    wd: float = _setting(1e-5, "weight decay")
    optimizer: str = _setting("adam", "Gluon optimizer name")
    lr_schedule: str = _setting("constant", "learning rate across the epochs: constant, or "
                                "linear (epoch e of E at lr x (E - e + 1) / E; each pretrained "
                                "tower over its own epochs; on resume E is the new total; one "
                                "process only: not with a dist_* kvstore)",
                                experiment=True)
    loss: str = _setting("bpr", "loss on logits: bpr, hinge, or log (the NCF paper's "
                         "pointwise log loss)", experiment=True)
    num_negatives: int = _setting(1, "negatives sampled per positive in each epoch, distinct "
                                  "and never an item the user interacted with",
                                  experiment=True)
    init_sigma: float = _setting(0.01, "standard deviation of the Normal initialisation",
                                 experiment=True)
    dense_init: str = _setting("normal", "initialisation of the dense layers: normal "
                               "(--init-sigma, the tutorial's) or xavier", experiment=True)
    split_mode: str = _setting("seq-aware", "how the test set is held out (random: ML-100K "
                               "only)", experiment=True)
    protocol: str = _setting("full", "evaluation: full (against every item not trained on) or "
                             "sampled (against the data set's negatives, or --eval-negatives "
                             "random ones)", experiment=True)
    eval_negatives: int = _setting(99, "negatives per test pair for the sampled protocol "
                                   "without given ones", experiment=True)
    k: int = _setting(50, "cut-off of the hit rate")
    eval_step: int = _setting(1, "evaluate every this many epochs; 0: only once, after "
                              "training")
    tutorial_exact: bool = _setting(False, "train through the tutorial's sigmoid output "
                                    "(collapses; for comparison)", experiment=True)
    seed: int | None = _setting(None, "seed for the split, initialisation, shuffling and "
                                "negative sampling", experiment=True)
    model: str = _setting("neumf", "neumf, its towers gmf or mlp, or the baselines mf (dot "
                          "product), popularity and ease (Steck's closed-form item-item "
                          "model)", experiment=True)
    mlp_factors: int | None = _setting(None, "embedding width of the MLP tower, if not "
                                       "--num-factors", experiment=True)
    biases: bool = _setting(False, "add a learned bias per user and per item to the score "
                            "(models neumf, gmf, mf; with pretraining, the GMF tower's; "
                            "the user's learns only under the log loss: pairwise losses "
                            "cancel it)", experiment=True)
    ease_lambda: float | None = _setting(None, "model ease: its L2 weight lambda (default: "
                                         "3 x the training interactions per item; with "
                                         "--validation, the best of 9 values around that)",
                                         experiment=True)
    ks: Tuple[int, ...] = _setting((10, 50), "cut-offs of the final hr@k and ndcg@k (with -k)")
    validation: bool = _setting(False, "hold out each user's latest training interaction for "
                                "per-epoch validation (model selection never sees the test "
                                "set)", experiment=True)
    patience: int = _setting(0, "stop after this many evaluations without a better --monitor "
                             "on the validation pairs; 0 never stops early (needs "
                             "--validation)")
    monitor: str = _setting("ndcg@10", "validation metric for early stopping and best-epoch "
                            "restore")
    restore_best: bool = _setting(True, "end with the weights of the best validation epoch")
    pretrain: bool = _setting(False, "pretrain GMF and MLP and start NeuMF from both (the NCF "
                              "paper)", experiment=True)
    pretrain_epochs: int | None = _setting(None, "epochs of each pretrained tower, if not "
                                           "--num-epochs", experiment=True)
    pretrain_optimizer: str = _setting("adam", "optimizer of the pretrained towers",
                                       experiment=True)
    pretrain_lr: float = _setting(1e-3, "learning rate of the pretrained towers",
                                  experiment=True)
    alpha: float = _setting(0.5, "weight of the GMF tower in the pretrained NeuMF's output "
                            "layer", experiment=True)
    gmf_tower: str = _setting("gmf", "the pretrained GMF tower: gmf (its output weights h "
                              "learned, the paper's) or mf (h fixed to ones: a dot product)",
                              experiment=True)
    mlp_pretrain_epochs: int | None = _setting(None, "epochs of the pretrained MLP tower, if "
                                               "not --pretrain-epochs", experiment=True)
    mlp_pretrain_lr: float | None = _setting(None, "learning rate of the pretrained MLP "
                                             "tower, if not --pretrain-lr", experiment=True)
    kvstore: str = _setting("device", "gradient aggregation: device or local across "
                            "--devices; dist_sync or dist_async across the workers of "
                            "'neumf launch'")
    sparse: bool | None = _setting(None, "row-sparse training of the embedding tables (each "
                                   "batch updates only the rows it touches; Adam becomes "
                                   "lazy Adam): --sparse or --dense; default: dense up to "
                                   f"{SPARSE_ROWS:,} users + items, sparse above",
                                   experiment=True)
    group_negatives: bool = _setting(False, "put each positive's --num-negatives triplets in "
                                     "one batch and score the positive once (1 + k scores "
                                     "instead of 2k); the same triplets per epoch (one "
                                     "process: distributed workers keep flat batches)",
                                     experiment=True)

    def __post_init__(self):
        sections = {
            "model_spec": self._section(ModelSpec), "training": self._section(TrainSpec),
            "evaluation": self._section(EvalSpec), "selection": self._section(Selection),
            "pretraining": (self._section(Pretrain) if check_bool("pretrain", self.pretrain)
                            else None)}
        for section in filter(None, sections.values()):  # checked values replace given ones
            for spec in dataclasses.fields(section):
                object.__setattr__(self, spec.name, getattr(section, spec.name))
        if self.seed is not None:
            object.__setattr__(self, "seed", check_int("seed", self.seed, 0))
        if self.pretrain and self.model != "neumf":
            raise ValueError(f"pretrain applies to model 'neumf' only; got {self.model!r}")
        if self.eval_step == 0 and self.validation:
            raise ValueError("validation needs per-epoch evaluation: eval_step >= 1")
        object.__setattr__(self, "_sections", types.MappingProxyType(sections))

    def __reduce__(self):
        # the checked sections are rebuilt, not pickled (a second process gets a config)
        return _from_fields, (type(self), {spec.name: getattr(self, spec.name)
                                           for spec in dataclasses.fields(self)})

    def _section(self, cls):
        return cls(**{spec.name: getattr(self, spec.name) for spec in dataclasses.fields(cls)})

    @property
    def model_spec(self) -> ModelSpec:
        """The network's settings."""
        return self._sections["model_spec"]

    @property
    def training(self) -> TrainSpec:
        """The optimisation's settings."""
        return self._sections["training"]

    @property
    def evaluation(self) -> EvalSpec:
        """The split's and the ranking protocol's settings."""
        return self._sections["evaluation"]

    @property
    def selection(self) -> Selection:
        """Validation and early stopping."""
        return self._sections["selection"]

    @property
    def pretraining(self) -> Pretrain | None:
        """Pretraining's settings, or None."""
        return self._sections["pretraining"]

    @classmethod
    def from_saved(cls, values: Mapping[str, Any], where: str = "run.json") -> FitConfig:
        """A configuration from its saved flat values, naming unknown keys."""
        known = {spec.name for spec in dataclasses.fields(cls)}
        values = {key: value for key, value in values.items() if key not in _RETIRED}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(map(repr, unknown))} in "
                             "config (written by a newer neumf, or edited by hand)")
        return cls(**values)


def _from_fields(cls, values: Mapping[str, Any]) -> FitConfig:
    return cls(**values)


# Settings of earlier versions that no longer exist and changed no number, ignored
# where a saved run holds them: pretrain_parallel (0.3: the MLP tower in a
# second process, 14 % less wall time once epochs were flat; QUALITY.md)
_RETIRED = ("pretrain_parallel",)

# Settings a resumed run cannot change: they define what the run measures.
EXPERIMENT_SETTINGS: Tuple[str, ...] = tuple(
    spec.name for spec in dataclasses.fields(FitConfig) if spec.metadata["experiment"])

# FitConfig fields that take one of a few names (also the CLI's choices)
CHOICES: Mapping[str, Tuple[str, ...]] = types.MappingProxyType({
    "optimizer": OPTIMIZERS, "pretrain_optimizer": OPTIMIZERS, "loss": LOSSES,
    "gmf_tower": GMF_TOWERS, "lr_schedule": LR_SCHEDULES,
    "split_mode": SPLIT_MODES, "protocol": PROTOCOLS, "model": MODELS,
    "dense_init": DENSE_INITS, "kvstore": KVSTORES})
