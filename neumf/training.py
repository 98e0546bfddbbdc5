"""The pairwise training loop, data-parallel over any list of devices.

:func:`fit_epochs` is the core: batches of ``(user, positive, negative)``
triplets, one forward pass per device over the stacked pairs, a pairwise loss,
one Trainer step; after each epoch the
network is evaluated (when asked) and every callback sees the epoch's
statistics (see :mod:`neumf.callbacks`). The tutorial's ``train_ranking`` is a
thin adapter over it (:mod:`neumf.tutorial`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, use_np
from tqdm.auto import tqdm

from ._util import check_number
from .devices import check_devices, split_and_load
from .optim_state import allow_np_updates

__all__ = ["COLLAPSE_SPREAD", "CollapseWarning", "EpochStats", "evaluate_into", "fit_epochs",
           "num_triplets", "score_spread_collapsed"]

# Spread (max - min) of a batch's scores at or below which they no longer vary.
# Measured: a collapsed run reaches exactly 0 (sigmoid outputs all 0.5) or keeps
# shrinking below 1e-6; a learning run can start near 1e-5 but grows every epoch.
COLLAPSE_SPREAD = 1e-4

Evaluate = Callable[[gluon.Block], Dict[str, float]]


class CollapseWarning(RuntimeWarning):
    """Training collapsed: the network gives every pair (almost) the same score."""


def score_spread_collapsed(spread: float, previous: float | None = None,
                           tolerance: float = COLLAPSE_SPREAD) -> bool:
    """Whether the scores no longer vary: the spread (max - min) of a batch's
    scores is exactly 0, or at most ``tolerance`` and not larger than the
    previous epoch's (a learning model's small early spread grows)."""
    if not math.isfinite(spread):
        return False
    if spread == 0.0:
        return True
    return previous is not None and spread <= tolerance and spread <= previous


@dataclass
class EpochStats:
    """One epoch: mean loss per triplet, the seconds of the batch loop alone,
    triplets trained on, the spread (max - min) of the last batch's scores, and
    the evaluation's metrics and seconds (empty and 0 without evaluation)."""

    epoch: int
    loss: float
    train_seconds: float
    examples: int
    score_spread: float
    eval_seconds: float = 0.0
    metrics: Dict[str, float] = field(default_factory=dict)
    lr: float = float("nan")

    @property
    def examples_per_sec(self) -> float:
        return self.examples / self.train_seconds if self.train_seconds > 0 else float("nan")

    def as_dict(self, metric_names: Sequence[str] = ()) -> Dict[str, float]:
        """The history entry: ``epoch``, ``loss``, ``hit_rate`` and ``auc`` (NaN
        without evaluation), ``train_seconds``, ``eval_seconds``,
        ``examples_per_sec``, ``score_spread``, ``lr`` (the learning rate the
        epoch trained at; NaN without an optimizer) and any further metrics (NaN
        for each of ``metric_names`` this epoch did not evaluate)."""
        nan = float("nan")
        metrics = dict.fromkeys(("hit_rate", "auc", *metric_names), nan)
        metrics.update(self.metrics)
        return {"epoch": self.epoch, "loss": self.loss, "hit_rate": metrics.pop("hit_rate"),
                "auc": metrics.pop("auc"), "train_seconds": self.train_seconds,
                "eval_seconds": self.eval_seconds, "examples_per_sec": self.examples_per_sec,
                "score_spread": self.score_spread, "lr": self.lr, **metrics}


def _to_mx(values) -> mx.np.ndarray:
    """A batch column as an ``mx.np`` array, whatever the loader yields."""
    if isinstance(values, mx.nd.NDArray) and not isinstance(values, mx.np.ndarray):
        return values.as_np_ndarray()
    if isinstance(values, mx.np.ndarray):
        return values
    values = np.asarray(values)
    return mx.np.array(values, dtype=values.dtype)


def _idle_devices_add_nothing(trainer, idle: Sequence[mx.Context]) -> None:
    """A batch of fewer rows than devices leaves some without a shard: their
    gradients are set to zero and counted as fresh, so the Trainer's sum over
    devices adds nothing from them and keeps every device's copy in step."""
    for param in trainer._params:
        if param.grad_req == "null":
            continue
        # the Trainer reads freshness from the arrays autograd marked: the data
        for device, data, grad in zip(param.list_ctx(), param.list_data(), param.list_grad()):
            if device in idle:
                grad[:] = 0
                data._fresh_grad = True


