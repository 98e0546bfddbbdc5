"""What :func:`neumf.fit` decides before any work: every setting checked by name
(the preset's and the caller's), the run folder it may write, the data
source of a resumed run; and, once the data is read, the cut-offs and sizes
it can hold."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping

import numpy as np
import pandas as pd

from ._util import check_bool, check_memory, check_path
from ._warn import warn
from .config import FitConfig, Pretrain, TrainSpec
from .datasets import DATASETS
from .interactions import RecData
from .presets import PRESETS
from .resume import check_source, resumed_config
from .runs import SavedRun, claim_run_folder, read_run

__all__ = ["CUTOFFS", "Plan", "check_sizes", "fit_to_catalogue", "plan", "request",
           "warn_about_test_pairs"]

# The cut-offs a default becomes where the candidates of a test item are few
CUTOFFS = (1, 5, 10, 20, 50)


@dataclass
class Plan:
    """Everything :func:`fit` decided before any work."""

    config: FitConfig
    saved: SavedRun | None
    out: Path | None
    request: Dict[str, Any]
    given: set  # settings named by the caller or the preset


def request(dataset, data_dir, name, preset, columns, header, resume) -> Dict[str, Any]:
    """:func:`fit`'s data arguments, checked, as :func:`plan` takes them."""
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a file name or prefix (str); got {name!r}")
    return {"dataset": "ml-100k" if resume is None and dataset is None else dataset,
            "data_dir": check_path("data_dir", data_dir, optional=True), "name": name,
            "preset": preset, "columns": columns,
            "header": check_bool("header", header, optional=True)}


def plan(request: Dict[str, Any], preset: str | None, resume, out, overwrite: bool,
          overrides: Mapping[str, Any]) -> Plan:
    check_bool("overwrite", overwrite)
    resume, out = (check_path(path, value, optional=True) for path, value in
                   (("resume", resume), ("out", out)))
    names = {spec.name for spec in dataclasses.fields(FitConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"fit() got unknown setting(s) {', '.join(map(repr, unknown))}; the "
                        f"settings are FitConfig's fields ({', '.join(sorted(names))})")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {tuple(PRESETS)}; got {preset!r}")
    saved = None
    if resume is not None:
        saved = read_run(resume)
        config = resumed_config(saved, preset, overrides)
        check_source(saved, request)
        out = resume if out is None else out
    else:
        config = _preset_config(preset, overrides)
        _warn_pretraining_preset_without_it(preset, config)
    _warn_unused_pretraining(config, overrides)
    _warn_unused_training(config, overrides)
    if config.training.distributed and (config.pretrain or saved is not None):
        raise ValueError(f"kvstore {config.kvstore!r} does not support pretrain or resume")
    if config.kvstore == "dist_async" and config.patience:
        raise ValueError("early stopping (patience) needs kvstore 'dist_sync': asynchronous "
                         "workers would stop at different epochs")
    dataset = request["dataset"]
    if saved is None and not isinstance(dataset, (pd.DataFrame, RecData)) \
            and dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, a pandas DataFrame or a RecData "
                         f"(neumf.from_frame, neumf.load_dataset); got {dataset!r}")
    if out is not None and not config.training.distributed:
        out = claim_run_folder(out, resume=resume, overwrite=overwrite)
    given = set(overrides) | set(PRESETS[preset] if preset and saved is None else {})
    return Plan(config, saved, None if out is None else Path(out), request, given)


def _preset_config(preset: str | None, overrides: Mapping[str, Any]) -> FitConfig:
    """``preset``'s settings under ``overrides``. A refused combination that
    involves a setting the preset brought (not one the caller gave) says so:
    the caller may not know the preset sets it."""
    settings = PRESETS[preset] if preset else {}
    try:
        return FitConfig(**{**settings, **overrides})
    except ValueError as error:
        brought = [name for name in settings if name not in overrides
                   and re.search(rf"(?<![\w-]){name}(?![\w-])", str(error))]
        if not brought:
            raise
        raise ValueError(f"{error} (preset {preset!r} sets "
                         f"{', '.join(f'{name}={settings[name]!r}' for name in brought)}: "
                         "give another value to override it)") from None


def _warn_pretraining_preset_without_it(preset: str | None, config: FitConfig) -> None:
    """A pretraining preset with pretraining turned off keeps the settings it
    fine-tunes with, not ones tuned to train NeuMF from scratch: say so."""
    if preset and PRESETS[preset].get("pretrain") and not config.pretrain:
        warn(f"preset {preset!r} without pretraining trains NeuMF from a random "
             f"start with optimizer {config.optimizer!r}, lr {config.lr} and "
             f"num_epochs {config.num_epochs} (the preset's are for fine-tuning "
             "pretrained towers); preset 'neumf' is the one tuned for NeuMF without "
             "pretraining", UserWarning)


def _warn_unused_pretraining(config: FitConfig, overrides: Dict[str, Any]) -> None:
    """Pretraining settings given to a run that does not pretrain change nothing: say so."""
    unused = sorted(set(overrides) & {spec.name for spec in dataclasses.fields(Pretrain)})
    if unused and not config.pretrain:
        warn(f"{', '.join(unused)} apply only with pretrain=True (--pretrain); this "
             "run does not pretrain, so they change nothing", UserWarning)


