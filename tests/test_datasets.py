"""Named data sets: MovieLens-1M, delimited files of raw ids, the NCF authors'
format (reading its rules, ``write_ncf`` round trips, and the NCF development
protocol's validation split made from a training file alone)."""

import numpy as np
import pandas as pd
import pytest

import neumf
from conftest import planted_interactions, write_ncf_files
from neumf import DataError, fit, load_dataset
from neumf.datasets import ncf_validation_split, write_ncf
from neumf.sampling import sampled_negatives


def test_csv_with_raw_ids_header_and_no_timestamps(tmp_path):
    lines = ["user,item,rating", "alice,m1,5", "bob,m2,3", "alice,m3,4", "bob,m1,1",
             "alice,m2,2", "carol,m3,5"]
    (tmp_path / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="1 users have a single interaction"):
        data = load_dataset("csv", tmp_path, "ratings.csv")
    assert data.user_ids.tolist() == ["alice", "bob", "carol"]
    assert data.item_ids.tolist() == ["m1", "m2", "m3"]
    # the last line of each user is its test item (file order when there is no timestamp)
    tested = {data.user_ids[u]: data.item_ids[i] for u, i in zip(data.test_users,
                                                                  data.test_items)}
    assert tested == {"alice": "m2", "bob": "m1"}
    assert len(data.train_users) == 4 and (data.num_users, data.num_items) == (3, 3)


def test_ml1m_format(tmp_path):
    users, items, ratings, stamps = planted_interactions()
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("".join(
        f"{u}::{i}::{r}::{t}\n" for u, i, r, t in zip(users, items, ratings, stamps)))
    data = load_dataset("ml-1m", tmp_path)
    assert (data.num_users, data.num_items) == (80, 60) and len(data.test_users) == 80
    latest = {}
    for u, i, t in zip(users, items, stamps):
        if t > latest.get(u, (0, -1))[1]:
            latest[u] = (i, t)
    got = {int(data.user_ids[u]): int(data.item_ids[i])
           for u, i in zip(data.test_users, data.test_items)}
    assert got == {u: i for u, (i, _) in latest.items()}


def test_ncf_format_round_trip(tmp_path):
    test_users, test_items = write_ncf_files(tmp_path)
    data = load_dataset("ncf", tmp_path, "toy")
    np.testing.assert_array_equal(data.test_users, test_users)
    np.testing.assert_array_equal(data.test_items, test_items)
    assert data.test_negatives.shape == (80, 20) and (data.num_users, data.num_items) == (80, 60)
    assert len(data.train_users) == 80 * 8


def test_ncf_mismatched_negative_file_names_the_line(tmp_path):
    write_ncf_files(tmp_path)
    path = tmp_path / "toy.test.negative"
    lines = path.read_text().splitlines()
    lines[3] = "(99,1)\t" + lines[3].split("\t", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="toy.test.negative line 4: \\(99,1\\) does not match"):
        load_dataset("ncf", tmp_path, "toy")


def test_ncf_rules_for_out_of_range_ids_and_coinciding_negatives(tmp_path):
    write_ncf_files(tmp_path, num_negatives=5)
    negative = tmp_path / "toy.test.negative"
    lines = negative.read_text().splitlines()
    pair, *negatives = lines[0].split("\t")
    test_item = pair.strip("()").split(",")[1]
    lines[0] = "\t".join([pair, test_item, "999", *negatives[2:]])  # the test item, outside
    negative.write_text("\n".join(lines) + "\n")
    with open(tmp_path / "toy.test.rating", "a") as handle:
        handle.write("500\t3\t5\t1\n")  # a user the training file does not have
    with open(negative, "a") as handle:
        handle.write("(500,3)\t1\t2\t3\t4\t5\n")
    with pytest.warns(UserWarning) as caught:
        data = load_dataset("ncf", tmp_path, "toy")
    messages = " ".join(str(w.message) for w in caught)
    assert "1 test pairs name a user or item the training file does not have" in messages
    assert "removed 1 negatives outside the catalogue and 1 equal to their test item" in messages
    assert len(data.test_users) == 80 and (data.test_negatives[0, :2] == -1).all()
    assert (data.test_negatives[1:] >= 0).all()


