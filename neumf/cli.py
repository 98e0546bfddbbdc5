"""The ``neumf`` command: a thin layer over :func:`neumf.fit`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import Sequence

import mxnet as mx

from . import __version__
from .data import DataError
from .datasets import DATASETS
from .download import DownloadError
from .evaluation import evaluate_model
from .experiment import (
    CHOICES,
    PRESETS,
    PROTOCOLS,
    FitConfig,
    fit,
    sampled_negatives,
)
from .recommend import recommend
from .runs import RunError, load_model

__all__ = ["build_parser", "main"]

_HELP = {
    "num_factors": "embedding width of the GMF and MLP pathways",
    "nums_hiddens": "units of each ReLU layer of the MLP tower",
    "num_epochs": "training epochs",
    "batch_size": "training triplets per batch",
    "lr": "learning rate",
    "wd": "weight decay",
    "optimizer": "Gluon optimizer name",
    "loss": "loss on logits: bpr, hinge, or log (the NCF paper's pointwise log loss)",
    "num_negatives": "negatives sampled per positive in each epoch",
    "init_sigma": "standard deviation of the Normal initialisation",
    "dense_init": "initialisation of the dense layers: normal (--init-sigma, the tutorial's) "
                  "or xavier",
    "split_mode": "how the test set is held out (random: ML-100K only)",
    "protocol": "evaluation: full (against every item not trained on) or sampled (against "
                "the data set's negatives, or --eval-negatives random ones)",
    "eval_negatives": "negatives per test pair for the sampled protocol without given ones",
    "k": "cut-off of the hit rate",
    "eval_step": "evaluate every this many epochs; 0: only once, after training",
    "tutorial_exact": "train through the tutorial's sigmoid output (collapses; for comparison)",
    "seed": "seed for initialisation, shuffling and negative sampling",
    "model": "neumf, its towers gmf or mlp, or the baselines mf (dot product) and popularity",
    "mlp_factors": "embedding width of the MLP tower, if not --num-factors",
    "ks": "cut-offs of the final hr@k and ndcg@k (with -k)",
    "validation": "hold out each user's latest training interaction for per-epoch "
                  "validation (model selection never sees the test set)",
    "patience": "stop after this many evaluations without a better --monitor on the "
                "validation pairs; 0 never stops early (needs --validation)",
    "monitor": "validation metric for early stopping and best-epoch restore",
    "restore_best": "end with the weights of the best validation epoch",
    "pretrain": "pretrain GMF and MLP and start NeuMF from both (the NCF paper)",
    "pretrain_epochs": "epochs of each pretrained tower, if not --num-epochs",
    "pretrain_optimizer": "optimizer of the pretrained towers",
    "pretrain_lr": "learning rate of the pretrained towers",
    "alpha": "weight of the GMF tower in the pretrained NeuMF's output layer",
    "kvstore": "gradient aggregation: device or local across --devices; dist_sync or "
               "dist_async across the workers of 'neumf launch'",
}
_LISTS = ("nums_hiddens", "ks")


def _kind(spec: dataclasses.Field):
    text = str(spec.type)
    return int if "int" in text else float if "float" in text else str


def _add_config_flags(parser: argparse.ArgumentParser, track_given: bool) -> None:
    """One flag per FitConfig field, so every default lives in the dataclass. With
    ``track_given`` the flags have no defaults, so the parsed namespace holds only
    the flags given (they override a preset or a resumed run's settings)."""
    for spec in dataclasses.fields(FitConfig):
        flag = "--" + spec.name.replace("_", "-")
        default = list(spec.default) if spec.name in _LISTS else spec.default
        options = {"default": argparse.SUPPRESS} if track_given else {"default": default}
        if spec.type in ("bool", bool):
            action = argparse.BooleanOptionalAction if default else "store_true"
            parser.add_argument(flag, action=action, help=_HELP[spec.name]
                                + (" (default: on)" if default else ""), **options)
        else:
            parser.add_argument(flag, type=_kind(spec), nargs="+" if spec.name in _LISTS
                                else None, choices=CHOICES.get(spec.name),
                                help=f"{_HELP[spec.name]} (default: {default})", **options)


def build_parser(track_given: bool = False) -> argparse.ArgumentParser:
    """The argument parser of the ``neumf`` command (see :func:`_add_config_flags`
    for ``track_given``)."""
    parser = argparse.ArgumentParser(
        prog="neumf", description="NeuMF with BPR on implicit feedback (MXNet Gluon).")
    parser.add_argument("--version", action="version", version=f"neumf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train and evaluate, optionally saving the run",
        description="Train NeuMF and evaluate it after each epoch (by default the "
                    "tutorial's MovieLens-100K experiment); with --out, save the model, "
                    "metrics.json and curves.png.")
    train.add_argument("--dataset", choices=DATASETS, default="ml-100k",
                       help="data set: ml-100k (u.data), ml-1m (ratings.dat), csv (a "
                            "delimited file of user, item[, rating][, timestamp] named by "
                            "--name), ncf (NAME.train.rating, .test.rating, .test.negative) "
                            "(default: %(default)s)")
    train.add_argument("--data-dir", default=None,
                       help="folder holding the data (default: $NEUMF_DATA_DIR, else the "
                            "user cache, downloading ML-100K if needed)")
    train.add_argument("--name", default=None,
                       help="file name (csv) or file prefix (ncf) in the data folder "
                            "(default: %(default)s)")
    train.add_argument("--preset", choices=tuple(PRESETS), default=None,
                       help="named settings that the flags below override: best (tuned on "
                            "ML-100K), gmf, mlp, neumf, neumf-pretrained (the NCF paper's "
                            "protocol), tutorial (default: the tutorial's settings)")
    _add_config_flags(train, track_given)
    train.add_argument("--out", default=None,
                       help="run folder to save the model, metrics.json and curves.png in "
                            "(default: not saved)")
    train.add_argument("--resume", default=None,
                       help="run folder to continue training from, up to --num-epochs in "
                            "all (default: start afresh)")
    _add_output_flags(train)

    evaluate = commands.add_parser(
        "evaluate", help="evaluate a saved run",
        description="Evaluate a saved run's model on its test pairs.")
    evaluate.add_argument("--run", required=True, help="run folder written by 'neumf train'")
    evaluate.add_argument("--protocol", choices=PROTOCOLS, default=None,
                          help="full: rank against every item not trained on; sampled: "
                               "against the data set's negatives or --eval-negatives random "
                               "ones (default: the run's)")
    evaluate.add_argument("--eval-negatives", type=int, default=None,
                          help="negatives per test pair for the sampled protocol, when the "
                               "data set has none (default: the run's)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")

    launch = commands.add_parser(
        "launch", help="run a command as distributed workers on this host",
        description="Start an MXNet scheduler, parameter servers and workers on this host "
                    "and run the command after -- in each worker, e.g. 'neumf launch -n 2 "
                    "-s 1 -- neumf train --kvstore dist_sync --out RUN'.")
    launch.add_argument("-n", "--num-workers", type=int, required=True,
                        help="worker processes")
    launch.add_argument("-s", "--num-servers", type=int, default=1,
                        help="parameter servers (default: %(default)s)")
    launch.add_argument("--host", default="127.0.0.1",
                        help="address of the scheduler (default: %(default)s)")
    launch.add_argument("--port", type=int, default=None,
                        help="port of the scheduler (default: a free one)")
    launch.add_argument("--timeout", type=float, default=None,
                        help="seconds before every process is stopped (default: none)")
    launch.add_argument("worker_command", nargs=argparse.REMAINDER,
                        help="the command each worker runs, after --")

    rec = commands.add_parser(
        "recommend", help="top-k items for users of a saved run",
        description="Recommend the k best-scoring items to users, by raw id, leaving out "
                    "what each user interacted with in training.")
    rec.add_argument("--run", required=True, help="run folder written by 'neumf train'")
    rec.add_argument("--user", action="append", required=True,
                     help="raw user id; repeat for several users")
    rec.add_argument("-k", type=int, default=10, help="items per user (default: %(default)s)")
    rec.add_argument("--exclude", nargs="+", default=None,
                     help="raw item ids never to recommend (default: none)")
    rec.add_argument("--items", nargs="+", default=None,
                     help="recommend only among these raw item ids (default: all)")
    rec.add_argument("--include-seen", action="store_true",
                     help="also recommend items the user trained on")
    rec.add_argument("--json", action="store_true",
                     help="print {user: [{item, score}, ...]} as JSON instead of a table")
    return parser


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    parser.add_argument("--json", action="store_true",
                        help="print the final metrics and history as one JSON object")


def _clean(value):
    """JSON has no NaN: report missing numbers as null."""
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _train(args, argv: Sequence[str] | None) -> int:
    names = {spec.name for spec in dataclasses.fields(FitConfig)}
    # only the flags given: the rest come from the preset, the resumed run or FitConfig
    given = vars(build_parser(track_given=True).parse_args(argv))
    overrides = {name: value for name, value in given.items() if name in names}
    result = fit(dataset=args.dataset, data_dir=args.data_dir, name=args.name,
                 preset=args.preset, verbose=not (args.quiet or args.json),
                 resume=args.resume, out=args.out, **overrides)
    if args.json:
        print(json.dumps(_clean({"metrics": result.metrics,
                                 "config": dataclasses.asdict(result.config),
                                 "history": result.history})))
    else:
        print(_metrics_line(result.metrics))
        if result.run_dir is not None:
            print(f"saved to {result.run_dir}")
    return 0


def _metrics_line(metrics) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())


