"""Issue 6: many devices, many processes, big catalogues (on small data)."""

from __future__ import annotations

import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

from neumf import PRDataset, evaluate_model, fit, from_frame, load_dataset, load_model
from neumf.distributed import shard_rows
from neumf.generate import synthetic
from neumf.model import NeuMF


def _params(net):
    return {name: p.data().asnumpy() for name, p in net._collect_params_with_prefix().items()}


# the synthetic frame's heaviest users have seen every item (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*interacted with every one:UserWarning")


@pytest.fixture(scope="module")
def frame():
    return synthetic(120, 90, 2400, seed=3, num_groups=4, affinity=0.9)


@pytest.mark.parametrize("kvstore", ["device", "local"])
@pytest.mark.parametrize("num_devices", [2, 3])
def test_several_contexts_match_one(frame, kvstore, num_devices):
    # SGD: Adam divides by the gradient's magnitude, which turns the rounding
    # differences of summing per-device gradients in another order into
    # full-size steps wherever gradients are ~0 (a dead ReLU's weights)
    settings = {"dataset": frame, "seed": 0, "num_epochs": 3, "batch_size": 256, "lr": 1.0,
                "optimizer": "sgd", "wd": 1e-4, "init_sigma": 0.3, "verbose": False,
                "eval_step": 3}
    one = fit(devices=[mx.cpu(0)], **settings)
    many = fit(devices=[mx.cpu(i) for i in range(num_devices)], kvstore=kvstore, **settings)
    reference = _params(one.net)
    for name, value in _params(many.net).items():
        np.testing.assert_allclose(value, reference[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert many.metrics["auc"] == pytest.approx(one.metrics["auc"], abs=1e-3)


def test_unknown_kvstore_is_refused():
    with pytest.raises(ValueError, match="kvstore must be one of"):
        fit(kvstore="nccl")


def test_dist_sync_workers_agree_and_learn(frame, tmp_path):
    frame.to_csv(tmp_path / "syn.csv", index=False)
    command = [sys.executable, "-m", "neumf", "launch", "-n", "2", "-s", "1", "--timeout",
               "150", "--", "neumf", "train", "--dataset", "csv", "--data-dir", str(tmp_path),
               "--name", "syn.csv", "--kvstore", "dist_sync", "--num-epochs", "4", "--seed",
               "0", "--wd", "0", "--batch-size", "256", "--quiet", "--out",
               str(tmp_path / "run")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {f"saved to {tmp_path / 'run' / f'worker-{rank}'}" for rank in (0, 1)} <= set(
        done.stdout.splitlines())
    workers = [load_model(tmp_path / "run" / f"worker-{rank}") for rank in (0, 1)]
    first, second = (_params(worker.net) for worker in workers)
    for name, value in first.items():
        np.testing.assert_array_equal(value, second[name], err_msg=name)
    assert workers[0].metrics == workers[1].metrics
    assert workers[0].metrics["auc"] > 0.75  # chance is 0.5: the taste groups are learned
    assert len(workers[0].history) == 4


def _running(command):
    """PIDs of live processes whose command line is exactly ``command``."""
    wanted = "\0".join(command) + "\0"
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline") as handle:
                if handle.read() == wanted:
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


PS_ROLE = [sys.executable, "-c", "import mxnet"]  # what launch runs as scheduler and server


def test_launch_reports_a_failing_worker_and_cleans_up():
    from neumf.distributed import launch
    code = launch([sys.executable, "-c", "import sys; sys.exit(3)"], num_workers=2,
                  num_servers=1, timeout=60)
    assert code == 3
    assert _running(PS_ROLE) == []  # the scheduler and server were stopped too


def test_launch_times_out_and_cleans_up():
    from neumf.distributed import launch
    worker = [sys.executable, "-c", "import time; time.sleep(60)"]
    code = launch(worker, num_workers=1, timeout=2)
    assert code == 124
    assert _running(worker) == [] and _running(PS_ROLE) == []


def test_shards_cover_every_row_with_equal_lengths():
    shards = [shard_rows(1003, rank, 3, multiple=64) for rank in range(3)]
    assert {len(shard) for shard in shards} == {384}
    assert set(np.concatenate(shards).tolist()) == set(range(1003))
    assert all(np.all(shard % 3 == rank) for rank, shard in enumerate(shards))
    with pytest.raises(ValueError, match="2 training pairs cannot be shared by 3 workers"):
        shard_rows(2, 0, 3)


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
    ({"affinity": 2.0}, "affinity")])
def test_synthetic_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        synthetic(**args)


def test_synthetic_data_is_learnable(frame):
    result = fit(dataset=frame, seed=0, num_epochs=6, batch_size=128, wd=0.0, verbose=False)
    popularity = fit(dataset=frame, model="popularity", verbose=False)
    assert result.metrics["ndcg@10"] > popularity.metrics["ndcg@10"] + 0.05


def _random_setup(num_users=40, num_items=500, seed=0):
    rng = np.random.default_rng(seed)
    net = NeuMF(4, num_users, num_items, [6, 3])
    net.initialize(mx.init.Normal(0.5))
    seen_users = np.repeat(np.arange(num_users), 12)
    seen_items = rng.integers(0, num_items, len(seen_users))
    test_items = rng.integers(0, num_items, num_users)
    return net, np.arange(num_users), test_items, seen_users, seen_items


def test_memory_bound_gives_the_same_metrics():
    net, users, items, seen_users, seen_items = _random_setup()
    whole = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()])
    bounded = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                             memory_mb=0.05)  # about three users per block
    assert bounded == pytest.approx(whole)
    with pytest.raises(ValueError, match="memory_mb"):
        evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                       memory_mb=0)


