"""Synthetic implicit feedback at any size, shaped like MovieLens: long-tailed
item popularity and user activity, and taste groups a model can learn."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._util import check_int, check_memory, check_positive_int

__all__ = ["synthetic"]

# 2014-01-01 .. 2015-01-01, Unix seconds: inside the readers' timestamp range.
_START, _SPAN = 1_388_534_400, 31_536_000
_ROUNDS = 10


def synthetic(
    num_users: int = 943,
    num_items: int = 1682,
    num_interactions: int = 100_000,
    *,
    seed: int | None = 0,
    item_exponent: float = 0.8,
    user_sigma: float = 1.0,
    min_per_user: int = 5,
    num_groups: int = 20,
    affinity: float = 0.7,
) -> pd.DataFrame:
    """Interactions with realistic skew and learnable structure, without downloads.

    Item popularity follows Zipf's law (``rank ** -item_exponent``); user
    activity is log-normal (``user_sigma``) on top of ``min_per_user`` each.
    Users and items belong to one of ``num_groups`` taste groups; a draw
    comes from the user's group (popularity-weighted within it) with
    probability ``affinity``, else from the whole catalogue. Each user's items
    are distinct (repeats are redrawn; after 10 rounds the last few are drawn
    uniformly from the items a user lacks), so there are ``num_interactions``
    rows unless some user would need more items than the catalogue has.

    Parameters
    ----------
    num_users, num_items, num_interactions
        Sizes; ML-20M is about 138,000 x 27,000 with 20,000,000 interactions.
    seed
        Seed of the generator.

    Returns
    -------
    A DataFrame with int32 columns ``user``, ``item`` (0-based), ``rating``
    (1-5) and ``timestamp`` (Unix seconds), in time order within each user;
    :func:`neumf.fit` and :func:`neumf.from_frame` take it as it is.
    """
    _check_sizes(num_users, num_items, num_interactions, min_per_user, num_groups, affinity)
    rng = np.random.default_rng(seed)
    counts = _activity(rng, num_users, num_items, num_interactions, min_per_user, user_sigma)
    tastes = _Tastes(rng, num_users, num_items, num_groups, item_exponent, affinity)
    users, items = _distinct_items(rng, counts, tastes, num_items)
    stamps = rng.integers(_START, _START + _SPAN, len(users))
    order = np.lexsort((stamps, users))  # users in id order, each in time order
    return pd.DataFrame({
        "user": users[order].astype(np.int32), "item": items[order].astype(np.int32),
        "rating": rng.integers(1, 6, len(users)).astype(np.int32),
        "timestamp": stamps[order].astype(np.int32)})


def _check_sizes(num_users: int, num_items: int, num_interactions: int, min_per_user: int,
                 num_groups: int, affinity: float) -> None:
    for name, value in (("num_users", num_users), ("num_items", num_items),
                        ("num_interactions", num_interactions), ("num_groups", num_groups)):
        check_positive_int(name, value)
    check_int("min_per_user", min_per_user, 0)
    if min_per_user * num_users > num_interactions:
        raise ValueError(f"num_interactions={num_interactions} is fewer than min_per_user="
                         f"{min_per_user} for each of {num_users} users")
    if min_per_user > num_items:
        raise ValueError(f"min_per_user={min_per_user} exceeds the {num_items} items")
    if not 0.0 <= affinity <= 1.0:
        raise ValueError(f"affinity must be in [0, 1]; got {affinity!r}")
    # int64 draws, their sort and the frame: about 80 bytes per interaction
    check_memory(80.0 * min(num_interactions, num_users * num_items)
                 + 32.0 * (num_users + num_items + num_groups),
                 f"synthetic data of {num_interactions} interactions")


def _activity(rng, num_users: int, num_items: int, num_interactions: int,
              min_per_user: int, user_sigma: float) -> np.ndarray:
    """Interactions per user: ``min_per_user`` each, the rest in proportion to a
    log-normal activity, none over the catalogue's size."""
    activity = rng.lognormal(0.0, user_sigma, num_users)
    counts = min_per_user + rng.multinomial(num_interactions - min_per_user * num_users,
                                            activity / activity.sum())
    for _ in range(_ROUNDS):  # users over the catalogue size pass their excess on
        excess = int(np.maximum(counts - num_items, 0).sum())
        room = counts < num_items
        if not excess or not room.any():
            break
        counts = np.minimum(counts, num_items)
        weights = np.where(room, activity, 0.0)
        counts += rng.multinomial(excess, weights / weights.sum())
    return np.minimum(counts, num_items)


