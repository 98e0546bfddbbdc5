"""Speed of the tutorial pipeline: the tutorial's own code against neumf, side by
side in one run, same data, same hyperparameters, same machine.

    python benchmarks/bench_tutorial.py --data-dir ../shared/data

REFERENCE is the D2L tutorial as published: d2l 1.0.3's ``split_data_ml100k``,
``load_data_ml100k`` and ``evaluate_ranking``, and the tutorial page's ``NeuMF``
Block and ``PRDataset`` (rewritten below, marked REFERENCE), trained by the
tutorial's loop with its 4 DataLoader workers. Its evaluation takes ~100 s, so
by default it runs on a subset of users and is scaled to all 943 (printed as an
estimate). Its full 10-epoch run is likewise estimated from the measured parts.
OURS is ``neumf``; the whole experiment is timed by running
``examples/reproduce_tutorial.py`` end to end. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, npx
from mxnet.gluon import nn

import neumf

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------- REFERENCE
class RefNeuMF(nn.Block):
    """REFERENCE: the tutorial page's NeuMF block, as published."""

    def __init__(self, num_factors, num_users, num_items, nums_hiddens, **kwargs):
        super().__init__(**kwargs)
        self.P = nn.Embedding(num_users, num_factors)
        self.Q = nn.Embedding(num_items, num_factors)
        self.U = nn.Embedding(num_users, num_factors)
        self.V = nn.Embedding(num_items, num_factors)
        self.mlp = nn.Sequential()
        for num_hiddens in nums_hiddens:
            self.mlp.add(nn.Dense(num_hiddens, activation='relu', use_bias=True))
        self.prediction_layer = nn.Dense(1, activation='sigmoid', use_bias=False)

    def forward(self, user_id, item_id):
        gmf = self.P(user_id) * self.Q(item_id)
        mlp = self.mlp(mx.np.concatenate([self.U(user_id), self.V(item_id)], axis=1))
        return self.prediction_layer(mx.np.concatenate([gmf, mlp], axis=1))


class RefPRDataset(gluon.data.Dataset):
    """REFERENCE: the tutorial page's PRDataset, as published."""

    def __init__(self, users, items, candidates, num_items):
        self.users = users
        self.items = items
        self.cand = candidates
        self.all = set(range(num_items))

    def __len__(self):
        return len(self.users)

    def __getitem__(self, idx):
        neg_items = list(self.all - set(self.cand[int(self.users[idx])]))
        indices = random.randint(0, len(neg_items) - 1)
        return self.users[idx], self.items[idx], neg_items[indices]


def ref_train_epoch(net, train_iter, loss, trainer, devices):
    """REFERENCE: one epoch of d2l's ``train_ranking`` loop (without its plot)."""
    examples = 0
    start = time.perf_counter()
    for values in train_iter:
        input_data = [gluon.utils.split_and_load(v, devices) for v in values]
        with autograd.record():
            p_pos = [net(*t) for t in zip(*input_data[:-1])]
            p_neg = [net(*t) for t in zip(*input_data[:-2], input_data[-1])]
            ls = [loss(p, n) for p, n in zip(p_pos, p_neg)]
        for batch_loss in ls:
            batch_loss.backward(retain_graph=False)
        sum(batch_loss.asnumpy() for batch_loss in ls)
        trainer.step(values[0].shape[0])
        examples += values[0].shape[0]
    return time.perf_counter() - start, examples


