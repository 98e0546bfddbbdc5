"""Row-sparse training of the embedding tables (issue 13): a step touches only
the rows of its batch, equals the dense step there for SGD, lazy Adam follows
its definition, and devices, resume and the CLI switch work with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

import neumf.sparse
from conftest import NO_EPOCHS
from neumf import BPRLoss, fit, load_model, synthetic
from neumf._gluon import get_weights, parameters, set_weights
from neumf.callbacks import Checkpoint
from neumf.cli import build_parser
from neumf.model import NeuMF
from neumf.sparse import LazyTables, SparseBatches
from neumf.training import fit_epochs

pytestmark = pytest.mark.filterwarnings("ignore:.*lazy_update.*")


def _net(devices, seed=0):
    mx.random.seed(seed)
    net = NeuMF(4, 30, 50, [6, 3])
    with mx.util.np_shape(True), mx.util.np_array(True):
        net.initialize(mx.init.Normal(0.3), ctx=devices)
    net.hybridize()
    return net


def _batch(rng, size=16):
    return (rng.integers(0, 30, size), rng.integers(0, 50, size), rng.integers(0, 50, size))


def _step(net, batch, devices, sparse: bool, lr=0.5, wd=0.0, epochs=1, optimizer="sgd"):
    tables = net.tables()
    params = [p for name, p in parameters(net).items() if not sparse or name not in tables]
    trainer = gluon.Trainer(params, optimizer, {"learning_rate": lr, "wd": wd})
    batches = SparseBatches(net, devices, len(batch[0]), optimizer, lr, wd) if sparse else None
    loader = [batch] if sparse else [tuple(mx.np.array(c, dtype="int32") for c in batch)]
    fit_epochs(net, loader, BPRLoss(), trainer, devices, num_epochs=epochs,
               sparse=batches)


def test_a_sparse_sgd_step_equals_the_dense_step_and_touches_only_its_rows():
    devices = [mx.cpu()]
    batch = _batch(np.random.default_rng(0))
    dense, sparse = _net(devices), _net(devices)
    before = get_weights(sparse)
    _step(dense, batch, devices, sparse=False)
    _step(sparse, batch, devices, sparse=True)
    after_dense, after_sparse = get_weights(dense), get_weights(sparse)
    for name in after_dense:
        np.testing.assert_allclose(after_sparse[name], after_dense[name], rtol=1e-5,
                                   atol=1e-7, err_msg=name)
    touched = {"P.weight": set(batch[0]), "U.weight": set(batch[0]),
               "Q.weight": set(batch[1]) | set(batch[2]),
               "V.weight": set(batch[1]) | set(batch[2])}
    for name, rows in touched.items():
        changed = set(np.flatnonzero((after_sparse[name] != before[name]).any(axis=1)).tolist())
        assert changed and changed <= rows, name


def test_weight_decay_applies_to_the_rows_touched_only():
    devices = [mx.cpu()]
    batch = _batch(np.random.default_rng(1))
    dense, sparse = _net(devices), _net(devices)
    before = get_weights(sparse)
    _step(dense, batch, devices, sparse=False, wd=0.1)
    _step(sparse, batch, devices, sparse=True, wd=0.1)
    untouched = sorted(set(range(50)) - set(batch[1]) - set(batch[2]))
    np.testing.assert_array_equal(get_weights(sparse)["Q.weight"][untouched],
                                  before["Q.weight"][untouched])
    assert not np.allclose(get_weights(dense)["Q.weight"][untouched],
                           before["Q.weight"][untouched])  # dense decays every row


def test_lazy_adam_matches_a_numpy_reference():
    rng = np.random.default_rng(2)
    table = rng.normal(size=(7, 3)).astype(np.float32)
    tables = {"T": mx.nd.array(table)}
    lazy = LazyTables(tables, "adam", lr=0.1, wd=0.01)
    weight, mean, var = table.astype(np.float64), np.zeros((7, 3)), np.zeros((7, 3))
    for step in range(1, 5):
        rows = np.sort(rng.choice(7, size=3, replace=False))
        grad = rng.normal(size=(3, 3)).astype(np.float32)
        lazy.update("T", mx.nd.array(rows, dtype="int64"), mx.nd.array(grad), rescale=0.5)
        g = 0.5 * grad + 0.01 * weight[rows]
        mean[rows] = 0.9 * mean[rows] + 0.1 * g
        var[rows] = 0.999 * var[rows] + 0.001 * g ** 2
        lr = 0.1 * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
        weight[rows] -= lr * mean[rows] / (np.sqrt(var[rows]) + 1e-8)
    lazy.store()  # the trained weights back into the tables
    # float32 steps against float64 arithmetic: a wrong rule is off by ~1e-2
    np.testing.assert_allclose(tables["T"].asnumpy(), weight, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sparse training supports the optimizers"):
        LazyTables(tables, "rmsprop", lr=0.1, wd=0.0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_update_equals_mxnets_lazy_kernels_bit_for_bit(optimizer):
    # LazyTables gathers, updates densely and scatters back (no wait on the
    # engine); MXNet's row-sparse lazy_update is the reference arithmetic
    rng = np.random.default_rng(3)
    start = rng.normal(size=(40, 5)).astype(np.float32)
    lazy = LazyTables({"T": mx.nd.array(start)}, optimizer, lr=0.05, wd=0.01)
    table = mx.nd.array(start)
    mean, var = mx.nd.zeros(table.shape), mx.nd.zeros(table.shape)
    for step in range(1, 6):
        rows = mx.nd.array(np.sort(rng.choice(40, size=9, replace=False)), dtype="int64")
        grad = mx.nd.array(rng.normal(size=(9, 5)).astype(np.float32))
        lazy.update("T", rows, grad, rescale=0.25)
        sparse_grad = mx.nd.sparse.row_sparse_array((grad, rows), shape=table.shape)
        if optimizer == "sgd":
            mx.nd.sparse.sgd_update(table, sparse_grad, lr=0.05, wd=0.01, rescale_grad=0.25,
                                    lazy_update=True, out=table)
        else:
            lr = 0.05 * np.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
            mx.nd.sparse.adam_update(table, sparse_grad, mean, var, lr=lr, wd=0.01,
                                     rescale_grad=0.25, lazy_update=True, out=table)
    lazy.store()
    np.testing.assert_array_equal(lazy.tables["T"].asnumpy(), table.asnumpy())
    assert not np.array_equal(table.asnumpy(), start)
    if optimizer == "adam":
        for state, reference in zip(lazy.states["T"], (mean, var)):
            np.testing.assert_array_equal(state.asnumpy(), reference.asnumpy())


def _assert_trained_alike(many, one):
    """``many`` (on several devices) holds ``one``'s weights, on every device."""
    reference = get_weights(one)
    for name, value in get_weights(many).items():
        np.testing.assert_allclose(value, reference[name], rtol=1e-4, atol=1e-6, err_msg=name)
    for param in parameters(many).values():
        copies = [data.asnumpy() for data in param.list_data()]
        for copy in copies[1:]:
            np.testing.assert_allclose(copy, copies[0], rtol=1e-6)


