"""Row-sparse training of the embedding tables: a batch costs what the rows it
touches cost, not what the catalogue holds.

Gluon's dense embedding gradients and optimizer updates touch every row of
P, Q, U, V each batch, and MXNet's row-sparse gradients are not available for
NumPy-mode blocks. So each batch's rows are copied into the *slots* of a small
twin network (same kind, embedding tables of batch size, dense layers shared
with the real network), the twin runs forward and backward, and only those
rows of the real tables are updated, with the arithmetic of MXNet's row-sparse
(lazy) Adam or SGD: rows a batch does not touch keep their weights and
optimizer state, and weight decay applies to the rows touched. Adam's bias
correction counts the table's updates (as MXNet's lazy Adam does).
"""

from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import gluon

from ._gluon import parameters
from ._util import check_number

__all__ = ["SPARSE_OPTIMIZERS", "LazyTables", "SparseBatches"]

SPARSE_OPTIMIZERS = ("adam", "sgd")
# The kvstore keys of the tables start here (the Trainer's are 0, 1, ...).
_TABLE_KEYS = 1 << 20
# MXNet's Adam defaults, as the dense Trainer uses them
_ADAM = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
# Batches planned per sort (see SparseBatches.plan)
_PLAN_BATCHES = 256
# Key spaces up to this size are made unique by counting, larger ones by sorting
_COUNTED_KEYS = 1 << 22


class LazyTables:
    """Row-sparse updates of named tables (legacy NDArrays, updated in place):
    Adam with per-table bias correction, or plain SGD, bit for bit as MXNet's
    sparse operators with ``lazy_update=True`` compute them. The rows (and
    their Adam state) are gathered, updated by the dense operator and
    scattered back: building a row-sparse gradient waits for the backward
    pass, these operators queue without waiting (benchmarks/QUALITY.md)."""

    def __init__(self, tables: Dict[str, mx.nd.NDArray], optimizer: str, lr: float,
                 wd: float):
        if optimizer not in SPARSE_OPTIMIZERS:
            raise ValueError(f"sparse training supports the optimizers {SPARSE_OPTIMIZERS}; "
                             f"got {optimizer!r} (train dense, sparse=False / --dense)")
        self.tables, self.optimizer, self.lr, self.wd = tables, optimizer, lr, wd
        self.counts = dict.fromkeys(tables, 0)
        # read once: NDArray.shape is a C call, and every scatter needs it
        self._shapes = {name: table.shape for name, table in tables.items()}
        self.states = {name: (mx.nd.zeros(table.shape, ctx=table.context),
                              mx.nd.zeros(table.shape, ctx=table.context))
                       for name, table in tables.items()} if optimizer == "adam" else {}

    def update(self, name: str, rows: mx.nd.NDArray, grad: mx.nd.NDArray,
               rescale: float, gathered: mx.nd.NDArray | None = None,
               index: mx.nd.NDArray | None = None) -> None:
        """Update the ``rows`` (sorted, unique, int64) of table ``name`` with
        their gradient rows ``grad``; ``gathered``: those rows' current values
        if already copied out (the twin's slot, in one process on one device),
        updated in place before they are scattered back; ``index``: ``rows``
        as shape (1, n), if already made (tables of a kind share their rows)."""
        table, shape = self.tables[name], self._shapes[name]
        self.counts[name] += 1
        index = rows.reshape((1, -1)) if index is None else index
        weight = mx.nd.take(table, rows) if gathered is None else gathered
        if self.optimizer == "sgd":
            mx.nd.sgd_update(weight, grad, lr=self.lr, wd=self.wd, rescale_grad=rescale,
                             out=weight)
            _scatter(table, weight, index, shape)
            return
        step = self.counts[name]
        lr = self.lr * math.sqrt(1 - _ADAM["beta2"] ** step) / (1 - _ADAM["beta1"] ** step)
        mean, var = self.states[name]
        rows_mean, rows_var = mx.nd.take(mean, rows), mx.nd.take(var, rows)
        mx.nd.adam_update(weight, grad, rows_mean, rows_var, lr=lr, wd=self.wd,
                          rescale_grad=rescale, out=weight, **_ADAM)
        for full, part in ((table, weight), (mean, rows_mean), (var, rows_var)):
            _scatter(full, part, index, shape)

    def state(self) -> Tuple[Dict[str, mx.nd.NDArray], Dict]:
        """Arrays (``sparse:<table>.<j>``) and JSON-ready counts, for a checkpoint."""
        arrays = {f"sparse:{name}.{j}": part.as_in_context(mx.cpu())
                  for name, parts in self.states.items() for j, part in enumerate(parts)}
        return arrays, {"optimizer": self.optimizer, "counts": dict(self.counts)}

    def restore(self, arrays: Dict[str, mx.nd.NDArray], meta: Dict) -> None:
        """Take back what :meth:`state` saved."""
        self.counts = {name: int(meta["counts"][name]) for name in self.tables}
        for name, parts in self.states.items():
            for j, part in enumerate(parts):
                part[:] = arrays[f"sparse:{name}.{j}"].as_in_context(part.context)


