"""Scale: reading, splitting, training, and evaluating synthetic data the size of
MovieLens-20M (20M interactions, 138K users, 27K items) on this machine.

    python benchmarks/bench_scale.py --sizes 1e6 5e6 2e7 --plot benchmarks/scale.png

For each size, one process writes a CSV with ``neumf.synthetic`` (users in
proportion to the size, items to its square root, 138K and 27K at 20M), and a
fresh process measures: reading and splitting it (``load_dataset('csv')``), one
training epoch of the tutorial's NeuMF (1 negative per positive, batch 8192;
``--tables sparse``, the default, trains the embedding tables row-sparse),
the sampled protocol (99 negatives) for every user, full ranking of 10,000
users within a 1 GiB evaluation bound (``memory_mb=1024``; NumPy's peak is
traced), and the process's peak resident memory. With ``--epochs N`` the
epoch is the median of N (a short epoch varies by 20 % between runs here).
Prints a table and JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TARGETS = {"read_split_s": 60, "epoch_s": 300, "sampled_eval_s": 30, "full_eval_10k_s": 60,
           "full_eval_peak_mib": 1024, "peak_rss_mib": 4096}
EVAL_MEMORY_MB = 1024


def sizes_for(num_interactions: int):
    scale = num_interactions / 20_000_000
    return max(100, round(138_000 * scale)), max(100, round(27_000 * scale ** 0.5))


def generate(num_interactions: int, path: Path) -> dict:
    from neumf.generate import synthetic
    num_users, num_items = sizes_for(num_interactions)
    start = time.perf_counter()
    frame = synthetic(num_users, num_items, num_interactions, seed=0)
    seconds = time.perf_counter() - start
    frame.to_csv(path, index=False)
    return {"generate_s": seconds, "rows": len(frame)}


def measure(path: Path, full_users: int, tables: str, epochs: int = 1) -> dict:
    import mxnet as mx
    import numpy as np
    from mxnet import gluon

    import neumf
    from neumf._gluon import parameters
    from neumf.config import FitConfig
    from neumf.model import initialize
    from neumf.sampling import sampled_negatives
    from neumf.sparse import SparseBatches
    from neumf.training import fit_epochs

    record = {}
    start = time.perf_counter()
    data = neumf.load_dataset("csv", path.parent, path.name)
    record["read_split_s"] = time.perf_counter() - start
    record.update(users=data.num_users, items=data.num_items,
                  train=len(data.train_users), test=len(data.test_users))

    devices = [mx.cpu()]
    mx.random.seed(0)
    net = neumf.NeuMF(10, data.num_users, data.num_items, [10, 10, 10])
    initialize(net, FitConfig().model_spec, devices)
    net.hybridize(static_alloc=True)
    sparse = SparseBatches(net, devices, 8192, "adam", 0.01, 0.0) if tables == "sparse" \
        else None
    params = [p for name, p in parameters(net).items()
              if sparse is None or name not in sparse.indexed_by]
    trainer = gluon.Trainer(params, "adam", {"learning_rate": 0.01, "wd": 0.0})
    sampler = neumf.PRDataset(data.train_users, data.train_items, None, data.num_items,
                              seed=0)
    loss = neumf.BPRLoss()
    loss.hybridize()
    mx.nd.waitall()  # the tables' initialisation is not the epoch's
    start = time.perf_counter()
    loader = sampler.loader(8192, as_numpy=sparse is not None)
    seconds, history = [], []
    for epoch in range(epochs):
        history += fit_epochs(net, loader, loss, trainer, devices, num_epochs=1,
                              initial_epoch=epoch, sparse=sparse)
        mx.nd.waitall()
        seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
    record["epochs_s"] = seconds
    record["epoch_s"] = sorted(seconds)[(len(seconds) - 1) // 2]
    record["epoch_loss"] = history[-1]["loss"]
    record["triplets_per_s"] = history[-1]["examples_per_sec"]
    record["tables"] = tables
    if sparse is not None:  # distinct users + items a batch touches, and the cost of each
        record["rows_per_batch"] = sum(sparse.touched().values())
        record["us_per_row"] = (record["epoch_s"] * 1e6 / len(loader)
                                / record["rows_per_batch"])

    start = time.perf_counter()
    negatives = sampled_negatives(data, 99, seed=0)
    record["sample_negatives_s"] = time.perf_counter() - start
    start = time.perf_counter()
    sampled = neumf.evaluate_model(net, data.test_users, data.test_items, data.train_users,
                                   data.train_items, data.num_items, devices,
                                   negatives=negatives, ks=(10,))
    record["sampled_eval_s"] = time.perf_counter() - start + record["sample_negatives_s"]
    record["sampled_hr@10"] = sampled["hr@10"]
    del negatives

    chosen = np.random.default_rng(0).choice(len(data.test_users),
                                             min(full_users, len(data.test_users)),
                                             replace=False)
    tracemalloc.start()
    start = time.perf_counter()
    full = neumf.evaluate_model(net, data.test_users[chosen], data.test_items[chosen],
                                data.train_users, data.train_items, data.num_items, devices,
                                ks=(10, 50), memory_mb=EVAL_MEMORY_MB)
    record["full_eval_10k_s"] = time.perf_counter() - start
    record["full_eval_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    record["full_hr@10"], record["full_auc"] = full["hr@10"], full["auc"]
    record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return record


def run_size(num_interactions: int, workdir: Path, full_users: int, tables: str,
             epochs: int = 1) -> dict:
    path = workdir / f"synthetic-{num_interactions}.csv"
    me = [sys.executable, __file__]
    made = json.loads(subprocess.run(me + ["--generate", str(num_interactions), str(path)],
                                     check=True, capture_output=True, text=True
                                     ).stdout.splitlines()[-1])
    measured = json.loads(subprocess.run(me + ["--measure", str(path), "--full-users",
                                               str(full_users), "--tables", tables,
                                               "--epochs", str(epochs)], check=True,
                                         capture_output=True, text=True
                                         ).stdout.splitlines()[-1])
    path.unlink()
    return {"interactions": num_interactions, **made, **measured}


def plot(records, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(10, 4))
    FigureCanvasAgg(figure)
    sizes = [r["interactions"] / 1e6 for r in records]
    left, right = figure.subplots(1, 2)
    for key in ("read_split_s", "epoch_s", "sampled_eval_s", "full_eval_10k_s"):
        left.plot(sizes, [r[key] for r in records], marker="o", label=key)
    left.set(xlabel="interactions (millions)", ylabel="seconds", title="time")
    left.legend()
    for key in ("peak_rss_mib", "full_eval_peak_mib"):
        right.plot(sizes, [r[key] for r in records], marker="o", label=key)
    right.set(xlabel="interactions (millions)", ylabel="MiB", title="memory")
    right.legend()
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 5e6, 2e7])
    parser.add_argument("--full-users", type=int, default=10_000)
    parser.add_argument("--plot", default=None, help="write the growth plot here")
    parser.add_argument("--tables", choices=("dense", "sparse"), default="sparse",
                        help="train the embedding tables dense, or row-sparse")
    parser.add_argument("--epochs", type=int, default=1,
                        help="training epochs per size; the median one counts")
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1; got {args.epochs}")
    if args.generate:
        print(json.dumps(generate(int(args.generate[0]), Path(args.generate[1]))))
        return
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.full_users, args.tables,
                                 args.epochs)))
        return
    records = []
    with tempfile.TemporaryDirectory() as workdir:
        for size in args.sizes:
            records.append(run_size(int(size), Path(workdir), args.full_users, args.tables,
                                    args.epochs))
            print(json.dumps(records[-1]), flush=True)
    keys = ["read_split_s", "epoch_s", "sampled_eval_s", "full_eval_10k_s",
            "full_eval_peak_mib", "peak_rss_mib"]
    print("| interactions | users | items | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 3) + "|")
    for r in records:
        print(f"| {r['interactions']:,} | {r['users']:,} | {r['items']:,} | "
              + " | ".join(f"{r[k]:.1f}" for k in keys) + " |")
    print("| target (20M) | | | " + " | ".join(f"< {TARGETS[k]}" for k in keys) + " |")
    first, last = records[0], records[-1]
    growth = f"epoch {last['interactions']:,} / {first['interactions']:,}: " \
             f"{last['epoch_s'] / first['epoch_s']:.1f}x for " \
             f"{last['interactions'] / first['interactions']:.0f}x the interactions"
    if "rows_per_batch" in first:
        growth += (f"; rows a batch touches {first['rows_per_batch']:,.0f} -> "
                   f"{last['rows_per_batch']:,.0f}, us per touched row "
                   f"{first['us_per_row']:.2f} -> {last['us_per_row']:.2f}")
    print(growth)
    if args.plot:
        plot(records, Path(args.plot))
    print(json.dumps({"host_cpus": os.cpu_count(), "records": records}))


if __name__ == "__main__":
    main()
