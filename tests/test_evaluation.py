"""Ranking evaluation: the tutorial-shaped ``evaluate_ranking``, ``evaluate_model``
under the full and sampled protocols, scoring every item for many users, and
the memory bound."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import neumf.evaluation as evaluation
from neumf import NeuMF, evaluate_model, evaluate_ranking, hit_and_auc
from neumf.evaluation import score_users


class TableNet(gluon.nn.Block):
    """A stub network whose score of (user, item) is ``table[user, item]``."""

    def __init__(self, table):
        super().__init__()
        self.table = np.asarray(table, dtype=np.float32)

    def forward(self, user_id, item_id):
        users = user_id.asnumpy().astype(int)
        items = item_id.asnumpy().astype(int)
        return mx.np.array(self.table[users, items][:, None])


def pairwise_only(net):
    """The network as a plain function: no score_matrix, so scored pair by pair."""
    return lambda user_id, item_id: net(user_id, item_id)


def reference_evaluate(scores, test_input, candidates, num_items, k):
    """The tutorial's per-user evaluation, ranking all num_items (valid without ties)."""
    hits, aucs = [], []
    for user, test_items in test_input.items():
        seen = set(candidates.get(user, []))
        ranked = sorted((i for i in range(num_items) if i not in seen),
                        key=lambda i: scores[user, i], reverse=True)
        hit, auc = hit_and_auc(ranked, test_items, k)
        hits.append(hit)
        aucs.append(auc)
    return float(np.mean(hits)), float(np.mean(aucs))


def random_split(rng, num_users, num_items, per_user, tests_per_user=1):
    candidates, test_input = {}, {}
    for user in range(num_users):
        chosen = rng.choice(num_items, size=per_user + tests_per_user, replace=False)
        candidates[user] = chosen[:per_user].tolist()
        test_input[user] = chosen[per_user:].tolist()
    return candidates, test_input


def test_items_beyond_num_users_are_ranked():
    # 2 users, 6 items; the test item 5 (>= num_users) scores best: the tutorial
    # (ranking ids < num_users only) would miss it entirely.
    table = np.tile(np.arange(6, dtype=np.float32), (2, 1))
    hit_rate, auc = evaluate_ranking(TableNet(table), {0: [5], 1: [5]}, None,
                                     {0: [0], 1: [1]}, 2, 6, [mx.cpu()], k=1)
    assert hit_rate == 1.0 and auc == 1.0


def test_seen_items_are_not_ranked():
    # user 0 trained on items 3 and 4, which outscore its test item 2
    table = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    hit_rate, auc = evaluate_ranking(TableNet(table), {0: [2]}, None, {0: [3, 4]}, 1, 5,
                                     [mx.cpu()], k=1)
    assert hit_rate == 1.0 and auc == 1.0
    hit_rate, auc = evaluate_ranking(TableNet(table), {0: [2]}, None, {0: []}, 1, 5,
                                     [mx.cpu()], k=1)
    assert hit_rate == 0.0 and auc == pytest.approx(2 / 4)


def test_constant_model_scores_at_chance():
    rng = np.random.default_rng(1)
    num_users, num_items, per_user = 20, 300, 50
    candidates, test_input = random_split(rng, num_users, num_items, per_user)
    table = np.full((num_users, num_items), 0.5)
    hit_rate, auc = evaluate_ranking(TableNet(table), test_input, None, candidates,
                                     num_users, num_items, [mx.cpu()], k=50)
    assert hit_rate == pytest.approx(50 / (num_items - per_user))
    assert auc == pytest.approx(0.5)


def test_test_item_also_in_training_is_a_miss():
    table = np.array([[5.0, 1.0, 0.0]])
    hit_rate, auc = evaluate_ranking(TableNet(table), {0: [0]}, None, {0: [0]}, 1, 3,
                                     [mx.cpu()], k=2)
    assert (hit_rate, auc) == (0.0, 0.0)


@pytest.mark.parametrize("tests_per_user", [1, 3])
@pytest.mark.parametrize("max_pairs", [pytest.param(1, marks=pytest.mark.slow), 1000, 1 << 20])
def test_matches_reference_on_random_tables(tests_per_user, max_pairs):
    rng = np.random.default_rng(tests_per_user)
    num_users, num_items = 25, 120
    candidates, test_input = random_split(rng, num_users, num_items, 30, tests_per_user)
    del test_input[3]  # a user without test items is not averaged
    table = rng.permutation(num_users * num_items).reshape(num_users, num_items).astype(float)
    for k in (1, 10, 50):
        expected = reference_evaluate(table, test_input, candidates, num_items, k)
        got = evaluate_ranking(TableNet(table), test_input, None, candidates, num_users,
                               num_items, [mx.cpu()], k=k, max_pairs=max_pairs)
        assert got == pytest.approx(expected, abs=1e-12)


