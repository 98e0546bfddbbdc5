"""The NCF paper's protocol (He et al., WWW 2017) in one command per model: HR@10
and NDCG@10 of each user's held-out item ranked among 99 negatives, for GMF,
MLP, NeuMF and NeuMF with pretraining, beside the popularity, EASE and MF baselines.

On the NCF authors' files (``ml-1m.train.rating``, ``.test.rating``,
``.test.negative`` from their repository) in DIR:

    python examples/paper_protocol.py --data-dir DIR --name ml-1m

Without them, ``--from-ml100k`` writes MovieLens-100K in that format first
(leave-last-out, 99 sampled negatives per test user) and runs on it, and
``--synthetic-ml1m`` does the same with synthetic data of ML-1M's size (for
timings: ``--num-epochs 1``):

    python examples/paper_protocol.py --data-dir ../shared/data --from-ml100k

To tune without the test files (the development protocol: each user's newest
training line held out, 99 negatives), ``--validation`` runs every row on a
validation split of ``NAME.train.rating`` alone:

    python examples/paper_protocol.py --data-dir DIR --name ml-1m --validation

The same as one shell command per preset:
``neumf train --dataset ncf --data-dir DIR --name ml-1m --preset neumf-pretrained``.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import neumf
from neumf.datasets import ncf_validation_split, write_ncf
from neumf.sampling import sampled_negatives

MODELS = (("popularity", {"model": "popularity"}), ("ease", {}), ("mf", {}),
          ("gmf", {}), ("mlp", {}), ("neumf", {}), ("neumf-pretrained", {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--name", default="ml-1m", help="prefix of the NCF files")
    parser.add_argument("--from-ml100k", action="store_true",
                        help="write ML-100K in the NCF format first and use it")
    parser.add_argument("--synthetic-ml1m", action="store_true",
                        help="write ML-1M-sized synthetic data (6,040 users, 3,706 items, "
                             "1,000,209 interactions) in the NCF format first: timings")
    parser.add_argument("--validation", action="store_true",
                        help="tune without the test files: hold out each user's newest line "
                             "of NAME.train.rating (99 sampled negatives) and run on that")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", default=None, help="run only these rows")
    parser.add_argument("--num-epochs", type=int, default=None,
                        help="override every preset's epochs (quick checks)")
    args = parser.parse_args()
    data_dir, name = args.data_dir, args.name
    if args.validation:
        folder = tempfile.mkdtemp(prefix="neumf-ncf-validation-")
        ncf_validation_split(data_dir, name, folder, seed=args.seed)
        data_dir, name = folder, f"{name}-validation"
    elif args.from_ml100k or args.synthetic_ml1m:
        if args.synthetic_ml1m:
            data = neumf.from_frame(neumf.synthetic(6040, 3706, 1_000_209, seed=args.seed))
            name = "synthetic-ml1m"
        else:
            data, name = neumf.load_dataset("ml-100k", args.data_dir), "ml-100k"
        data_dir = tempfile.mkdtemp(prefix="neumf-ncf-")
        write_ncf(data, data_dir, name, sampled_negatives(data, 99, seed=args.seed))
    print("| model | preset | HR@10 | NDCG@10 | epochs | minutes (wall) | minutes (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for label, extra in MODELS:
        if args.only and label not in args.only:
            continue
        preset = label if label in neumf.PRESETS else "gmf"  # baselines: the GMF protocol
        if args.num_epochs is not None:
            extra = {**extra, "num_epochs": args.num_epochs}
        result = neumf.fit(dataset="ncf", data_dir=data_dir, name=name, preset=preset,
                           seed=args.seed, verbose=False, **extra)
        print(f"| {label} | {preset} | {result.metrics['hr@10']:.3f} | "
              f"{result.metrics['ndcg@10']:.3f} | {len(result.history)} | "
              f"{result.seconds['wall'] / 60:.1f} | {result.seconds['cpu'] / 60:.1f} |",
              flush=True)
        print(json.dumps({"model": label, "preset": preset, **result.metrics,
                          "best_epoch": result.best_epoch, "epochs": len(result.history),
                          "wall_s": result.seconds["wall"], "towers": result.towers}),
              flush=True)


if __name__ == "__main__":
    main()