def _warn_unused_training(config: FitConfig, overrides: Dict[str, Any]) -> None:
    """Training settings given to a model with no epochs (EASE's closed form,
    popularity counts) change nothing: say so."""
    unused = sorted(set(overrides) & {spec.name for spec in dataclasses.fields(TrainSpec)}
                    - {"kvstore"})
    if unused and config.model in ("ease", "popularity"):
        warn(f"{', '.join(unused)} {'has' if len(unused) == 1 else 'have'} no effect on "
             f"model {config.model!r}, which is computed in closed form, without epochs",
             UserWarning)


def check_sizes(data: RecData, config: FitConfig) -> None:
    """Refuse, before allocating, settings this data cannot hold."""
    if data.num_items < 2:
        raise ValueError(f"{data.name}: the catalogue has {data.num_items} item: there is "
                         "nothing to rank")
    if config.model in ("popularity", "ease"):  # not trained on triplets
        return
    if config.num_negatives >= data.num_items:
        raise ValueError(f"num_negatives={config.num_negatives} exceeds the "
                         f"{data.num_items - 1} items any user could have as negatives (the "
                         f"catalogue has {data.num_items} items)")
    triplets = len(data.train_users) * config.num_negatives
    check_memory(48 * triplets, f"an epoch of {triplets} triplets "
                 f"(num_negatives={config.num_negatives})")
    # a batch's activations: each triplet scores two pairs through every layer's
    # width; float32 values, their gradients and MXNet's workspace
    spec = config.model_spec
    width = 3 * spec.num_factors + 2 * (spec.mlp_factors or spec.num_factors) \
        + sum(spec.nums_hiddens)
    rows = min(config.batch_size, triplets)
    check_memory(4 * 3 * 2 * rows * width, f"a batch of {rows} triplets "
                 f"(batch_size={config.batch_size}) through layers {width} values wide "
                 f"(num_factors={spec.num_factors}, mlp_factors={spec.mlp_factors}, "
                 f"nums_hiddens={spec.nums_hiddens})")


def warn_about_test_pairs(data: RecData, config: FitConfig) -> None:
    """Warn when there are no test pairs (the metrics are then NaN), or when
    test pairs are ranked among no more candidates than the largest cut-off:
    their hits count whatever the model does."""
    if len(data.test_users) == 0:
        warn("there are no test pairs left to rank (see the data's warnings), so "
             "every metric will be NaN: the model trains, nothing measures it",
             UserWarning)
        return
    k = max(config.evaluation.cutoffs())
    pairs = np.unique(data.train_users * np.int64(data.num_items) + data.train_items)
    seen = np.bincount(pairs // data.num_items, minlength=data.num_users)
    candidates = data.num_items - seen[data.test_users]
    if config.protocol == "sampled":
        given = data.test_negatives
        per_pair = (config.eval_negatives if given is None else given.shape[1]) + 1
        candidates = np.minimum(candidates, per_pair)
    trivial = int(np.count_nonzero(candidates <= k))
    if trivial:
        warn(f"{trivial} of {len(candidates)} test pairs are ranked among {k} or "
             f"fewer candidates ({config.protocol} protocol), so hr@{k} counts them "
             "as hits whatever the model does: lower the cut-offs (k, ks)"
             + (", or raise eval_negatives" if config.protocol == "sampled" else ""),
             UserWarning)


def _candidates(data: RecData, config: FitConfig) -> int:
    """How many items a test item is ranked among: its negatives and itself,
    or the catalogue."""
    if data.test_negatives is not None:
        return data.test_negatives.shape[1] + 1
    return config.eval_negatives + 1 if config.protocol == "sampled" else data.num_items


def fit_to_catalogue(config: FitConfig, data: RecData, given: set) -> FitConfig:
    """Cut-offs that say something: one given above the catalogue is refused; a
    default above a tenth of the candidates each test item is ranked among
    becomes the largest of :data:`CUTOFFS` within it (ML-100K keeps the
    tutorial's 50; ML-1M's 99 negatives give 10; 200 items give 20): a larger
    one counts most test pairs as hits whatever the model does. The metrics'
    names (``hr@20``) say which were used."""
    cap = max((k for k in CUTOFFS if k <= _candidates(data, config) // 10), default=1)
    changes = {}
    for name in ("k", "ks", "monitor"):
        value = getattr(config, name)
        kind, _, k = str(value).partition("@") if name == "monitor" else ("", "", "")
        cutoffs = (int(k),) if k else () if name == "monitor" else \
            (value,) if name == "k" else value
        if name in given:
            if max(cutoffs, default=0) > data.num_items:
                raise ValueError(f"{name}={value!r} is larger than the catalogue of "
                                 f"{data.num_items} items")
            continue
        if max(cutoffs, default=0) > cap:
            changes[name] = {"k": min(value, cap) if name == "k" else None,
                             "ks": tuple(sorted({min(c, cap) for c in cutoffs})),
                             "monitor": f"{kind}@{cap}"}[name]
    if not changes:  # the metrics' names say which cut-offs were used
        return config
    return dataclasses.replace(config, **changes)
