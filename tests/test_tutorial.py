"""The tutorial's data functions: reading u.data, the seq-aware and random
splits, and the loader (their agreement with d2l itself: test_d2l_oracle.py)."""

import numpy as np
import pandas as pd
import pytest

from conftest import planted_interactions, write_u_data
from neumf import DataError, load_data_ml100k, read_data_ml100k, split_data_ml100k
from neumf.tutorial import read_ratings

GOOD = "1\t1\t5\t100\n1\t2\t3\t50\n2\t1\t4\t70\n"


def test_reader_returns_frame_and_counts(tmp_path):
    path = tmp_path / "u.data"
    path.write_text(GOOD)
    data, num_users, num_items = read_ratings(path)
    assert list(data.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert data.to_numpy().tolist() == [[1, 1, 5, 100], [1, 2, 3, 50], [2, 1, 4, 70]]
    assert (num_users, num_items) == (2, 2)


def test_planted_data_dir_helper_round_trip(tmp_path):
    folder = write_u_data(tmp_path, planted_interactions())
    assert read_ratings(folder / "ml-100k" / "u.data")[1:] == (80, 60)


def test_read_data_ml100k_uses_the_data_dir(tmp_path, monkeypatch):
    folder = write_u_data(tmp_path, planted_interactions())
    monkeypatch.setenv("NEUMF_DATA_DIR", str(folder))
    from_env = read_data_ml100k()
    from_arg = read_data_ml100k(folder)
    pd.testing.assert_frame_equal(from_env[0], from_arg[0])
    assert from_arg[1:] == (80, 60)


def _check_seq_aware(data, num_users, num_items):
    train, test = split_data_ml100k(data, num_users, num_items, "seq-aware")
    values = data.to_numpy()
    assert len(test) == num_users and len(train) + len(test) == len(values)
    latest = data.groupby("user_id")["timestamp"].max()
    test_values = test.to_numpy()
    assert (test_values[:, 3] == latest.loc[test_values[:, 0]].to_numpy()).all()
    train_values = train.to_numpy()
    order = np.lexsort((train_values[:, 3], train_values[:, 0]))
    assert (order == np.arange(len(order))).all()  # sorted by user, then time
    every = sorted(map(tuple, values.tolist()))
    assert sorted(map(tuple, train_values.tolist() + test_values.tolist())) == every


def test_seq_aware_split_properties():
    users, items, ratings, stamps = planted_interactions()
    data = pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings,
                         "timestamp": stamps})
    _check_seq_aware(data, 80, 60)


def test_seq_aware_split_tie_takes_first_in_file_order():
    data = pd.DataFrame([[1, 1, 5, 10], [1, 2, 5, 30], [1, 3, 5, 30], [2, 1, 1, 5]],
                        columns=["user_id", "item_id", "rating", "timestamp"])
    train, test = split_data_ml100k(data, 2, 3, "seq-aware")
    assert test.to_numpy().tolist() == [[1, 2, 5, 30], [2, 1, 1, 5]]
    assert train.to_numpy().tolist() == [[1, 1, 5, 10], [1, 3, 5, 30]]


def test_seq_aware_split_needs_every_user():
    data = pd.DataFrame([[1, 1, 5, 10], [3, 2, 5, 30]])
    with pytest.raises(DataError, match="user 2 has no interactions"):
        split_data_ml100k(data, 3, 2, "seq-aware")


def test_split_arguments_are_checked():
    data = pd.DataFrame([[1, 1, 5, 10]])
    with pytest.raises(ValueError, match="split_mode must be one of"):
        split_data_ml100k(data, 1, 1, "seq_aware")
    with pytest.raises(ValueError, match="test_ratio must be in"):
        split_data_ml100k(data, 1, 1, "random", 1.5)


def test_random_split_is_seeded_and_complete():
    data = pd.DataFrame(np.arange(4000).reshape(1000, 4))
    a_train, a_test = split_data_ml100k(data, 1, 1, "random", 0.1, seed=3)
    b_train, _ = split_data_ml100k(data, 1, 1, "random", 0.1, seed=3)
    pd.testing.assert_frame_equal(a_train, b_train)
    assert len(a_train) + len(a_test) == 1000 and 50 < len(a_test) < 150
    assert sorted(a_train.index.tolist() + a_test.index.tolist()) == list(range(1000))


def test_loader_shapes_and_checks():
    data = pd.DataFrame([[1, 2, 5, 10], [2, 1, 3, 30], [1, 3, 4, 40]])
    users, items, scores, inter = load_data_ml100k(data, 2, 3, "explicit")
    assert (users, items, scores) == ([0, 1, 0], [1, 0, 2], [5, 3, 4])
    assert inter.shape == (3, 2) and inter[1, 0] == 5 and inter[2, 0] == 4
    assert load_data_ml100k(data, 2, 3, "implicit")[3] == {0: [1, 2], 1: [0]}
    with pytest.raises(DataError, match="item ids must be in 1..2"):
        load_data_ml100k(data, 2, 2)
    with pytest.raises(ValueError, match="feedback must be one of"):
        load_data_ml100k(data, 2, 3, "implicitly")


@pytest.mark.slow
def test_movielens_100k_reads_and_splits(ml100k_dir):
    data, num_users, num_items = read_data_ml100k(ml100k_dir)
    assert data.shape == (100_000, 4) and (num_users, num_items) == (943, 1682)
    _check_seq_aware(data, num_users, num_items)
