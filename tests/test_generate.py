"""Synthetic implicit feedback: skewed, structured, distinct pairs, seeded, learnable."""

import pandas as pd
import pytest

from conftest import FEW_CANDIDATES, SEEN_EVERY_ITEM
from neumf import fit
from neumf.generate import synthetic


def test_synthetic_has_skew_structure_and_distinct_pairs():
    data = synthetic(500, 400, 20_000, seed=1)
    assert len(data) == 20_000 and list(data.columns) == ["user", "item", "rating",
                                                          "timestamp"]
    assert not data.duplicated(["user", "item"]).any()
    assert data.user.min() == 0 and data.user.max() < 500 and data.item.max() < 400
    per_user = data.user.value_counts()
    assert per_user.min() >= 5 and per_user.max() > 5 * per_user.median()  # heavy users
    per_item = data.item.value_counts().to_numpy()
    assert per_item[:40].sum() > 0.25 * len(data)  # the top 10% of items: a long tail
    stamps = data.groupby("user").timestamp.apply(lambda s: s.is_monotonic_increasing)
    assert stamps.all()
    pd.testing.assert_frame_equal(data, synthetic(500, 400, 20_000, seed=1))
    assert not data.equals(synthetic(500, 400, 20_000, seed=2))


@pytest.mark.parametrize("args, message", [
    ({"num_users": 0}, "num_users"), ({"num_interactions": 10}, "fewer than min_per_user"),
    ({"affinity": 2.0}, "affinity"),
    ({"num_users": 10**6, "num_items": 10**6, "num_interactions": 10**12},
     "synthetic data of 1000000000000 interactions would need")])
def test_synthetic_refuses_bad_arguments(args, message):
    with pytest.raises((ValueError, MemoryError), match=message):
        synthetic(**args)


@pytest.mark.slow
@SEEN_EVERY_ITEM  # the fixture's heaviest users have seen nearly every item
@FEW_CANDIDATES
def test_synthetic_data_is_learnable(taste_frame):
    result = fit(dataset=taste_frame, seed=0, num_epochs=6, batch_size=128, wd=0.0, ks=(10,),
                 verbose=False)
    popularity = fit(dataset=taste_frame, model="popularity", ks=(10,), verbose=False)
    assert result.metrics["ndcg@10"] > popularity.metrics["ndcg@10"] + 0.05
