"""Quality of the tutorial experiment over seeds: the default (training on the
raw score) against ``tutorial_exact=True`` (the tutorial's sigmoid output), with
a popularity ranking as the floor, on the real MovieLens-100K.

    python benchmarks/tutorial_seeds.py --data-dir ../shared/data

Prints one row per (setting, seed), the means, and a JSON line. About 90 s.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import mxnet as mx
import numpy as np

import neumf


class Popularity(mx.gluon.nn.Block):
    """Scores every item by its training count, the same for every user."""

    def __init__(self, counts):
        super().__init__()
        self.counts = np.asarray(counts, dtype=np.float32)

    def forward(self, user_id, item_id):
        return mx.np.array(self.counts[item_id.asnumpy().astype(np.int64)][:, None])


def popularity(data_dir) -> tuple:
    data, num_users, num_items = neumf.read_data_ml100k(data_dir)
    train, test = neumf.split_data_ml100k(data, num_users, num_items, "seq-aware")
    _, items, _, candidates = neumf.load_data_ml100k(train, num_users, num_items, "implicit")
    test_input = neumf.load_data_ml100k(test, num_users, num_items, "implicit")[3]
    net = Popularity(np.bincount(items, minlength=num_items))
    return neumf.evaluate_ranking(net, test_input, None, candidates, num_users, num_items,
                                  [mx.cpu()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/u.data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds")
    args = parser.parse_args()

    report = {"popularity": dict(zip(("hit_rate", "auc"), popularity(args.data_dir)))}
    print(f"{'setting':<16}{'seed':>5}{'HR@50':>8}{'AUC':>8}{'loss':>8}{'seconds':>9}"
          f"{'collapse warned':>17}")
    for setting, exact in (("default", False), ("tutorial_exact", True)):
        rows = []
        for seed in args.seeds:
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", neumf.CollapseWarning)
                result = neumf.fit(data_dir=args.data_dir, seed=seed, tutorial_exact=exact,
                                   verbose=False)
            seconds = time.perf_counter() - start
            warned = any(issubclass(w.category, neumf.CollapseWarning) for w in caught)
            rows.append({"seed": seed, "hit_rate": result.hit_rate, "auc": result.auc,
                         "loss": result.history[-1]["loss"], "seconds": seconds,
                         "collapse_warned": warned})
            print(f"{setting:<16}{seed:>5}{result.hit_rate:>8.3f}{result.auc:>8.3f}"
                  f"{rows[-1]['loss']:>8.3f}{seconds:>9.1f}{str(warned):>17}")
        means = {key: float(np.mean([row[key] for row in rows])) for key in ("hit_rate", "auc")}
        print(f"{setting:<16}{'mean':>5}{means['hit_rate']:>8.3f}{means['auc']:>8.3f}")
        report[setting] = {"runs": rows, "mean": means}
    pop = report["popularity"]
    print(f"{'popularity':<16}{'-':>5}{pop['hit_rate']:>8.3f}{pop['auc']:>8.3f}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
