"""The pairwise training loop, data-parallel over any list of contexts."""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable, Dict, List, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, use_np
from tqdm.auto import tqdm

from .parallel import check_devices, split_and_load

__all__ = ["CollapseWarning", "flush_negligible", "score_spread_collapsed", "train_ranking",
           "updaters"]

# Spread (max - min) of a batch's scores at or below which they no longer vary.
# Measured: a collapsed run reaches exactly 0 (sigmoid outputs all 0.5) or keeps
# shrinking below 1e-6; a learning run can start near 1e-5 but grows every epoch.
COLLAPSE_SPREAD = 1e-4


# Weights this many times smaller than the network's largest are flushed to 0
# after each epoch: weight decay shrinks dead units' weights geometrically, and
# their products become float32 denormals, which make every later batch slower
# (the tutorial's epochs: 0.18 s growing past 0.5 s) while adding nothing a
# float32 score can hold (float32 resolves 6e-8 relative).
NEGLIGIBLE_RATIO = 1e-9


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


def _allow_np_updates(trainer: gluon.Trainer) -> None:
    """Let the optimizer take ``mx.np`` gradients even if the Trainer was made
    outside NumPy mode (the tutorial relied on a global ``npx.set_np()``).
    Must run before the first step, when the kvstore copies the optimizer."""
    optimizer = getattr(trainer, "_optimizer", None)
    if optimizer is not None:
        optimizer.allow_np_array = True


