"""Interactions as arrays: DataFrames in (``from_frame``) and the validation split."""

import numpy as np
import pandas as pd
import pytest

from neumf import from_frame, load_dataset
from neumf.interactions import validation_split


def test_from_frame_maps_raw_ids_and_round_trips():
    frame = pd.DataFrame({"item": ["a", "b", "c", "a", "c", "b"],
                          "user": ["x", "x", "x", "y", "y", "y"],
                          "timestamp": [3, 1, 2, 5, 4, 6]})
    data = from_frame(frame)
    assert data.user_ids.tolist() == ["x", "y"] and data.item_ids.tolist() == ["a", "b", "c"]
    assert data.item_ids[data.test_items].tolist() == ["a", "b"]  # each user's latest
    with pytest.raises(ValueError, match="row 1 has no item"):
        from_frame(pd.DataFrame({"user": [1, 2], "item": [3, None]}))


def test_validation_split_holds_out_each_users_latest_training_row(planted_dir):
    data = load_dataset("ml-100k", planted_dir)
    valid = validation_split(data)
    assert len(valid.test_users) == data.num_users
    assert len(valid.train_users) + len(valid.test_users) == len(data.train_users)
    for user in range(data.num_users):
        rows = data.train_users == user
        latest = data.train_items[rows][np.argmax(data.train_times[rows])]
        assert valid.test_items[valid.test_users == user].tolist() == [latest]
        assert latest not in valid.train_items[valid.train_users == user]
    # the held-out pairs are not the test pairs
    assert not set(zip(valid.test_users, valid.test_items)) & set(
        zip(data.test_users, data.test_items))
