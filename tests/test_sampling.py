"""Negative sampling: exact draws among each user's unseen items, the PRDataset
and its loader."""

from __future__ import annotations

import warnings

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

import neumf
from conftest import QUICK, csv_rows, one_error_line, run_cli, write_csv
from neumf import PRDataset, fit
from neumf.interactions import SeenIndex
from neumf.sampling import (
    candidate_pairs,
    sample_distinct,
    sample_negatives,
    sampled_negatives,
    seen_keys,
)

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")


@pytest.fixture
def toy():
    rng = np.random.default_rng(3)
    num_users, num_items = 12, 30
    candidates = {u: rng.choice(num_items, size=int(rng.integers(1, 25)), replace=False).tolist()
                  for u in range(num_users)}
    users, items = candidate_pairs(candidates)
    return users, items, candidates, num_items


def test_sample_negatives_never_seen_and_uniform(toy):
    users, items, candidates, num_items = toy
    keys = seen_keys(users, items, num_items)
    draws_per_user = 6000
    user_ids = np.repeat(np.arange(len(candidates)), draws_per_user)
    negatives = sample_negatives(user_ids, keys, num_items, np.random.default_rng(0))
    for user, seen in candidates.items():
        drawn = negatives[user_ids == user]
        assert not set(drawn.tolist()) & set(seen)
        unseen = sorted(set(range(num_items)) - set(seen))
        assert sorted(set(drawn.tolist())) == unseen  # covers every unseen item
        counts = np.bincount(drawn, minlength=num_items)[unseen]
        expected = draws_per_user / len(unseen)
        # uniform: each count within 6 standard deviations of its expectation
        assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected))


def test_same_seed_same_draws(toy):
    users, items, candidates, num_items = toy
    a = PRDataset(users, items, candidates, num_items, seed=1)
    b = PRDataset(users, items, candidates, num_items, seed=1)
    batches_a = [np.concatenate(batch) for batch in a.loader(7, as_numpy=True)]
    batches_b = [np.concatenate(batch) for batch in b.loader(7, as_numpy=True)]
    np.testing.assert_array_equal(np.concatenate(batches_a), np.concatenate(batches_b))


def test_prdataset_getitem_draws_fresh_unseen_negatives(toy):
    users, items, candidates, num_items = toy
    dataset = PRDataset(users, items, candidates, num_items, seed=0)
    assert len(dataset) == len(users)
    drawn = set()
    for _ in range(3000):
        user, positive, negative = dataset[0]
        assert (user, positive) == (users[0], items[0])
        assert negative not in candidates[int(user)]
        drawn.add(int(negative))
    assert drawn == set(range(num_items)) - set(candidates[int(users[0])])


def test_loader_covers_every_triplet_once_per_pass(toy):
    users, items, candidates, num_items = toy
    dataset = PRDataset(users, items, candidates, num_items, seed=0)
    loader = dataset.loader(16, as_numpy=True)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == -(-len(users) // 16)
        got_users = np.concatenate([b[0] for b in batches])
        got_items = np.concatenate([b[1] for b in batches])
        got_negs = np.concatenate([b[2] for b in batches])
        pairs = sorted(zip(got_users.tolist(), got_items.tolist()))
        assert pairs == sorted(zip(users.tolist(), items.tolist()))
        assert not any(n in candidates[u] for u, n in zip(got_users.tolist(), got_negs.tolist()))


def test_user_who_has_seen_everything_is_left_out_with_a_warning():
    with pytest.warns(UserWarning, match="1 users have interacted with every one of the 3 "
                                         "items: their 1 training pairs"):
        dataset = PRDataset([0, 1], [0, 1], {0: [0], 1: [0, 1, 2]}, 3, seed=0)
    (users, items, negatives), = list(dataset.loader(8, as_numpy=True))
    assert users.tolist() == [0] and items.tolist() == [0] and negatives[0] in (1, 2)
    with pytest.raises(ValueError, match="user 1 has seen all 3 items"):
        dataset[1]


def test_distinct_draws_are_unseen_distinct_and_uniform():
    rng = np.random.default_rng(0)
    num_items = 12
    seen = {0: [0, 1, 2], 1: list(range(10)), 2: list(range(12)), 3: []}
    users, items = candidate_pairs(seen)
    index = SeenIndex.from_pairs(users, items, num_items)
    assert index.unseen_counts(np.array([0, 1, 2, 3, 9])).tolist() == [9, 2, 0, 12, 12]
    draws = sample_distinct(np.repeat([0, 1, 2, 3], 3000), index, 4, rng)
    for user in range(4):
        rows = draws[np.repeat([0, 1, 2, 3], 3000) == user]
        unseen = sorted(set(range(num_items)) - set(seen[user]))
        take = min(4, len(unseen))
        assert (rows[:, take:] == -1).all() and (rows[:, :take] >= 0).all()
        assert all(len(set(row[:take])) == take for row in rows.tolist())
        assert set(rows[:, :take].ravel().tolist()) == set(unseen[:len(unseen)]) or not unseen
        if unseen:  # each unseen item is in a row with probability take / len(unseen)
            counts = np.bincount(rows[:, :take].ravel(), minlength=num_items)[unseen]
            expected = 3000 * take / len(unseen)
            assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected) + 1)


