"""NeuMF and its two towers as blocks: GMF (matrix factorization with learned
output weights, or a plain dot product) and MLP, joined by one bias-free dense layer."""

from __future__ import annotations

from typing import Sequence, Union

import mxnet as mx
import numpy as np
from mxnet import gluon, use_np
from mxnet.gluon import nn

from ._gluon import get_weights, parameters
from ._util import check_memory
from .config import FitConfig, ModelSpec
from .ease import check_size as check_ease_size
from .ease import ease_weights
from .scoring import ScorerSpec, score_all

__all__ = ["EASE", "GMF", "MLP", "NeuMF", "Popularity", "build_model", "initialize"]

OUTPUT_ACTIVATIONS = (None, "sigmoid")


def _check_sizes(output_activation, **sizes) -> None:
    for name, value in sizes.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if output_activation not in OUTPUT_ACTIVATIONS:
        raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}; "
                         f"got {output_activation!r}")


def _check_hiddens(nums_hiddens: Sequence[int]) -> tuple:
    nums_hiddens = tuple(nums_hiddens)
    if not nums_hiddens or any(int(h) != h or h < 1 for h in nums_hiddens):
        raise ValueError(f"nums_hiddens must be a non-empty list of positive integers; "
                         f"got {list(nums_hiddens)!r}")
    return nums_hiddens


def _concat_columns(F, *arrays):
    """``np.concatenate(arrays, axis=1)`` by MXNet's classic Concat operator:
    1.9.1's NumPy-mode kernel for axis 1 is about 20 times slower (7.6 ms
    against 0.39 ms for two (5120, 64) float32 arrays) and was the costliest
    operator of a NeuMF training step (benchmarks/QUALITY.md). Same values and gradients, imperative
    and hybridized."""
    return F.concat(*[array.as_nd_ndarray() for array in arrays], dim=1).as_np_ndarray()


def _tower(num_factors: int, nums_hiddens: Sequence[int]) -> nn.HybridSequential:
    """ReLU layers over the concatenated user and item embeddings. ``in_units``
    is given, so parameters exist right after initialize(): no deferred init."""
    mlp = nn.HybridSequential()
    in_units = 2 * num_factors
    for num_hiddens in nums_hiddens:
        mlp.add(nn.Dense(num_hiddens, activation="relu", use_bias=True, in_units=in_units))
        in_units = num_hiddens
    return mlp


