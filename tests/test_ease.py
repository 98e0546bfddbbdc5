"""EASE (issue 28): the closed form against a direct computation, its block,
lambda chosen on validation, and the memory refusal."""

import warnings

import mxnet as mx
import numpy as np
import pytest

import neumf.ease
from conftest import FEW_CANDIDATES, SEEN_EVERY_ITEM
from neumf import fit, synthetic
from neumf.ease import default_lambda, ease_weights, lambda_grid
from neumf.model import EASE


def _direct(matrix: np.ndarray, lam: float) -> np.ndarray:
    """Steck's formula, literally: B = I - P diag(1 / diag(P)), diagonal 0."""
    inverse = np.linalg.inv(matrix.T @ matrix + lam * np.eye(matrix.shape[1]))
    weights = np.eye(matrix.shape[1]) - inverse @ np.diag(1.0 / np.diag(inverse))
    np.fill_diagonal(weights, 0.0)
    return weights


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    matrix = (rng.random((9, 6)) < 0.4).astype(np.float64)
    users, items = np.nonzero(matrix)
    return matrix, users, items


@pytest.mark.parametrize("block", [2, 4096])  # users summed into the Gram matrix in blocks
def test_the_closed_form_equals_a_direct_computation(toy, block, monkeypatch):
    monkeypatch.setattr(neumf.ease, "_USERS_PER_BLOCK", block)
    matrix, users, items = toy
    weights = ease_weights(users, items, 9, 6, 2.5)
    assert weights.dtype == np.float32 and weights.shape == (6, 6)
    np.testing.assert_allclose(weights, _direct(matrix, 2.5), rtol=1e-5, atol=1e-6)
    assert np.all(np.diag(weights) == 0)
    # a pair given twice counts once
    twice = ease_weights(np.concatenate([users, users]), np.concatenate([items, items]), 9, 6,
                         2.5)
    np.testing.assert_array_equal(twice, weights)


def test_the_block_scores_histories_times_the_weights(toy):
    matrix, users, items = toy
    net = EASE(9, 6)
    with mx.util.np_shape(True), mx.util.np_array(True):
        net.initialize()
    net.fit_weights(users, items, 2.5)
    expected = (matrix @ _direct(matrix, 2.5)).astype(np.float32)
    np.testing.assert_allclose(net.score_matrix(np.arange(9)), expected, rtol=1e-4, atol=1e-5)
    net.hybridize()
    pairs_users, pairs_items = np.repeat(np.arange(9), 6), np.tile(np.arange(6), 9)
    with mx.util.np_shape(True), mx.util.np_array(True):
        forward = net(mx.np.array(pairs_users, dtype="int32"),
                      mx.np.array(pairs_items, dtype="int32")).asnumpy().reshape(9, 6)
    np.testing.assert_allclose(forward, expected, rtol=1e-4, atol=1e-5)


def test_the_sampled_protocol_ranks_by_rows_as_by_pairs(monkeypatch):
    """EASE scores whole rows under the sampled protocol too (a pair costs a
    row): the metrics equal those of scoring the pairs one by one."""
    from neumf.evaluation import evaluate_model
    rng = np.random.default_rng(1)
    users, items = np.nonzero(rng.random((40, 200)) < 0.2)
    test_users, test_items = np.arange(40), rng.integers(0, 200, size=40)
    negatives = np.stack([rng.choice(200, size=9, replace=False) for _ in range(40)])
    net = EASE(40, 200)
    with mx.util.np_shape(True), mx.util.np_array(True):
        net.initialize()
    net.fit_weights(users, items, 5.0)
    calls = []
    original = net.score_matrix
    monkeypatch.setattr(net, "score_matrix", lambda ids: calls.append(len(ids)) or original(ids))
    args = (net, test_users, test_items, users, items, 200, [mx.cpu()])
    by_rows = evaluate_model(*args, negatives=negatives, ks=(5,))
    assert calls  # the rows were scored
    monkeypatch.setattr(EASE, "score_by_rows", False)
    calls.clear()
    by_pairs = evaluate_model(*args, negatives=negatives, ks=(5,))
    assert not calls
    assert by_rows.keys() == by_pairs.keys()
    for name in by_rows:
        assert by_rows[name] == pytest.approx(by_pairs[name], abs=1e-9), name