def updaters(trainer: gluon.Trainer) -> list:
    """The updaters holding the optimizer state, wherever the trainer keeps them
    (none on a worker when the parameter servers update)."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._update_on_kvstore:
        updater = getattr(trainer._kvstore, "_updater", None)
        return [updater] if updater is not None else []
    return list(trainer._updaters)


def flush_negligible(trainer: gluon.Trainer, ratio: float = NEGLIGIBLE_RATIO) -> int:
    """Set to 0 the weights below ``ratio`` times the largest weight, and their
    optimizer state, on every device; returns how many weights were flushed.
    Denormal-range products of such weights slow every operator they reach."""
    params = [param for param in trainer._params if param.grad_req != "null"]
    if not params:
        return 0
    values = [param.data().asnumpy() for param in params]
    limit = ratio * max(float(np.abs(value).max(initial=0.0)) for value in values)
    holders = updaters(trainer) if trainer._optimizer is not None else []
    index_of = {id(param): index for index, param in enumerate(trainer._params)}
    flushed = 0
    for param, value in zip(params, values):
        small = (value != 0) & (np.abs(value) < limit)
        if not small.any():
            continue
        flushed += int(small.sum())
        keep = (~small).astype(value.dtype)
        for array in param.list_data():
            array[:] = array.asnumpy() * keep
        for updater in holders:
            state = updater.states.get(index_of[id(param)])
            for part in state if isinstance(state, (tuple, list)) else (state,):
                if part is not None and part.shape == value.shape:
                    part[:] = part.asnumpy() * keep
    return flushed


def _to_mx(values) -> mx.np.ndarray:
    """A batch column as an ``mx.np`` array, whatever the loader yields."""
    if isinstance(values, mx.nd.NDArray) and not isinstance(values, mx.np.ndarray):
        return values.as_np_ndarray()
    if isinstance(values, mx.np.ndarray):
        return values
    values = np.asarray(values)
    return mx.np.array(values, dtype=values.dtype)


@use_np
def train_ranking(
    net: gluon.Block,
    train_iter,
    test_iter,
    loss: gluon.loss.Loss,
    trainer: gluon.Trainer,
    test_seq_iter,
    num_users: int,
    num_items: int,
    num_epochs: int,
    devices: Sequence[mx.Context],
    evaluator: Callable,
    candidates,
    eval_step: int = 1,
    *,
    verbose: bool = True,
    collapse_check: bool = True,
    on_epoch_end: Callable[[Dict[str, float]], bool | None] | None = None,
    initial_epoch: int = 0,
    flush: bool = True,
) -> List[Dict[str, float]]:
    """Train ``net`` on ``(user, positive, negative)`` batches with a pairwise loss.

    Parameters follow the tutorial's ``train_ranking``: ``train_iter`` yields
    batches whose last two columns are positive and negative items (any
    leading columns, e.g. users and sequences, are passed first); each batch is
    split across ``devices`` with ``split_and_load``; ``evaluator(net,
    test_iter, test_seq_iter, candidates, num_users, num_items, devices)``
    returns ``(hit_rate, auc)`` and runs every ``eval_step`` epochs.

    Returns
    -------
    One dict per epoch: ``epoch`` (1-based), ``loss`` (mean per training
    triplet), ``hit_rate`` and ``auc`` (NaN in epochs without evaluation),
    ``train_seconds`` (the batch loop only), ``eval_seconds``,
    ``examples_per_sec`` and ``score_spread`` (max - min score of the epoch's
    last batch). A :class:`CollapseWarning` is issued when that spread says
    every pair scores the same, unless ``collapse_check`` is False. With
    ``verbose``, a progress bar shows each epoch's throughput. Epochs are
    numbered from ``initial_epoch + 1`` (resumed runs); ``on_epoch_end`` is
    called with each epoch's dict, and training stops early when it returns
    True (early stopping). With ``flush``, weights below 1e-9 of the largest
    are set to 0 after each epoch (see :func:`flush_negligible`).
    """
    if int(num_epochs) != num_epochs or num_epochs < 0:
        raise ValueError(f"num_epochs must be a non-negative integer; got {num_epochs!r}")
    if int(eval_step) != eval_step or eval_step < 1:
        raise ValueError(f"eval_step must be a positive integer; got {eval_step!r}")
    devices = check_devices(devices)
    _allow_np_updates(trainer)
    history: List[Dict[str, float]] = []
    hit_rate = auc = float("nan")
    warned = False
    total_examples, total_seconds = 0, 0.0
    for epoch in range(initial_epoch + 1, initial_epoch + num_epochs + 1):
        epoch_losses, num_examples, last_scores = [], 0, None
        start = time.perf_counter()
        bar = tqdm(total=_num_examples(train_iter), desc=f"epoch {epoch}", unit="triplet",
                   unit_scale=True, leave=False, disable=not verbose, mininterval=0.25)
        if history:
            bar.set_postfix(loss=f"{history[-1]['loss']:.4f}")
        for batch in train_iter:
            columns = [_to_mx(values) for values in batch]
            batch_size = columns[0].shape[0]
            shards = split_and_load(columns, devices)
            with autograd.record():
                positive, negative = _score_pairs(net, shards)
                batch_losses = [loss(p, n) for p, n in zip(positive, negative)]
            for batch_loss in batch_losses:
                batch_loss.backward()
            trainer.step(batch_size)
            # read back at the end of the epoch: a per-batch read stalls MXNet's pipeline
            epoch_losses.append(batch_losses)
            num_examples += batch_size
            last_scores = (positive, negative)
            bar.update(batch_size)
        bar.close()
        batch_totals = [sum(float(batch_loss.sum()) for batch_loss in batch_losses)
                        for batch_losses in epoch_losses]
        bad = [index for index, total in enumerate(batch_totals) if not math.isfinite(total)]
        if bad:
            raise FloatingPointError(
                f"epoch {epoch}, batch {bad[0] + 1}: the loss is {batch_totals[bad[0]]}; "
                "lower the learning rate or check the inputs")
        loss_sum = math.fsum(batch_totals)
        if flush:
            flush_negligible(trainer)
        train_seconds = time.perf_counter() - start
        total_examples, total_seconds = total_examples + num_examples, total_seconds + train_seconds

        eval_seconds = 0.0
        if epoch % eval_step == 0:
            start = time.perf_counter()
            with autograd.predict_mode():
                hit_rate, auc = evaluator(net, test_iter, test_seq_iter, candidates,
                                          num_users, num_items, devices)
            eval_seconds = time.perf_counter() - start
            hit_rate, auc = float(hit_rate), float(auc)
        spread = _spread(last_scores)
        stats = {
            "epoch": epoch,
            "loss": loss_sum / num_examples if num_examples else float("nan"),
            "hit_rate": hit_rate if epoch % eval_step == 0 else float("nan"),
            "auc": auc if epoch % eval_step == 0 else float("nan"),
            "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "examples_per_sec": num_examples / train_seconds if train_seconds > 0 else float("nan"),
            "score_spread": spread,
        }
        history.append(stats)
        if verbose:
            metrics = (f"hit rate {stats['hit_rate']:.3f}, AUC {stats['auc']:.3f}, "
                       if epoch % eval_step == 0 else "")
            print(f"epoch {epoch}: loss {stats['loss']:.4f}, {metrics}"
                  f"{stats['examples_per_sec']:.0f} examples/sec, "
                  f"train {train_seconds:.2f} s, eval {eval_seconds:.2f} s", flush=True)
        previous = history[-2]["score_spread"] if len(history) > 1 else None
        if collapse_check and not warned and score_spread_collapsed(spread, previous):
            warned = True
            warnings.warn(
                f"training has collapsed: after epoch {epoch} the network gives every "
                f"user-item pair the same score (spread {spread:.2g}) and the loss per pair is "
                f"{stats['loss']:.4f} (ln 2 = 0.6931 means no preference is learned), so "
                "rankings and hit rates are meaningless. Weight decay has outweighed the data "
                "gradients, which is what the tutorial's sigmoid output under BPR does "
                "(tutorial_exact=True): train on the raw score (output_activation=None) "
                "or lower wd.",
                CollapseWarning, stacklevel=4)  # past the two use_np wrappers
        if on_epoch_end is not None and on_epoch_end(stats):
            break
    if verbose and history:
        evaluated = not math.isnan(hit_rate)
        print(f"train loss {history[-1]['loss']:.3f}" + (
            f", test hit rate {hit_rate:.3f}, test AUC {auc:.3f}" if evaluated
            else " (not evaluated during training)"))
        print(f"{total_examples / total_seconds:.1f} examples/sec on {devices}")
    return history


def _score_pairs(net, shards):
    """Positive and negative scores per device from one forward pass each: the
    leading inputs are repeated and the two item columns stacked, which halves
    the graph calls (a per-example network scores each row on its own)."""
    positive, negative = [], []
    for *leading, pos_items, neg_items in zip(*shards):
        size = pos_items.shape[0]
        scores = net(*[mx.np.concatenate([column, column]) for column in leading],
                     mx.np.concatenate([pos_items, neg_items]))
        positive.append(scores[:size])
        negative.append(scores[size:])
    return positive, negative


def _num_examples(train_iter) -> int | None:
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
    if last_scores is None:
        return float("nan")
    values = np.concatenate([s.asnumpy().reshape(-1) for group in last_scores for s in group])
    return float(values.max() - values.min()) if values.size else float("nan")
