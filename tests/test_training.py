"""The training loop through the tutorial's ``train_ranking``: it learns planted
structure on one or two devices, records every epoch, and names collapse and
non-finite losses."""

import functools
import math
import os
import sys
import threading

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from mxnet import gluon

from conftest import planted_interactions
from neumf import (
    BPRLoss,
    CollapseWarning,
    HingeLossbRec,
    NeuMF,
    PRDataset,
    evaluate_ranking,
    load_data_ml100k,
    split_data_ml100k,
    train_ranking,
)
from neumf.training import _NextEpoch, fit_epochs, score_spread_collapsed

NUM_USERS, NUM_ITEMS, K = 80, 60, 5


@pytest.fixture(scope="module")
def planted():
    users, items, ratings, stamps = planted_interactions()
    data = pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings,
                         "timestamp": stamps})
    train, test = split_data_ml100k(data, NUM_USERS, NUM_ITEMS, "seq-aware")
    users, items, _, candidates = load_data_ml100k(train, NUM_USERS, NUM_ITEMS, "implicit")
    test_input = load_data_ml100k(test, NUM_USERS, NUM_ITEMS, "implicit")[3]
    return users, items, candidates, test_input


def _train(planted, devices, *, activation=None, wd=1e-5, epochs=20, loss=None, seed=0,
           batch_size=64, train_iter=None, **kwargs):
    users, items, candidates, test_input = planted
    mx.random.seed(seed)
    net = NeuMF(8, NUM_USERS, NUM_ITEMS, [8], output_activation=activation)
    net.initialize(mx.init.Normal(0.01), ctx=devices)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "wd": wd})
    if train_iter is None:
        train_iter = PRDataset(users, items, candidates, NUM_ITEMS, seed=seed).loader(batch_size)
    history = train_ranking(net, train_iter, test_input, loss or BPRLoss(), trainer, None,
                            NUM_USERS, NUM_ITEMS, epochs, devices,
                            functools.partial(evaluate_ranking, k=K), candidates, **kwargs)
    return net, history


def chance_hit_rate(planted):
    users, _, candidates, _ = planted
    return np.mean([K / (NUM_ITEMS - len(candidates[u])) for u in candidates])


@pytest.mark.slow
def test_planted_structure_is_learned(planted, devices, capsys):
    _, history = _train(planted, devices)
    chance = chance_hit_rate(planted)
    assert history[-1]["hit_rate"] > 5 * chance  # measured ~0.73 vs chance ~0.1
    assert history[-1]["auc"] > 0.85
    assert history[-1]["loss"] < 0.3 < math.log(2) - 0.1 < history[0]["loss"] + 0.1
    out = capsys.readouterr().out
    assert "train loss" in out and f"examples/sec on {devices}" in out
    assert out.count("epoch ") == 20


def test_history_records_every_epoch(planted):
    _, history = _train(planted, [mx.cpu()], epochs=4, eval_step=2, verbose=False)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert set(history[0]) == {"epoch", "loss", "hit_rate", "auc", "train_seconds",
                               "eval_seconds", "examples_per_sec", "score_spread", "lr"}
    assert math.isnan(history[0]["hit_rate"]) and math.isnan(history[2]["auc"])
    assert not math.isnan(history[1]["hit_rate"]) and not math.isnan(history[3]["auc"])
    examples = len(planted[0])
    for stats in history:
        assert stats["examples_per_sec"] == pytest.approx(examples / stats["train_seconds"])
    assert history[0]["eval_seconds"] == 0.0 < history[1]["eval_seconds"]


def test_a_learning_rate_function_is_checked(planted):
    users, items, candidates, _ = planted
    net = NeuMF(8, NUM_USERS, NUM_ITEMS, [8])
    net.initialize(mx.init.Normal(0.01))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    loader = PRDataset(users, items, candidates, NUM_ITEMS, seed=0).loader(64)
    with pytest.raises(TypeError, match="learning_rate must be a function"):
        fit_epochs(net, loader, BPRLoss(), trainer, [mx.cpu()], num_epochs=1,
                   learning_rate=0.01)
    with pytest.raises(ValueError, match=r"learning_rate\(1\) must be positive"):
        fit_epochs(net, loader, BPRLoss(), trainer, [mx.cpu()], num_epochs=1,
                   learning_rate=lambda epoch: -0.1)
    remote = gluon.Trainer(net.collect_params(), "adam", kvstore="dist_sync")
    with pytest.raises(ValueError, match="parameter servers keep the rate"):
        fit_epochs(net, loader, BPRLoss(), remote, [mx.cpu()], num_epochs=1,
                   learning_rate=lambda epoch: 0.01)
    history = fit_epochs(net, loader, BPRLoss(), trainer, [mx.cpu()], num_epochs=2,
                         learning_rate=lambda epoch: 0.02 / epoch)
    assert [stats["lr"] for stats in history] == [0.02, 0.01] == [0.02, trainer.learning_rate]


