"""Ranking quality on MovieLens-100K (the tutorial's seq-aware leave-last-out
split, full ranking over all items the user did not train on): the tuned
``preset="best"`` beside the tutorial's settings, its towers alone and the
baselines, mean and std over seeds, with CPU minutes per run.

    python benchmarks/quality.py --data-dir ../shared/data --seeds 0 1 2

Every row but the tutorial's uses the "best" preset's sizes and training
settings, changing only the model. Prints a Markdown table and JSON lines
(the source of benchmarks/QUALITY.md).
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

import neumf

ROWS = (
    ("NeuMF, preset best", {"preset": "best"}),
    ("GMF (best's sizes)", {"preset": "best", "model": "gmf"}),
    ("MLP (best's sizes)", {"preset": "best", "model": "mlp"}),
    ("MF, dot product (best's sizes)", {"preset": "best", "model": "mf"}),
    ("popularity", {"model": "popularity"}),
    ("NeuMF, tutorial settings (default)", {}),
    # row-sparse tables (lazy Adam) against the dense rows above
    ("NeuMF, preset best, sparse tables", {"preset": "best", "sparse": True}),
    ("NeuMF, tutorial settings, sparse tables", {"sparse": True}),
)
METRICS = ("hr@10", "ndcg@10", "hr@50", "auc", "mrr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", type=int, nargs="+", default=None)
    args = parser.parse_args()
    print("| model | " + " | ".join(METRICS) + " | CPU min | wall s |")
    print("|---" * (len(METRICS) + 3) + "|")
    for index, (label, settings) in enumerate(ROWS):
        if args.rows is not None and index not in args.rows:
            continue
        runs = []
        for seed in args.seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = neumf.fit(data_dir=args.data_dir, seed=seed, verbose=False,
                                   **settings)
            runs.append({**result.metrics, "cpu_min": result.seconds["cpu"] / 60,
                         "wall_s": result.seconds["wall"]})
            print(json.dumps({"model": label, "seed": seed, **settings, **runs[-1]}),
                  flush=True)

        def cell(key, digits, runs=runs):
            values = np.array([run[key] for run in runs])
            return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"
        print(f"| {label} | " + " | ".join(cell(m, 4 if m == "ndcg@10" else 3)
                                          for m in METRICS)
              + f" | {cell('cpu_min', 2)} | {cell('wall_s', 0)} |", flush=True)


if __name__ == "__main__":
    main()