class _Tastes:
    """Zipf item popularity and taste groups: :meth:`draw` picks one item per
    user, from the user's group with probability ``affinity``."""

    def __init__(self, rng, num_users: int, num_items: int, num_groups: int,
                 item_exponent: float, affinity: float):
        self.rng, self.num_items, self.affinity = rng, num_items, affinity
        popularity = (1.0 + np.arange(num_items)) ** -float(item_exponent)
        popularity = popularity[rng.permutation(num_items)]  # popular ids spread out
        item_group = rng.integers(0, num_groups, num_items)
        self.user_group = rng.integers(0, num_groups, num_users)
        # one cumulative table, group g's items covering [g, g + 1): a draw within
        # group g is a search for g + uniform
        self.by_group = np.lexsort((np.arange(num_items), item_group))
        weights = popularity[self.by_group]
        group_of = item_group[self.by_group]
        self.totals = np.bincount(group_of, weights=weights, minlength=num_groups)
        self.cumulative = group_of + (np.cumsum(weights) - np.repeat(
            np.cumsum(self.totals) - self.totals, np.bincount(group_of, minlength=num_groups))) \
            / np.maximum(self.totals[group_of], 1e-300)
        self.overall = np.cumsum(popularity) / popularity.sum()

    def draw(self, who: np.ndarray) -> np.ndarray:
        """One item per entry of ``who`` (user ids), from the mixture."""
        rng = self.rng
        items = np.searchsorted(self.overall, rng.random(len(who)))
        in_group = rng.random(len(who)) < self.affinity
        groups = self.user_group[who[in_group]]
        local = np.searchsorted(self.cumulative, groups + rng.random(len(groups)) * (1 - 1e-12))
        items[in_group] = np.where(self.totals[groups] > 0, self.by_group[
            np.minimum(local, self.num_items - 1)], items[in_group])
        return np.minimum(items, self.num_items - 1)


def _distinct_items(rng, counts: np.ndarray, tastes: _Tastes, num_items: int):
    """``counts[u]`` distinct items for each user: draw, drop repeated pairs,
    draw again for the users left short (a heavy user's distinct items come
    from ever deeper in the tail); after a few rounds, the last few uniformly
    among each short user's unseen items."""
    num_users = len(counts)
    users = np.repeat(np.arange(num_users, dtype=np.int64), counts)
    items = tastes.draw(users)
    for _ in range(_ROUNDS):
        keep = np.sort(np.unique(users * num_items + items, return_index=True)[1])
        users, items = users[keep], items[keep]
        short = counts - np.bincount(users, minlength=num_users)
        if not short.any():
            return users, items
        extra = np.repeat(np.arange(num_users, dtype=np.int64), short)
        users, items = np.concatenate([users, extra]), np.concatenate([items, tastes.draw(extra)])
    keep = np.sort(np.unique(users * num_items + items, return_index=True)[1])
    users, items = users[keep], items[keep]
    short = counts - np.bincount(users, minlength=num_users)
    extra_users, extra_items = _fill(users, items, short, num_items, rng)
    return np.concatenate([users, extra_users]), np.concatenate([items, extra_items])


def _fill(users: np.ndarray, items: np.ndarray, short: np.ndarray, num_items: int,
          rng: np.random.Generator) -> tuple:
    """``short[u]`` more items for each user ``u``, uniform among those it lacks:
    random keys per (user, item), seen items last, the smallest taken."""
    wanting = np.flatnonzero(short > 0)
    out_users, out_items = [], []
    per_block = max(1, (1 << 24) // num_items)  # bounded memory: 16M keys a block
    for start in range(0, len(wanting), per_block):
        block = wanting[start:start + per_block]
        keys = rng.random((len(block), num_items))
        row = np.full(short.shape[0], -1)
        row[block] = np.arange(len(block))
        mine = row[users] >= 0
        keys[row[users[mine]], items[mine]] = np.inf
        order = np.argsort(keys, axis=1)
        take = np.arange(num_items)[None, :] < short[block][:, None]
        out_users.append(np.repeat(block, short[block]))
        out_items.append(order[take])
    if not out_users:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out_users), np.concatenate(out_items)