def _scatter(full: mx.nd.NDArray, part: mx.nd.NDArray, index: mx.nd.NDArray,
             shape: Tuple[int, ...]) -> None:
    """``full[index] = part`` in place (``full`` of ``shape``), queued on
    MXNet's engine (no wait)."""
    # the operator NDArray.__setitem__ ends in, without the casts and stacking
    # of its index handling (MXNet is pinned at 1.9.1, its last release)
    mx.nd._internal._scatter_set_nd(lhs=full, rhs=part, indices=index, out=full, shape=shape)


def _plan_chunk(batches: Sequence[Sequence[np.ndarray]], bounds: List[List[slice]],
                rows: Dict[str, np.ndarray], sizes: Dict[str, np.ndarray]) -> List[np.ndarray]:
    """Fill ``rows`` and ``sizes`` (views of the epoch's, these batches' part)
    and return the local ids of each column of these batches, concatenated."""
    # each shard's batch and device, and each row's shard (shards are contiguous)
    where = np.array([(number, device) for number, parts in enumerate(bounds)
                      for device in range(len(parts))], dtype=np.int64).reshape(-1, 2)
    lengths = _shard_lengths(bounds)
    shard_of_row = np.repeat(np.arange(len(lengths)), lengths)
    columns = [np.concatenate([np.asarray(batch[column], dtype=np.int64) for batch in batches])
               for column in range(len(batches[0]))]
    return (_unique_by_shard(columns[:1], shard_of_row, where, rows["user"], sizes["user"])
            + _unique_by_shard(columns[1:], shard_of_row, where, rows["item"], sizes["item"]))