def test_items_of_rank_enumerate_the_unseen_items_in_order():
    users, items = candidate_pairs({0: [1, 4, 5], 2: [0, 9]})
    index = SeenIndex.from_pairs(users, items, 10)
    for user, unseen in ((0, [0, 2, 3, 6, 7, 8, 9]), (1, list(range(10))),
                         (2, list(range(1, 9))), (7, list(range(10)))):
        ranks = np.arange(len(unseen))
        assert index.item_of_rank(np.full(len(unseen), user), ranks).tolist() == unseen


def test_candidates_as_list_of_lists():
    users, items = candidate_pairs([[1, 2], [], [0]])
    assert users.tolist() == [0, 0, 2] and items.tolist() == [1, 2, 0]


def test_loader_yields_mxnet_batches_by_default(toy):
    users, items, candidates, num_items = toy
    mx_batches = list(PRDataset(users, items, candidates, num_items, seed=2).loader(16))
    np_batches = list(PRDataset(users, items, candidates, num_items, seed=2).loader(
        16, as_numpy=True))
    assert len(mx_batches) == len(np_batches)
    for mx_batch, np_batch in zip(mx_batches, np_batches):
        assert all(isinstance(column, mx.np.ndarray) for column in mx_batch)
        assert mx_batch[0].dtype == np.int32
        for mx_column, np_column in zip(mx_batch, np_batch):
            np.testing.assert_array_equal(mx_column.asnumpy(), np_column)


def test_loader_with_several_negatives_per_positive(toy):
    users, items, candidates, num_items = toy
    loader = PRDataset(users, items, candidates, num_items, seed=0).loader(
        32, as_numpy=True, num_negatives=3)
    assert loader.num_triplets == 3 * len(users) and len(loader) == -(-3 * len(users) // 32)
    batches = list(loader)
    got = sorted(zip(np.concatenate([b[0] for b in batches]).tolist(),
                     np.concatenate([b[1] for b in batches]).tolist()))
    assert got == sorted(list(zip(users.tolist(), items.tolist())) * 3)
    negatives = np.concatenate([b[2] for b in batches])
    pairs_users = np.concatenate([b[0] for b in batches])
    assert not any(n in candidates[u] for u, n in zip(pairs_users.tolist(), negatives.tolist()))


def test_grouped_loader_gives_each_positive_once_with_its_negatives(toy):
    users, items, candidates, num_items = toy
    loader = PRDataset(users, items, candidates, num_items, seed=0).loader(
        12, as_numpy=True, num_negatives=3, grouped=True)
    assert loader.grouped and loader.num_triplets == 3 * len(users)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-len(users) // 4)
    assert all(b[2].shape == (len(b[0]), 3) for b in batches)
    got = sorted(zip(np.concatenate([b[0] for b in batches]).tolist(),
                     np.concatenate([b[1] for b in batches]).tolist()))
    assert got == sorted(zip(users.tolist(), items.tolist()))  # each positive once
    for user, row in zip(np.concatenate([b[0] for b in batches]).tolist(),
                         np.concatenate([b[2] for b in batches])):
        assert len(set(row.tolist())) == 3 and not set(row.tolist()) & set(candidates[user])
    flat = PRDataset(users, items, candidates, num_items, seed=0).loader(
        12, num_negatives=3, grouped=True, fill=True)
    assert not flat.grouped  # synchronous workers keep flat batches


def test_grouped_loader_repeats_the_few_negatives_a_user_has():
    with pytest.warns(UserWarning, match="fewer than num_negatives=3"):
        loader = PRDataset([0, 1, 1], [0, 1, 2], {0: [0], 1: [1, 2, 3]}, 5, seed=0).loader(
            30, as_numpy=True, num_negatives=3, grouped=True)
    (users, items, negatives), = list(loader)
    rows = dict(zip(items.tolist(), negatives.tolist()))
    assert sorted(set(rows[1])) == sorted(set(rows[2])) == [0, 4]  # the two unseen items
    assert len(set(rows[0])) == 3 and 0 not in rows[0]
    with pytest.raises(TypeError, match="grouped must be True or False"):
        PRDataset([0], [0], {0: [0]}, 5).loader(4, grouped="yes")


def test_sampler_on_a_shard_excludes_all_seen_items():
    users = np.repeat(np.arange(5), 8)
    items = np.tile(np.arange(8), 5)
    shard = np.arange(0, len(users), 2)
    sampler = PRDataset(users[shard], items[shard], None, 10, seed=0, seen=(users, items))
    negatives = np.concatenate([batch[2] for batch in sampler.loader(7, as_numpy=True)])
    assert set(negatives.tolist()) <= {8, 9}


# --- every sampling loop terminates ---

def _user_who_has_seen_everything(tmp_path, num_items=40):
    rows = csv_rows(num_users=10, num_items=num_items, per_user=8)
    rows += [("all", f"i{item}", 1_000_000_000 + item) for item in range(num_items)]
    return write_csv(tmp_path / "full.csv", rows)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["sampled", "full"])