# one device updates from the batch network's table, several from rows gathered anew
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("num_devices", [2, 3])
def test_several_devices_agree_with_one(num_devices, optimizer):
    batch = _batch(np.random.default_rng(3), size=24)
    one, many = _net([mx.cpu(0)]), _net([mx.cpu(i) for i in range(num_devices)])
    set_weights(many, get_weights(one))
    lr = 0.5 if optimizer == "sgd" else 0.05
    _step(one, batch, [mx.cpu(0)], sparse=True, epochs=3, lr=lr, optimizer=optimizer)
    _step(many, batch, [mx.cpu(i) for i in range(num_devices)], sparse=True, epochs=3, lr=lr,
          optimizer=optimizer)
    _assert_trained_alike(many, one)


def _grouped_step(net, batch, devices, sparse: bool, lr=0.5):
    """One SGD step over a grouped batch ``(users, items, negatives (rows, k))``."""
    tables = net.tables()
    params = [p for name, p in parameters(net).items() if not sparse or name not in tables]
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": lr, "wd": 0.0})
    batches = SparseBatches(net, devices, batch[2].size, "sgd", lr, 0.0,
                            group=batch[2].shape[1]) if sparse else None
    loader = [batch] if sparse else [tuple(mx.np.array(c, dtype="int32") for c in batch)]
    fit_epochs(net, loader, BPRLoss(), trainer, devices, num_epochs=1,
               sparse=batches)


