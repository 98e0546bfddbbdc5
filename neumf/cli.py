"""The ``neumf`` command: a thin layer over :func:`neumf.fit`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from typing import List, Sequence

from . import __version__
from .data import SPLIT_MODES, DataError
from .download import DownloadError
from .experiment import LOSSES, OPTIMIZERS, FitConfig, fit

__all__ = ["build_parser", "main"]

_HELP = {
    "num_factors": "embedding width of the GMF and MLP pathways",
    "nums_hiddens": "units of each ReLU layer of the MLP tower",
    "num_epochs": "training epochs",
    "batch_size": "training triplets per batch",
    "lr": "learning rate",
    "wd": "weight decay",
    "optimizer": "Gluon optimizer name",
    "loss": "pairwise loss",
    "init_sigma": "standard deviation of the Normal initialisation",
    "split_mode": "how the test set is held out",
    "k": "cut-off of the hit rate",
    "eval_step": "evaluate every this many epochs",
    "tutorial_exact": "train through the tutorial's sigmoid output (collapses; for comparison)",
    "seed": "seed for initialisation, shuffling and negative sampling",
}
_CHOICES = {"loss": tuple(LOSSES), "split_mode": SPLIT_MODES, "optimizer": OPTIMIZERS}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per FitConfig field, so every default lives in the dataclass."""
    for spec in dataclasses.fields(FitConfig):
        flag = "--" + spec.name.replace("_", "-")
        default = spec.default
        if spec.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=_HELP[spec.name])
        elif spec.name == "nums_hiddens":
            parser.add_argument(flag, type=int, nargs="+", default=list(default),
                                help=_HELP[spec.name] + " (default: %(default)s)")
        else:
            kind = {"num_factors": int, "num_epochs": int, "batch_size": int, "k": int,
                    "eval_step": int, "seed": int, "lr": float, "wd": float,
                    "init_sigma": float}.get(spec.name, str)
            parser.add_argument(flag, type=kind, default=default, choices=_CHOICES.get(spec.name),
                                help=_HELP[spec.name] + " (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``neumf`` command."""
    parser = argparse.ArgumentParser(
        prog="neumf", description="NeuMF with BPR on implicit feedback (MXNet Gluon).")
    parser.add_argument("--version", action="version", version=f"neumf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train and evaluate on MovieLens-100K (the tutorial's experiment)",
        description="Train NeuMF on MovieLens-100K with the tutorial's seq-aware split and "
                    "evaluate hit rate and AUC over all items after each epoch.")
    train.add_argument("--dataset", choices=("ml-100k",), default="ml-100k",
                       help="data set (default: %(default)s)")
    train.add_argument("--data-dir", default=None,
                       help="folder holding ml-100k/u.data (default: $NEUMF_DATA_DIR, "
                            "else the user cache, downloading if needed)")
    _add_config_flags(train)
    train.add_argument("--quiet", action="store_true", help="print only the final result")
    train.add_argument("--json", action="store_true",
                       help="print the final metrics and history as one JSON object")
    return parser


def _clean(value):
    """JSON has no NaN: report missing numbers as null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = build_parser().parse_args(argv)
    names = [spec.name for spec in dataclasses.fields(FitConfig)]
    overrides = {name: getattr(args, name) for name in names}
    try:
        result = fit(data_dir=args.data_dir, verbose=not (args.quiet or args.json), **overrides)
    except (DataError, DownloadError, ValueError, FileNotFoundError) as exc:
        print(f"neumf: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        history: List[dict] = [{key: _clean(value) for key, value in stats.items()}
                               for stats in result.history]
        print(json.dumps({"metrics": {key: _clean(value) for key, value in result.metrics.items()},
                          "config": dataclasses.asdict(result.config), "history": history}))
    elif args.quiet:
        print(f"hit rate {result.hit_rate:.3f}, AUC {result.auc:.3f}")
    return 0