def ref_evaluate_ranking(net, test_input, seq, candidates, num_users, num_items, devices,
                         users, hit_and_auc):
    """REFERENCE: d2l's ``evaluate_ranking`` verbatim, looping over ``users``
    instead of ``range(num_users)`` so that a subset can be timed."""
    ranked_list, ranked_items, hit_rate, auc = {}, {}, [], []
    all_items = set(range(num_users))
    for u in users:
        neg_items = list(all_items - set(candidates[int(u)]))
        item_ids = list(neg_items)
        user_ids = [u] * len(neg_items)
        x = [mx.np.array(user_ids)]
        if seq is not None:
            x.append(seq[user_ids, :])
        x.extend([mx.np.array(item_ids)])
        test_data_iter = gluon.data.DataLoader(
            gluon.data.ArrayDataset(*x), shuffle=False, last_batch="keep", batch_size=1024)
        scores = []
        for values in test_data_iter:
            x = [gluon.utils.split_and_load(v, devices, even_split=False) for v in values]
            scores.extend([list(net(*t).asnumpy()) for t in zip(*x)])
        scores = [item for sublist in scores for item in sublist]
        item_scores = list(zip(item_ids, scores))
        ranked_list[u] = sorted(item_scores, key=lambda t: t[1], reverse=True)
        ranked_items[u] = [r[0] for r in ranked_list[u]]
        temp = hit_and_auc(ranked_items[u], test_input[u], 50)
        hit_rate.append(temp[0])
        auc.append(temp[1])
    return np.mean(np.array(hit_rate)), np.mean(np.array(auc))


def run_reference(data_dir, eval_users, seed):
    from d2l import mxnet as d2l  # the oracle; in the test extra

    npx.set_np()  # the tutorial's global mode, for the reference only
    random.seed(seed)
    mx.random.seed(seed)
    data, num_users, num_items = neumf.read_data_ml100k(data_dir)  # same frame as d2l's
    start = time.perf_counter()
    train_data, test_data = d2l.split_data_ml100k(data, num_users, num_items, 'seq-aware')
    users_train, items_train, _, candidates = d2l.load_data_ml100k(
        train_data, num_users, num_items, feedback="implicit")
    _, _, _, test_iter = d2l.load_data_ml100k(test_data, num_users, num_items,
                                              feedback="implicit")
    split_seconds = time.perf_counter() - start

    train_iter = gluon.data.DataLoader(
        RefPRDataset(users_train, items_train, candidates, num_items), 1024, True,
        last_batch="rollover", num_workers=d2l.get_dataloader_workers())
    devices = [mx.cpu()]
    net = RefNeuMF(10, num_users, num_items, nums_hiddens=[10, 10, 10])
    net.initialize(ctx=devices, force_reinit=True, init=mx.init.Normal(0.01))
    trainer = gluon.Trainer(net.collect_params(), 'adam', {"learning_rate": 0.01, 'wd': 1e-5})
    epoch_seconds, examples = ref_train_epoch(net, train_iter, d2l.BPRLoss(), trainer, devices)

    eval_users = min(eval_users, num_users)
    subset = np.random.default_rng(seed).choice(num_users, size=eval_users, replace=False)
    start = time.perf_counter()
    with autograd.predict_mode():
        if eval_users == num_users:  # d2l's own function, all users
            d2l.evaluate_ranking(net, test_iter, None, candidates, num_users, num_items,
                                 devices)
        else:
            ref_evaluate_ranking(net, test_iter, None, candidates, num_users, num_items,
                                 devices, subset, d2l.hit_and_auc)
    eval_subset_seconds = time.perf_counter() - start
    npx.reset_np()
    return {
        "split_seconds": split_seconds,
        "epoch_seconds": epoch_seconds,
        "examples_per_sec": examples / epoch_seconds,
        "eval_users_timed": int(eval_users),
        "eval_seconds_subset": eval_subset_seconds,
        "eval_seconds_all_users_estimated": eval_subset_seconds * num_users / eval_users,
    }


