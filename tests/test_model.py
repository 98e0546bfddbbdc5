"""The blocks: NeuMF, its GMF and MLP towers, the popularity baseline, and
pretraining NeuMF from the towers."""

import mxnet as mx
import numpy as np
import pytest

from neumf import GMF, MLP, NeuMF
from neumf.model import Popularity


def _inputs(batch=7):
    return (mx.np.array(np.arange(batch) % 5, dtype="int32"),
            mx.np.array(np.arange(batch) % 9, dtype="int32"))


def test_output_shape_and_parameters():
    net = NeuMF(4, 5, 9, [6, 3])
    net.initialize(mx.init.Normal(0.1))
    assert net(*_inputs()).shape == (7, 1)
    # structural names, as save_parameters writes them
    shapes = {name: p.shape for name, p in net._collect_params_with_prefix().items()}
    assert shapes == {
        "P.weight": (5, 4), "Q.weight": (9, 4), "U.weight": (5, 4), "V.weight": (9, 4),
        "mlp.0.weight": (6, 8), "mlp.0.bias": (6,), "mlp.1.weight": (3, 6), "mlp.1.bias": (3,),
        "prediction_layer.weight": (1, 4 + 3),  # bias-free
    }


def test_gmf_and_mlp_arithmetic_by_hand():
    net = NeuMF(2, 1, 1, [1])
    net.initialize(mx.init.One())
    # GMF: 1*1 per factor -> [1, 1]; MLP: relu(1*1 + 1*1 + 1*1 + 1*1 + bias 0) -> 4
    out = net(mx.np.array([0], dtype="int32"), mx.np.array([0], dtype="int32"))
    assert out.asnumpy()[0, 0] == pytest.approx(1 + 1 + 4)


@pytest.mark.parametrize("activation", [None, "sigmoid"])
def test_hybridized_equals_imperative(activation):
    net = NeuMF(4, 5, 9, [6, 3], output_activation=activation)
    net.initialize(mx.init.Normal(0.5))
    imperative = net(*_inputs()).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(*_inputs()).asnumpy(), imperative, rtol=1e-6)


def test_sigmoid_option_is_the_sigmoid_of_the_logit():
    logit_net = NeuMF(4, 5, 9, [6])
    logit_net.initialize(mx.init.Normal(0.5))
    sigmoid_net = NeuMF(4, 5, 9, [6], output_activation="sigmoid")
    sigmoid_net.initialize()
    logits = logit_net(*_inputs()).asnumpy()
    sigmoid_net(*_inputs())  # finish deferred initialisation
    source = logit_net._collect_params_with_prefix()
    for name, param in sigmoid_net._collect_params_with_prefix().items():
        param.set_data(source[name].data())
    logits = logit_net(*_inputs()).asnumpy()
    np.testing.assert_allclose(sigmoid_net(*_inputs()).asnumpy(), 1 / (1 + np.exp(-logits)),
                               rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_factors": 0}, "num_factors must be a positive integer"),
    ({"num_users": -1}, "num_users must be a positive integer"),
    ({"nums_hiddens": []}, "nums_hiddens must be a non-empty list"),
    ({"nums_hiddens": [4, 0]}, "nums_hiddens must be a non-empty list"),
    ({"output_activation": "tanh"}, "output_activation must be one of"),
])
def test_bad_arguments(kwargs, message):
    args = {"num_factors": 4, "num_users": 5, "num_items": 9, "nums_hiddens": [6]}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        NeuMF(**args)


def _pairs(num_users, num_items):
    users = np.repeat(np.arange(num_users), num_items)
    items = np.tile(np.arange(num_items), num_users)
    return (mx.np.array(users, dtype="int32"), mx.np.array(items, dtype="int32"))


@pytest.mark.parametrize("make", [
    lambda: GMF(4, 5, 9), lambda: GMF(4, 5, 9, output_weights=False),
    lambda: MLP(3, 5, 9, [6, 2]), lambda: NeuMF(4, 5, 9, [6, 3], mlp_factors=3),
    lambda: NeuMF(2, 5, 9, [4], output_activation="sigmoid", mlp_factors=5),
    lambda: GMF(4, 5, 9, biases=True), lambda: GMF(4, 5, 9, output_weights=False, biases=True),
    lambda: NeuMF(4, 5, 9, [6, 3], mlp_factors=3, biases=True),
    lambda: NeuMF(2, 5, 9, [4], output_activation="sigmoid", biases=True)])
def test_every_model_scores_all_items_like_its_forward_pass(make):
    net = make()
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    forward = net(*_pairs(5, 9)).asnumpy().reshape(5, 9)
    np.testing.assert_allclose(net.score_matrix(np.arange(5)), forward, rtol=1e-5, atol=1e-6)


def test_mf_is_the_plain_dot_product():
    net = GMF(3, 4, 6, output_weights=False)
    net.initialize(mx.init.Normal(1.0))
    expected = net.P.weight.data().asnumpy() @ net.Q.weight.data().asnumpy().T
    np.testing.assert_allclose(net.score_matrix(np.arange(4)), expected, rtol=1e-6)
    assert "prediction_layer.weight" not in net._collect_params_with_prefix()


def test_popularity_counts_training_interactions():
    net = Popularity(3, 5)
    net.initialize()
    net.fit_counts(np.array([4, 0, 4, 2, 4]))
    np.testing.assert_array_equal(net.score_matrix([0, 2]), [[1, 0, 1, 0, 3]] * 2)
    scores = net(mx.np.array([1, 2], dtype="int32"), mx.np.array([4, 1], dtype="int32"))
    np.testing.assert_array_equal(scores.asnumpy(), [[3], [0]])