def _unique_by_shard(values: List[np.ndarray], shard_of_row: np.ndarray, where: np.ndarray,
                     rows: np.ndarray, sizes: np.ndarray) -> List[np.ndarray]:
    """``np.unique(..., return_inverse=True)`` of each shard's ids (all of
    ``values``' at its rows), for all shards at once: the distinct ids, sorted,
    into ``rows[batch, device]``, their count into ``sizes``; returns each
    id's index among its shard's distinct ids, in ``values``' shapes."""
    span = 1 + max(int(column.max()) for column in values)
    # (shard, id) as one key: one sort groups by shard and orders the ids within
    keys = np.concatenate([
        (shard_of_row.reshape((-1,) + (1,) * (column.ndim - 1)) * span + column).ravel()
        for column in values])
    unique, inverse = _unique(keys, len(where) * span)
    shard = unique // span
    first = np.searchsorted(shard, np.arange(len(where)))
    rows[where[shard, 0], where[shard, 1], np.arange(len(unique)) - first[shard]] = \
        unique % span
    sizes[where[:, 0], where[:, 1]] = np.bincount(shard, minlength=len(where))
    ids = inverse.reshape(-1) - first[keys // span]
    ends = np.cumsum([column.size for column in values])[:-1]
    return [part.reshape(column.shape) for part, column in zip(np.split(ids, ends), values)]


def _unique(keys: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for keys in ``[0, size)``: by
    counting where the key space is small (linear, no sort), else by sorting."""
    if size > _COUNTED_KEYS:
        return np.unique(keys, return_inverse=True)
    present = np.bincount(keys, minlength=size) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[keys]


def _shard_lengths(bounds: List[List[slice]]) -> List[int]:
    """Rows of each shard of each batch, in order."""
    return [part.stop - part.start for parts in bounds for part in parts]


def _largest_shard(size: int, count: int) -> int:
    """Rows of the largest of the shards :func:`_slices` makes of ``size`` rows."""
    return max(part.stop - part.start for part in _slices(size, count))


def _slices(size: int, count: int) -> List[slice]:
    """The shards ``gluon.utils.split_data(even_split=False)`` makes."""
    step = max(1, size // count)
    bounds = [min(size, index * step) for index in range(count)] + [size]
    return [slice(bounds[index], bounds[index + 1]) for index in range(count)
            if bounds[index + 1] > bounds[index]]


class SparseBatches:
    """Row-sparse batches for ``net`` (a NeuMF, GMF or MLP block, initialised on
    ``devices``), its tables local or (``kvstore``, distributed) on the
    parameter servers. :meth:`plan` prepares an epoch's batches at once (each
    shard's rows and local ids, copied to MXNet once: per-batch copies would
    wait for the engine); :meth:`shards` copies batch ``n``'s rows into the
    twin's slots and returns its shards with local ids; :meth:`step` updates
    those rows of the real tables after the twin's backward pass; :meth:`sync`
    copies the tables to every device before the real network is used.
    ``batch_size`` bounds the slots: a shard has at most that many users and
    twice as many items, or, in grouped batches of ``group`` negatives per
    positive, ``max(1, batch_size // group) * (group + 1)`` items."""

    def __init__(self, net: gluon.Block, devices: Sequence[mx.Context], batch_size: int,
                 optimizer: str, lr: float, wd: float, kvstore=None,
                 set_optimizer: bool = False, group: int = 1):
        self.devices = list(devices)
        self.kinds = net.tables()  # {"P.weight": "user", ...}
        # the largest shard split_data makes (the last takes the remainder)
        capacity = _largest_shard(batch_size, len(self.devices)) + 1
        rows = _largest_shard(max(1, batch_size // group), len(self.devices)) + 1
        self.capacity = {"user": capacity, "item": max(2 * capacity, rows * (group + 1))}
        self.net = net.twin(capacity, self.capacity["item"])
        # one graph call a batch instead of an operator call per layer and table
        # (an ML-1M NeuMF epoch 10 % faster, benchmarks/QUALITY.md)
        self.net.hybridize(static_alloc=True)
        own = parameters(net)
        self.slots = {name: param for name, param in parameters(self.net).items()
                      if name in self.kinds}
        with mx.util.np_shape(True), mx.util.np_array(True):  # the blocks' array mode
            for param in self.slots.values():
                param.initialize(mx.init.Zero(), ctx=self.devices)
        self._full = {name: own[name] for name in self.kinds}
        # legacy views of each slot's data and gradient on each device (shared memory)
        self._views = {name: {device: (param.data(device).as_nd_ndarray(),
                                       param.grad(device).as_nd_ndarray())
                              for device in self.devices}
                       for name, param in self.slots.items()}
        tables = {name: param.data(self.devices[0]).as_nd_ndarray()
                  for name, param in self._full.items()}
        self.lazy = LazyTables(tables, optimizer, lr, wd)
        self._plan: Dict = {}
        self.remote = None if kvstore is None else _RemoteTables(
            kvstore, tables, optimizer, lr, wd, batch_size, set_optimizer)

    def plan(self, batches: Sequence[Sequence[np.ndarray]]) -> None:
        """Rows and local ids of every shard of every batch of an epoch, a few
        hundred batches at a time (one sort per kind each, no loop per batch;
        the chunks bound the sorts' memory)."""
        self._plan = {}  # the last epoch's plan goes before this one is built (peak memory)
        master, counts = self.devices[0], len(self.devices)
        bounds = [_slices(len(batch[0]), counts) for batch in batches]
        rows = {kind: np.zeros((len(batches), counts, size), dtype=np.int64)
                for kind, size in self.capacity.items()}
        sizes = {kind: np.zeros((len(batches), counts), dtype=np.int64) for kind in rows}
        chunks = []
        for first in range(0, len(batches), _PLAN_BATCHES):
            chunk = slice(first, first + _PLAN_BATCHES)
            chunks.append(_plan_chunk(batches[chunk], bounds[chunk],
                                      {kind: value[chunk] for kind, value in rows.items()},
                                      {kind: value[chunk] for kind, value in sizes.items()}))
        columns = [np.concatenate(parts) for parts in zip(*chunks)]
        lengths = _shard_lengths(bounds)
        self._plan = {
            "rows": rows, "sizes": sizes, "bounds": bounds,
            "index": {kind: mx.nd.array(value, dtype=np.int64, ctx=master)
                      for kind, value in rows.items()},
            "local": {device: [mx.np.array(column, dtype=np.int32, ctx=device)
                               for column in columns] for device in self.devices},
            "offsets": np.cumsum([0] + lengths, dtype=np.int64),
            "first": np.cumsum([0] + [len(parts) for parts in bounds], dtype=np.int64)}

    def touched(self) -> Dict[str, float]:
        """Mean distinct rows per batch of the planned epoch, by kind
        (``{"user": ..., "item": ...}``, summed over devices): what a batch costs."""
        sizes = self._plan.get("sizes", {})
        return {kind: float(value.sum(axis=1).mean()) if value.size else 0.0
                for kind, value in sizes.items()}

    def shards(self, number: int) -> List[Tuple[mx.np.ndarray, ...]]:
        """Batch ``number`` of the planned epoch: its rows into the slots, and
        its shards as local ids on their devices."""
        plan, out = self._plan, []
        for device_number, device in enumerate(self.devices[:len(plan["bounds"][number])]):
            # each kind's rows once (indexing an NDArray is a C call and an object)
            indices = {kind: plan["index"][kind][number][device_number]
                       for kind in self.capacity}
            for name, kind in self.kinds.items():
                index = indices[kind]
                slot = self._views[name][device][0]
                if self.remote is not None:  # the rows from the parameter servers
                    size = int(plan["sizes"][kind][number, device_number])
                    slot[:size] = self.remote.pull(name, index[:size]).as_in_context(device)
                elif device == self.devices[0]:
                    mx.nd.take(self.lazy.tables[name], index, out=slot)
                else:
                    mx.nd.take(self.lazy.tables[name], index).copyto(slot)
            shard = plan["first"][number] + device_number  # a small batch has fewer shards
            start, stop = plan["offsets"][shard], plan["offsets"][shard + 1]
            out.append(tuple(column[start:stop] for column in plan["local"][device]))
        return out

    def step(self, number: int, batch_size: int) -> None:
        """Apply the slots' gradients to the rows they stand for, summed over
        devices, scaled by ``1 / batch_size`` as the Trainer scales its own."""
        plan, master = self._plan, self.devices[0]
        used = self.devices[:len(plan["bounds"][number])]
        shared = {}  # a kind's rows, made once for its tables
        for name, kind in self.kinds.items():
            sizes, gathered, index = plan["sizes"][kind][number], None, None
            if len(used) == 1:
                size = int(sizes[0])
                if kind not in shared:
                    rows = plan["index"][kind][number][0][:size]
                    shared[kind] = (rows, rows.reshape((1, -1)))
                rows, index = shared[kind]
                # the slot still holds the rows' values (the twin only read them)
                gathered, grad = (view[:size] for view in self._views[name][master])
            else:  # the same row from several devices: one summed row
                rows, grad = _merge(
                    [plan["rows"][kind][number, d, :sizes[d]] for d in range(len(used))],
                    [self._views[name][device][1][:int(sizes[d])]
                     for d, device in enumerate(used)], master)
            if self.remote is not None:
                self.remote.push(name, rows, grad)
            else:
                self.lazy.update(name, rows, grad, 1.0 / batch_size, gathered, index)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the tables' next step."""
        return float(self.lazy.lr)

    def set_learning_rate(self, lr: float) -> None:
        """The learning rate of the following steps (one process only: the
        parameter servers keep the rate they were given)."""
        if self.remote is not None:
            raise RuntimeError("kvstore: the parameter servers keep the learning rate they "
                               "were given")
        self.lazy.lr = check_number("lr", lr, positive=True)

    def sync(self) -> None:
        """Copy the updated tables (from the servers, when distributed) to the real
        network on every device."""
        if self.remote is not None:
            self.remote.pull_all()
        for param in self._full.values():
            master = param.data(self.devices[0])
            for device in self.devices[1:]:
                param.data(device)[:] = master.as_in_ctx(device)


class _RemoteTables:
    """The tables on MXNet's parameter servers: workers push row-sparse
    gradients and pull only the rows of their next batch; the servers' lazy
    optimizer updates the rows pushed. Counts the bytes each way."""

    def __init__(self, kvstore, tables: Dict[str, mx.nd.NDArray], optimizer: str, lr: float,
                 wd: float, batch_size: int, set_optimizer: bool):
        self.kv, self.tables = kvstore, tables
        # integer keys, as the Trainer's (a kvstore refuses mixed key types), far past its
        self.keys = {name: _TABLE_KEYS + index for index, name in enumerate(tables)}
        for name, key in self.keys.items():
            self.kv.init(key, tables[name].tostype("row_sparse"))
        self._out = {name: mx.nd.sparse.zeros("row_sparse", table.shape, ctx=table.context)
                     for name, table in tables.items()}
        if set_optimizer:  # else the Trainer sets the same optimizer at its first step
            self.kv.set_optimizer(mx.optimizer.create(optimizer, learning_rate=lr, wd=wd,
                                                      rescale_grad=1.0 / batch_size))
        self.traffic = {"pushed": 0, "pulled": 0}

    def pull(self, name: str, rows: mx.nd.NDArray) -> mx.nd.NDArray:
        """The current values of ``rows`` (sorted, unique) of table ``name``."""
        out = self._out[name]
        self.kv.row_sparse_pull(self.keys[name], out=out, row_ids=rows)
        values = out.data
        self.traffic["pulled"] += values.size * 4 + rows.size * 8
        return values

    def push(self, name: str, rows: mx.nd.NDArray, grad: mx.nd.NDArray) -> None:
        table = self.tables[name]
        self.kv.push(self.keys[name], mx.nd.sparse.row_sparse_array((grad, rows),
                                                                   shape=table.shape))
        self.traffic["pushed"] += grad.size * 4 + rows.size * 8

    def pull_all(self) -> None:
        """Every row of every table into the local tables (before evaluation)."""
        for name, table in self.tables.items():
            table[:] = self.pull(name, mx.nd.arange(table.shape[0], dtype=np.int64))


def _merge(rows: List[np.ndarray], grads: List[mx.nd.NDArray], device: mx.Context):
    """Rows and gradient rows of several devices as one sorted, unique set."""
    unique, inverse = np.unique(np.concatenate(rows), return_inverse=True)
    summed = np.zeros((len(unique), grads[0].shape[1]), dtype=np.float32)
    np.add.at(summed, inverse, np.concatenate([part.asnumpy() for part in grads]))
    return mx.nd.array(unique, dtype=np.int64, ctx=device), mx.nd.array(summed, ctx=device)