@pytest.mark.parametrize("num_devices", [1, 2])
def test_a_grouped_batch_trains_as_its_triplets_do(num_devices):
    # each positive scored once beside its k negatives: the step of the same
    # rows * k triplets given flat, dense or row-sparse, on one device or two
    devices = [mx.cpu(i) for i in range(num_devices)]
    rng = np.random.default_rng(5)
    users, items = rng.integers(0, 30, 10), rng.integers(0, 50, 10)
    negatives = rng.integers(0, 50, (10, 3))
    flat = (np.repeat(users, 3), np.repeat(items, 3), negatives.reshape(-1))
    reference = _net([mx.cpu(0)])
    _step(reference, flat, [mx.cpu(0)], sparse=False)
    expected = get_weights(reference)
    for sparse in (False, True):
        net = _net(devices)
        _grouped_step(net, (users, items, negatives), devices, sparse=sparse)
        for name, value in get_weights(net).items():
            np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-6,
                                       err_msg=f"{name} sparse={sparse}")


@pytest.fixture(scope="module")
def frame():
    return synthetic(150, 120, 3000, seed=4, num_groups=5, affinity=0.9)


SETTINGS = {"seed": 0, "batch_size": 128, "k": 10, "ks": (10,), "verbose": False,
            "num_factors": 8, "nums_hiddens": (8,), "sparse": True}


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sparse_fit_learns_and_resumes_exactly(frame, tmp_path):
    whole = fit(dataset=frame, num_epochs=4, out=tmp_path / "whole", **SETTINGS)
    popularity = fit(dataset=frame, model="popularity", **SETTINGS)
    assert whole.metrics["auc"] > popularity.metrics["auc"] + 0.1  # taste groups found
    fit(dataset=frame, num_epochs=2, out=tmp_path / "half", **SETTINGS)
    resumed = fit(resume=tmp_path / "half", num_epochs=4, verbose=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    users = np.arange(whole.num_users)
    np.testing.assert_array_equal(resumed.net.score_matrix(users),
                                  whole.net.score_matrix(users))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_checkpoint_taken_while_the_next_epoch_is_drawn_resumes_exactly(
        frame, tmp_path, monkeypatch):
    # each epoch's negatives are drawn during the epoch before: the checkpoint
    # after epoch 2 (epoch 3 drawn by then) keeps the generator as it was before
    original = Checkpoint.on_epoch_end

    def keep_a_copy(self, stats):
        original(self, stats)
        if stats["epoch"] == 2:
            shutil.copytree(self.out, tmp_path / "after-2")
    monkeypatch.setattr(Checkpoint, "on_epoch_end", keep_a_copy)
    whole = fit(dataset=frame, num_epochs=4, out=tmp_path / "whole", **SETTINGS)
    resumed = fit(resume=tmp_path / "after-2", num_epochs=4, verbose=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    users = np.arange(whole.num_users)
    np.testing.assert_array_equal(resumed.net.score_matrix(users),
                                  whole.net.score_matrix(users))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_grouped_negatives_learn_and_resume_exactly(frame, tmp_path):
    settings = {**SETTINGS, "num_negatives": 3, "loss": "log", "group_negatives": True}
    whole = fit(dataset=frame, num_epochs=3, out=tmp_path / "whole", **settings)
    assert whole.history[-1]["loss"] < whole.history[0]["loss"]
    flat = fit(dataset=frame, num_epochs=1, **{**settings, "group_negatives": False})
    assert flat.history[0]["loss"] != whole.history[0]["loss"]  # other batches: grouping is on
    fit(dataset=frame, num_epochs=1, out=tmp_path / "half", **settings)
    resumed = fit(resume=tmp_path / "half", num_epochs=3, verbose=False)
    assert resumed.config.group_negatives
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    with pytest.raises(ValueError, match="group_negatives"):
        fit(resume=tmp_path / "half", num_epochs=3, group_negatives=False, verbose=False)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_default_is_dense_below_the_measured_size(frame):
    result = fit(dataset=frame, num_epochs=1, **{**SETTINGS, "sparse": None})
    assert result.state.sparse is None
    assert fit(dataset=frame, num_epochs=1, **SETTINGS).state.sparse is not None
    with pytest.raises(ValueError, match="sparse training supports the optimizers"):
        fit(dataset=frame, num_epochs=1, optimizer="rmsprop", **SETTINGS)


def test_cli_switch_reaches_fit():
    parser = build_parser(track_given=True)
    assert vars(parser.parse_args(["train", "--sparse"]))["sparse"] is True
    assert vars(parser.parse_args(["train", "--dense"]))["sparse"] is False
    assert "sparse" not in vars(parser.parse_args(["train"]))
    assert vars(parser.parse_args(["train", "--group-negatives"]))["group_negatives"] is True
    devices = vars(parser.parse_args(["train", "--devices", "cpu:0,cpu:1"]))["devices"]
    assert devices == "cpu:0,cpu:1"


@NO_EPOCHS
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_dist_sync_workers_ship_rows_and_agree(frame, tmp_path):
    # with validation: the best epoch's weights are restored under a distributed kvstore
    frame.to_csv(tmp_path / "syn.csv", index=False)
    command = [sys.executable, "-m", "neumf", "launch", "-n", "2", "-s", "1", "--timeout",
               "150", "--", "neumf", "train", "--dataset", "csv", "--data-dir", str(tmp_path),
               "--name", "syn.csv", "--kvstore", "dist_sync", "--sparse", "--num-epochs", "4",
               "--seed", "0", "--wd", "0", "--lr", "0.05", "--batch-size", "128", "--k", "10",
               "--ks", "10", "--validation", "--quiet", "--out", str(tmp_path / "run")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    workers = [load_model(tmp_path / "run" / f"worker-{rank}") for rank in (0, 1)]
    first, second = (get_weights(worker.net) for worker in workers)
    for name, value in first.items():
        np.testing.assert_allclose(second[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    popularity = fit(dataset=frame, model="popularity", **SETTINGS)
    assert workers[0].metrics["auc"] > popularity.metrics["auc"] + 0.1


@pytest.mark.parametrize("devices", [[mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]])
def test_touched_counts_the_distinct_rows_of_each_planned_batch(devices):
    rng = np.random.default_rng(3)
    batches = [_batch(rng, size) for size in (16, 16, 7)]
    planner = SparseBatches(_net(devices), devices, 16, "sgd", 0.1, 0.0)
    planner.plan(batches)
    shards = [[slice(0, 8), slice(8, None)] if len(devices) == 2 else [slice(None)]
              for _ in batches]
    shards[-1] = [slice(0, 3), slice(3, None)] if len(devices) == 2 else [slice(None)]
    expected = {"user": [], "item": []}
    for (users, positives, negatives), parts in zip(batches, shards):
        expected["user"].append(sum(len(set(users[p])) for p in parts))
        expected["item"].append(sum(len(set(positives[p]) | set(negatives[p])) for p in parts))
    assert planner.touched() == pytest.approx({kind: np.mean(counts)
                                               for kind, counts in expected.items()})


def test_a_new_epochs_plan_is_built_after_the_last_one_is_let_go(monkeypatch):
    # two epochs' plans alive at once cost 0.9 GiB of peak memory at 20M interactions
    rng = np.random.default_rng(4)
    planner = SparseBatches(_net([mx.cpu()]), [mx.cpu()], 16, "sgd", 0.1, 0.0)
    planner.plan([_batch(rng) for _ in range(3)])
    held = []
    original = neumf.sparse._plan_chunk

    def plan_chunk(*args, **kwargs):
        held.append(len(planner._plan))
        return original(*args, **kwargs)

    monkeypatch.setattr(neumf.sparse, "_plan_chunk", plan_chunk)
    planner.plan([_batch(rng) for _ in range(3)])
    assert held and set(held) == {0}
    assert planner.touched()["user"] > 0  # the new plan is in place


def _plan_batch_by_batch(batches, counts, capacity, spare):
    """The plan as first written, one np.unique per shard: the oracle (padded
    with the ``spare`` row of each kind)."""
    rows = {kind: np.full((len(batches), counts, size), spare[kind], dtype=np.int64)
            for kind, size in capacity.items()}
    sizes = {kind: np.zeros((len(batches), counts), dtype=np.int64) for kind in rows}
    local = []
    for number, (users, *items) in enumerate(batches):
        step = max(1, len(users) // counts)
        bounds = [min(len(users), index * step) for index in range(counts)] + [len(users)]
        parts = [slice(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
        for device, part in enumerate(parts):
            found = {"user": np.unique(users[part], return_inverse=True),
                     "item": np.unique(np.concatenate([c[part].ravel() for c in items]),
                                       return_inverse=True)}
            for kind, (unique, _) in found.items():
                rows[kind][number, device, :len(unique)] = unique
                sizes[kind][number, device] = len(unique)
            ends = np.cumsum([c[part].size for c in items])[:-1]
            local.append([found["user"][1], *[ids.reshape(c[part].shape) for ids, c in
                                              zip(np.split(found["item"][1], ends), items)]])
    columns = [np.concatenate([shard[column] for shard in local])
               for column in range(len(local[0]))]
    return rows, sizes, columns, np.cumsum([0] + [len(shard[0]) for shard in local])


@pytest.mark.parametrize("counted", [False, True])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("num_devices", [1, 3])
def test_the_epochs_plan_equals_one_unique_per_shard(monkeypatch, grouped, num_devices,
                                                      counted):
    monkeypatch.setattr("neumf.sparse._PLAN_BATCHES", 2)  # several chunks, one uneven
    monkeypatch.setattr("neumf.sparse._COUNTED_KEYS", 1 << 20 if counted else 0)
    rng = np.random.default_rng(5)
    sizes_of_batches = (16, 16, 16, 16, 7)
    if grouped:
        # a grouped batch of 16 triplets: 4 positives beside 4 negatives each
        batches = [(rng.integers(0, 30, n // 4), rng.integers(0, 50, n // 4),
                    rng.integers(0, 50, (n // 4, 4))) for n in sizes_of_batches]
    else:
        batches = [_batch(rng, n) for n in sizes_of_batches]
    devices = [mx.cpu(index) for index in range(num_devices)]
    planner = SparseBatches(_net(devices), devices, 16, "sgd", 0.1, 0.0,
                            group=4 if grouped else 1)
    planner.plan(batches)
    rows, sizes, columns, offsets = _plan_batch_by_batch(batches, num_devices,
                                                         planner.capacity, planner.spare)
    plan = planner._plan
    assert planner.spare == {"user": 30, "item": 50}  # the row past each table's last
    for kind in rows:
        width = planner._rows[kind]  # the epoch's largest shard, in steps of 128 rows
        assert sizes[kind].max() < width <= planner.capacity[kind]
        rows[kind] = rows[kind][:, :, :width]
        np.testing.assert_array_equal(plan["rows"][kind], rows[kind])
        np.testing.assert_array_equal(plan["sizes"][kind], sizes[kind])
        np.testing.assert_array_equal(plan["index"][kind].asnumpy(), rows[kind])
    np.testing.assert_array_equal(plan["offsets"], offsets)
    if planner.fused:  # one device: each batch's pairs stacked as the graph scores them
        users, items = (column.asnumpy() for column in plan["stacked"])
        for number, (start, stop) in enumerate(zip(offsets, offsets[1:])):
            local_users, positives, negatives = (column[start:stop] for column in columns)
            if grouped:
                expected = (np.repeat(local_users, 5), np.concatenate(
                    [positives.reshape(-1, 1), negatives], axis=1).reshape(-1))
            else:
                expected = (np.concatenate([local_users, local_users]),
                            np.concatenate([positives, negatives]))
            first, last = plan["stacked_offsets"][number:number + 2]
            np.testing.assert_array_equal(users[first:last], expected[0])
            np.testing.assert_array_equal(items[first:last], expected[1])
        return
    for device in devices:
        assert len(plan["local"][device]) == len(columns)
        for got, expected in zip(plan["local"][device], columns):
            np.testing.assert_array_equal(got.asnumpy(), expected)


# a batch of fewer rows than devices has fewer shards; a batch that does not
# split evenly gives the last device the remainder (split_data's rule)
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("num_devices, sizes", [(3, (2, 2, 1)), (4, (7, 7, 5)), (2, (5, 1))])
def test_small_and_uneven_batches_on_several_devices_train_as_one_dense_device(num_devices,
                                                                               sizes, sparse):
    rng = np.random.default_rng(6)
    batches = [_batch(rng, size) for size in sizes]
    devices = [mx.cpu(index) for index in range(num_devices)]
    dense, many = _net([mx.cpu(0)]), _net(devices)
    set_weights(many, get_weights(dense))
    trainer = gluon.Trainer(list(parameters(dense).values()), "sgd", {"learning_rate": 0.5})
    fit_epochs(dense, [tuple(mx.np.array(c, dtype="int32") for c in batch) for batch in batches],
               BPRLoss(), trainer, [mx.cpu(0)], num_epochs=2)
    tables = many.tables() if sparse else {}
    trainer = gluon.Trainer([p for name, p in parameters(many).items() if name not in tables],
                            "sgd", {"learning_rate": 0.5})
    fit_epochs(many, batches if sparse else [
                   tuple(mx.np.array(c, dtype="int32") for c in batch) for batch in batches],
               BPRLoss(), trainer, devices, num_epochs=2,
               sparse=SparseBatches(many, devices, sizes[0], "sgd", 0.5, 0.0) if sparse else None)
    _assert_trained_alike(many, dense)


def test_the_twin_and_the_fits_loss_run_as_one_graph_a_batch(monkeypatch, frame):
    """The batch network and the loss fit() trains with are hybridized: their Python
    forward is traced once per input shape, not run per batch (it was:
    benchmarks/QUALITY.md)."""
    from neumf.losses import PointwiseLogLoss
    calls = {}
    for cls in (NeuMF, PointwiseLogLoss):
        def counted(self, *args, _original=cls.hybrid_forward, **kwargs):
            calls[id(self)] = calls.get(id(self), 0) + 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "hybrid_forward", counted)
    planned = []
    original_plan = SparseBatches.plan

    def plan(self, *args, **kwargs):
        original_plan(self, *args, **kwargs)
        planned.append((id(self.net), len(self._plan["bounds"])))
    monkeypatch.setattr(SparseBatches, "plan", plan)
    fit(dataset=frame, model="neumf", loss="log", num_epochs=2, **{**SETTINGS, "batch_size": 64})
    network = planned[0][0]
    assert sum(size for _, size in planned) > 10  # batches trained
    # the first batch's shape, and the last, smaller batch's
    assert 1 <= calls[network] <= 2
    assert len(calls) >= 2 and max(calls.values()) <= 2  # the loss too


class _Passes:
    """A loader whose passes (epochs) are given batch lists, one after the other."""

    def __init__(self, *passes):
        self.passes, self.count = passes, 0

    def __iter__(self):
        self.count += 1
        return iter(self.passes[self.count - 1])


def test_an_epoch_of_larger_batches_grows_the_batch_tables_and_trains_as_dense():
    rng = np.random.default_rng(8)
    small = [(rng.integers(0, 300, 6), rng.integers(0, 500, 6), rng.integers(0, 500, 6))]
    large = [(rng.integers(0, 300, 200), rng.integers(0, 500, 200),
              rng.integers(0, 500, 200))]
    nets = []
    for _ in range(2):
        mx.random.seed(0)
        net = NeuMF(4, 300, 500, [6, 3])
        with mx.util.np_shape(True), mx.util.np_array(True):
            net.initialize(mx.init.Normal(0.3), ctx=[mx.cpu()])
        net.hybridize()
        nets.append(net)
    dense, sparse = nets
    trainer = gluon.Trainer(list(parameters(dense).values()), "sgd", {"learning_rate": 0.5})
    fit_epochs(dense, _Passes(*[[tuple(mx.np.array(c, dtype="int32") for c in batch)
                                 for batch in batches] for batches in (small, large)]),
               BPRLoss(), trainer, [mx.cpu()], num_epochs=2)
    tables = sparse.tables()
    trainer = gluon.Trainer([p for name, p in parameters(sparse).items() if name not in tables],
                            "sgd", {"learning_rate": 0.5})
    batches = SparseBatches(sparse, [mx.cpu()], 200, "sgd", 0.5, 0.0)
    sizes = []
    original = batches._make_batch_network

    def make_batch_network(rows):
        sizes.append(dict(rows))
        original(rows)
    batches._make_batch_network = make_batch_network
    fit_epochs(sparse, _Passes(small, large), BPRLoss(), trainer, [mx.cpu()], num_epochs=2,
               sparse=batches)
    # in steps of 128 rows, at most the batch (200 users) and a spare row
    assert sizes == [{"user": 128, "item": 128}, {"user": 201, "item": 384}]
    _assert_trained_alike(sparse, dense)
