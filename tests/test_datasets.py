import mxnet as mx
import numpy as np
import pytest
from test_evaluation import TableNet

from conftest import planted_interactions
from neumf import DataError, evaluate_model, evaluate_ranking, fit, load_dataset


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


def write_ncf(folder, name="toy", num_negatives=20, seed=0):
    """Files in the NCF authors' format built from planted data (0-based ids)."""
    users, items, _, stamps = planted_interactions(seed=seed)
    users, items = users - 1, items - 1
    rng = np.random.default_rng(seed)
    order = np.lexsort((stamps, users))
    last = np.r_[users[order][1:] != users[order][:-1], True]
    test, train = order[last], order[~last]
    with open(folder / f"{name}.train.rating", "w") as handle:
        handle.writelines(f"{users[j]}\t{items[j]}\t5\t{stamps[j]}\n" for j in train)
    with open(folder / f"{name}.test.rating", "w") as handle:
        handle.writelines(f"{users[j]}\t{items[j]}\t5\t{stamps[j]}\n" for j in test)
    with open(folder / f"{name}.test.negative", "w") as handle:
        for j in test:
            seen = set(items[users == users[j]].tolist())
            pool = np.array([i for i in range(60) if i not in seen])
            negatives = rng.choice(pool, size=num_negatives, replace=False)
            handle.write(f"({users[j]},{items[j]})\t" + "\t".join(map(str, negatives)) + "\n")
    return users[test], items[test]


def test_ncf_format_round_trip(tmp_path):
    test_users, test_items = write_ncf(tmp_path)
    data = load_dataset("ncf", tmp_path, "toy")
    np.testing.assert_array_equal(data.test_users, test_users)
    np.testing.assert_array_equal(data.test_items, test_items)
    assert data.test_negatives.shape == (80, 20) and (data.num_users, data.num_items) == (80, 60)
    assert len(data.train_users) == 80 * 8


def test_ncf_mismatched_negative_file_names_the_line(tmp_path):
    write_ncf(tmp_path)
    path = tmp_path / "toy.test.negative"
    lines = path.read_text().splitlines()
    lines[3] = "(99,1)\t" + lines[3].split("\t", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="toy.test.negative line 4: \\(99,1\\) does not match"):
        load_dataset("ncf", tmp_path, "toy")


def test_paper_protocol_on_ncf_files_in_one_call(tmp_path):
    write_ncf(tmp_path)
    result = fit(dataset="ncf", data_dir=tmp_path, name="toy", protocol="sampled", seed=0,
                 num_epochs=8, batch_size=64, k=10, verbose=False)
    assert {"hr@10", "ndcg@10", "auc", "mrr"} <= set(result.metrics)
    # 21 candidates per test item: chance HR@10 is 10/21; the planted groups are learned
    assert result.metrics["hr@10"] > 0.8 and result.metrics["ndcg@10"] > 0.4


def test_evaluate_model_hand_values():
    # one user, 6 items; scores 0..5; item 5 seen; test item 3
    net = TableNet(np.arange(6, dtype=float)[None, :])
    full = evaluate_model(net, [0], [3], [0], [5], 6, [mx.cpu()], ks=(1, 2))
    # candidates {0,1,2,3,4}: item 4 above, so rank 1
    assert full == pytest.approx({"hr@1": 0.0, "ndcg@1": 0.0, "hr@2": 1.0,
                                  "ndcg@2": 1 / np.log2(3), "auc": 3 / 4, "mrr": 1 / 2})
    sampled = evaluate_model(net, [0], [3], [0], [5], 6, [mx.cpu()], ks=(1,),
                             negatives=np.array([[0, 1]]))
    assert sampled == pytest.approx({"hr@1": 1.0, "ndcg@1": 1.0, "auc": 1.0, "mrr": 1.0})


def test_evaluate_model_agrees_with_evaluate_ranking():
    rng = np.random.default_rng(2)
    table = rng.permutation(30 * 90).reshape(30, 90).astype(float)
    train_users = np.repeat(np.arange(30), 10)
    train_items = np.concatenate([rng.choice(90, 11, replace=False) for _ in range(30)])
    test_items = train_items.reshape(30, 11)[:, 10]
    train_items = train_items.reshape(30, 11)[:, :10].ravel()
    metrics = evaluate_model(TableNet(table), np.arange(30), test_items, train_users,
                             train_items, 90, [mx.cpu()], ks=(50,))
    candidates = {u: train_items[train_users == u].tolist() for u in range(30)}
    hit_rate, auc = evaluate_ranking(TableNet(table), {u: [int(test_items[u])] for u in range(30)},
                                     None, candidates, 30, 90, [mx.cpu()])
    assert (metrics["hr@50"], metrics["auc"]) == pytest.approx((hit_rate, auc))


def test_unknown_dataset_and_missing_name(tmp_path):
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("ml-20m", tmp_path)
    with pytest.raises(ValueError, match="needs name="):
        load_dataset("csv", tmp_path)