class _Ranker(nn.HybridBlock):
    """What the three models share: sizes, and all-item scoring without a
    forward pass per pair (see :mod:`neumf.scoring`)."""

    gmf_factors = 0          # width of the GMF tower (0: none)
    mlp_factors = 0          # width of the MLP embeddings (0: no MLP tower)
    nums_hiddens: tuple = ()
    output_activation = None
    # embeddings indexed by user ids and by item ids; every other child is dense
    biases = False           # a learned bias per user and per item added to the score
    USER_TABLES = ("P", "U", "user_bias")
    ITEM_TABLES = ("Q", "V", "item_bias")
    _sizes: dict = {}       # constructor arguments beyond the table sizes
    # True where one pair's score costs about a whole row of scores (evaluate
    # the sampled protocol by rows then, see neumf.evaluation.evaluate_model)
    score_by_rows = False

    def _add_biases(self, biases: bool, num_users: int, num_items: int) -> None:
        self.biases = bool(biases)
        if self.biases:
            self.user_bias = nn.Embedding(num_users, 1)
            self.item_bias = nn.Embedding(num_items, 1)

    def _output_layer(self, in_units: int) -> nn.Dense:
        # with biases the activation comes after them, in _finish
        return nn.Dense(1, activation=None if self.biases else self.output_activation,
                        use_bias=False, in_units=in_units)

    def _finish(self, F, score, user_id, item_id, activated: bool):
        """``score`` (batch, 1) plus the biases, then the output activation
        unless the output layer ``activated`` it already."""
        if self.biases:
            score = score + self.user_bias(user_id) + self.item_bias(item_id)
        if self.output_activation == "sigmoid" and not activated:
            score = F.npx.sigmoid(score)
        return score

    def tables(self) -> dict:
        """``{structural parameter name: 'user' or 'item'}`` of the embeddings."""
        return {f"{name}.weight": kind
                for kind, names in (("user", self.USER_TABLES), ("item", self.ITEM_TABLES))
                for name in names if hasattr(self, name)}

    def batch_network(self, num_users: int, num_items: int) -> _Ranker:
        """A block of the same kind that shares this one's dense layers, with
        embedding tables of ``num_users`` and ``num_items`` rows: the batch
        network of row-sparse training (see :mod:`neumf.sparse`)."""
        other = type(self)(num_users=num_users, num_items=num_items, **self._sizes)
        for name in ("mlp", "prediction_layer"):
            if hasattr(self, name):
                setattr(other, name, getattr(self, name))
        return other

    def score_matrix(self, user_ids: np.ndarray, max_pairs: int | None = None) -> np.ndarray:
        """Scores of every item for each user, in NumPy, without a forward pass
        per pair. Equals ``net(user, item)`` up to float32 rounding.

        Parameters
        ----------
        user_ids
            Shape (n,), 0-based.
        max_pairs
            (user, item) pairs per block of the per-pair MLP layers (default:
            8 MiB of activations, see :func:`neumf.scoring.neumf_scores`).

        Returns
        -------
        Shape (n, num_items), float32.
        """
        return score_all(get_weights(self), user_ids, self.scorer_spec(), max_pairs)

    def scorer_spec(self) -> ScorerSpec:
        """What :func:`neumf.scoring.score_all` needs beside the weights."""
        return ScorerSpec(self.gmf_factors, self.mlp_factors, len(self.nums_hiddens),
                          self.output_activation == "sigmoid")


@use_np
class GMF(_Ranker):
    """Generalized matrix factorization, NeuMF's linear tower on its own:
    ``h . (P_u * Q_i)`` with ``h`` learned, or the plain dot product
    ``P_u . Q_i`` (matrix factorization) with ``output_weights=False``.

    Parameters
    ----------
    num_factors
        Embedding width of P and Q.
    num_users, num_items
        Embedding rows; ids are 0-based and must be below these.
    output_weights
        Learn the output layer ``h`` (the paper's GMF) or fix it to ones (MF).
    output_activation
        ``None`` (a logit) or ``"sigmoid"``.
    biases
        Add a learned bias per user and per item to the score (Rendle et al.,
        2020's matrix factorization): tables ``user_bias`` and ``item_bias``.
        A user's bias never changes their ranking; it helps a pointwise loss
        (log) fit, and pairwise losses (BPR, hinge) cancel it.

    Inputs: **user_id**, **item_id**, int arrays of shape (batch,).
    Output: **score**, shape (batch, 1).
    """

    def __init__(self, num_factors: int, num_users: int, num_items: int,
                 output_weights: bool = True, output_activation: str | None = None,
                 biases: bool = False, **kwargs):
        super().__init__(**kwargs)
        _check_sizes(output_activation, num_factors=num_factors, num_users=num_users,
                     num_items=num_items)
        self.num_factors, self.num_users, self.num_items = num_factors, num_users, num_items
        self.gmf_factors, self.output_activation = num_factors, output_activation
        self.output_weights = bool(output_weights)
        self._sizes = {"num_factors": num_factors, "output_weights": self.output_weights,
                       "output_activation": output_activation, "biases": bool(biases)}
        self.P = nn.Embedding(num_users, num_factors)
        self.Q = nn.Embedding(num_items, num_factors)
        self._add_biases(biases, num_users, num_items)
        if self.output_weights:
            self.prediction_layer = self._output_layer(num_factors)

    def hybrid_forward(self, F, user_id, item_id):
        gmf = self.P(user_id) * self.Q(item_id)  # (batch, num_factors)
        if self.output_weights:
            return self._finish(F, self.prediction_layer(gmf), user_id, item_id,
                                activated=not self.biases)
        # a product with ones: MXNet 1.9.1's row sum of a (batch, 64) array is about
        # 12 times slower (0.69 ms against 0.055 ms for 2048 rows)
        ones = F.np.ones((self.num_factors, 1), dtype="float32")
        return self._finish(F, F.np.dot(gmf, ones), user_id, item_id, activated=False)


