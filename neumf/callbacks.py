"""What happens after each epoch of :func:`neumf.training.fit_epochs`: printing,
the collapse check, early stopping, checkpoints and live curves.

A callback has ``on_epoch_end(stats) -> bool | None`` (True asks the loop to
stop after this epoch) and may have ``on_train_end(history)``. State lives in
the callback object, never in closures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Sequence

from mxnet import gluon

from ._gluon import get_weights
from ._warn import warn
from .runs import save_run
from .training import CollapseWarning, num_triplets, score_spread_collapsed

__all__ = ["CallOnEpochEnd", "Checkpoint", "CollapseCheck", "EarlyStopping", "PrintEpochs",
           "best_epoch"]

Stats = Dict[str, float]


class CallOnEpochEnd:
    """A plain function ``f(stats) -> bool | None`` as a callback."""

    def __init__(self, function: Callable[[Stats], bool | None]):
        self.function = function

    def on_epoch_end(self, stats: Stats) -> bool | None:
        return self.function(stats)


class PrintEpochs:
    """One line per epoch, then the tutorial's closing lines. ``label`` names
    the pairs the per-epoch metrics come from (``'test'`` or ``'validation'``)."""

    def __init__(self, devices: Sequence, label: str = "test"):
        self.devices, self.label = list(devices), label

    def on_epoch_end(self, stats: Stats) -> None:
        evaluated = not math.isnan(stats["hit_rate"])
        metrics = (f"hit rate {stats['hit_rate']:.3f}, AUC {stats['auc']:.3f}, "
                   if evaluated else "")
        print(f"epoch {stats['epoch']}: loss {stats['loss']:.4f}, {metrics}"
              f"{stats['examples_per_sec']:.0f} examples/sec, "
              f"train {stats['train_seconds']:.2f} s, eval {stats['eval_seconds']:.2f} s",
              flush=True)

    def on_train_end(self, history: List[Stats]) -> None:
        if not history:
            return
        evaluated = [stats for stats in history if not math.isnan(stats["hit_rate"])]
        last = evaluated[-1] if evaluated else None
        stale = last is not None and last["epoch"] != history[-1]["epoch"]
        print(f"train loss {history[-1]['loss']:.3f}" + (
            f", {self.label} hit rate {last['hit_rate']:.3f}, {self.label} AUC "
            f"{last['auc']:.3f}" + (f" (epoch {last['epoch']})" if stale else "")
            if last else " (not evaluated during training)"))
        examples = sum(stats["examples_per_sec"] * stats["train_seconds"] for stats in history)
        seconds = sum(stats["train_seconds"] for stats in history)
        print(f"{examples / seconds:.1f} examples/sec on {self.devices}")


class CollapseCheck:
    """Warn once (:class:`neumf.CollapseWarning`) when the scores of an epoch's
    last batch no longer vary, naming the likely causes in this setting."""

    def __init__(self, net: gluon.Block, train_iter, trainer: gluon.Trainer,
                 batch_size: int | None = None):
        self.causes = _collapse_causes(net, train_iter, trainer, batch_size)
        self.previous: float | None = None
        self.warned = False

    def on_epoch_end(self, stats: Stats) -> None:
        spread, previous = stats["score_spread"], self.previous
        self.previous = spread
        if self.warned or not score_spread_collapsed(spread, previous):
            return
        self.warned = True
        warn(
            f"training has collapsed: after epoch {stats['epoch']} the network gives every "
            f"user-item pair the same score (spread {spread:.2g}) and the loss per pair is "
            f"{stats['loss']:.4f} (ln 2 = 0.6931 means no preference is learned), so "
            f"rankings and hit rates are meaningless. Likely: {'; '.join(self.causes)}.",
            CollapseWarning)


def _collapse_causes(net, train_iter, trainer, batch_size) -> List[str]:
    """What in this setting starves the data gradients, most specific first."""
    causes = []
    triplets = num_triplets(train_iter)
    batch_size = batch_size or getattr(train_iter, "batch_size", None)
    if triplets and batch_size and batch_size >= triplets:
        causes.append(f"the batch ({batch_size}) holds all {triplets} training triplets, so "
                      "each epoch is one batch and takes one step: lower the batch size")
    optimizer = getattr(trainer, "_optimizer", None)
    wd = getattr(optimizer, "wd", 0.0) or 0.0
    if getattr(net, "output_activation", None) == "sigmoid":
        causes.append("the tutorial's sigmoid output damps the BPR gradients"
                      + (f" until weight decay (wd={wd:g}) wins" if wd else "")
                      + ": train on the raw score (output_activation=None, "
                        "tutorial_exact=False)")
    elif wd:
        causes.append(f"weight decay (wd={wd:g}) outweighs the data gradients: lower wd")
    lr = getattr(optimizer, "learning_rate", None)
    if lr is not None and lr < 1e-4:
        causes.append(f"the learning rate ({lr:g}) is too small for the data to move the "
                      "weights")
    return causes or ["the data gradients vanished: check the data, lr and wd"]


def best_epoch(history: List[Stats], key: str) -> tuple:
    """``(epoch, evaluations after it)`` of the best value of ``key`` (higher is
    better; the first of equals); ``(None, 0)`` before any evaluation."""
    evaluated = [stats for stats in history if not math.isnan(stats.get(key, float("nan")))]
    if not evaluated:
        return None, 0
    best = max(range(len(evaluated)), key=lambda i: (evaluated[i][key], -i))
    return int(evaluated[best]["epoch"]), len(evaluated) - 1 - best


class EarlyStopping:
    """Track the best epoch by ``key`` (a history column, e.g. ``val_ndcg@10``)
    and keep its weights; ask to stop after ``patience`` evaluations without a
    better value (0: never stop). Resumes from a saved ``history`` and
    ``best_weights``."""

    def __init__(self, net: gluon.Block, key: str, patience: int = 0,
                 history: Sequence[Stats] = (), best_weights=None):
        self.net, self.key, self.patience = net, key, patience
        self.history = list(history)
        self.best_weights = best_weights

    @property
    def best_epoch(self) -> int | None:
        return best_epoch(self.history, self.key)[0]

    def should_stop(self) -> bool:
        """Whether patience has run out (also for a resumed run that had stopped)."""
        return bool(self.patience) and best_epoch(self.history, self.key)[1] >= self.patience

    def on_epoch_end(self, stats: Stats) -> bool:
        self.history.append(stats)
        if self.best_epoch == stats["epoch"]:
            self.best_weights = get_weights(self.net)
        return self.should_stop()


class Checkpoint:
    """Save the run after every epoch, so a killed run resumes from the last one.
    ``result`` is the run so far (its history grows here); ``early`` supplies
    the best epoch and its weights."""

    def __init__(self, result, out: Path, early: EarlyStopping | None = None):
        self.result, self.out, self.early = result, out, early

    def on_epoch_end(self, stats: Stats) -> None:
        self.result.history.append(stats)
        if self.early is not None:
            self.result.best_epoch = self.early.best_epoch
            self.result.state.best_weights = self.early.best_weights
        save_run(self.result, self.out, final=False)