def test_matches_reference_for_a_random_neumf(devices):
    rng = np.random.default_rng(5)
    num_users, num_items = 30, 70
    candidates, test_input = random_split(rng, num_users, num_items, 10)
    net = NeuMF(4, num_users, num_items, [6, 3])
    net.initialize(mx.init.Normal(1.0), ctx=devices)
    net.hybridize()
    scores = score_users(net, np.arange(num_users), num_items, devices)
    assert scores.shape == (num_users, num_items)
    assert len(np.unique(scores)) == scores.size  # no ties, so the reference is exact
    expected = reference_evaluate(scores, test_input, candidates, num_items, 10)
    got = evaluate_ranking(net, test_input, None, candidates, num_users, num_items, devices,
                           k=10)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("hiddens, activation", [([4], None), ([6, 5, 3], None),
                                                 ([6, 3], "sigmoid")])
def test_fast_neumf_scores_match_pairwise_calls(hiddens, activation):
    net = NeuMF(3, 5, 9, hiddens, output_activation=activation)
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    for max_pairs in (1, 10, 1000):
        scores = net.score_matrix(np.array([4, 1, 4]), max_pairs=max_pairs)
        direct = net(mx.np.array([4] * 9 + [1] * 9 + [4] * 9, dtype="int32"),
                     mx.np.array(list(range(9)) * 3, dtype="int32")).asnumpy().reshape(3, 9)
        np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)


def test_score_users_matches_pairwise_calls():
    net = NeuMF(3, 5, 9, [4])
    net.initialize(mx.init.Normal(0.5))
    scores = score_users(net, np.array([4, 1]), 9, [mx.cpu()], max_pairs=10)
    # a plain-function wrapper has no score_matrix: the pairwise path
    scores_pairwise = score_users(pairwise_only(net), np.array([4, 1]), 9, [mx.cpu()],
                                  max_pairs=10)
    np.testing.assert_allclose(scores, scores_pairwise, rtol=1e-5, atol=1e-6)
    direct = net(mx.np.array([4] * 9 + [1] * 9, dtype="int32"),
                 mx.np.array(list(range(9)) * 2, dtype="int32")).asnumpy().reshape(2, 9)
    # float32: NumPy's and MXNet's matrix products round differently (1 ulp)
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)


def test_bad_ids_and_k_are_refused():
    net = TableNet(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="test_input items must be in 0..2"):
        evaluate_ranking(net, {0: [3]}, None, {}, 2, 3, [mx.cpu()], k=1)
    with pytest.raises(ValueError, match="k=50 is larger than the catalogue of 3 items"):
        evaluate_ranking(net, {0: [1]}, None, {}, 2, 3, [mx.cpu()])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        evaluate_ranking(net, {0: [1]}, None, {}, 2, 3, [mx.cpu()], k=0)


def test_fast_and_pairwise_evaluation_agree_on_random_models():
    rng = np.random.default_rng(11)
    num_users, num_items = 40, 150
    for trial in range(3):
        candidates, test_input = random_split(rng, num_users, num_items, 20, 1 + trial)
        net = NeuMF(5, num_users, num_items, [7, 4])
        net.initialize(mx.init.Normal(0.3))
        fast = evaluate_ranking(net, test_input, None, candidates, num_users, num_items,
                                [mx.cpu()], k=10)
        slow = evaluate_ranking(pairwise_only(net), test_input, None, candidates,
                                num_users, num_items, [mx.cpu()], k=10)
        assert fast == pytest.approx(slow, abs=1e-12)


def _set(net, name, values):
    param = net._collect_params_with_prefix()[name]
    param.set_data(mx.np.array(np.asarray(values, dtype=np.float32).reshape(param.shape)))


@pytest.mark.parametrize("case", ["dead_first_units", "constant_later_units", "dead_mlp",
                                  "tiny_weights"])
