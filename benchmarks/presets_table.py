"""Every preset and EASE on both benchmarks, on validation splits only (the
README's table): MovieLens-100K's seq-aware split with each user's latest
training interaction held out (full ranking), and the NCF authors' ML-1M
training file with each user's newest line held out (99 sampled negatives).

    python benchmarks/presets_table.py --data-dir ../shared/data [--seeds 0 1 2] [--presets ease mf]

ML-100K is run for every seed given, ML-1M for the first (its minutes are the
long ones). Prints a Markdown table (mean over the seeds for ML-100K) and one
JSON line per run. Measure on an idle machine; about 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import neumf
from neumf.datasets import ncf_validation_split
from neumf.interactions import validation_split
from neumf.presets import PRESETS

ML100K = {"protocol": "full", "k": 10, "ks": (10, 50)}
ML1M = {"protocol": "sampled", "k": 10, "ks": (10,)}


def _run(preset: str, seed: int, **data) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings():  # the data's own notes, said once per run
        warnings.simplefilter("ignore", UserWarning)
        result = neumf.fit(preset=preset, seed=seed, verbose=False, **data)
    return {"hr@10": result.metrics["hr@10"], "ndcg@10": result.metrics["ndcg@10"],
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    args = parser.parse_args()
    ml100k = validation_split(neumf.load_dataset("ml-100k", data_dir=args.data_dir))
    folder = tempfile.mkdtemp(prefix="neumf-presets-")
    ncf_validation_split(Path(args.data_dir) / "ncf-ml-1m", "ml-1m", folder, seed=0)
    rows = []
    for preset in args.presets:
        small = [_run(preset, seed, dataset=ml100k, **ML100K) for seed in args.seeds]
        large = _run(preset, args.seeds[0], dataset="ncf", data_dir=folder,
                     name="ml-1m-validation", **ML1M)
        for benchmark, runs in (("ml-100k", small), ("ml-1m", [large])):
            for seed, run in zip(args.seeds, runs):
                print(json.dumps({"preset": preset, "benchmark": benchmark, "seed": seed,
                                  **{key: round(value, 4) for key, value in run.items()}}),
                      flush=True)
        rows.append((preset, small, large))
    print(f"\n| preset | ML-100K HR@10 / NDCG@10 (mean of seeds {args.seeds}) | s a run "
          f"| ML-1M HR@10 / NDCG@10 (seed {args.seeds[0]}) | s |")
    print("|---|---|---|---|---|")
    for preset, small, large in rows:
        mean = {key: float(np.mean([run[key] for run in small])) for key in small[0]}
        print(f"| `{preset}` | {mean['hr@10']:.4f} / {mean['ndcg@10']:.4f} | "
              f"{mean['seconds']:.0f} | {large['hr@10']:.4f} / {large['ndcg@10']:.4f} | "
              f"{large['seconds']:.0f} |")


if __name__ == "__main__":
    main()
