"""Named settings for :func:`neumf.fit` (``preset=``), and what each was tuned
on: a preset is the best found for that data on its validation split
(benchmarks/QUALITY.md has the searches); on other data, start from it and
tune on your own validation split (``validation=True``)."""

from __future__ import annotations

import types
from typing import Any, Dict, Mapping

__all__ = ["PRESETS", "PRESET_NOTES"]

# The NCF paper's protocol (He et al., 2017, section 4.1): 4 negatives per
# positive, log loss, 99 sampled negatives, HR@10 and NDCG@10, 64 predictive
# factors, Xavier dense layers as the authors' code; the rest chosen on a
# validation split of their ML-1M training file. A fixed number of epochs on all
# training pairs, the test set ranked once at the end.
_NCF: Dict[str, Any] = {
    "dense_init": "xavier", "protocol": "sampled", "k": 10, "ks": (10,), "loss": "log",
    "num_negatives": 4, "batch_size": 1024, "wd": 0.0, "lr": 2e-3, "num_factors": 64,
    "mlp_factors": 64, "nums_hiddens": (128, 64), "num_epochs": 2, "validation": False,
    "patience": 0, "eval_step": 0, "sparse": True}
# the towers alone start wider (Normal(0.1)) under light weight decay
_TOWER: Dict[str, Any] = {**_NCF, "init_sigma": 0.1, "wd": 1e-5, "num_epochs": 6}
# MF with biases on ML-1M, alone (mf) or as neumf-pretrained's GMF tower
_MF_LR, _MF_EPOCHS = 6e-3, 14


def _frozen(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(settings))


PRESETS: Mapping[str, Mapping[str, Any]] = types.MappingProxyType({
    "tutorial": _frozen({}),
    "ease": _frozen({"model": "ease"}),
    "best": _frozen({
        "model": "mf", "biases": True, "num_factors": 64, "init_sigma": 0.1, "wd": 1e-5,
        "sparse": True, "loss": "log", "num_negatives": 8, "batch_size": 1024, "lr": 6e-3,
        "lr_schedule": "linear", "num_epochs": 15, "eval_step": 0}),
    "gmf": _frozen({**_TOWER, "model": "gmf"}),
    "mlp": _frozen({**_TOWER, "model": "mlp"}),
    "neumf": _frozen({**_TOWER, "model": "neumf", "mlp_factors": 32, "nums_hiddens": (64,),
                      "biases": True, "num_epochs": 5, "lr": 4e-3, "lr_schedule": "linear"}),
    "mf": _frozen({**_TOWER, "model": "mf", "biases": True, "lr": _MF_LR,
                   "num_epochs": _MF_EPOCHS, "lr_schedule": "linear"}),
    "neumf-pretrained": _frozen({
        **_TOWER, "model": "neumf", "pretrain": True, "gmf_tower": "mf", "biases": True,
        "pretrain_epochs": _MF_EPOCHS, "pretrain_lr": _MF_LR, "mlp_pretrain_epochs": 4,
        "mlp_pretrain_lr": 2e-3, "lr_schedule": "linear", "alpha": 0.9, "num_epochs": 0,
        "optimizer": "sgd", "lr": 0.01}),
})

# What each preset is, and the data it was tuned on (the CLI's --preset help
# and the README's table say the same)
PRESET_NOTES: Mapping[str, str] = types.MappingProxyType({
    "tutorial": "the D2L tutorial's NeuMF and settings (its MovieLens-100K run)",
    "ease": "Steck's EASE in closed form, lambda 3x the interactions per item (chosen on "
            "the ML-100K and ML-1M validation splits); the strongest model on both",
    "best": "MF with biases, tuned on ML-100K's seq-aware split (full ranking)",
    "gmf": "the NCF paper's GMF, tuned on ML-1M (99 sampled negatives)",
    "mlp": "the NCF paper's MLP, tuned on ML-1M (99 sampled negatives)",
    "neumf": "NeuMF from scratch with biases and a lighter MLP, tuned on ML-1M",
    "mf": "MF with biases (Rendle et al., 2020), tuned on ML-1M",
    "neumf-pretrained": "NeuMF from an MF and an MLP tower (the NCF paper's pretraining), "
                        "tuned on ML-1M",
})
