"""Ranking quality on MovieLens-100K (the tutorial's seq-aware leave-last-out
split, full ranking over all items the user did not train on): the tuned
``preset="best"`` (MF with biases) and ``preset="ease"`` beside the tuned NeuMF, its towers alone,
the tutorial's settings and the baselines, mean and std over seeds, with CPU
minutes per run.

    python benchmarks/quality.py --data-dir ../shared/data --seeds 0 1 2

The towers' rows take the tuned NeuMF's sizes and training settings, changing
only the model. Prints a Markdown table and JSON lines
(the source of benchmarks/QUALITY.md).
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

import neumf

# NeuMF as tuned by examples/sweep_ml100k.py (row 7): preset "best" until issue 15
NEUMF_128 = {"num_factors": 128, "nums_hiddens": (128, 64), "lr": 1e-3, "wd": 0.0,
             "loss": "bpr", "num_negatives": 4, "batch_size": 1024, "num_epochs": 9,
             "eval_step": 0}
ROWS = (
    ("MF with biases, preset best", {"preset": "best"}),
    ("EASE, preset ease (default lambda)", {"preset": "ease"}),
    ("NeuMF, 128 factors (the sweep's row 7)", NEUMF_128),
    ("GMF (NeuMF 128's settings)", {**NEUMF_128, "model": "gmf"}),
    ("MLP (NeuMF 128's settings)", {**NEUMF_128, "model": "mlp"}),
    ("MF, dot product (NeuMF 128's settings)", {**NEUMF_128, "model": "mf"}),
    ("popularity", {"model": "popularity"}),
    ("NeuMF, tutorial settings (default)", {}),
    # row-sparse tables (lazy Adam) against the dense rows above
    ("NeuMF 128, sparse tables", {**NEUMF_128, "sparse": True}),
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
