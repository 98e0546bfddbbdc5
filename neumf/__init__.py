"""NeuMF for implicit-feedback ranking on MXNet Gluon, after the D2L tutorial.

The top level holds what a user of the tutorial and of ``fit`` needs; the rest
is importable from its module (README, "API").
"""

# first: importing it flushes float32 denormals to zero in every thread (MXNet's
# threads started later inherit that) and sets MXNet's engine workers (neumf.cpu)
from . import cpu as _cpu  # noqa: F401  # isort: skip
from ._version import __version__
from .config import FitConfig
from .datasets import load_dataset
from .devices import try_all_gpus
from .evaluation import evaluate_model
from .experiment import fit
from .generate import synthetic
from .interactions import RecData, from_frame
from .losses import BPRLoss, HingeLossbRec
from .metrics import hit_and_auc
from .model import GMF, MLP, NeuMF
from .presets import PRESETS
from .recommend import recommend
from .result import FitResult, load, load_model
from .runs import RunError
from .sampling import PRDataset
from .tables import DataError
from .training import CollapseWarning
from .tutorial import (
    evaluate_ranking,
    load_data_ml100k,
    read_data_ml100k,
    split_data_ml100k,
    train_ranking,
)

__all__ = [
    # the tutorial's names
    "BPRLoss", "HingeLossbRec", "NeuMF", "PRDataset", "evaluate_ranking", "hit_and_auc",
    "load_data_ml100k", "read_data_ml100k", "split_data_ml100k", "train_ranking",
    "try_all_gpus",
    # one call from data to a model, and the model
    "fit", "load", "load_model", "recommend", "FitResult", "FitConfig", "PRESETS",
    # data
    "RecData", "from_frame", "load_dataset", "synthetic",
    # the towers, evaluation, what goes wrong
    "GMF", "MLP", "evaluate_model", "CollapseWarning", "DataError", "RunError",
    "__version__",
]
