"""A small sweep on MovieLens-100K (the tutorial's seq-aware split, full ranking),
selected on validation only: each configuration trains with a validation split
and early stopping; the table reports validation NDCG@10 (for selection) and
the test metrics (for reporting), mean and std over seeds.

    python examples/sweep_ml100k.py --data-dir ../shared/data --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

import neumf

# Every row starts from the "best" preset's validation and early-stopping settings.
GRID = (
    {"loss": "bpr", "num_factors": 64, "nums_hiddens": (128, 64)},
    {"loss": "log", "num_factors": 64, "nums_hiddens": (128, 64)},
    {"loss": "log", "num_factors": 128, "nums_hiddens": (128, 64)},
    {"loss": "log", "num_factors": 64, "nums_hiddens": (128, 64), "dense_init": "xavier"},
    {"loss": "log", "num_factors": 32, "nums_hiddens": (64, 32), "lr": 2e-3},
    {"loss": "log", "num_factors": 64, "nums_hiddens": (128, 64), "num_negatives": 8,
     "batch_size": 2048, "lr": 2e-3},
    {"loss": "bpr", "num_factors": 64, "nums_hiddens": (128, 64), "num_negatives": 8,
     "batch_size": 2048, "lr": 2e-3},
    {"loss": "bpr", "num_factors": 128, "nums_hiddens": (128, 64)},
    {"loss": "bpr", "num_factors": 128, "nums_hiddens": (128, 64), "num_negatives": 8,
     "batch_size": 2048, "lr": 2e-3},
    {"loss": "bpr", "num_factors": 64, "mlp_factors": 32, "nums_hiddens": (64, 32),
     "lr": 2e-3},
    {"loss": "bpr", "num_factors": 32, "nums_hiddens": (64, 32), "lr": 2e-3},
    {"loss": "bpr", "num_factors": 64, "mlp_factors": 32, "nums_hiddens": (64, 32)},
)
REPORT = ("hr@10", "ndcg@10", "hr@50", "auc", "mrr")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(settings: dict, seed: int, data_dir) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = neumf.fit(data_dir=data_dir, preset="best", seed=seed, verbose=False, **settings)
    best = [h for h in result.history if h["epoch"] == result.best_epoch][0]
    return {"seed": seed, **result.metrics, "val_ndcg@10": best["val_ndcg@10"],
            "best_epoch": result.best_epoch, "epochs": len(result.history),
            "wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", type=int, nargs="+", default=None,
                        help="grid rows to run (default: all)")
    args = parser.parse_args()
    rows = args.rows if args.rows is not None else range(len(GRID))
    print("| config | val ndcg@10 | " + " | ".join(f"test {m}" for m in REPORT)
          + " | epochs | CPU s |")
    print("|---" * (len(REPORT) + 4) + "|")
    for row in rows:
        settings = GRID[row]
        runs = [run(settings, seed, args.data_dir) for seed in args.seeds]
        for record in runs:
            print(json.dumps({"row": row, **settings, **record}), flush=True)

        def cell(key, digits=3):
            values = np.array([r[key] for r in runs])
            return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"
        label = ", ".join(f"{k}={v}" for k, v in settings.items())
        print(f"| {label} | {cell('val_ndcg@10', 4)} | "
              + " | ".join(cell(m, 4 if m.startswith("ndcg") else 3) for m in REPORT)
              + f" | {np.mean([r['epochs'] for r in runs]):.1f} | {cell('cpu_s', 0)} |",
              flush=True)


if __name__ == "__main__":
    main()
