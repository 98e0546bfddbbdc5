"""Epochs that stay flat: each epoch's training seconds for the tutorial run,
``preset="best"`` on MovieLens-100K and every NCF preset on a validation split
of the NCF authors' ML-1M training file, with the ratio of the slowest epoch
after the first to the second, the wall time, the validation metrics and the
float32 denormals left in the trained weights.

    python benchmarks/bench_epochs.py --data-dir ../shared/data [--only mf neumf] [--unflushed]

``--data-dir`` holds ``ml-100k/u.data`` and ``ncf-ml-1m/ml-1m.train.rating``.
Each run is a fresh process (``--unflushed`` adds each run again with
``NEUMF_FLUSH_DENORMALS=0``: the slowdown this guards against, on a CPU that
pays for denormals). Pretraining's towers report their own epochs. Measure on
an idle machine; about 12 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_model  # benchmarks/_machine.py, beside this script

RUNS = ("tutorial", "best", "gmf", "mlp", "neumf", "mf", "neumf-pretrained")
NCF = ("gmf", "mlp", "neumf", "mf", "neumf-pretrained")


def denormals(arrays) -> int:
    """Float32 values that are denormal, counted by their bits (a comparison would
    read them as 0 under denormals-are-zero)."""
    import numpy as np
    count = 0
    for array in arrays:
        bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
        count += int(np.count_nonzero(((bits & 0x7F800000) == 0) & ((bits & 0x007FFFFF) != 0)))
    return count


def child(run: str, data_dir: str, folder: str, seed: int) -> None:
    """One run in this process; prints one JSON line."""
    import neumf
    import neumf.experiment
    from neumf._gluon import get_weights
    towers = []  # each call of train(): a tower, or the run itself
    original = neumf.experiment.train

    def recorded(*args, **kwargs):
        result = original(*args, **kwargs)
        towers.append({"model": result.config.model,
                       "epochs": [h["train_seconds"] for h in result.history]})
        return result
    neumf.experiment.train = recorded
    settings = {"seed": seed, "verbose": False}
    if run in NCF:
        settings.update(dataset="ncf", data_dir=folder, name="ml-1m-validation", preset=run)
    else:
        settings.update(data_dir=data_dir, preset=None if run == "tutorial" else run)
    start = time.perf_counter()
    result = neumf.fit(**settings)
    wall = time.perf_counter() - start
    print(json.dumps({"run": run, "wall": wall, "towers": towers,
                      "metrics": {key: result.metrics.get(key) for key in
                                  ("hr@10", "ndcg@10", "hr@50", "auc")},
                      "denormals": denormals(get_weights(result.net).values())}))


def _ratio(epochs) -> str:
    """Slowest epoch after the first over the second."""
    return f"{max(epochs[1:]) / epochs[1]:.2f}" if len(epochs) > 2 else "-"


def denormal_cost() -> float:
    """How many times longer this CPU takes to multiply float32 denormals than
    normal numbers (NumPy, before neumf sets flush-to-zero in this process):
    near 1, a CPU that does not pay for them, where flat epochs prove little."""
    import numpy as np
    factor = np.float32(0.5)

    def seconds(value: float) -> float:
        array = np.full(1_000_000, value, dtype=np.float32)
        start = time.perf_counter()
        for _ in range(20):
            np.multiply(array, factor)
        return time.perf_counter() - start
    return min(seconds(1e-40) for _ in range(3)) / min(seconds(1e-3) for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--only", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--unflushed", action="store_true",
                        help="also run each with NEUMF_FLUSH_DENORMALS=0")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.data_dir, args.folder, args.seed)
        return
    cost = denormal_cost()  # before neumf sets flush-to-zero in this process
    import neumf
    from neumf.datasets import ncf_validation_split
    folder = tempfile.mkdtemp(prefix="neumf-bench-epochs-")
    if set(args.only) & set(NCF):
        ncf_validation_split(Path(args.data_dir) / "ncf-ml-1m", "ml-1m", folder, seed=args.seed)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); neumf {neumf.__version__}, "
          f"Python {platform.python_version()}; seed {args.seed}; a float32 denormal "
          f"multiply costs {cost:.1f} times a normal one here", flush=True)
    print("| run | flush | epochs: training seconds | slowest after the first / second | "
          "wall s | HR@10 / NDCG@10 | denormal weights |")
    print("|---|---|---|---|---|---|---|")
    for run in args.only:
        for flush in (("1", "0") if args.unflushed else ("1",)):
            done = subprocess.run(
                [sys.executable, __file__, "--child", run, "--data-dir", args.data_dir,
                 "--folder", folder, "--seed", str(args.seed)],
                capture_output=True, text=True,
                env={**os.environ, "NEUMF_FLUSH_DENORMALS": flush, "PYTHONWARNINGS": "ignore"})
            if done.returncode != 0:
                print(f"| {run} | {flush} | failed: {done.stderr.strip().splitlines()[-1]} |")
                continue
            report = json.loads(done.stdout.strip().splitlines()[-1])
            epochs = "; ".join(
                f"{tower['model']}: " * (len(report["towers"]) > 1)
                + ", ".join(f"{seconds:.2f}" for seconds in tower["epochs"])
                for tower in report["towers"] if tower["epochs"])
            ratios = ", ".join(_ratio(tower["epochs"]) for tower in report["towers"]
                               if tower["epochs"])
            metrics = report["metrics"]
            print(f"| {run} | {'on' if flush == '1' else 'off'} | {epochs} | {ratios} | "
                  f"{report['wall']:.1f} | {metrics['hr@10']:.3f} / {metrics['ndcg@10']:.3f} | "
                  f"{report['denormals']} |", flush=True)


if __name__ == "__main__":
    main()