def test_a_user_who_has_seen_every_item_does_not_hang(tmp_path, protocol):
    _user_who_has_seen_everything(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(dataset="csv", data_dir=tmp_path, name="full.csv", protocol=protocol,
                     eval_negatives=99, **QUICK)
    assert np.isfinite(result.metrics["auc"])
    messages = " ".join(str(w.message) for w in caught)
    # the saturated user's test item is its only candidate: a hit whatever the model does
    assert f"1 of 11 test pairs are ranked among 10 or fewer candidates ({protocol}" in messages
    if protocol == "sampled":  # the saturated user has no negative left: said, with a count
        assert "fewer than 99 items they never interacted with (fewest: 0)" in messages


@pytest.mark.parametrize("settings, count", [
    ({"protocol": "sampled", "eval_negatives": 9, "ks": (5, 10)}, "12 of 12"),
    ({"protocol": "sampled", "eval_negatives": 10, "ks": (5, 10)}, None),
    ({"protocol": "full", "ks": (5, 24)}, "12 of 12"),  # 29 items, 5 trained on each
    ({"protocol": "full", "ks": (5, 23)}, None),
])
def test_a_cutoff_that_every_pair_reaches_is_said(tmp_path, settings, count):
    write_csv(tmp_path / "d.csv", csv_rows())  # 12 users with 5 of 40 items to train on
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(dataset="csv", data_dir=tmp_path, name="d.csv", **{**QUICK, **settings})
    said = [str(w.message) for w in caught if "or fewer candidates" in str(w.message)]
    assert said == ([] if count is None else [said[0]])
    if count is not None:
        assert said[0].startswith(f"{count} test pairs are ranked among")


def test_ratings_of_zero_or_below_in_a_dataframe_are_said():
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "rating": [5, -1, 0, 3]})
    with pytest.warns(UserWarning, match="dataframe: 2 rows with a rating of 0 or below "
                                         r"\(first: row 1\)"):
        neumf.from_frame(frame)


@pytest.mark.timeout(60)
def test_the_ncf_presets_do_not_hang_on_a_saturated_user(tmp_path):
    _user_who_has_seen_everything(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(dataset="csv", data_dir=tmp_path, name="full.csv", preset="neumf",
                     num_epochs=1, patience=0, verbose=False, seed=0)
    assert np.isfinite(result.metrics["hr@10"])


def test_sampled_negatives_are_distinct_unseen_and_never_the_test_item(tmp_path):
    _user_who_has_seen_everything(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = neumf.load_dataset("csv", tmp_path, "full.csv")
        negatives = sampled_negatives(data, 99, seed=0)
    assert negatives.shape[0] == len(data.test_users)
    for user, item, row in zip(data.test_users, data.test_items, negatives):
        drawn = row[row >= 0]
        seen = set(data.train_items[data.train_users == user].tolist()) | {int(item)}
        assert len(set(drawn.tolist())) == len(drawn)  # without replacement
        assert not set(drawn.tolist()) & seen
        assert len(drawn) == min(99, data.num_items - len(seen))  # all unseen items when short


def test_sampled_protocol_with_every_unseen_item_equals_the_full_protocol(tmp_path):
    rows = csv_rows(num_users=15, num_items=30, per_user=7, seed=2)
    write_csv(tmp_path / "d.csv", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = fit(dataset="csv", data_dir=tmp_path, name="d.csv", protocol="full", **QUICK)
        data = full.data
        negatives = sampled_negatives(data, 1000, seed=0)
    metrics = neumf.evaluate_model(full.net, data.test_users, data.test_items,
                                   data.train_users, data.train_items, data.num_items,
                                   [mx.cpu()], negatives=negatives, ks=(1, 5, 10))
    expected = neumf.evaluate_model(full.net, data.test_users, data.test_items,
                                    data.train_users, data.train_items, data.num_items,
                                    [mx.cpu()], ks=(1, 5, 10))
    assert metrics == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_eval_negatives_must_be_positive(planted_dir, tmp_path, value):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    code, _, err = run_cli(["evaluate", "--run", str(run), "--protocol", "sampled",
                         "--eval-negatives", value])
    assert code == 2 and "eval_negatives" in one_error_line(err).replace("-", "_")
    code, _, err = run_cli(["train", "--data-dir", str(planted_dir), "--protocol", "sampled",
                         "--eval-negatives", value, "--quiet"])
    assert code == 2 and "eval_negatives" in one_error_line(err).replace("-", "_")