def _evaluate(args) -> int:
    model = load_model(args.run)
    config = model.config
    protocol = args.protocol or config.protocol
    negatives = None
    if protocol == "sampled":
        negatives = model.data.test_negatives
        if negatives is None or args.eval_negatives is not None:
            negatives = sampled_negatives(model.data, args.eval_negatives or
                                          config.eval_negatives, config.seed)
    metrics = evaluate_model(model.net, model.data.test_users, model.data.test_items,
                             model.data.train_users, model.data.train_items, model.num_items,
                             [mx.cpu()], negatives=negatives,
                             ks=sorted(k for k in {*config.ks, config.k}
                                       if k <= model.num_items))
    if args.json:
        print(json.dumps(_clean({"protocol": protocol, "metrics": metrics})))
    else:
        print(f"{protocol} protocol: {_metrics_line(metrics)}")
    return 0


def _recommend(args) -> int:
    model = load_model(args.run)
    result = recommend(model, args.user, args.k, exclude_seen=not args.include_seen,
                       items=args.items, exclude=args.exclude)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.to_frame().to_string(index=False))
    return 0


def _launch(args) -> int:
    from .launch import launch
    command = args.worker_command[1:] if args.worker_command[:1] == ["--"] \
        else args.worker_command
    code = launch(command, args.num_workers, args.num_servers, host=args.host,
                  port=args.port, timeout=args.timeout)
    if code == 124 and args.timeout is not None:
        print(f"neumf: error: the workers did not finish within {args.timeout} s",
              file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (2 for bad input, with a message)."""
    args = build_parser().parse_args(argv)
    handlers = {"train": lambda: _train(args, argv), "evaluate": lambda: _evaluate(args),
                "recommend": lambda: _recommend(args), "launch": lambda: _launch(args)}
    try:
        return handlers[args.command]()
    except (DataError, DownloadError, RunError, ValueError, KeyError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"neumf: error: {message}", file=sys.stderr)
        return 2
