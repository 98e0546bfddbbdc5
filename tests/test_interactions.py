"""Interactions as arrays: DataFrames in (``from_frame``) and the validation split."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import QUICK, csv_rows, write_csv
from neumf import fit, from_frame, load_dataset
from neumf.interactions import validation_split

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")


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


# --- duplicates and leaks are counted, and both evaluators agree ---

def test_duplicate_pairs_count_once_and_evaluators_agree(tmp_path):
    rows = csv_rows(num_users=20, per_user=6, seed=6)
    latest = {}
    for user, item, stamp in rows:
        if stamp > latest.get(user, ("", -1))[1]:
            latest[user] = (item, stamp)
    # every user's test item also appears earlier; and one pair is repeated
    extra = [(user, item, stamp - 10_000) for user, (item, stamp) in latest.items()]
    extra += [rows[0], rows[0]]
    write_csv(tmp_path / "d.csv", rows + extra)
    with pytest.warns(UserWarning, match=r"\d+ repeated"):
        result = fit(dataset="csv", data_dir=tmp_path, name="d.csv", eval_step=1,
                     **{**QUICK, "k": 10})
    data = result.data
    train = list(zip(data.train_users.tolist(), data.train_items.tolist()))
    assert len(train) == len(set(train))
    assert not set(train) & set(zip(data.test_users.tolist(), data.test_items.tolist()))
    assert result.history[-1]["hit_rate"] == pytest.approx(result.metrics["hr@10"])
    assert result.history[-1]["auc"] == pytest.approx(result.metrics["auc"])
    assert result.metrics["hr@10"] < 1.0


def test_columns_that_leave_out_a_timestamp_are_said(tmp_path):
    """columns=['user', 'item'] on data with more columns reads no timestamp:
    the split then follows row order, which is said (it was silent)."""
    frame = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": [1, 2, 1, 3, 2, 3],
                          "rating": [5] * 6, "timestamp": [6, 5, 4, 3, 2, 1]})
    with pytest.warns(UserWarning, match="names no timestamp and leaves 2 column"):
        from_frame(frame, columns=["user", "item"])
    path = tmp_path / "four.csv"
    frame.to_csv(path, header=False, index=False)
    with pytest.warns(UserWarning, match="names no timestamp and leaves 2 column"):
        load_dataset("csv", name=str(path), columns=["user", "item"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*names no timestamp")
        from_frame(frame, columns=["user", "item", "rating", "timestamp"])
        load_dataset("csv", name=str(path), columns=["user", "item", "rating",
                                                            "timestamp"])
