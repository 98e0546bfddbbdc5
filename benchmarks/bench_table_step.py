"""What one embedding table's optimizer step costs, dense against row-sparse,
for the table shapes of bench_scale.py and bench_catalogue.py.

    python benchmarks/bench_table_step.py

For each table (rows x width) and a batch drawing ``draws`` row ids at random:
the dense step (the embedding's backward pass into a full-table gradient,
then Adam over every row), the library's row-sparse update
(``neumf.sparse.LazyTables``: the distinct rows and their Adam state
gathered, dense Adam, scattered back), MXNet's own way (a row-sparse
gradient built, then its lazy Adam) and MXNet's lazy Adam kernel alone on a
ready row-sparse gradient. The gradient values are ones (the cost does not
depend on them); the library's update here gathers the weight rows too,
which one-device training takes from the twin's slot instead. Median of
``--repeat`` rounds of 20 batches each, milliseconds per batch; the machine
should be otherwise idle. Prints a Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd

from neumf.sparse import LazyTables

# (label, rows, width, draws per batch): the users and items of the two benchmarks
SHAPES = [
    ("scale 1M users", 6_900, 10, 8192), ("scale 1M items", 6_037, 10, 16_384),
    ("scale 20M users", 138_000, 10, 8192), ("scale 20M items", 27_000, 10, 16_384),
    ("catalogue users", 20_000, 64, 8192), ("catalogue 5K items", 5_000, 64, 16_384),
    ("catalogue 500K items", 500_000, 64, 16_384),
]
BATCHES = 20


def _time(step, repeat: int) -> float:
    """Median milliseconds per batch of ``step(k)`` over ``repeat`` rounds."""
    step(0)
    mx.nd.waitall()
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for number in range(BATCHES):
            step(number)
        mx.nd.waitall()
        rounds.append((time.perf_counter() - start) / BATCHES * 1e3)
    return statistics.median(rounds)


def measure(rows: int, width: int, draws: int, repeat: int) -> dict:
    """The four timings of one table shape."""
    rng = np.random.default_rng(0)
    weight = mx.nd.array(rng.normal(0, 0.01, (rows, width)))
    mean, var = mx.nd.zeros_like(weight), mx.nd.zeros_like(weight)
    weight.attach_grad()
    drawn = [rng.integers(0, rows, draws) for _ in range(BATCHES)]
    ids = [mx.nd.array(value, dtype=np.int64) for value in drawn]
    distinct = [mx.nd.array(np.unique(value), dtype=np.int64) for value in drawn]
    grads = [mx.nd.sparse.row_sparse_array((mx.nd.ones((len(u), width)), u),
                                           shape=weight.shape) for u in distinct]

    def dense(k):
        with autograd.record():
            out = mx.nd.Embedding(ids[k], weight, input_dim=rows, output_dim=width)
        out.backward(mx.nd.ones_like(out))
        mx.nd.adam_update(weight, weight.grad, mean, var, lr=1e-3, out=weight)

    library = LazyTables({"T": weight}, "adam", lr=1e-3, wd=0.0)
    ones = [mx.nd.ones((len(u), width)) for u in distinct]

    def ours(k):
        library.update("T", distinct[k], ones[k], rescale=1.0)

    def mxnet_lazy(k):
        grad = mx.nd.sparse.row_sparse_array((ones[k], distinct[k]), shape=weight.shape)
        mx.nd.sparse.adam_update(weight, grad, mean, var, lr=1e-3, lazy_update=True,
                                 out=weight)

    def lazy_kernel(k):
        mx.nd.sparse.adam_update(weight, grads[k], mean, var, lr=1e-3, lazy_update=True,
                                 out=weight)

    touched = float(np.mean([len(u) for u in distinct]))
    timings = {name: _time(step, repeat) for name, step in
               (("dense_ms", dense), ("library_ms", ours), ("mxnet_lazy_ms", mxnet_lazy),
                ("lazy_kernel_ms", lazy_kernel))}
    return {"rows": rows, "width": width, "draws": draws, "touched": touched, **timings,
            "library_ns_per_row": timings["library_ms"] * 1e6 / touched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds per timing (median)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("| table | rows x width | ids drawn | distinct rows | dense step (ms) | "
          "row-sparse, the library (ms) | row-sparse, MXNet's way (ms) | "
          "MXNet's lazy kernel alone (ms) | the library: ns per row |")
    print("|---|---|---|---|---|---|---|---|---|")
    records = []
    for label, rows, width, draws in SHAPES:
        record = {"table": label, **measure(rows, width, draws, args.repeat)}
        records.append(record)
        print(f"| {label} | {rows:,} x {width} | {draws:,} | {record['touched']:,.0f} | "
              f"{record['dense_ms']:.2f} | {record['library_ms']:.2f} | "
              f"{record['mxnet_lazy_ms']:.2f} | {record['lazy_kernel_ms']:.2f} | "
              f"{record['library_ns_per_row']:.0f} |", flush=True)
    print(json.dumps(records))


if __name__ == "__main__":
    main()
