"""NeuMF for implicit-feedback ranking on MXNet Gluon, after the D2L tutorial."""

from .data import DataError, load_data_ml100k, read_data_ml100k, read_ratings, split_data_ml100k
from .datasets import RecData, from_frame, load_dataset, validation_split, write_ncf
from .download import DownloadError, data_home, download_ml100k
from .evaluation import evaluate_model, evaluate_ranking, score_users
from .experiment import PRESETS, FitConfig, FitResult, build_model, fit
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
from .model import GMF, MLP, NeuMF, Popularity
from .parallel import try_all_gpus
from .plotting import LivePlot, plot_history
from .recommend import Recommendations, recommend
from .runs import RunError, export_net, load_model
from .sampling import PRDataset, TripletLoader, sample_negatives
from .training import CollapseWarning, train_ranking

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
    "score_users",
    "split_data_ml100k",
    "train_ranking",
    "try_all_gpus",
    "validation_split",
    "write_ncf",
]
__version__ = "0.1.0"