def test_pruned_mlp_scores_match_pairwise_calls(case):
    rng = np.random.default_rng(4)
    net = NeuMF(4, 6, 11, [5, 4, 3])
    net.initialize(mx.init.Normal(0.7))
    weights = {n: p.data().asnumpy() for n, p in net._collect_params_with_prefix().items()}
    if case == "dead_first_units":  # units 0 and 3 never positive
        first = weights["mlp.0.weight"]
        first[[0, 3]] = 0
        bias = weights["mlp.0.bias"]
        bias[[0, 3]] = -1.0
        _set(net, "mlp.0.weight", first)
        _set(net, "mlp.0.bias", bias)
    elif case == "constant_later_units":  # unit 1 of layer 2 is relu(bias) = 0.8
        second = weights["mlp.1.weight"]
        second[1] = 0
        bias = weights["mlp.1.bias"]
        bias[1] = 0.8
        _set(net, "mlp.1.weight", second)
        _set(net, "mlp.1.bias", bias)
    elif case == "dead_mlp":  # as weight decay leaves it under the tutorial's settings
        for name in ("mlp.0.weight", "mlp.1.weight", "mlp.2.weight"):
            _set(net, name, np.zeros_like(weights[name]))
        _set(net, "mlp.1.bias", rng.uniform(0.1, 1.0, 4))
        _set(net, "mlp.2.bias", rng.uniform(0.1, 1.0, 3))
    else:
        _set(net, "mlp.1.weight", weights["mlp.1.weight"] * 1e-20)
    users = np.arange(6)
    direct = net(mx.np.array(np.repeat(users, 11), dtype="int32"),
                 mx.np.array(np.tile(np.arange(11), 6), dtype="int32")).asnumpy().reshape(6, 11)
    np.testing.assert_allclose(net.score_matrix(users), direct, rtol=1e-5, atol=1e-5)


def test_evaluate_model_hand_values():
    # one user, 6 items; scores 0..5; item 5 seen; test item 3
    net = TableNet(np.arange(6, dtype=float)[None, :])
    full = evaluate_model(net, [0], [3], [0], [5], 6, [mx.cpu()], ks=(1, 2))
    # candidates {0,1,2,3,4}: item 4 above, so rank 1
    assert full == pytest.approx({"hr@1": 0.0, "ndcg@1": 0.0, "hr@2": 1.0,
                                  "ndcg@2": 1 / np.log2(3), "auc": 3 / 4, "mrr": 1 / 2})
    sampled = evaluate_model(net, [0], [3], [0], [5], 6, [mx.cpu()], ks=(1,),
                             negatives=np.array([[0, 1]]))
    assert sampled == pytest.approx({"hr@1": 1.0, "ndcg@1": 1.0, "auc": 1.0, "mrr": 1.0})


def test_evaluate_model_agrees_with_evaluate_ranking():
    rng = np.random.default_rng(2)
    table = rng.permutation(30 * 90).reshape(30, 90).astype(float)
    train_users = np.repeat(np.arange(30), 10)
    train_items = np.concatenate([rng.choice(90, 11, replace=False) for _ in range(30)])
    test_items = train_items.reshape(30, 11)[:, 10]
    train_items = train_items.reshape(30, 11)[:, :10].ravel()
    metrics = evaluate_model(TableNet(table), np.arange(30), test_items, train_users,
                             train_items, 90, [mx.cpu()], ks=(50,))
    candidates = {u: train_items[train_users == u].tolist() for u in range(30)}
    hit_rate, auc = evaluate_ranking(TableNet(table), {u: [int(test_items[u])] for u in range(30)},
                                     None, candidates, 30, 90, [mx.cpu()])
    assert (metrics["hr@50"], metrics["auc"]) == pytest.approx((hit_rate, auc))


def _random_setup(num_users=40, num_items=500, seed=0):
    rng = np.random.default_rng(seed)
    net = NeuMF(4, num_users, num_items, [6, 3])
    net.initialize(mx.init.Normal(0.5))
    seen_users = np.repeat(np.arange(num_users), 12)
    seen_items = rng.integers(0, num_items, len(seen_users))
    test_items = rng.integers(0, num_items, num_users)
    return net, np.arange(num_users), test_items, seen_users, seen_items


def test_memory_bound_gives_the_same_metrics():
    net, users, items, seen_users, seen_items = _random_setup()
    whole = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()])
    bounded = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                             memory_mb=0.05)  # about three users per block
    assert bounded == pytest.approx(whole)
    with pytest.raises(ValueError, match="memory_mb"):
        evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                       memory_mb=0)


def test_sampled_protocol_scoring_only_candidates_matches_the_score_matrix(monkeypatch):
    net, users, items, seen_users, seen_items = _random_setup()
    rng = np.random.default_rng(1)
    negatives = rng.integers(0, 500, (len(users), 9))
    negatives[::4, 7:] = -1
    pairwise = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                              negatives=negatives, ks=(5,))  # 500 > 8 x 10: pairs only
    monkeypatch.setattr(evaluation, "PAIRWISE_RATIO", 10**9)  # force the score-matrix path
    matrix = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                            negatives=negatives, ks=(5,))
    assert pairwise == pytest.approx(matrix, abs=1e-6)
