"""A small sweep on MovieLens-100K (the tutorial's seq-aware split, full ranking),
selected on validation only. Each configuration first trains with a validation
split (each user's latest training pair) and early stopping on validation
NDCG@10; then it is refit on all training pairs for the median best epoch
count, and only that refit meets the test set. The table reports validation
NDCG@10 and best epochs (for selection), the refit's test metrics and CPU
seconds (for reporting), mean and std over seeds.

    python examples/sweep_ml100k.py --data-dir ../shared/data --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import neumf

# Each row changes BASE (below): NeuMF from the library's defaults.
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


# what every row shares (the sweep's starting point: NeuMF, 128 factors, tower
# [128, 64], BPR; row 7 is the NeuMF that was preset "best" until issue 15),
# then model selection: validation split, early stopping
BASE = {"model": "neumf", "num_factors": 128, "nums_hiddens": (128, 64), "loss": "bpr",
        "lr": 1e-3, "wd": 0.0, "num_negatives": 4, "batch_size": 1024,
        "ks": (10, 50)}  # the columns reported, whatever the catalogue
SELECT = {"validation": True, "patience": 4, "num_epochs": 20, "monitor": "ndcg@10",
          "eval_step": 1}


def select(settings: dict, seed: int, data_dir) -> dict:
    result = neumf.fit(data_dir=data_dir, seed=seed, verbose=False,
                       **{**BASE, **settings, **SELECT})
    best = [h for h in result.history if h["epoch"] == result.best_epoch][0]
    return {"val_ndcg@10": best["val_ndcg@10"], "best_epoch": result.best_epoch}


def refit(settings: dict, seed: int, data_dir, num_epochs: int) -> dict:
    result = neumf.fit(data_dir=data_dir, seed=seed, verbose=False,
                       **{**BASE, **settings, "validation": False, "patience": 0,
                          "num_epochs": num_epochs, "eval_step": 0})
    return {**result.metrics, "wall_s": result.seconds["wall"],
            "cpu_s": result.seconds["cpu"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", type=int, nargs="+", default=None,
                        help="grid rows to run (default: all)")
    args = parser.parse_args()
    rows = args.rows if args.rows is not None else range(len(GRID))
    print("| config | val ndcg@10 | best epochs | " + " | ".join(f"test {m}" for m in REPORT)
          + " | CPU s |")
    print("|---" * (len(REPORT) + 4) + "|")
    for row in rows:
        settings = GRID[row]
        chosen = [select(settings, seed, args.data_dir) for seed in args.seeds]
        num_epochs = int(np.median([c["best_epoch"] for c in chosen]))
        runs = [{**c, "seed": seed, **refit(settings, seed, args.data_dir, num_epochs)}
                for seed, c in zip(args.seeds, chosen)]
        for record in runs:
            print(json.dumps({"row": row, **settings, "refit_epochs": num_epochs, **record}),
                  flush=True)

        def cell(key, digits=3, runs=runs):
            values = np.array([r[key] for r in runs])
            return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"
        label = ", ".join(f"{k}={v}" for k, v in settings.items())
        epochs = "/".join(str(c["best_epoch"]) for c in chosen)
        print(f"| {label} | {cell('val_ndcg@10', 4)} | {epochs} -> {num_epochs} | "
              + " | ".join(cell(m, 4 if m.startswith("ndcg") else 3) for m in REPORT)
              + f" | {cell('cpu_s', 0)} |",
              flush=True)


if __name__ == "__main__":
    main()