@use_np
class MLP(_Ranker):
    """NeuMF's MLP tower on its own: ReLU layers over ``[U_u, V_i]`` and a
    bias-free output unit.

    Parameters
    ----------
    num_factors
        Embedding width of U and V (the first layer sees twice this).
    num_users, num_items
        Embedding rows; ids are 0-based and must be below these.
    nums_hiddens
        Units of each ReLU layer, e.g. ``[128, 64]``.
    output_activation
        ``None`` (a logit) or ``"sigmoid"``.

    Inputs: **user_id**, **item_id**, int arrays of shape (batch,).
    Output: **score**, shape (batch, 1).
    """

    def __init__(self, num_factors: int, num_users: int, num_items: int,
                 nums_hiddens: Sequence[int], output_activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        _check_sizes(output_activation, num_factors=num_factors, num_users=num_users,
                     num_items=num_items)
        self.num_factors, self.num_users, self.num_items = num_factors, num_users, num_items
        self.mlp_factors, self.nums_hiddens = num_factors, _check_hiddens(nums_hiddens)
        self.output_activation = output_activation
        self._sizes = {"num_factors": num_factors, "nums_hiddens": self.nums_hiddens,
                       "output_activation": output_activation}
        self.U = nn.Embedding(num_users, num_factors)
        self.V = nn.Embedding(num_items, num_factors)
        self.mlp = _tower(num_factors, self.nums_hiddens)
        self.prediction_layer = nn.Dense(1, activation=output_activation, use_bias=False,
                                         in_units=self.nums_hiddens[-1])

    def hybrid_forward(self, F, user_id, item_id):
        return self.prediction_layer(
            self.mlp(_concat_columns(F, self.U(user_id), self.V(item_id))))


@use_np
class NeuMF(_Ranker):
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
    mlp_factors
        Width of U and V when it should differ from P and Q's (the NCF paper
        sizes the MLP embeddings by its tower); default ``num_factors``.
    biases
        Add a learned bias per user and per item to the score (see :class:`GMF`).

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
        *,
        mlp_factors: int | None = None,
        biases: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        mlp_factors = num_factors if mlp_factors is None else mlp_factors
        _check_sizes(output_activation, num_factors=num_factors, num_users=num_users,
                     num_items=num_items, mlp_factors=mlp_factors)
        self.num_factors, self.num_users, self.num_items = num_factors, num_users, num_items
        self.gmf_factors, self.mlp_factors = num_factors, mlp_factors
        self.nums_hiddens = _check_hiddens(nums_hiddens)
        self.output_activation = output_activation
        self._sizes = {"num_factors": num_factors, "nums_hiddens": self.nums_hiddens,
                       "output_activation": output_activation, "mlp_factors": mlp_factors,
                       "biases": bool(biases)}
        self.P = nn.Embedding(num_users, num_factors)
        self.Q = nn.Embedding(num_items, num_factors)
        self.U = nn.Embedding(num_users, mlp_factors)
        self.V = nn.Embedding(num_items, mlp_factors)
        self.mlp = _tower(mlp_factors, self.nums_hiddens)
        self._add_biases(biases, num_users, num_items)
        self.prediction_layer = self._output_layer(num_factors + self.nums_hiddens[-1])

    def hybrid_forward(self, F, user_id, item_id):
        gmf = self.P(user_id) * self.Q(item_id)  # (batch, num_factors)
        mlp = self.mlp(_concat_columns(F, self.U(user_id), self.V(item_id)))
        score = self.prediction_layer(_concat_columns(F, gmf, mlp))  # (batch, 1)
        return self._finish(F, score, user_id, item_id, activated=not self.biases)

    def load_towers(self, gmf: GMF, mlp: MLP, alpha: float = 0.5) -> None:
        """Initialise from pretrained towers (the NCF paper's pretraining): P, Q
        from ``gmf``; U, V and the ReLU layers from ``mlp``; the output layer
        becomes ``[alpha * h_gmf, (1 - alpha) * h_mlp]``, ``h_gmf`` ones where
        ``gmf`` is a plain dot product (``output_weights=False``), and the biases
        ``alpha`` times ``gmf``'s: the score is then ``alpha * gmf + (1 - alpha) * mlp``
        (before any output activation). Sizes and biases must match."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {alpha!r}")
        if not isinstance(gmf, GMF) or not isinstance(mlp, MLP):
            raise TypeError(f"load_towers takes a GMF and an MLP; got {type(gmf).__name__} "
                            f"and {type(mlp).__name__}")
        values = {}
        for tower in (gmf, mlp):
            values.update({name: value for name, value in get_weights(tower).items()
                           if name != "prediction_layer.weight"})
        for name in ("user_bias.weight", "item_bias.weight"):
            if name in values:
                values[name] = alpha * values[name]
        h_gmf = gmf.prediction_layer.weight.data().asnumpy() if gmf.output_weights \
            else np.ones((1, gmf.num_factors), dtype=np.float32)
        values["prediction_layer.weight"] = np.concatenate(
            [alpha * h_gmf, (1.0 - alpha) * mlp.prediction_layer.weight.data().asnumpy()],
            axis=1)
        own = parameters(self)
        if set(values) != set(own):
            raise ValueError(f"the towers' parameters {sorted(values)} do not make up this "
                             f"NeuMF's {sorted(own)}")
        for name, value in values.items():
            if value.shape != own[name].shape:
                raise ValueError(f"{name}: pretrained shape {value.shape} does not match "
                                 f"this NeuMF's {own[name].shape}")
        for name, value in values.items():
            own[name].set_data(value.astype(np.float32))


@use_np
class Popularity(_Ranker):
    """The item-popularity baseline: every user gets the same ranking, by the
    number of training interactions of each item (set by :meth:`fit_counts`).

    Inputs: **user_id**, **item_id**, int arrays of shape (batch,).
    Output: **score**, shape (batch, 1): the item's training count.
    """

    def __init__(self, num_users: int, num_items: int, **kwargs):
        super().__init__(**kwargs)
        _check_sizes(None, num_users=num_users, num_items=num_items)
        self.num_users, self.num_items = num_users, num_items
        self.counts = self.params.get("counts", shape=(num_items,), init="zeros",
                                      grad_req="null")

    def fit_counts(self, items: np.ndarray) -> None:
        """Count the training interactions of each item (0-based ids)."""
        counts = np.bincount(np.asarray(items, dtype=np.int64), minlength=self.num_items)
        self.counts.set_data(counts[:self.num_items].astype(np.float32))

    def hybrid_forward(self, F, user_id, item_id, counts):
        # user_id joins the graph (times 0) so both inputs stay used
        return F.np.expand_dims(F.np.take(counts, item_id) + 0 * user_id, 1)

    def score_matrix(self, user_ids: np.ndarray, max_pairs: int | None = None) -> np.ndarray:
        """The counts, repeated for each of ``user_ids``: shape (n, num_items)."""
        return score_all(get_weights(self), np.atleast_1d(user_ids), self.scorer_spec())

    def scorer_spec(self) -> ScorerSpec:
        return ScorerSpec(popularity=True)


@use_np
class EASE(_Ranker):
    """EASE (Steck, 2019): a user's score for an item sums, over the items the
    user trained on, their learned weight towards it (see :mod:`neumf.ease`).
    Parameters: ``weights`` (items x items, the closed form's ``B``, set by
    :meth:`fit_weights`) and ``history`` (users x items, 1 where the user
    trained on the item), neither trained by gradients.

    Inputs: **user_id**, **item_id**, int arrays of shape (batch,).
    Output: **score**, shape (batch, 1).
    """

    # a pair gathers a user's history row and an item's weight column (num_items
    # each): an ML-1M fit under the sampled protocol took 100 s scoring pairs,
    # 6.7 s scoring users' rows as one matrix product
    score_by_rows = True

    def __init__(self, num_users: int, num_items: int, **kwargs):
        super().__init__(**kwargs)
        _check_sizes(None, num_users=num_users, num_items=num_items)
        self.num_users, self.num_items = num_users, num_items
        self.weights = self.params.get("weights", shape=(num_items, num_items), init="zeros",
                                       grad_req="null")
        self.history = self.params.get("history", shape=(num_users, num_items), init="zeros",
                                       grad_req="null")

    def fit_weights(self, users: np.ndarray, items: np.ndarray, lam: float) -> None:
        """The closed form on the training pairs ``(users, items)`` (0-based), with
        L2 weight ``lam``; the pairs become the users' histories."""
        weights = ease_weights(users, items, self.num_users, self.num_items, lam)
        history = np.zeros((self.num_users, self.num_items), dtype=np.float32)
        history[np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)] = 1.0
        self.weights.set_data(weights)
        self.history.set_data(history)

    def hybrid_forward(self, F, user_id, item_id, weights, history):
        row = F.np.take(history, user_id, axis=0)  # (batch, num_items)
        column = F.np.transpose(F.np.take(weights, item_id, axis=1))
        return F.np.sum(row * column, axis=1, keepdims=True)

    def score_matrix(self, user_ids: np.ndarray, max_pairs: int | None = None) -> np.ndarray:
        """Every item's score for each of ``user_ids``: shape (n, num_items), float32."""
        return score_all(get_weights(self), np.atleast_1d(user_ids), self.scorer_spec())

    def scorer_spec(self) -> ScorerSpec:
        return ScorerSpec(ease=True)


