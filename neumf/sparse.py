"""Row-sparse training of the embedding tables: a batch costs what the rows it
touches cost, not what the catalogue holds.

Gluon's dense embedding gradients and optimizer updates touch every row of
P, Q, U, V each batch, and MXNet's row-sparse gradients are not available for
NumPy-mode blocks. So each batch's rows are copied into a small *batch
network* (the same kind of block, with embedding tables of a batch's rows and
the dense layers of the real network), which runs forward and backward, and
only those rows of the real tables are updated, with the arithmetic of MXNet's row-sparse
(lazy) Adam or SGD: rows a batch does not touch keep their weights and
optimizer state, and weight decay applies to the rows touched. Adam's bias
correction counts the table's updates (as MXNet's lazy Adam does).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Tuple

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, use_np
from mxnet.gluon import nn

from ._gluon import parameters
from ._util import MEMORY_SHARE, available_memory, check_number

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
# The batch network's tables grow in steps of this many rows (a new size is traced again)
_ROWS_STEP = 128


class LazyTables:
    """Row-sparse updates of named tables: Adam with per-table bias correction,
    or plain SGD, bit for bit as MXNet's sparse operators with
    ``lazy_update=True`` compute them. During training a table lives in
    ``storage[name]``, shape (planes, rows + 1, width): its weights, then (Adam)
    its mean and variance, so that one ``take`` gathers a row's weight and state
    and one scatter writes them back; the extra last row is where padded rows
    of a batch read and write. :meth:`load` copies the network's ``tables``
    (legacy NDArrays) in, :meth:`store` copies the weights back out."""

    def __init__(self, tables: Dict[str, mx.nd.NDArray], optimizer: str, lr: float,
                 wd: float):
        if optimizer not in SPARSE_OPTIMIZERS:
            raise ValueError(f"sparse training supports the optimizers {SPARSE_OPTIMIZERS}; "
                             f"got {optimizer!r} (train dense, sparse=False / --dense)")
        self.tables, self.optimizer, self.lr, self.wd = tables, optimizer, lr, wd
        self.counts = dict.fromkeys(tables, 0)
        self.planes = 3 if optimizer == "adam" else 1
        self.storage = {name: mx.nd.zeros((self.planes, table.shape[0] + 1, table.shape[1]),
                                          ctx=table.context)
                        for name, table in tables.items()}
        # each storage as (planes * (rows + 1), width): what take and scatter index
        self.flat = {name: store.reshape((-1, store.shape[2]))
                     for name, store in self.storage.items()}
        self._offsets = {name: mx.nd.array(np.arange(self.planes).reshape(1, -1, 1)
                                           * store.shape[1], dtype=np.int64, ctx=store.context)
                         for name, store in self.storage.items()}
        self.load()

    @property
    def states(self) -> Dict[str, Tuple[mx.nd.NDArray, mx.nd.NDArray]]:
        """Adam's mean and variance of each table (views of the storage)."""
        if self.planes == 1:
            return {}
        return {name: tuple(store[plane][:-1] for plane in (1, 2))
                for name, store in self.storage.items()}

    def load(self) -> None:
        """The network's weights into the storage (before an epoch)."""
        for name, table in self.tables.items():
            self.storage[name][0][:-1] = table

    def store(self) -> None:
        """The trained weights back into the network's tables (after an epoch)."""
        for name, table in self.tables.items():
            table[:] = self.storage[name][0][:-1]

    def flat_index(self, name: str, rows: mx.nd.NDArray) -> mx.nd.NDArray:
        """Where ``rows`` (shape (1, 1, n)) of each plane of ``name`` sit in its flat
        storage: shape (1, planes, n), as the scatter takes them."""
        return mx.nd.broadcast_add(self._offsets[name], rows)

    def step_rate(self, name: str) -> float:
        """Count one more update of ``name``; the rate of that update (Adam's
        bias correction counts the table's updates, as MXNet's lazy Adam)."""
        self.counts[name] += 1
        if self.optimizer == "sgd":
            return self.lr
        step = self.counts[name]
        return self.lr * math.sqrt(1 - _ADAM["beta2"] ** step) / (1 - _ADAM["beta1"] ** step)

    def apply(self, name: str, planes: Sequence[mx.nd.NDArray], gathered: mx.nd.NDArray,
              grad: mx.nd.NDArray, rescale: float, index: mx.nd.NDArray) -> None:
        """Update ``gathered`` (shape (planes, n, width): rows' weight and state,
        taken at the flat ``index`` of shape (1, planes, n); ``planes``: its
        views ``gathered[j]``, made once) with ``grad`` (n, width), then write
        it back; queued on MXNet's engine, no wait."""
        lr = self.step_rate(name)
        weight = planes[0]
        if self.optimizer == "sgd":
            mx.nd.sgd_update(weight, grad, lr=lr, wd=self.wd, rescale_grad=rescale, out=weight)
        else:
            mx.nd.adam_update(weight, grad, planes[1], planes[2], lr=lr, wd=self.wd,
                              rescale_grad=rescale, out=weight, **_ADAM)
        store = self.flat[name]
        # the operator NDArray.__setitem__ ends in, without the casts and stacking of
        # its index handling (MXNet is pinned at 1.9.1, its last release)
        mx.nd._internal._scatter_set_nd(lhs=store, rhs=gathered, indices=index, out=store,
                                        shape=store.shape)

    def update(self, name: str, rows: mx.nd.NDArray, grad: mx.nd.NDArray,
               rescale: float) -> None:
        """Update the ``rows`` (sorted, unique, int64) of table ``name`` with their
        gradient rows ``grad``."""
        index = self.flat_index(name, rows.reshape((1, 1, -1)))
        gathered = mx.nd.take(self.flat[name], index[0])
        self.apply(name, [gathered[plane] for plane in range(self.planes)], gathered, grad,
                   rescale, index)

    def state(self) -> Tuple[Dict[str, mx.nd.NDArray], Dict]:
        """Arrays (``sparse:<table>.<j>``) and JSON-ready counts, for a checkpoint."""
        arrays = {f"sparse:{name}.{j}": part.copyto(mx.cpu())
                  for name, parts in self.states.items() for j, part in enumerate(parts)}
        return arrays, {"optimizer": self.optimizer, "counts": dict(self.counts)}

    def restore(self, arrays: Dict[str, mx.nd.NDArray], meta: Dict) -> None:
        """Take back what :meth:`state` saved."""
        self.counts = {name: int(meta["counts"][name]) for name in self.tables}
        for name, parts in self.states.items():
            for j, part in enumerate(parts):
                part[:] = arrays[f"sparse:{name}.{j}"].as_in_context(part.context)


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


