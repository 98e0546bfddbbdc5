"""cProfile of one ML-100K training epoch and one full evaluation of neumf
(tutorial hyperparameters, after one warm-up epoch).

    python benchmarks/profile_tutorial.py --data-dir ../shared/data [--top 12]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats

import mxnet as mx
from mxnet import gluon

import neumf


def _top(profiler: cProfile.Profile, top: int) -> str:
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    return stream.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/u.data")
    parser.add_argument("--top", type=int, default=12, help="entries to print")
    args = parser.parse_args()

    data, num_users, num_items = neumf.read_data_ml100k(args.data_dir)
    train, test = neumf.split_data_ml100k(data, num_users, num_items, "seq-aware")
    users, items, _, candidates = neumf.load_data_ml100k(train, num_users, num_items,
                                                         "implicit")
    test_input = neumf.load_data_ml100k(test, num_users, num_items, "implicit")[3]
    mx.random.seed(0)
    net = neumf.NeuMF(10, num_users, num_items, [10, 10, 10])
    net.initialize(mx.init.Normal(0.01))
    net.hybridize(static_alloc=True)
    loss = neumf.BPRLoss()
    loss.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.01, "wd": 1e-5})
    train_iter = neumf.PRDataset(users, items, candidates, num_items, seed=0).loader(1024)

    def epoch():
        return neumf.train_ranking(net, train_iter, test_input, loss, trainer, None,
                                   num_users, num_items, 1, [mx.cpu()], neumf.evaluate_ranking,
                                   candidates, eval_step=2, verbose=False)

    epoch()  # warm-up: graph building and first allocations
    profiler = cProfile.Profile()
    stats = profiler.runcall(epoch)[0]
    print(f"one epoch: {stats['train_seconds']:.3f} s, {stats['examples_per_sec']:.0f} "
          "triplets/s")
    print(_top(profiler, args.top))
    profiler = cProfile.Profile()
    profiler.runcall(neumf.evaluate_ranking, net, test_input, None, candidates, num_users,
                     num_items, [mx.cpu()])
    print("one full evaluation (943 users x 1682 items):")
    print(_top(profiler, args.top))


if __name__ == "__main__":
    main()
