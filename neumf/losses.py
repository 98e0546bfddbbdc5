"""Pairwise ranking losses with the D2L tutorial's semantics, in a stable form."""

from __future__ import annotations

from mxnet import use_np
from mxnet.gluon import loss as gloss

__all__ = ["BPRLoss", "HingeLossbRec", "PointwiseLogLoss"]


@use_np
class BPRLoss(gloss.Loss):
    """Bayesian personalized ranking loss, ``-sum(log(sigmoid(pos - neg)))``.

    Computed as ``softplus(neg - pos)``, which stays finite where the tutorial's
    ``log(sigmoid(d))`` becomes ``-inf`` (``d < -88`` in float32).

    Inputs:
        - **positive**: scores of the positive items, shape (batch, 1)
        - **negative**: scores of the negative items, shape (batch, 1)

    Outputs:
        - **loss**: the sum over the batch, shape (1, 1) for (batch, 1)
          inputs, as the tutorial's (Gluon's own losses return one value per
          example instead).
    """

    def __init__(self, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F, positive, negative):
        loss = F.npx.activation(negative - positive, act_type="softrelu")
        if self._weight is not None:
            loss = loss * self._weight
        return F.np.sum(loss, axis=0, keepdims=True)


@use_np
class HingeLossbRec(gloss.Loss):
    """Pairwise hinge loss, ``sum(max(margin - (pos - neg), 0))``.

    Inputs:
        - **positive**, **negative**: scores, shape (batch, 1)

    Outputs:
        - **loss**: the sum over the batch, a scalar of shape (), as the tutorial's.
    """

    def __init__(self, weight=None, batch_axis=0, margin: float = 1.0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = float(margin)

    def hybrid_forward(self, F, positive, negative):
        loss = F.np.maximum(self._margin - (positive - negative), 0)
        if self._weight is not None:
            loss = loss * self._weight
        return F.np.sum(loss)


@use_np
class PointwiseLogLoss(gloss.Loss):
    """The NCF paper's log loss on logits: ``softplus(-pos) / k + softplus(neg)``
    per triplet, so that a positive seen in ``k`` triplets (``k`` negatives, see
    ``TripletLoader(num_negatives=k)``) counts once and each negative once.

    Inputs:
        - **positive**, **negative**: scores (logits), shape (batch, 1)

    Outputs:
        - **loss**: the sum over the batch, shape (1, 1).
    """

    def __init__(self, num_negatives: int = 1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._positive_weight = 1.0 / float(num_negatives)

    def hybrid_forward(self, F, positive, negative):
        loss = (F.npx.activation(-positive, act_type="softrelu") * self._positive_weight
                + F.npx.activation(negative, act_type="softrelu"))
        if self._weight is not None:
            loss = loss * self._weight
        return F.np.sum(loss, axis=0, keepdims=True)