@use_np
class _Triplets(nn.HybridBlock):
    """The batch network and the loss as one graph: a batch's stacked users and
    items (each positive's pair, then its negatives') to the batch's loss and
    scores."""

    def __init__(self, network: gluon.HybridBlock, loss: gluon.HybridBlock, group: int):
        super().__init__()
        self.network, self.loss, self.group = network, loss, group

    def hybrid_forward(self, F, users, items):
        scores = self.network(users, items)  # (rows, 1)
        if self.group > 1:  # each positive beside its negatives: (rows, 1 + k)
            positive, negative = F.np.split(scores.reshape(-1, self.group + 1), [1], axis=1)
        else:  # the positives' pairs, then the negatives'
            positive, negative = F.np.split(scores, 2, axis=0)
        return self.loss(positive, negative), scores


class SparseBatches:
    """Row-sparse batches for ``net`` (a NeuMF, GMF or MLP block, initialised on
    ``devices``), its tables local or (``kvstore``, distributed) on the
    parameter servers. :meth:`plan` prepares an epoch's batches at once (each
    shard's rows and local ids, copied to MXNet once: per-batch copies would
    wait for the engine). On one device with the tables here (``fused``),
    :meth:`losses` gathers batch ``n``'s rows, with their optimizer state, into
    the batch network's tables with one ``take`` per table and runs the batch
    network and the loss as one graph; else :meth:`shards` copies the rows
    into the batch network and returns the shards with local ids. :meth:`step`
    updates those rows of the tables after the backward pass; :meth:`sync`
    copies the tables to the network on every device before it is used. The
    batch network's tables hold the largest batch planned so far;
    ``batch_size`` bounds them: a shard has at most that many users and twice
    as many items, or, in grouped batches of ``group`` negatives per positive,
    ``max(1, batch_size // group) * (group + 1)`` items."""

    def __init__(self, net: gluon.Block, devices: Sequence[mx.Context], batch_size: int,
                 optimizer: str, lr: float, wd: float, kvstore=None,
                 set_optimizer: bool = False, group: int = 1):
        self.devices, self.group, self._owner = list(devices), group, net
        self.indexed_by = net.tables()  # {"P.weight": "user", ...}
        # the largest shard split_data makes (the last takes the remainder)
        capacity = _largest_shard(batch_size, len(self.devices)) + 1
        rows = _largest_shard(max(1, batch_size // group), len(self.devices)) + 1
        self.capacity = {"user": capacity, "item": max(2 * capacity, rows * (group + 1))}
        own = parameters(net)
        self._full = {name: own[name] for name in self.indexed_by}
        tables = {name: param.data(self.devices[0]).as_nd_ndarray()
                  for name, param in self._full.items()}
        # a batch's padded rows hold the row past each table's last
        self.spare = {self.indexed_by[name]: table.shape[0] for name, table in tables.items()}
        self.remote = None if kvstore is None else _RemoteTables(
            kvstore, tables, optimizer, lr, wd, batch_size, set_optimizer)
        self.lazy = LazyTables(tables, optimizer, lr, wd)
        self.fused = self.remote is None and len(self.devices) == 1
        self.net: gluon.HybridBlock | None = None  # the batch network (at the first plan)
        self._rows: Dict[str, int] = {}  # the rows of its user and item tables
        self.batch_tables: Dict[str, gluon.Parameter] = {}
        self._gathered: Dict[str, Tuple[mx.nd.NDArray, List[mx.nd.NDArray]]] = {}
        self._views: Dict = {}
        self._graphs: Dict[int, _Triplets] = {}
        self._plan: Dict = {}
        self._plan_bytes = 0
        # the batch's flat index, of users and of items: shape (1, planes, rows) and a
        # (planes, rows) view
        self._flat: Dict[str, Tuple[mx.nd.NDArray, mx.nd.NDArray] | None] = {}

    def _make_batch_network(self, rows: Dict[str, int]) -> None:
        """The batch network with ``rows`` rows of user and of item tables: its
        tables' data and gradients, and (``fused``) the buffers they read from."""
        self.net = self._owner.batch_network(rows["user"], rows["item"])
        self.net.hybridize(static_alloc=True)
        self.batch_tables = {name: param for name, param in parameters(self.net).items()
                             if name in self.indexed_by}
        with mx.util.np_shape(True), mx.util.np_array(True):  # the blocks' array mode
            for param in self.batch_tables.values():
                param.initialize(mx.init.Zero(), ctx=self.devices)
        self._gathered = self._read_from_buffers() if self.fused else {}
        # legacy views of each batch table's data and gradient on each device (shared memory)
        self._views = {name: {device: (param.data(device).as_nd_ndarray(),
                                       param.grad(device).as_nd_ndarray())
                              for device in self.devices}
                       for name, param in self.batch_tables.items()}
        self._graphs = {}

    def _read_from_buffers(self) -> Dict[str, Tuple[mx.nd.NDArray, List[mx.nd.NDArray]]]:
        """A buffer per table for a batch's rows, weight and state (planes,
        rows, width), and its planes' views, the first of which becomes the
        batch network's table: one ``take`` fills both, and the update writes
        the buffer back whole."""
        buffers = {}
        with mx.util.np_shape(True), mx.util.np_array(True):
            for name, param in self.batch_tables.items():
                table = param.data(self.devices[0])
                buffer = mx.nd.zeros((self.lazy.planes, *table.shape), ctx=self.devices[0])
                planes = [buffer[plane] for plane in range(self.lazy.planes)]
                param._data = [planes[0].as_np_ndarray()]
                param._init_grad()  # the gradient of the table that now reads the buffer
                buffers[name] = (buffer, planes)
        return buffers

    def prepare(self, batches: Sequence[Sequence[np.ndarray]]) -> Dict[str, Any]:
        """The NumPy part of :meth:`plan`: rows and local ids of every shard of
        every batch of an epoch, a few hundred batches at a time (one sort per
        kind each, no loop per batch; the chunks bound the sorts' memory). No
        MXNet call: it may run in another thread while the last epoch trains."""
        counts = len(self.devices)
        bounds = [_slices(len(batch[0]), counts) for batch in batches]
        rows = {kind: np.full((len(batches), counts, size), self.spare[kind], dtype=np.int64)
                for kind, size in self.capacity.items()}
        sizes = {kind: np.zeros((len(batches), counts), dtype=np.int64) for kind in rows}
        chunks = []
        for first in range(0, len(batches), _PLAN_BATCHES):
            chunk = slice(first, first + _PLAN_BATCHES)
            chunks.append(_plan_chunk(batches[chunk], bounds[chunk],
                                      {kind: value[chunk] for kind, value in rows.items()},
                                      {kind: value[chunk] for kind, value in sizes.items()}))
        columns = [np.concatenate(parts) for parts in zip(*chunks)]
        offsets = np.cumsum([0] + _shard_lengths(bounds), dtype=np.int64)
        # rows for the epoch's largest batch, in steps of _ROWS_STEP rows (not for
        # the most a batch could touch: every row of a batch table is gathered, updated
        # and written back, and a batch of ML-1M touches 60 % of what it could)
        needed = {kind: min(self.capacity[kind], -(-(int(value.max(initial=0)) + 1)
                                                    // _ROWS_STEP) * _ROWS_STEP)
                  for kind, value in sizes.items()}
        prepared = {"rows": rows, "sizes": sizes, "bounds": bounds, "offsets": offsets,
                    "first": np.cumsum([0] + [len(parts) for parts in bounds], dtype=np.int64),
                    "needed": needed, "batches": len(batches)}
        if self.fused:
            prepared["stacked"], prepared["stacked_offsets"] = _stacked(columns, offsets)
        else:
            prepared["columns"] = columns
        return prepared

    def plan(self, batches: Sequence[Sequence[np.ndarray]] | None = None,
             prepared: Dict[str, Any] | None = None) -> None:
        """Make the epoch of ``batches`` (or of what :meth:`prepare` made of
        them) the one trained: its rows and local ids copied to MXNet once
        (per-batch copies would wait for the engine), the batch network grown if its
        largest batch needs more rows, and the network's weights into the
        tables' storage."""
        self._plan = {}  # the last epoch's plan goes before this one is built (peak memory)
        prepared = dict(self.prepare(batches) if prepared is None else prepared)
        if self.remote is None:
            self.lazy.load()
        needed, master = prepared.pop("needed"), self.devices[0]
        # the NumPy arrays and their copies in MXNet
        self._plan_bytes = 2 * sum(array.nbytes for part in ("rows", "stacked", "columns")
                                   for array in _values(prepared.get(part, ())))
        if self.net is None or any(needed[kind] > self._rows[kind] for kind in needed):
            self._rows = needed
            self._make_batch_network(needed)
        rows = {kind: value[:, :, :self._rows[kind]] for kind, value in prepared["rows"].items()}
        self._plan = {**prepared, "rows": rows,
                      "index": {kind: mx.nd.array(value, dtype=np.int64, ctx=master)
                                for kind, value in rows.items()}}
        if self.fused:
            # each batch's rows as (1, 1, rows), what LazyTables.flat_index takes
            self._plan["rows3"] = {kind: value.reshape((prepared["batches"], 1, 1, -1))
                                   for kind, value in self._plan["index"].items()}
            self._plan["stacked"] = [mx.np.array(column, dtype=np.int32, ctx=master)
                                     for column in prepared["stacked"]]
        else:
            self._plan["local"] = {device: [mx.np.array(column, dtype=np.int32, ctx=device)
                                            for column in prepared["columns"]]
                                   for device in self.devices}

    def room_for_another_plan(self) -> bool:
        """Whether memory holds a second epoch's plan beside this one (the next
        epoch's is made while this one trains); True before the first plan."""
        available = available_memory()
        return available is None or 4 * self._plan_bytes < MEMORY_SHARE * available

    def touched(self) -> Dict[str, float]:
        """Mean distinct rows per batch of the planned epoch, by kind
        (``{"user": ..., "item": ...}``, summed over devices): what a batch costs."""
        sizes = self._plan.get("sizes", {})
        return {kind: float(value.sum(axis=1).mean()) if value.size else 0.0
                for kind, value in sizes.items()}

    def losses(self, number: int, loss: gluon.HybridBlock):
        """Batch ``number``'s rows into the rows and its loss and scores from
        one graph call, recorded for ``backward`` (``fused`` only)."""
        plan = self._plan
        self._flat = dict.fromkeys(self.capacity)
        for name, kind in self.indexed_by.items():
            if self._flat[kind] is None:  # the tables of a kind share their rows
                index = self.lazy.flat_index(name, plan["rows3"][kind][number])
                self._flat[kind] = (index, index[0])
            mx.nd.take(self.lazy.flat[name], self._flat[kind][1], out=self._gathered[name][0])
        graph = self._graphs.get(id(loss))
        if graph is None:
            graph = self._graphs[id(loss)] = _Triplets(self.net, loss, self.group)
            graph.hybridize(static_alloc=True)
        start, stop = plan["stacked_offsets"][number:number + 2]
        with autograd.record():
            value, scores = graph(*(column[start:stop] for column in plan["stacked"]))
        return [value], [scores]

    def shards(self, number: int) -> List[Tuple[mx.np.ndarray, ...]]:
        """Batch ``number`` of the planned epoch (not ``fused``): its rows into
        the rows, and its shards as local ids on their devices."""
        plan, out = self._plan, []
        for device_number, device in enumerate(self.devices[:len(plan["bounds"][number])]):
            # each kind's rows once (indexing an NDArray is a C call and an object)
            indices = {kind: plan["index"][kind][number][device_number]
                       for kind in self.capacity}
            for name, kind in self.indexed_by.items():
                index = indices[kind]
                table = self._views[name][device][0]
                if self.remote is not None:  # the rows from the parameter servers
                    size = int(plan["sizes"][kind][number, device_number])
                    table[:size] = self.remote.pull(name, index[:size]).as_in_context(device)
                else:  # the weights are the storage's first rows
                    mx.nd.take(self.lazy.flat[name], index).copyto(table)
            shard = plan["first"][number] + device_number  # a small batch has fewer shards
            start, stop = plan["offsets"][shard], plan["offsets"][shard + 1]
            out.append(tuple(column[start:stop] for column in plan["local"][device]))
        return out

    def step(self, number: int, batch_size: int) -> None:
        """Apply the batch tables' gradients to the rows they stand for, summed over
        devices, scaled by ``1 / batch_size`` as the Trainer scales its own."""
        if self.fused:
            master = self.devices[0]
            for name, kind in self.indexed_by.items():
                buffer, planes = self._gathered[name]
                self.lazy.apply(name, planes, buffer, self._views[name][master][1],
                                1.0 / batch_size, self._flat[kind][0])
            return
        plan, master = self._plan, self.devices[0]
        used = self.devices[:len(plan["bounds"][number])]
        for name, kind in self.indexed_by.items():
            sizes = plan["sizes"][kind][number]
            # the same row from several devices: one summed row
            rows, grad = _merge(
                [plan["rows"][kind][number, d, :sizes[d]] for d in range(len(used))],
                [self._views[name][device][1][:int(sizes[d])]
                 for d, device in enumerate(used)], master)
            if self.remote is not None:
                self.remote.push(name, rows, grad)
            else:
                self.lazy.update(name, rows, grad, 1.0 / batch_size)

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
        else:
            self.lazy.store()
        for param in self._full.values():
            master = param.data(self.devices[0])
            for device in self.devices[1:]:
                param.data(device)[:] = master.as_in_ctx(device)


def _values(part) -> list:
    return list(part.values()) if isinstance(part, dict) else list(part)


def _stacked(columns: List[np.ndarray], offsets: np.ndarray) -> Tuple[List[np.ndarray],
                                                                         np.ndarray]:
    """One device's local ids as the graph takes them: each batch's users and
    items stacked, the positives' pairs then the negatives' (flat batches:
    users twice, positives then negatives) or, grouped, each positive's row
    beside its ``k`` negatives (users repeated ``1 + k`` times); and where each
    batch starts in them."""
    users, positives, negatives = columns
    if negatives.ndim == 2:
        width = negatives.shape[1] + 1
        items = np.concatenate([positives.reshape(-1, 1), negatives], axis=1).reshape(-1)
        return [np.repeat(users, width), items], offsets * width
    lengths = np.diff(offsets)
    batch = np.repeat(np.arange(len(lengths)), lengths)
    first = 2 * offsets[batch] + (np.arange(len(users)) - offsets[batch])
    second = first + lengths[batch]
    stacked = [np.empty(2 * len(users), dtype=np.int32), np.empty(2 * len(users), dtype=np.int32)]
    for column, (head, tail) in zip(stacked, ((users, users), (positives, negatives))):
        column[first], column[second] = head, tail
    return stacked, 2 * offsets


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
