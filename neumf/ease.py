"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW
2019): item-to-item weights in closed form, in NumPy.

With ``X`` the binary user x item training matrix, ``G = X'X + lambda I`` and
``P = G^-1``, the weights are ``B = I - P diag(1 / diag(P))`` with a zero
diagonal (no item recommends itself), and a user's scores are ``x_u B``.
One setting, ``lambda``; memory grows with the square of the catalogue.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._util import check_memory, check_number

__all__ = ["LAMBDA_PER_INTERACTION", "check_size", "default_lambda", "ease_weights",
           "lambda_grid"]

# The default lambda, per training interaction of an item on average: chosen on
# the validation splits of MovieLens-100K (best lambda 150, 2.5 per) and of the
# NCF authors' ML-1M file (best 800 to 1600, 3 to 6 per); QUALITY.md
LAMBDA_PER_INTERACTION = 3.0
# Users whose rows of X are summed into G at a time (a memory bound)
_USERS_PER_BLOCK = 4096


def default_lambda(num_interactions: int, num_items: int) -> float:
    """``LAMBDA_PER_INTERACTION`` times the training interactions per item."""
    return LAMBDA_PER_INTERACTION * max(1, num_interactions) / max(1, num_items)


def lambda_grid(center: float, steps: int = 4) -> Sequence[float]:
    """``center`` times powers of sqrt(2), ``steps`` each way: the values
    ``fit(model="ease", validation=True)`` tries."""
    return tuple(float(center * 2.0 ** (step / 2)) for step in range(-steps, steps + 1))


def check_size(num_users: int, num_items: int) -> None:
    """Refuse, before allocating, a catalogue whose EASE does not fit in memory:
    the float64 Gram matrix and its inverse, the float32 weights, and the
    users' float32 histories the model keeps for scoring."""
    check_memory(8 * 2 * num_items ** 2 + 4 * num_items ** 2 + 4 * num_users * num_items,
                 f"EASE over {num_items} items and {num_users} users (it holds items x items "
                 "weights and every user's history; choose another model for this catalogue)")


def ease_weights(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int,
                 lam: float) -> np.ndarray:
    """The EASE weights ``B`` of the training pairs ``(users, items)`` (0-based,
    shape (n,); a pair given twice counts once).

    Returns
    -------
    Shape (num_items, num_items), float32: ``B[j, i]``, what having item ``j``
    adds to item ``i``'s score; the diagonal is 0.
    """
    lam = check_number("ease_lambda", lam, positive=True)
    check_size(num_users, num_items)
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    gram = np.zeros((num_items, num_items), dtype=np.float64)
    order = np.argsort(users, kind="stable")
    bounds = np.searchsorted(users[order], np.arange(0, num_users + _USERS_PER_BLOCK,
                                                     _USERS_PER_BLOCK))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = order[start:stop]
        if not len(rows):
            continue
        local = users[rows] - users[rows].min()
        block = np.zeros((int(local.max()) + 1, num_items), dtype=np.float64)
        block[local, items[rows]] = 1.0
        gram += block.T @ block
    gram[np.diag_indices(num_items)] += lam
    with np.errstate(all="ignore"):  # an extreme lambda is named below, not warned about
        try:
            inverse = np.linalg.inv(gram)
        except np.linalg.LinAlgError:
            inverse = np.full_like(gram, np.nan)
        del gram
        weights = (inverse / -np.diag(inverse)).astype(np.float32)
    np.fill_diagonal(weights, 0.0)
    if not np.all(np.isfinite(weights)):
        raise ValueError(f"ease_lambda={lam:g} is too extreme to invert X'X + lambda I in "
                         f"float64 for these {num_items} items: choose a value nearer "
                         f"{default_lambda(len(users), num_items):g}, the default for "
                         "this data")
    return weights
