"""NeuMF scores of all items for many users, in NumPy, from the block's weights.

The NeuMF score separates: the GMF term ``(P_u * w_gmf) . Q_i`` is a matrix
product, and the first MLP layer ``W_u U_u + W_v V_i + b`` is a user half plus
an item half; only the later (small) MLP layers run per (user, item) pair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["ScorerSpec", "neumf_scores", "prune_mlp", "score_all"]

BLOCK_FLOATS = 1 << 21  # float32 activations per per-pair block: 8 MiB

Layers = List[Tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class ScorerSpec:
    """What :func:`score_all` needs to know of a model beyond its weights: the
    GMF width (0: none), the MLP's embedding width and depth (0: none), a
    sigmoid output, or the popularity baseline (scores are item counts), or
    EASE (scores are the users' histories times its item-item weights)."""

    gmf_factors: int = 0
    mlp_factors: int = 0
    num_layers: int = 0
    sigmoid: bool = False
    popularity: bool = False
    ease: bool = False

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def score_all(weights: Dict[str, np.ndarray], user_ids: np.ndarray, spec: ScorerSpec,
              max_pairs: int | None = None) -> np.ndarray:
    """Every item's score for each user from a model's weights (by structural
    name) alone: shape (n, num_items), float32. Pure NumPy, thread-safe."""
    user_ids = np.asarray(user_ids, dtype=np.int64)
    if spec.popularity:
        counts = np.asarray(weights["counts"], dtype=np.float32)
        return np.broadcast_to(counts, (len(user_ids), len(counts))).copy()
    if spec.ease:
        return np.asarray(weights["history"][user_ids] @ weights["weights"], dtype=np.float32)
    scores = neumf_scores(weights, user_ids, num_factors=spec.gmf_factors,
                          num_layers=spec.num_layers, mlp_factors=spec.mlp_factors,
                          max_pairs=max_pairs)
    return 1.0 / (1.0 + np.exp(-scores)) if spec.sigmoid else scores


def prune_mlp(user_half: np.ndarray, item_half: np.ndarray, layers: Layers,
              out_weight: np.ndarray) -> Tuple[np.ndarray, np.ndarray, Layers, np.ndarray, float]:
    """Drop the MLP units that are the same for every pair, exactly.

    A first-layer unit whose pre-activation ``user_half + item_half`` is never
    positive is 0; a later unit with no non-zero weight from a varying unit is
    the constant ``relu(bias)``, folded into the next layer's bias (or into the
    returned score offset after the last layer). Weight decay kills units this
    way: under the tutorial's settings the whole MLP ends up constant.

    Returns ``(user_half, item_half, layers, out_weight, offset)`` restricted
    to the varying units, and the constant the others add to every score.
    """
    varying = user_half.max(axis=0, initial=-np.inf) + item_half.max(axis=0) > 0
    constant = np.zeros(len(varying), dtype=np.float32)  # the value of non-varying units
    user_half, item_half = user_half[:, varying], item_half[:, varying]
    kept: Layers = []
    for weight, bias in layers:
        bias = bias + weight[:, ~varying] @ constant[~varying]
        weight = weight[:, varying]
        next_varying = np.any(weight != 0, axis=1)
        constant = np.where(next_varying, 0, np.maximum(bias, 0)).astype(np.float32)
        kept.append((weight[next_varying], bias[next_varying]))
        varying = next_varying
    offset = float(out_weight[~varying] @ constant[~varying])
    return user_half, item_half, kept, out_weight[varying], offset


def neumf_scores(weights: Dict[str, np.ndarray], user_ids: np.ndarray, *, num_factors: int,
                 num_layers: int, mlp_factors: int | None = None,
                 max_pairs: int | None = None) -> np.ndarray:
    """Scores (before any output activation) of every item for each user, for
    NeuMF and for either of its towers alone (GMF, MLP).

    Parameters
    ----------
    weights
        The block's parameters by structural name (``P.weight``, ``mlp.0.bias``,
        ...). A GMF tower (``P``, ``Q``) and an MLP tower (``U``, ``V``, ``mlp.*``)
        are each optional; ``prediction_layer.weight`` covers the towers present,
        GMF first, and is all ones when absent (plain dot-product MF);
        ``user_bias.weight`` and ``item_bias.weight`` are added where present.
    user_ids
        Shape (n,), 0-based.
    num_factors
        GMF embedding width (0 without a GMF tower).
    num_layers
        MLP layers (0 without an MLP tower).
    mlp_factors
        MLP embedding width; default ``num_factors``.
    max_pairs
        Pairs per block of the per-pair layers (a memory and cache bound);
        default: as many as fit 8 MiB of the widest layer's activations.

    Returns
    -------
    Shape (n, num_items), float32.
    """
    mlp_factors = num_factors if mlp_factors is None else mlp_factors
    embeddings = weights["Q.weight"] if num_factors else weights["V.weight"]
    num_items = embeddings.shape[0]
    prediction = weights.get("prediction_layer.weight")
    if prediction is None:
        prediction = np.ones((1, num_factors), dtype=np.float32)
    prediction = prediction[0]
    if num_factors:
        user_gmf = weights["P.weight"][user_ids] * prediction[:num_factors]
        scores = user_gmf @ weights["Q.weight"].T  # (n, items)
    else:
        scores = np.zeros((len(user_ids), num_items), dtype=np.float32)
    if "item_bias.weight" in weights:  # a model with biases (both tables)
        scores += weights["item_bias.weight"][:, 0] + weights["user_bias.weight"][user_ids]
    if not num_layers:
        return scores
    first = weights["mlp.0.weight"]  # (hidden, 2 * mlp_factors): [U | V] halves
    user_half = weights["U.weight"][user_ids] @ first[:, :mlp_factors].T + weights["mlp.0.bias"]
    item_half = weights["V.weight"] @ first[:, mlp_factors:].T  # (items, hidden)
    layers = [(weights[f"mlp.{i}.weight"], weights[f"mlp.{i}.bias"])
              for i in range(1, num_layers)]
    user_half, item_half, layers, out_weight, offset = prune_mlp(
        user_half, item_half, layers, prediction[num_factors:])
    scores += np.float32(offset)
    if out_weight.size == 0:
        return scores  # every MLP unit is constant: GMF alone ranks
    _add_pairwise_mlp(scores, user_half, item_half, layers, out_weight, max_pairs)
    return scores


def _add_pairwise_mlp(scores: np.ndarray, user_half: np.ndarray, item_half: np.ndarray,
                      layers: Layers, out_weight: np.ndarray, max_pairs: int | None) -> None:
    """Add the MLP tower's score of every (user, item) pair to ``scores`` (n,
    items): the first layer from its two halves, the later layers per pair, in
    blocks of users through two buffers reused in place (memory-bound work)."""
    num_items = item_half.shape[0]
    widths = [item_half.shape[1]] + [weight.shape[0] for weight, _ in layers]
    if max_pairs is None:  # larger blocks, fewer calls; within a cache-friendly size
        max_pairs = BLOCK_FLOATS // max(widths)
    users_per_block = max(1, max_pairs // num_items)
    buffers = [np.empty(users_per_block * num_items * max(widths), dtype=np.float32)
               for _ in range(2)]
    for start in range(0, len(user_half), users_per_block):
        rows = slice(start, start + users_per_block)
        block = user_half[rows]
        pairs = len(block) * num_items
        hidden = buffers[0][:pairs * widths[0]].reshape(len(block), num_items, widths[0])
        np.add(block[:, None, :], item_half[None, :, :], out=hidden)
        np.maximum(hidden, 0, out=hidden)
        hidden = hidden.reshape(pairs, widths[0])  # 2-D: one BLAS call per layer
        for index, (weight, bias) in enumerate(layers):
            out = buffers[(index + 1) % 2][:pairs * weight.shape[0]].reshape(pairs, -1)
            np.matmul(hidden, weight.T, out=out)
            out += bias
            hidden = np.maximum(out, 0, out=out)
        scores[rows] += (hidden @ out_weight).reshape(len(block), num_items)