def _forward_triplets(net, shards):
    """Positive and negative scores per device from one forward pass each: the
    leading inputs are repeated and the item columns stacked, which halves
    the graph calls (a per-example network scores each row on its own). A
    grouped batch (negatives of shape (rows, k)) scores each positive once:
    (rows, 1) positive against (rows, k) negative scores, which the losses
    broadcast into the batch's ``rows * k`` triplets."""
    positive, negative = [], []
    for *leading, pos_items, neg_items in zip(*shards):
        size = pos_items.shape[0]
        if neg_items.ndim == 2:
            width = neg_items.shape[1] + 1
            items = mx.np.concatenate([pos_items.reshape(-1, 1), neg_items], axis=1)
            scores = net(*[mx.np.repeat(column, width) for column in leading],
                         items.reshape(-1)).reshape(size, width)
            positive.append(scores[:, :1])
            negative.append(scores[:, 1:])
            continue
        scores = net(*[mx.np.concatenate([column, column]) for column in leading],
                     mx.np.concatenate([pos_items, neg_items]))
        positive.append(scores[:size])
        negative.append(scores[size:])
    return positive, negative


def num_triplets(train_iter) -> int | None:
    """Triplets per pass of a TripletLoader or DataLoader, if it can tell."""
    if hasattr(train_iter, "num_triplets"):
        return train_iter.num_triplets
    dataset = getattr(train_iter, "dataset", None) or getattr(train_iter, "_dataset", None)
    try:
        return len(dataset)
    except TypeError:
        return None


def _spread(last_scores) -> float:
    """max - min over the scores of the last batch (NaN if there was none)."""
    if not last_scores:
        return float("nan")
    values = np.concatenate([scores.asnumpy().reshape(-1) for scores in last_scores])
    return float(values.max() - values.min()) if values.size else float("nan")


def _losses(net, shards, loss):
    """Each device's loss of its shard, and the scores, recorded for backward."""
    with autograd.record():
        positive, negative = _forward_triplets(net, shards)
        return [loss(p, n) for p, n in zip(positive, negative)], positive + negative


def _batch_totals(epoch_losses) -> List[float]:
    """Each batch's summed loss, read back in one copy (a read per batch waits
    for the engine each time)."""
    parts = [batch_loss.as_nd_ndarray().reshape((-1,))
             for batch_losses in epoch_losses for batch_loss in batch_losses]
    if not parts:
        return []
    values = mx.nd.concat(*parts, dim=0).asnumpy().astype(np.float64)
    counts = [sum(batch_loss.size for batch_loss in batch_losses)
              for batch_losses in epoch_losses]
    return np.add.reduceat(values, np.cumsum([0] + counts[:-1])).tolist()


# Batches Python may queue ahead of MXNet's engine: enough to overlap the two,
# few enough that the memory of queued batches stays bounded.
_AHEAD = 2