def test_two_contexts_match_one_context(planted):
    # same data, same seed, same effective batch: the same parameters within float tolerance
    one, _ = _train(planted, [mx.cpu(0)], epochs=3, verbose=False)
    two, _ = _train(planted, [mx.cpu(0), mx.cpu(1)], epochs=3, verbose=False)
    params_two = two._collect_params_with_prefix()
    for name, param in one._collect_params_with_prefix().items():
        np.testing.assert_allclose(param.data(mx.cpu(0)).asnumpy(),
                                   params_two[name].data(mx.cpu(0)).asnumpy(), atol=1e-4)
        np.testing.assert_allclose(params_two[name].data(mx.cpu(0)).asnumpy(),
                                   params_two[name].data(mx.cpu(1)).asnumpy())


def test_same_seed_same_history(planted):
    strip = ("train_seconds", "eval_seconds", "examples_per_sec")
    runs = [[{k: v for k, v in h.items() if k not in strip}
             for h in _train(planted, [mx.cpu()], epochs=3, verbose=False)[1]] for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_hinge_loss_learns_too(planted):
    _, history = _train(planted, [mx.cpu()], loss=HingeLossbRec(), verbose=False)
    assert history[-1]["hit_rate"] > 5 * chance_hit_rate(planted)


def test_collapse_warns_in_plain_words(planted):
    # the sigmoid output with decay that outweighs its damped gradients: every score equal
    with pytest.warns(CollapseWarning, match="training has collapsed: after epoch \\d+ the "
                                             "network gives every user-item pair the same "
                                             "score"):
        _, history = _train(planted, [mx.cpu()], activation="sigmoid", wd=1e-3, epochs=6,
                            verbose=False)
    assert history[-1]["score_spread"] == 0.0
    assert history[-1]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert history[-1]["hit_rate"] < 1.5 * chance_hit_rate(planted)  # chance, not an artefact


def test_collapse_rule():
    assert score_spread_collapsed(0.0)
    assert not score_spread_collapsed(3e-5)  # first epoch of a model that goes on to learn
    assert not score_spread_collapsed(3e-5, previous=1e-6)  # growing
    assert score_spread_collapsed(3e-8, previous=9e-8)
    assert not score_spread_collapsed(0.5, previous=0.9)
    assert not score_spread_collapsed(float("nan"))


def test_non_finite_loss_names_epoch_and_batch(planted):
    users, items, candidates, _ = planted
    batches = list(PRDataset(users, items, candidates, NUM_ITEMS, seed=0).loader(64))
    net = NeuMF(4, NUM_USERS, NUM_ITEMS, [4])
    net.initialize(mx.init.Constant(float("nan")))
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01})
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1: the loss is nan"):
        train_ranking(net, batches, planted[3], BPRLoss(), trainer, None, NUM_USERS,
                      NUM_ITEMS, 1, [mx.cpu()], evaluate_ranking, candidates, verbose=False)


@pytest.mark.slow
def test_accepts_a_gluon_dataloader_over_prdataset(planted):
    # the tutorial's way: a DataLoader yielding legacy or numpy-mode arrays
    users, items, candidates, _ = planted
    loader = gluon.data.DataLoader(PRDataset(users, items, candidates, NUM_ITEMS, seed=0), 64,
                                   shuffle=True, last_batch="rollover")
    _, history = _train(planted, [mx.cpu()], train_iter=loader, epochs=15, verbose=False)
    assert history[-1]["hit_rate"] > 5 * chance_hit_rate(planted)


def test_bad_arguments(planted):
    with pytest.raises(ValueError, match="devices must list at least one context"):
        _train(planted, [], epochs=1)
    with pytest.raises(ValueError, match="eval_step must be a positive integer"):
        _train(planted, [mx.cpu()], epochs=1, eval_step=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's nice value: Linux")
def test_the_next_epoch_is_drawn_at_the_lowest_priority():
    """The thread that draws the next epoch leaves the CPU to MXNet's workers
    (its own nice value, 19); the thread that trains keeps its priority."""
    seen = {}

    class Plan:
        def prepare(self, batches):
            seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return len(batches)

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    batches, prepared = _NextEpoch([np.arange(3)], Plan()).result()
    assert prepared == 1 and seen["nice"] == 19
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