def test_pretraining_loads_both_towers_and_weights_the_output_layer():
    gmf, mlp = GMF(4, 5, 9), MLP(3, 5, 9, [6, 2])
    net = NeuMF(4, 5, 9, [6, 2], mlp_factors=3)
    for block in (gmf, mlp, net):
        block.initialize(mx.init.Normal(1.0))
    net.load_towers(gmf, mlp, alpha=0.25)
    params = {name: p.data().asnumpy() for name, p in net._collect_params_with_prefix().items()}
    for tower in (gmf, mlp):
        for name, param in tower._collect_params_with_prefix().items():
            if name != "prediction_layer.weight":
                np.testing.assert_array_equal(params[name], param.data().asnumpy())
    np.testing.assert_allclose(params["prediction_layer.weight"], np.concatenate(
        [0.25 * gmf.prediction_layer.weight.data().asnumpy(),
         0.75 * mlp.prediction_layer.weight.data().asnumpy()], axis=1), rtol=1e-6)
    # the pretrained NeuMF's score is the alpha-weighted sum of the towers' scores
    np.testing.assert_allclose(
        net.score_matrix(np.arange(5)),
        0.25 * gmf.score_matrix(np.arange(5)) + 0.75 * mlp.score_matrix(np.arange(5)),
        rtol=1e-4, atol=1e-5)


def test_a_dot_product_gmf_tower_starts_neumf_with_h_ones():
    mf, mlp = GMF(4, 5, 9, output_weights=False), MLP(3, 5, 9, [6, 2])
    net = NeuMF(4, 5, 9, [6, 2], mlp_factors=3)
    for block in (mf, mlp, net):
        block.initialize(mx.init.Normal(1.0))
    net.load_towers(mf, mlp, alpha=0.7)
    np.testing.assert_allclose(net.prediction_layer.weight.data().asnumpy()[0, :4],
                               np.full(4, 0.7), rtol=1e-6)
    np.testing.assert_allclose(
        net.score_matrix(np.arange(5)),
        0.7 * mf.score_matrix(np.arange(5)) + 0.3 * mlp.score_matrix(np.arange(5)),
        rtol=1e-4, atol=1e-5)
    with pytest.raises(TypeError, match="a GMF and an MLP"):
        net.load_towers(mlp, mf)


def test_pretraining_refuses_mismatched_towers():
    gmf, mlp = GMF(4, 5, 9), MLP(3, 5, 9, [6, 2])
    net = NeuMF(4, 5, 9, [6, 2])  # MLP embeddings of 4, not 3
    for block in (gmf, mlp, net):
        block.initialize()
    with pytest.raises(ValueError, match="U.weight: pretrained shape"):
        net.load_towers(gmf, mlp)
    with pytest.raises(ValueError, match="alpha"):
        net.load_towers(gmf, mlp, alpha=1.5)


@pytest.mark.parametrize("make", [lambda b: GMF(3, 4, 6, output_weights=False, biases=b),
                                  lambda b: GMF(3, 4, 6, biases=b),
                                  lambda b: NeuMF(3, 4, 6, [5], biases=b)])
def test_biases_add_a_user_and_an_item_term_to_the_score(make):
    plain, biased = make(False), make(True)
    for block in (plain, biased):
        block.initialize(mx.init.Normal(1.0))
    own = biased._collect_params_with_prefix()
    assert own["user_bias.weight"].shape == (4, 1) and own["item_bias.weight"].shape == (6, 1)
    for name, param in plain._collect_params_with_prefix().items():
        own[name].set_data(param.data())
    user_bias = own["user_bias.weight"].data().asnumpy()[:, 0]
    item_bias = own["item_bias.weight"].data().asnumpy()[:, 0]
    users, items = _pairs(4, 6)
    expected = (plain(users, items).asnumpy().reshape(4, 6)
                + user_bias[:, None] + item_bias[None, :])
    np.testing.assert_allclose(biased(users, items).asnumpy().reshape(4, 6), expected,
                               rtol=1e-5, atol=1e-6)
    assert set(biased.tables()) == {"P.weight", "Q.weight", "user_bias.weight",
                                    "item_bias.weight"} | (
        {"U.weight", "V.weight"} if isinstance(biased, NeuMF) else set())
    assert biased.batch_network(7, 8).biases


def test_a_tower_with_biases_starts_neumf_with_alpha_times_them():
    mf, mlp = GMF(4, 5, 9, output_weights=False, biases=True), MLP(3, 5, 9, [6, 2])
    net = NeuMF(4, 5, 9, [6, 2], mlp_factors=3, biases=True)
    for block in (mf, mlp, net):
        block.initialize(mx.init.Normal(1.0))
    net.load_towers(mf, mlp, alpha=0.6)
    np.testing.assert_allclose(
        net.score_matrix(np.arange(5)),
        0.6 * mf.score_matrix(np.arange(5)) + 0.4 * mlp.score_matrix(np.arange(5)),
        rtol=1e-4, atol=1e-5)
    without = NeuMF(4, 5, 9, [6, 2], mlp_factors=3)
    without.initialize()
    with pytest.raises(ValueError, match="do not make up this NeuMF"):
        without.load_towers(mf, mlp)