def _yield_to_training() -> None:
    """Give the calling thread the lowest CPU priority (Linux, where a thread has
    its own nice value), so that it draws on what MXNet's workers leave: four
    ML-1M MF runs on 2 cores took 88-96 s (mean 92) instead of 94-98 s (mean
    96). Elsewhere a thread id is no process id: nothing is changed."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


class _NextEpoch:
    """The next epoch's batches and row-sparse plan (NumPy only), drawn in a
    thread while this epoch trains: MXNet's engine would otherwise wait for
    them (about a fifth of an ML-1M epoch). The sampler's generator state
    before the draw is kept as its ``resume_state``, which a checkpoint saves:
    a resumed run draws that epoch again, the same."""

    def __init__(self, train_iter, sparse):
        self._sampler = getattr(train_iter, "dataset", None)
        if self._sampler is not None and hasattr(self._sampler, "rng"):
            self._sampler.resume_state = self._sampler.rng.bit_generator.state
        self._result, self._error = None, None
        self._thread = threading.Thread(target=self._draw, args=(train_iter, sparse),
                                        name="neumf-next-epoch", daemon=True)
        self._thread.start()

    def _draw(self, train_iter, sparse) -> None:
        _yield_to_training()
        try:
            batches = list(train_iter)  # NumPy views of the epoch's arrays
            self._result = batches, sparse.prepare(batches)
        except BaseException as error:  # noqa: BLE001 (raised again in the training thread)
            self._error = error

    def result(self):
        """The batches and their prepared plan, once drawn (an error raised here)."""
        self._thread.join()
        if self._sampler is not None:
            self._sampler.resume_state = None  # drawn, and now trained
        if self._error is not None:
            raise self._error
        return self._result


@use_np
def _train_epoch(net, train_iter, loss, trainer, devices, epoch: int, bar,
                 sparse=None, ahead: _NextEpoch | None = None,
                 draw_next: bool = False) -> Tuple[EpochStats, _NextEpoch | None]:
    """One pass over ``train_iter``; the losses are read back once, at the end
    (a per-batch read stalls MXNet's pipeline), but each batch waits for the
    loss of the batch ``_AHEAD`` before it, so that few batches are queued. With ``sparse``
    (:class:`neumf.sparse.SparseBatches`), its batch network trains on each
    batch's rows and the touched rows of the tables are updated; ``ahead``
    holds its batches when they were drawn during the last epoch, and with
    ``draw_next`` the next epoch's are drawn during this one (returned beside
    the epoch's statistics)."""
    epoch_losses, num_examples, last_scores, next_epoch = [], 0, None, None
    start = time.perf_counter()
    if sparse is not None:
        if ahead is not None:
            batches, prepared = ahead.result()
            sparse.plan(prepared=prepared)
        else:
            batches = list(train_iter)  # NumPy views of the epoch's arrays
            sparse.plan(batches)
        next_epoch = _NextEpoch(train_iter, sparse) if draw_next else None
        train_iter = batches
    for number, batch in enumerate(train_iter):
        if sparse is None:
            columns = [_to_mx(values) for values in batch]
            batch_size = columns[-1].size  # triplets: rows x k in a grouped batch
            batch_losses, scores = _losses(net, split_and_load(columns, devices), loss)
        elif sparse.fused:
            batch_size = int(np.size(batch[-1]))
            batch_losses, scores = sparse.losses(number, loss)
        else:
            batch_size = int(np.size(batch[-1]))
            batch_losses, scores = _losses(
                sparse.net, [list(column) for column in zip(*sparse.shards(number))], loss)
        for batch_loss in batch_losses:
            batch_loss.backward()
        if trainer is not None:
            if len(batch_losses) < len(devices):
                _idle_devices_add_nothing(trainer, devices[len(batch_losses):])
            trainer.step(batch_size)
        if sparse is not None:
            sparse.step(number, batch_size)
        epoch_losses.append(batch_losses)
        if number >= _AHEAD:  # bounded run-ahead: queued batches hold memory
            epoch_losses[number - _AHEAD][0].wait_to_read()
        num_examples += batch_size
        last_scores = scores
        bar.update(batch_size)
    totals = _batch_totals(epoch_losses)
    bad = [index for index, total in enumerate(totals) if not math.isfinite(total)]
    if bad:
        raise FloatingPointError(
            f"epoch {epoch}, batch {bad[0] + 1}: the loss is {totals[bad[0]]}; the training "
            "diverged: lower the learning rate (lr) or check the inputs")
    return EpochStats(epoch, math.fsum(totals) / num_examples if num_examples else float("nan"),
                      time.perf_counter() - start, num_examples,
                      _spread(last_scores)), next_epoch


def _one_epoch(net, train_iter, loss, trainer, devices, epoch: int, history, progress: bool,
               sparse, ahead: _NextEpoch | None, draw_next: bool
               ) -> Tuple[EpochStats, _NextEpoch | None]:
    """One epoch's batches, under a progress bar when asked (see :func:`_train_epoch`
    for ``ahead`` and ``draw_next``)."""
    with tqdm(total=num_triplets(train_iter), desc=f"epoch {epoch}", unit="triplet",
              unit_scale=True, leave=False, mininterval=0.25,
              disable=None if progress else True) as bar:  # None: only on a terminal
        if history:
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
        stats, next_epoch = _train_epoch(net, train_iter, loss, trainer, devices, epoch, bar,
                                         sparse, ahead, draw_next)
    if sparse is not None:
        sparse.sync()
    return stats, next_epoch


def _epoch_rate(epoch: int, learning_rate, trainer, sparse) -> float:
    """Set ``learning_rate(epoch)`` on the optimizers (when given); the rate the
    epoch trains at (NaN without an optimizer)."""
    if learning_rate is not None:
        rate = check_number(f"learning_rate({epoch})", learning_rate(epoch), positive=True)
        if trainer is not None:
            trainer.set_learning_rate(rate)
        if sparse is not None:
            sparse.set_learning_rate(rate)
    if trainer is not None:
        return float(trainer.learning_rate)
    return sparse.learning_rate if sparse is not None else float("nan")


def _check_schedule(learning_rate, trainer, sparse) -> None:
    """A function of the epoch, for optimizers in this process (parameter
    servers keep the rate they were given)."""
    if learning_rate is None:
        return
    if not callable(learning_rate):
        raise TypeError("learning_rate must be a function epoch -> rate, or None; got "
                        f"{learning_rate!r}")
    store = trainer._kvstore_params["kvstore"] if trainer is not None else None
    kind = store if isinstance(store, str) else getattr(store, "type", "")
    if "dist" in str(kind) or (sparse is not None and sparse.remote is not None):
        raise ValueError("learning_rate needs the optimizer in this process: with a dist_* "
                         "kvstore the parameter servers keep the rate they were given")


def evaluate_into(stats: EpochStats, net: gluon.Block, evaluate: Evaluate) -> None:
    """Fill ``stats``' metrics and evaluation seconds, in predict mode."""
    start = time.perf_counter()
    with autograd.predict_mode():
        stats.metrics = {name: float(value) for name, value in evaluate(net).items()}
    stats.eval_seconds = time.perf_counter() - start


def fit_epochs(net: gluon.Block, train_iter, loss: gluon.loss.Loss,
               trainer: gluon.Trainer | None, devices: Sequence[mx.Context], *,
               num_epochs: int, evaluate: Evaluate | None = None, eval_every: int | None = 1,
               callbacks: Sequence = (), initial_epoch: int = 0,
               progress: bool = False, sparse=None,
               learning_rate: Callable[[int], float] | None = None) -> List[Dict[str, float]]:
    """Train ``net`` for ``num_epochs`` epochs on batches of triplets.

    Parameters
    ----------
    train_iter
        Yields batches whose last two columns are positive and negative items
        (any leading columns, e.g. users, are passed to ``net`` first), each
        split across ``devices`` with ``split_and_load``.
    evaluate, eval_every
        ``evaluate(net)`` -> metrics, run in predict mode every ``eval_every``
        epochs (None: never); its ``hit_rate`` and ``auc`` fill those columns.
    callbacks
        Objects with ``on_epoch_end(stats) -> bool | None`` (True stops after
        this epoch; every callback sees it first), and ``on_train_end(history)``.
    initial_epoch, progress, sparse
        Epochs are numbered from ``initial_epoch + 1`` (a resumed run); a
        progress bar per epoch; a :class:`neumf.sparse.SparseBatches` for
        row-sparse embedding tables (``trainer`` then holds the dense layers
        only, or is None).
    learning_rate
        ``learning_rate(epoch)`` -> the rate of that epoch, set on ``trainer``
        and ``sparse`` before it (None: theirs, unchanged); not with a
        distributed kvstore, whose servers keep the rate they were given.

    Returns
    -------
    One :meth:`EpochStats.as_dict` entry per epoch trained.
    """
    devices = check_devices(devices)
    _check_schedule(learning_rate, trainer, sparse)
    if trainer is not None:
        allow_np_updates(trainer)
    history: List[Dict[str, float]] = []
    metric_names: List[str] = []
    last, ahead = initial_epoch + num_epochs, None
    for epoch in range(initial_epoch + 1, last + 1):
        rate = _epoch_rate(epoch, learning_rate, trainer, sparse)
        # the next epoch drawn during this one, where its plan fits in memory twice
        draw_next = sparse is not None and epoch < last and sparse.room_for_another_plan()
        stats, ahead = _one_epoch(net, train_iter, loss, trainer, devices, epoch, history,
                                  progress, sparse, ahead, draw_next)
        stats.lr = rate
        if evaluate is not None and eval_every and epoch % eval_every == 0:
            evaluate_into(stats, net, evaluate)
            metric_names = list(stats.metrics)
        history.append(stats.as_dict(metric_names))
        stop = [bool(callback.on_epoch_end(history[-1])) for callback in callbacks]
        if any(stop):
            break
    for callback in callbacks:
        if hasattr(callback, "on_train_end"):
            callback.on_train_end(history)
    return history
