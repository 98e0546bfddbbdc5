"""Where a training epoch of the NCF presets goes: time per triplet and MXNet's
operator profile of ``neumf.fit`` training NeuMF (64 factors, MLP 128-64, 4
negatives, log loss) on data the size of MovieLens-1M's users and items.

    python benchmarks/profile_ncf_epoch.py --batch-size 256 [--sparse] [--group-negatives]

Synthetic interactions (``neumf.synthetic``, 6,040 users x 3,706 items,
``--interactions`` of them) keep it runnable anywhere; one epoch after a
one-epoch warm-up, under ``mx.profiler`` (aggregate statistics). Run it in two
checkouts to compare code before and after a change: options a checkout does
not know are left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import time

import mxnet as mx

import neumf
from neumf.generate import synthetic


def _operators(table: str, top: int) -> str:
    """The ``operator`` section of a profiler dump, its ``top`` costliest rows."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "operator")
    rows = []
    for line in lines[start + 4:]:
        fields = line.split()
        if len(fields) < 6:  # the end of the section
            break
        rows.append(line)
    body = sorted(rows, key=lambda row: -float(row.split()[-4]))
    return "\n".join(lines[start + 2:start + 4] + body[:top])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sparse", action="store_true", help="row-sparse tables")
    parser.add_argument("--group-negatives", action="store_true")
    parser.add_argument("--top", type=int, default=12, help="operators to print")
    args = parser.parse_args()
    frame = synthetic(6040, 3706, args.interactions, seed=0)
    # the neumf preset's network when this profile was first taken (QUALITY.md's
    # table compares against it): MLP embeddings 64, layers [128, 64]
    settings = {"dataset": frame, "preset": "neumf", "seed": 0, "num_epochs": 1,
                "mlp_factors": 64, "nums_hiddens": (128, 64), "init_sigma": 0.01, "wd": 0.0,
                "eval_step": 0, "validation": False, "patience": 0, "verbose": False,
                "batch_size": args.batch_size, "sparse": args.sparse,
                "group_negatives": args.group_negatives, "k": 10, "ks": (10,)}
    known = set(inspect.signature(neumf.fit).parameters) | {
        spec.name for spec in dataclasses.fields(neumf.FitConfig)}
    settings = {key: value for key, value in settings.items() if key in known}
    result = neumf.fit(**settings)  # warm-up: graphs, allocations
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename="/tmp/neumf-profile.json")
    mx.profiler.set_state("run")
    start = time.perf_counter()
    result = neumf.fit(**settings)
    mx.nd.waitall()
    seconds = time.perf_counter() - start
    mx.profiler.set_state("stop")
    stats = result.history[-1]
    triplets = stats["examples_per_sec"] * stats["train_seconds"]
    print(f"neumf {neumf.__version__} at {neumf.__file__}")
    print(f"batch {args.batch_size}, sparse={args.sparse}, grouped={args.group_negatives}: "
          f"{stats['train_seconds'] / triplets * 1e6:.2f} us/triplet under the profiler "
          f"({triplets:.0f} triplets, epoch {stats['train_seconds']:.1f} s, fit {seconds:.1f} s)")
    print(_operators(mx.profiler.dumps(reset=True), args.top))


if __name__ == "__main__":
    main()
