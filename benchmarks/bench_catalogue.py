"""Cost by rows, not tables: training speed as the catalogue grows, dense and
row-sparse embedding tables side by side, and distributed training that
ships rows.

    python benchmarks/bench_catalogue.py                 # the single-process tables
    python benchmarks/bench_catalogue.py --distributed   # 2 workers + 1 server too

Single process: the same interactions (``neumf.synthetic``) with catalogues of
5,000 to 500,000 items, one epoch each of NeuMF with 64 factors, dense and
sparse, at batch 8192 (1M interactions, 20,000 users, MLP [64, 64]) and at
the paper's batch 256 (100K interactions, 2,000 users, MLP [128, 64]); the
ratio compares 500,000 items (sparse) with 5,000 items (the default rule,
dense there). Distributed: 2 workers and 1 server on loopback, 1M
interactions and 500,000 items, dense and sparse: bytes each worker sends
and receives per batch (counted from the arrays pushed and pulled; dense:
every parameter each way), triplets per second, and the validation NDCG@10
beside one process on the same data. Each measurement runs in a fresh process;
with ``--repeat N`` every single-process setting runs N times, in turns (one
round of all settings, then the next), and the tables give the median run:
on a shared machine one run of a pair can move its ratio by 10 points.
Prints Markdown tables and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SINGLE = [
    {"interactions": 1_000_000, "users": 20_000, "items": items, "batch": 8192,
     "hiddens": [64, 64]} for items in (5_000, 50_000, 500_000)
] + [
    {"interactions": 100_000, "users": 2_000, "items": items, "batch": 256,
     "hiddens": [128, 64]} for items in (5_000, 500_000)
]

WORKER = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import mxnet as mx
import neumf
from neumf._gluon import parameters
spec = json.loads(sys.argv[1])
frame = neumf.synthetic(spec["users"], spec["items"], spec["interactions"], seed=0)
result = neumf.fit(dataset=frame, seed=0, num_epochs=spec.get("epochs", 1),
                   batch_size=spec["batch"], num_factors=64, mlp_factors=64,
                   nums_hiddens=spec["hiddens"], sparse=spec["sparse"], k=10, ks=[10],
                   protocol="sampled", validation=spec.get("validation", False),
                   eval_step=1 if spec.get("validation") else 0,
                   kvstore=spec.get("kvstore", "device"), verbose=False)
record = {"triplets_per_s": sum(h["examples_per_sec"] * h["train_seconds"]
                                for h in result.history)
                            / sum(h["train_seconds"] for h in result.history),
          "epoch_s": result.history[0]["train_seconds"]}
if spec.get("validation"):
    record["val_ndcg@10"] = max(h["val_ndcg@10"] for h in result.history)
state = result.state
if state.sparse is not None:  # distinct users and items a batch touches
    record["rows_per_batch"] = state.sparse.touched()
batches = sum(-(-int(h["examples_per_sec"] * h["train_seconds"] + 0.5) // spec["batch"])
              for h in result.history)
if state.sparse is not None and state.sparse.remote is not None:
    traffic = state.sparse.remote.traffic
    dense_bytes = sum(p.data().size * 4 for n, p in parameters(result.net).items()
                      if n not in state.sparse.indexed_by)
    record["bytes_per_batch"] = (traffic["pushed"] + traffic["pulled"]) / batches \
        + 2 * dense_bytes
elif spec.get("kvstore", "device").startswith("dist"):
    record["bytes_per_batch"] = 2 * sum(p.data().size * 4
                                        for p in parameters(result.net).values())
print(json.dumps(record))
"""