# ---------------------------------------------------------------------- OURS
def run_ours(data_dir, seed, repeats):
    start = time.perf_counter()
    data, num_users, num_items = neumf.read_data_ml100k(data_dir)
    train_data, test_data = neumf.split_data_ml100k(data, num_users, num_items, 'seq-aware')
    users, items, _, candidates = neumf.load_data_ml100k(train_data, num_users, num_items,
                                                         "implicit")
    _, _, _, test_input = neumf.load_data_ml100k(test_data, num_users, num_items, "implicit")
    split_seconds = time.perf_counter() - start

    mx.random.seed(seed)
    devices = [mx.cpu()]
    net = neumf.NeuMF(10, num_users, num_items, [10, 10, 10])
    net.initialize(mx.init.Normal(0.01), ctx=devices)
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {"learning_rate": 0.01, 'wd': 1e-5})
    train_iter = neumf.PRDataset(users, items, candidates, num_items, seed=seed).loader(1024)
    history = neumf.train_ranking(net, train_iter, test_input, neumf.BPRLoss(), trainer, None,
                                  num_users, num_items, 1, devices, neumf.evaluate_ranking,
                                  candidates, eval_step=2, verbose=False)
    eval_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        neumf.evaluate_ranking(net, test_input, None, candidates, num_users, num_items, devices)
        eval_times.append(time.perf_counter() - start)

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "reproduce_tutorial.py"),
                           "--seed", str(seed)] + (["--data-dir", str(data_dir)]
                                                   if data_dir else []),
                          capture_output=True, text=True, check=True, env=env)
    whole_seconds = time.perf_counter() - start
    return {
        "split_seconds": split_seconds,
        "epoch_seconds": history[0]["train_seconds"],
        "examples_per_sec": history[0]["examples_per_sec"],
        "eval_seconds": min(eval_times),
        "whole_run_seconds": whole_seconds,
        "whole_run_last_line": done.stdout.strip().splitlines()[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/u.data")
    parser.add_argument("--eval-users", type=int, default=60,
                        help="users the reference evaluation is timed on (scaled to all); "
                             "943 or more runs d2l's evaluate_ranking itself")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--repeats", type=int, default=3, help="timings of our evaluation")
    args = parser.parse_args()

    ours = run_ours(args.data_dir, args.seed, args.repeats)
    ref = run_reference(args.data_dir, args.eval_users, args.seed)
    ref_whole = ref["split_seconds"] + 10 * (ref["epoch_seconds"]
                                             + ref["eval_seconds_all_users_estimated"])
    ratios = {
        "split": ref["split_seconds"] / ours["split_seconds"],
        "examples_per_sec": ours["examples_per_sec"] / ref["examples_per_sec"],
        "evaluation": ref["eval_seconds_all_users_estimated"] / ours["eval_seconds"],
        "whole_run": ref_whole / ours["whole_run_seconds"],
    }
    rows = [
        ("seq-aware split + load (s)", ref["split_seconds"], ours["split_seconds"],
         ratios["split"]),
        ("one training epoch (s)", ref["epoch_seconds"], ours["epoch_seconds"],
         ref["epoch_seconds"] / ours["epoch_seconds"]),
        ("training examples/sec", ref["examples_per_sec"], ours["examples_per_sec"],
         ratios["examples_per_sec"]),
        ("full evaluation, 943 users (s)*", ref["eval_seconds_all_users_estimated"],
         ours["eval_seconds"], ratios["evaluation"]),
        ("10 epochs + 10 evaluations (s)**", ref_whole, ours["whole_run_seconds"],
         ratios["whole_run"]),
    ]
    print(f"{'stage':<36}{'reference':>12}{'neumf':>12}{'ratio':>10}")
    for name, ref_value, our_value, ratio in rows:
        print(f"{name:<36}{ref_value:>12.3f}{our_value:>12.3f}{ratio:>9.0f}x")
    print(f"* reference timed on {ref['eval_users_timed']} users "
          f"({ref['eval_seconds_subset']:.1f} s), scaled to 943; it ranks 943 items per user "
          "(its num_users bug), ours all 1682")
    print("** reference estimated as split + 10 x (epoch + full evaluation); ours is "
          "examples/reproduce_tutorial.py end to end, including imports and data loading")
    print(json.dumps({"reference": ref, "neumf": ours, "ratios": ratios}))


if __name__ == "__main__":
    main()