def test_sampled_protocol_scoring_only_candidates_matches_the_score_matrix():
    net, users, items, seen_users, seen_items = _random_setup()
    rng = np.random.default_rng(1)
    negatives = rng.integers(0, 500, (len(users), 9))
    negatives[::4, 7:] = -1
    pairwise = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                              negatives=negatives, ks=(5,))  # 500 > 8 x 10: pairs only
    import neumf.evaluation as evaluation
    original = evaluation.PAIRWISE_RATIO
    evaluation.PAIRWISE_RATIO = 10**9  # force the score-matrix path
    try:
        matrix = evaluate_model(net, users, items, seen_users, seen_items, 500, [mx.cpu()],
                                negatives=negatives, ks=(5,))
    finally:
        evaluation.PAIRWISE_RATIO = original
    assert pairwise == pytest.approx(matrix, abs=1e-6)


def test_sampler_on_a_shard_excludes_all_seen_items():
    users = np.repeat(np.arange(5), 8)
    items = np.tile(np.arange(8), 5)
    shard = np.arange(0, len(users), 2)
    sampler = PRDataset(users[shard], items[shard], None, 10, seed=0, seen=(users, items))
    negatives = np.concatenate([batch[2] for batch in sampler.loader(7, as_numpy=True)])
    assert set(negatives.tolist()) <= {8, 9}


def test_from_frame_maps_raw_ids_and_round_trips(tmp_path):
    frame = pd.DataFrame({"item": ["a", "b", "c", "a", "c", "b"],
                          "user": ["x", "x", "x", "y", "y", "y"],
                          "timestamp": [3, 1, 2, 5, 4, 6]})
    data = from_frame(frame)
    assert data.user_ids.tolist() == ["x", "y"] and data.item_ids.tolist() == ["a", "b", "c"]
    assert data.item_ids[data.test_items].tolist() == ["a", "b"]  # each user's latest
    with pytest.raises(ValueError, match="row 1 has no item"):
        from_frame(pd.DataFrame({"user": [1, 2], "item": [3, None]}))


def test_numeric_and_string_readers_agree(tmp_path):
    frame = synthetic(30, 20, 300, seed=0)
    frame.to_csv(tmp_path / "ints.csv", index=False)
    # the same ids as strings that are not numbers take the string path
    text = frame.assign(user="u" + frame.user.astype(str), item="i" + frame.item.astype(str))
    text.to_csv(tmp_path / "text.csv", index=False)
    numeric = load_dataset("csv", tmp_path, "ints.csv")
    strings = load_dataset("csv", tmp_path, "text.csv")
    for name in ("train", "test"):
        for kind, ids in (("users", "user_ids"), ("items", "item_ids")):
            as_numbers = getattr(numeric, ids)[getattr(numeric, f"{name}_{kind}")]
            as_text = getattr(strings, ids)[getattr(strings, f"{name}_{kind}")]
            assert [text[1:] for text in as_text] == as_numbers.tolist()