def _run(spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def _launch(spec: dict, workdir: Path) -> dict:
    script = workdir / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run([sys.executable, "-m", "neumf", "launch", "-n", "2", "-s", "1",
                           "--", sys.executable, str(script), json.dumps(spec)],
                          check=True, capture_output=True, text=True)
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def single(repeat: int = 1) -> list:
    """Every SINGLE setting dense and sparse, ``repeat`` rounds in turns; returns
    (and prints) the median runs."""
    runs: dict = {}
    for round_number in range(repeat):
        for index, spec in enumerate(SINGLE):
            for sparse in (False, True):
                record = {**spec, "sparse": sparse, **_run({**spec, "sparse": sparse}),
                          "round": round_number + 1}
                runs.setdefault((index, sparse), []).append(record)
                print(json.dumps(record), flush=True)
    rows = [_median(records) for records in runs.values()]
    _print_single(rows)
    return rows


def _print_single(rows: list) -> None:
    """The table of median runs and the target ratios."""
    print("\n| interactions | users | items | batch | MLP | dense triplets/s | sparse "
          "triplets/s | sparse: users + items a batch touches | sparse: us per touched row |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in SINGLE:
        dense, sparse = (next(row for row in rows if row["items"] == spec["items"]
                              and row["batch"] == spec["batch"] and row["sparse"] is flag)
                         for flag in (False, True))
        touched = sparse["rows_per_batch"]
        per_row = spec["batch"] / sparse["triplets_per_s"] / sum(touched.values()) * 1e6
        print(f"| {spec['interactions']:,} | {spec['users']:,} | {spec['items']:,} | "
              f"{spec['batch']} | {spec['hiddens']} | {dense['triplets_per_s']:,.0f} | "
              f"{sparse['triplets_per_s']:,.0f} | {touched['user']:,.0f} + "
              f"{touched['item']:,.0f} | {per_row:.2f} |")
    for batch in (8192, 256):
        small = next(row for row in rows if row["batch"] == batch and row["items"] == 5_000
                     and not row["sparse"])
        large = next(row for row in rows if row["batch"] == batch and row["items"] == 500_000
                     and row["sparse"])
        # a ratio within each round (the two runs closest in time), then their median
        rounds = sorted(big / little for little, big in
                        zip(small["runs_triplets_per_s"], large["runs_triplets_per_s"]))
        print(f"batch {batch}: 500,000 items (sparse) {large['triplets_per_s']:,.0f} / 5,000 "
              f"items (default: dense) {small['triplets_per_s']:,.0f}: "
              f"{rounds[(len(rounds) - 1) // 2]:.0%} (target >= 80%)"
              + (f"; the rounds' ratios, sorted: {', '.join(f'{r:.0%}' for r in rounds)}"
                 if len(rounds) > 1 else ""))


def _median(records: list) -> dict:
    """The run of median throughput (the lower middle one of an even count),
    with every run's throughput beside it."""
    ordered = sorted(records, key=lambda record: record["triplets_per_s"])
    return {**ordered[(len(ordered) - 1) // 2],
            "runs_triplets_per_s": [record["triplets_per_s"] for record in records]}


def distributed(epochs: int) -> list:
    base = {"interactions": 1_000_000, "users": 20_000, "items": 500_000, "batch": 8192,
            "hiddens": [64, 64], "epochs": epochs, "validation": True}
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for sparse in (False, True):
            record = _launch({**base, "sparse": sparse, "kvstore": "dist_sync"}, Path(workdir))
            rows.append({"setting": "2 workers + 1 server", "sparse": sparse, **record})
            print(json.dumps(rows[-1]), flush=True)
    record = _run({**base, "sparse": True})
    rows.append({"setting": "one process", "sparse": True, **record})
    print(json.dumps(rows[-1]), flush=True)
    print("\n| setting | tables | bytes per batch per worker | triplets/s | best val "
          "NDCG@10 |")
    print("|---|---|---|---|---|")
    for row in rows:
        size = row.get("bytes_per_batch")
        print(f"| {row['setting']} | {'sparse' if row['sparse'] else 'dense'} | "
              f"{'-' if size is None else f'{size / 2**20:,.2f} MiB'} | "
              f"{row['triplets_per_s']:,.0f} | {row['val_ndcg@10']:.4f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributed", action="store_true",
                        help="also 2 workers + 1 server on loopback")
    parser.add_argument("--only-distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs of the distributed and one-process runs")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each single-process setting, in turns; the median "
                             "counts")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    rows = [] if args.only_distributed else single(args.repeat)
    if args.distributed or args.only_distributed:
        rows += distributed(args.epochs)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
