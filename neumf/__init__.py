"""NeuMF for implicit-feedback ranking on MXNet Gluon, after the D2L tutorial."""

# first: importing it flushes float32 denormals to zero in every thread (MXNet's
# threads started later inherit that) and sets MXNet's engine workers (neumf.cpu)
from . import cpu as _cpu  # noqa: F401  # isort: skip

from ._version import __version__
from .config import FitConfig
from .datasets import load_dataset, write_ncf
from .devices import try_all_gpus
from .download import DownloadError, data_home, download_ml100k
from .evaluation import evaluate_model, score_users
from .experiment import fit
from .generate import synthetic
from .interactions import RecData, from_frame, validation_split
from .losses import BPRLoss, HingeLossbRec, PointwiseLogLoss
from .metrics import (
    auc_from_counts,
    hit_and_auc,
    hit_rate_from_counts,
    mrr_from_counts,
    ndcg_from_counts,
    rank_counts,
    ranking_metrics,
)
from .model import GMF, MLP, NeuMF, Popularity, build_model
from .plotting import LivePlot, plot_history
from .presets import PRESETS
from .recommend import Recommendations, recommend
from .runs import FitResult, RunError, export_net, load_model
from .sampling import PRDataset, TripletLoader, sample_negatives, sampled_negatives
from .tables import DataError
from .training import CollapseWarning
from .tutorial import (
    evaluate_ranking,
    load_data_ml100k,
    read_data_ml100k,
    read_ratings,
    split_data_ml100k,
    train_ranking,
)

__all__ = [
    "BPRLoss",
    "CollapseWarning",
    "DataError",
    "DownloadError",
    "FitConfig",
    "FitResult",
    "GMF",
    "HingeLossbRec",
    "LivePlot",
    "MLP",
    "NeuMF",
    "PRDataset",
    "PRESETS",
    "PointwiseLogLoss",
    "Popularity",
    "RecData",
    "Recommendations",
    "RunError",
    "TripletLoader",
    "__version__",
    "auc_from_counts",
    "build_model",
    "data_home",
    "download_ml100k",
    "evaluate_model",
    "evaluate_ranking",
    "export_net",
    "fit",
    "from_frame",
    "hit_and_auc",
    "hit_rate_from_counts",
    "load_data_ml100k",
    "load_dataset",
    "load_model",
    "mrr_from_counts",
    "ndcg_from_counts",
    "plot_history",
    "rank_counts",
    "ranking_metrics",
    "read_data_ml100k",
    "read_ratings",
    "recommend",
    "sample_negatives",
    "sampled_negatives",
    "score_users",
    "split_data_ml100k",
    "synthetic",
    "train_ranking",
    "try_all_gpus",
    "validation_split",
    "write_ncf",
]
