"""Our tutorial-shaped helpers give exactly what d2l 1.0.3's give (d2l is the oracle)."""

from __future__ import annotations

import contextlib

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

import neumf
from conftest import planted_interactions, write_u_data

d2l_pkg = pytest.importorskip("d2l", reason="d2l (the oracle) is in the test extra only")
d2l = pytest.importorskip("d2l.mxnet")


@contextlib.contextmanager
def np_mode():
    """The tutorial runs with npx.set_np(); scope it to the d2l call."""
    with mx.util.np_shape(True), mx.util.np_array(True):
        yield


@pytest.fixture
def tied_data():
    """Random interactions with many equal timestamps and a duplicated row."""
    rng = np.random.default_rng(7)
    num_users, num_items, n = 30, 40, 600
    users = np.concatenate([np.arange(1, num_users + 1), rng.integers(1, num_users + 1, n)])
    items = np.concatenate([np.arange(1, num_users + 1), rng.integers(1, num_items + 1, n)])
    items[:num_items] = np.arange(1, num_items + 1)  # every item id appears
    frame = pd.DataFrame({"user_id": users, "item_id": items,
                          "rating": rng.integers(1, 6, len(users)),
                          "timestamp": rng.integers(0, 5, len(users))})
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)
    return frame, num_users, num_items


def test_reader_matches(tmp_path, monkeypatch):
    folder = write_u_data(tmp_path, planted_interactions())
    monkeypatch.setattr(d2l, "download_extract", lambda name: str(folder / "ml-100k"))
    expected = d2l.read_data_ml100k()
    got = neumf.read_data_ml100k(folder)
    pd.testing.assert_frame_equal(got[0], expected[0])
    assert got[1:] == expected[1:]


@pytest.mark.slow
def test_reader_matches_on_movielens(ml100k_dir, monkeypatch):
    monkeypatch.setattr(d2l, "download_extract", lambda name: str(ml100k_dir / "ml-100k"))
    expected = d2l.read_data_ml100k()
    got = neumf.read_data_ml100k(ml100k_dir)
    pd.testing.assert_frame_equal(got[0], expected[0])
    assert got[1:] == expected[1:] == (943, 1682)


def test_seq_aware_split_matches(tied_data):
    frame, num_users, num_items = tied_data
    expected = d2l.split_data_ml100k(frame, num_users, num_items, "seq-aware")
    got = neumf.split_data_ml100k(frame, num_users, num_items, "seq-aware")
    for ours, theirs in zip(got, expected):
        pd.testing.assert_frame_equal(ours, theirs)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_split_matches_with_a_fixed_numpy_seed(tied_data, monkeypatch, seed):
    frame, num_users, num_items = tied_data
    # d2l draws from MXNet's global RNG; feed it the same NumPy stream ours uses
    monkeypatch.setattr(d2l.np.random, "uniform",
                        lambda low, high, size: np.random.default_rng(seed).uniform(low, high,
                                                                                   size))
    expected = d2l.split_data_ml100k(frame, num_users, num_items, "random", 0.2)
    got = neumf.split_data_ml100k(frame, num_users, num_items, "random", 0.2, seed=seed)
    for ours, theirs in zip(got, expected):
        pd.testing.assert_frame_equal(ours, theirs)
    assert len(got[1]) > 0


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
def test_loader_matches(tied_data, feedback):
    frame, num_users, num_items = tied_data
    train, test = neumf.split_data_ml100k(frame, num_users, num_items, "seq-aware")
    for part in (frame, train, test):
        with np_mode():
            users, items, scores, inter = d2l.load_data_ml100k(part, num_users, num_items,
                                                               feedback)
        got = neumf.load_data_ml100k(part, num_users, num_items, feedback)
        assert (got[0], got[1], got[2]) == (users, items, scores)
        if feedback == "explicit":
            np.testing.assert_array_equal(got[3], inter.asnumpy())
            assert got[3].dtype == inter.asnumpy().dtype
        else:
            assert got[3] == inter
            assert list(got[3]) == list(inter)  # same user order too


@pytest.mark.parametrize("loss_name", ["BPRLoss", "HingeLossbRec"])
def test_losses_match(loss_name, rng):
    positive = mx.np.array(rng.normal(0, 3, (64, 1)).astype(np.float32))
    negative = mx.np.array(rng.normal(0, 3, (64, 1)).astype(np.float32))
    with np_mode():
        expected = getattr(d2l, loss_name)()(positive, negative)
        got = getattr(neumf, loss_name)()(positive, negative)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.asnumpy(), expected.asnumpy(), rtol=1e-5)


def test_hit_and_auc_matches(rng):
    for _ in range(200):
        n = int(rng.integers(2, 40))
        ranked = rng.permutation(60)[:n].tolist()
        test_items = rng.integers(0, 60, int(rng.integers(0, 4))).tolist()
        k = int(rng.integers(0, 50))
        assert neumf.hit_and_auc(ranked, test_items, k) == pytest.approx(
            d2l.hit_and_auc(ranked, test_items, k))


@pytest.mark.slow
def test_evaluate_ranking_matches_where_the_tutorial_is_right(rng):
    # With num_users == num_items the tutorial's num_users bug ranks exactly the
    # catalogue, and a random network has no ties: both evaluators must then agree.
    num_users = num_items = 70
    candidates, test_input = {}, {}
    for user in range(num_users):
        chosen = rng.choice(num_items, size=6, replace=False).tolist()
        candidates[user], test_input[user] = chosen[:5], chosen[5:]
    net = neumf.NeuMF(4, num_users, num_items, [5, 3])
    net.initialize(mx.init.Normal(1.0))
    with np_mode():
        expected = d2l.evaluate_ranking(net, test_input, None, candidates, num_users,
                                        num_items, [mx.cpu()])
    got = neumf.evaluate_ranking(net, test_input, None, candidates, num_users, num_items,
                                 [mx.cpu()])
    # d2l averages in float32
    assert got == pytest.approx((float(expected[0]), float(expected[1])), rel=1e-6)