def test_write_ncf_round_trips(planted_dir, tmp_path):
    data = load_dataset("ml-100k", planted_dir)
    negatives = sampled_negatives(data, 7, seed=1)
    negatives[0, 5:] = -1  # a shorter row
    write_ncf(data, tmp_path, "toy", negatives)
    back = load_dataset("ncf", tmp_path, "toy")
    for field in ("train_users", "train_items", "test_users", "test_items"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
    np.testing.assert_array_equal(back.test_negatives, negatives)
    np.testing.assert_array_equal(back.train_times, data.train_times)  # validation uses them
    assert (back.num_users, back.num_items) == (data.num_users, data.num_items)


def test_unknown_dataset_and_missing_name(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("ml-20m", tmp_path)
    with pytest.raises(ValueError, match="needs name="):
        load_dataset("csv", tmp_path)


# --- the NCF development protocol: a validation split from a training file ----------------

def _train_file(folder, name="toy"):
    """An NCF training file: 30 users x 25 items, each user's lines newest first,
    the first users with real timestamps, the rest with placeholder zeros."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(30):
        items = rng.choice(25, size=6, replace=False)
        stamps = [1_000_000 - 10 * n for n in range(6)] if user < 5 else [0] * 6
        lines += [f"{user}\t{item}\t1\t{stamp}" for item, stamp in zip(items, stamps)]
    (folder / f"{name}.train.rating").write_text("\n".join(lines) + "\n")
    return lines


def test_newest_line_of_each_user_is_held_out_with_unseen_negatives(tmp_path):
    lines = _train_file(tmp_path)
    paths = ncf_validation_split(tmp_path, "toy", tmp_path / "dev", negatives=10, seed=0)
    assert [path.name for path in paths] == ["toy-validation.train.rating",
                                            "toy-validation.test.rating",
                                            "toy-validation.test.negative"]
    data = neumf.load_dataset("ncf", tmp_path / "dev", "toy-validation")
    newest = {int(line.split("\t")[0]): int(line.split("\t")[1])
              for line in reversed(lines)}  # the first line of each user wins
    assert dict(zip(data.test_users.tolist(), data.test_items.tolist())) == newest
    assert len(data.train_users) == len(lines) - 30
    for user, row in zip(data.test_users, data.test_negatives):
        rated = {int(line.split("\t")[1]) for line in lines if int(line.split("\t")[0]) == user}
        assert len(set(row.tolist())) == 10 and not set(row.tolist()) & rated
    assert not (tmp_path / "toy.test.rating").exists()  # the real test files are never made


def test_presets_run_on_the_validation_split(tmp_path):
    _train_file(tmp_path)
    ncf_validation_split(tmp_path, "toy", tmp_path, negatives=10, seed=0)
    result = neumf.fit(dataset="ncf", data_dir=tmp_path, name="toy-validation", preset="gmf",
                       num_epochs=2, num_factors=4, mlp_factors=4, seed=0, verbose=False)
    assert 0 <= result.metrics["hr@10"] <= 1 and result.config.protocol == "sampled"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_csv_named_by_path_is_read_wherever_the_data_folder_points(tmp_path, monkeypatch):
    # a file in the working folder, or by absolute path, whatever $NEUMF_DATA_DIR says
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("NEUMF_DATA_DIR", str(elsewhere))
    work = tmp_path / "work"
    work.mkdir()
    rows = [(user, item, 4, user * 10 + item) for user in range(5) for item in range(4)]
    pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).to_csv(
        work / "inter.csv", index=False)
    monkeypatch.chdir(work)
    by_name = load_dataset("csv", name="inter.csv")
    by_path = load_dataset("csv", name=str(work / "inter.csv"))
    assert by_name.num_users == by_path.num_users == 5
    # a bare name found nowhere says where it looked
    with pytest.raises(DataError, match="missing.csv not found"):
        load_dataset("csv", name="missing.csv")
    # a run trained on it resumes from another working folder
    run = tmp_path / "run"
    fit(dataset="csv", name="inter.csv", num_epochs=1, out=run, verbose=False, seed=0)
    monkeypatch.chdir(tmp_path)
    assert len(fit(resume=run, num_epochs=2, verbose=False).history) == 2
