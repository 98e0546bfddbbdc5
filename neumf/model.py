"""The NeuMF block: GMF and MLP pathways joined by one bias-free dense layer."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from mxnet import use_np
from mxnet.gluon import nn

from .scoring import neumf_scores

__all__ = ["NeuMF"]

OUTPUT_ACTIVATIONS = (None, "sigmoid")


@use_np
class NeuMF(nn.HybridBlock):
    """Neural matrix factorization (He et al., 2017), as in the D2L NeuMF section.

    Parameters
    ----------
    num_factors
        Width of each embedding: P, Q (GMF) and U, V (MLP).
    num_users, num_items
        Embedding rows; ids are 0-based and must be below these.
    nums_hiddens
        Units of each ReLU layer of the MLP, e.g. ``[10, 10, 10]``.
    output_activation
        ``None`` (default) returns the raw score (a logit); ``"sigmoid"`` applies
        the tutorial's sigmoid. Rankings are identical, but BPR with weight decay
        on sigmoid outputs collapses (see the README), so train on logits.

    Inputs:
        - **user_id**: int array of shape (batch,)
        - **item_id**: int array of shape (batch,)

    Outputs:
        - **score**: shape (batch, 1)
    """

    def __init__(
        self,
        num_factors: int,
        num_users: int,
        num_items: int,
        nums_hiddens: Sequence[int],
        output_activation: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_factors", num_factors), ("num_users", num_users),
                            ("num_items", num_items)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        nums_hiddens = tuple(nums_hiddens)
        if not nums_hiddens or any(int(h) != h or h < 1 for h in nums_hiddens):
            raise ValueError(f"nums_hiddens must be a non-empty list of positive integers; "
                             f"got {list(nums_hiddens)!r}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}; "
                             f"got {output_activation!r}")
        self.num_factors, self.num_users, self.num_items = num_factors, num_users, num_items
        self.nums_hiddens = nums_hiddens
        self.output_activation = output_activation
        self.P = nn.Embedding(num_users, num_factors)
        self.Q = nn.Embedding(num_items, num_factors)
        self.U = nn.Embedding(num_users, num_factors)
        self.V = nn.Embedding(num_items, num_factors)
        self.mlp = nn.HybridSequential()
        # in_units given, so parameters exist right after initialize(): no deferred init
        in_units = 2 * num_factors
        for num_hiddens in nums_hiddens:
            self.mlp.add(nn.Dense(num_hiddens, activation="relu", use_bias=True,
                                  in_units=in_units))
            in_units = num_hiddens
        self.prediction_layer = nn.Dense(1, activation=output_activation, use_bias=False,
                                         in_units=num_factors + in_units)

    def hybrid_forward(self, F, user_id, item_id):
        gmf = self.P(user_id) * self.Q(item_id)  # (batch, num_factors)
        mlp = self.mlp(F.np.concatenate([self.U(user_id), self.V(item_id)], axis=1))
        return self.prediction_layer(F.np.concatenate([gmf, mlp], axis=1))  # (batch, 1)

    def score_matrix(self, user_ids: np.ndarray, max_pairs: int = 1 << 14) -> np.ndarray:
        """Scores of every item for each user, in NumPy, without a forward pass
        per pair (see :mod:`neumf.scoring`). Equals ``net(user, item)`` up to
        float32 rounding.

        Parameters
        ----------
        user_ids
            Shape (n,), 0-based.
        max_pairs
            (user, item) pairs per block of the per-pair MLP layers.

        Returns
        -------
        Shape (n, num_items), float32.
        """
        weights = {name: param.data().asnumpy()
                   for name, param in self._collect_params_with_prefix().items()}
        scores = neumf_scores(weights, np.asarray(user_ids, dtype=np.int64),
                              num_factors=self.num_factors, num_layers=len(self.nums_hiddens),
                              max_pairs=max_pairs)
        if self.output_activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
        return scores