def build_model(config: Union[FitConfig, ModelSpec], num_users: int,
                num_items: int) -> gluon.HybridBlock:
    """The (uninitialised) block that ``config.model`` names, sized for the data.
    A MemoryError says so, before anything is allocated, when its weights (with
    their gradients and optimizer state) cannot fit in memory."""
    spec = config.model_spec if isinstance(config, FitConfig) else config
    if spec.model == "ease":
        check_ease_size(num_users, num_items)
        return EASE(num_users, num_items)
    # weights, gradients and two optimizer state arrays, float32 each
    check_memory(16 * spec.num_weights(num_users, num_items),
                 f"a {spec.model} model of {spec.num_factors} factors for {num_users} users "
                 f"and {num_items} items (num_factors={spec.num_factors}, "
                 f"nums_hiddens={list(spec.nums_hiddens)})")
    activation = "sigmoid" if spec.tutorial_exact else None
    if spec.model == "neumf":
        return NeuMF(spec.num_factors, num_users, num_items, spec.nums_hiddens,
                     output_activation=activation, mlp_factors=spec.mlp_factors,
                     biases=spec.biases)
    if spec.model in ("gmf", "mf"):
        return GMF(spec.num_factors, num_users, num_items, output_weights=spec.model == "gmf",
                   biases=spec.biases)
    if spec.model == "mlp":
        return MLP(spec.mlp_width, num_users, num_items, spec.nums_hiddens)
    return Popularity(num_users, num_items)


def initialize(net: gluon.Block, spec: ModelSpec, devices) -> None:
    """Every weight from Normal(0, ``init_sigma``), as the tutorial; with
    ``dense_init='xavier'`` the dense layers from Xavier instead (the NCF
    authors' code; a deep MLP tower otherwise sits on a plateau)."""
    # in NumPy-array mode, the blocks' own: parameters are mx.np arrays from the start
    with mx.util.np_shape(True), mx.util.np_array(True):
        net.initialize(mx.init.Normal(spec.init_sigma), ctx=list(devices))
        if spec.dense_init == "xavier":
            for name, param in parameters(net).items():
                if name.endswith("weight") and name.startswith(("mlp.", "prediction_layer.")):
                    param.initialize(mx.init.Xavier(), ctx=list(devices), force_reinit=True)
