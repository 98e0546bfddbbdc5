"""NeuMF for implicit-feedback ranking on MXNet Gluon, after the D2L tutorial."""

from .data import DataError, load_data_ml100k, read_data_ml100k, read_ratings, split_data_ml100k
from .download import DownloadError, data_home, download_ml100k
from .evaluation import evaluate_ranking, score_users
from .experiment import FitConfig, FitResult, fit
from .losses import BPRLoss, HingeLossbRec
from .metrics import auc_from_counts, hit_and_auc, hit_rate_from_counts, rank_counts
from .model import NeuMF
from .parallel import try_all_gpus
from .sampling import PRDataset, TripletLoader, sample_negatives
from .training import CollapseWarning, train_ranking

__all__ = [
    "BPRLoss",
    "CollapseWarning",
    "DataError",
    "DownloadError",
    "FitConfig",
    "FitResult",
    "HingeLossbRec",
    "NeuMF",
    "PRDataset",
    "TripletLoader",
    "auc_from_counts",
    "data_home",
    "download_ml100k",
    "evaluate_ranking",
    "fit",
    "hit_and_auc",
    "hit_rate_from_counts",
    "load_data_ml100k",
    "rank_counts",
    "read_data_ml100k",
    "read_ratings",
    "sample_negatives",
    "score_users",
    "split_data_ml100k",
    "train_ranking",
    "try_all_gpus",
]
__version__ = "0.1.0"
