"""The D2L tutorial's NeuMF code, cell by cell, with ``d2l`` helpers and the
tutorial's own classes replaced by imports from ``neumf``: proof that a notebook
written against the tutorial ports by changing imports.

    python examples/tutorial_by_imports.py --data-dir ../shared/data

Differences from the page: a data directory and epoch count can be given, the
DataLoader uses no worker processes (forked workers would repeat each other's
random negatives), and NeuMF trains on its raw score (see the README).
"""

from __future__ import annotations

import argparse

import mxnet as mx
from mxnet import gluon, npx

from neumf import (
    BPRLoss,
    NeuMF,
    PRDataset,
    evaluate_ranking,
    load_data_ml100k,
    read_data_ml100k,
    split_data_ml100k,
    train_ranking,
    try_all_gpus,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/u.data")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs")
    args = parser.parse_args()
    npx.set_np()

    # The tutorial's cells from here on; only the imports changed.
    batch_size = 1024
    df, num_users, num_items = read_data_ml100k(args.data_dir)
    train_data, test_data = split_data_ml100k(df, num_users, num_items, 'seq-aware')
    users_train, items_train, ratings_train, candidates = load_data_ml100k(
        train_data, num_users, num_items, feedback="implicit")
    users_test, items_test, ratings_test, test_iter = load_data_ml100k(
        test_data, num_users, num_items, feedback="implicit")
    train_iter = gluon.data.DataLoader(
        PRDataset(users_train, items_train, candidates, num_items), batch_size,
        True, last_batch="rollover", num_workers=0)

    devices = try_all_gpus()
    net = NeuMF(10, num_users, num_items, nums_hiddens=[10, 10, 10])
    net.initialize(ctx=devices, force_reinit=True, init=mx.init.Normal(0.01))

    lr, num_epochs, wd, optimizer = 0.01, args.epochs, 1e-5, 'adam'
    loss = BPRLoss()
    trainer = gluon.Trainer(net.collect_params(), optimizer,
                            {"learning_rate": lr, 'wd': wd})
    train_ranking(net, train_iter, test_iter, loss, trainer, None, num_users,
                  num_items, num_epochs, devices, evaluate_ranking, candidates)


if __name__ == "__main__":
    main()