@pytest.mark.parametrize("lam", [1e-300, 1e308])
def test_a_lambda_too_extreme_to_invert_is_named(lam):
    """Two items with the same users make X'X singular: lambda 1e-300 cannot
    regularise it, 1e308 overflows (a raw LinAlgError and a divergence blamed
    on the learning rate before)."""
    matrix = np.zeros((6, 5))
    matrix[:, 0] = matrix[:, 1] = [1, 0, 1, 1, 0, 1]
    matrix[:3, 2], matrix[2:, 3], matrix[::2, 4] = 1, 1, 1
    users, items = np.nonzero(matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"ease_lambda=.* too extreme .* nearer 10\.8"):
            ease_weights(users, items, 6, 5, lam)
    assert np.all(np.isfinite(ease_weights(users, items, 6, 5, 1.0)))


def test_lambda_bad_values_and_other_models_are_refused(toy):
    _, users, items = toy
    with pytest.raises(ValueError, match="ease_lambda must be positive"):
        ease_weights(users, items, 9, 6, 0.0)
    with pytest.raises(ValueError, match="ease_lambda applies to model 'ease' only"):
        fit(dataset=synthetic(30, 20, 300, seed=0), ease_lambda=10.0, verbose=False)


@FEW_CANDIDATES
@SEEN_EVERY_ITEM
@pytest.mark.parametrize("model", ["ease", "popularity"])
def test_training_settings_given_to_a_closed_form_are_said(model):
    data = synthetic(30, 20, 300, seed=0)
    with pytest.warns(UserWarning, match="lr, num_epochs have no effect") as caught:
        fit(dataset=data, model=model, num_epochs=5, lr=0.5, verbose=False)
    assert any(record.filename == __file__ for record in caught)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_catalogue_that_does_not_fit_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr("neumf._util.available_memory", lambda: 1 << 30)
    with pytest.raises(MemoryError, match="EASE over 100000 items"):
        ease_weights(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), 10, 100_000, 1.0)
    frame = synthetic(60, 200, 900, seed=0)
    monkeypatch.setattr("neumf._util.available_memory", lambda: 100_000)
    with pytest.raises(MemoryError, match=r"EASE over \d+ items and 60 users"):
        fit(dataset=frame, model="ease", verbose=False)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_validation_picks_the_best_lambda_of_the_grid_then_refits_on_every_pair():
    frame = synthetic(300, 120, 6000, seed=3, num_groups=4, affinity=0.9)
    result = fit(dataset=frame, model="ease", validation=True, seed=0, verbose=False)
    tried = [stats["ease_lambda"] for stats in result.history]
    best = max(result.history, key=lambda stats: stats["val_ndcg@10"])["ease_lambda"]
    data = result.data
    # the grid is centred on the default of the pairs left after the validation split
    assert len(tried) == 9 and tried[4] == pytest.approx(
        default_lambda(len(data.train_users) - len(np.unique(data.train_users)),
                       data.num_items), rel=0.05)
    assert tried == list(lambda_grid(tried[4]))
    assert result.config.ease_lambda == best
    again = fit(dataset=frame, model="ease", ease_lambda=best, seed=0, verbose=False)
    assert again.metrics == result.metrics  # the final weights: all training pairs
    plain = fit(dataset=frame, model="ease", seed=0, verbose=False)
    assert plain.config.ease_lambda == pytest.approx(
        default_lambda(len(data.train_users), data.num_items))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("model", ["ease", "popularity"])  # parameters without a dot
def test_a_closed_form_run_saves_loads_exports_and_serves(model, tmp_path):
    import json
    import threading
    import urllib.request

    from neumf import load
    from neumf.service import make_server
    frame = synthetic(60, 40, 900, seed=2, num_groups=3, affinity=0.9)
    result = fit(dataset=frame, model=model, seed=0, verbose=False, out=tmp_path / "run")
    loaded = load(tmp_path / "run")
    assert loaded.metrics == result.metrics and loaded.evaluate() == pytest.approx(
        result.metrics)
    users = list(result.data.user_ids[:5])
    expected = result.recommend(users, 4).to_records()
    exported = load(loaded.export(tmp_path / "export"))  # a loaded run's parameters too
    assert _rounded(exported.recommend(users, 4).to_records()) == _rounded(expected)
    assert loaded.recommend(users, 4).to_records() == expected
    server = make_server(exported, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/recommend?user={users[0]}&k=4",
                                    timeout=10) as response:
            answer = json.loads(response.read())
    finally:
        server.shutdown()
        server.server_close()
    assert _rounded([answer]) == _rounded(expected[:1])


def _rounded(records):
    return [(entry["user"], [(item["item"], round(item["score"], 5)) for item in entry["items"]])
            for entry in records]
