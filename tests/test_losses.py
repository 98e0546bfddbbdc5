import math

import mxnet as mx
import numpy as np
import pytest

from neumf import BPRLoss, HingeLossbRec


def _col(values):
    return mx.np.array(np.asarray(values, dtype=np.float32)[:, None])


def test_bpr_hand_values_and_shape():
    loss = BPRLoss()(_col([2.0, 0.0]), _col([1.0, 0.0]))
    assert loss.shape == (1, 1)  # the tutorial's sum over the batch
    expected = -math.log(1 / (1 + math.exp(-1.0))) + math.log(2.0)
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_bpr_is_finite_for_large_gaps():
    loss = BPRLoss()(_col([-100.0, 100.0]), _col([100.0, -100.0]))
    assert float(loss) == pytest.approx(200.0, rel=1e-6)  # softplus(200) + softplus(-200)


def test_bpr_weight_is_applied():
    loss = BPRLoss(weight=2.0)(_col([0.0]), _col([0.0]))
    assert float(loss) == pytest.approx(2 * math.log(2.0), rel=1e-6)


def test_hinge_hand_values_and_shape():
    loss = HingeLossbRec()(_col([2.0, 0.0, 0.5]), _col([0.0, 0.0, 0.0]))
    assert loss.shape == ()
    assert float(loss) == pytest.approx(0 + 1 + 0.5)
    assert float(HingeLossbRec(margin=3.0)(_col([2.0]), _col([0.0]))) == pytest.approx(1.0)


def test_losses_hybridize():
    for block in (BPRLoss(), HingeLossbRec()):
        expected = float(block(_col([0.3, -1.0]), _col([0.1, 2.0])))
        block.hybridize()
        assert float(block(_col([0.3, -1.0]), _col([0.1, 2.0]))) == pytest.approx(expected)


def test_pointwise_log_loss_hand_values():
    from neumf.losses import PointwiseLogLoss
    loss = PointwiseLogLoss(num_negatives=4)(_col([0.0, 2.0]), _col([0.0, -1.0]))
    assert loss.shape == (1, 1)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = (softplus(0) / 4 + softplus(0)) + (softplus(-2.0) / 4 + softplus(-1.0))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(float(PointwiseLogLoss()(_col([-300.0]), _col([300.0]))))
