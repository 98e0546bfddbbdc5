import mxnet as mx
import numpy as np
import pytest

from neumf import NeuMF


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
