"""Continuing a saved run: which settings may change, and whether the data is
still the data the run was trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping

import pandas as pd

from ._util import file_digest
from .config import EXPERIMENT_SETTINGS, FitConfig, TrainSpec
from .datasets import sources_of
from .interactions import RecData, frame_digest
from .presets import PRESETS
from .runs import RunError, SavedRun
from .tables import normal_columns

__all__ = ["check_source", "resumed_config"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resumed_config(saved: SavedRun, preset: str | None,
                   overrides: Mapping[str, Any]) -> FitConfig:
    """The saved configuration with the settings a resumed run may change:
    a RunError names any other setting, the saved value and what to do. A
    setting given with the value that the run already has in effect (the
    tutorial preset on a run without one, ``sparse`` as the sizes decided it)
    is accepted."""
    where = saved.path
    if preset is not None and preset != saved.source.get("preset"):
        changed = _changed(saved, dataclasses.replace(saved.config, **PRESETS[preset]),
                           PRESETS[preset])
        if changed:
            raise RunError(f"{where} was made with preset {saved.source.get('preset')!r}, and "
                           f"preset {preset!r} would change {', '.join(changed)}; a resumed "
                           "run keeps its settings: leave out preset (--preset)")
    config = dataclasses.replace(saved.config, **overrides)
    changed = _changed(saved, config, overrides)
    if changed:
        name = changed[0]
        raise RunError(
            f"{name} ({_flag(name)}) is {getattr(config, name)!r} but {where} was made "
            f"with {name}={getattr(saved.config, name)!r}; it defines the experiment, so a "
            "resumed run cannot change it: start a new run (another --out) instead")
    if config.optimizer != saved.config.optimizer:
        raise RunError(f"optimizer ({_flag('optimizer')}) is {config.optimizer!r} but {where} "
                       f"was trained with {saved.config.optimizer!r}, whose saved state another "
                       "optimizer cannot continue: resume with the same optimizer, or start a "
                       "new run")
    done = saved.epochs_done
    if config.num_epochs < done:
        raise RunError(f"{where} has trained {done} epochs, and num_epochs "
                       f"({_flag('num_epochs')}) is the total, those {done} included: give "
                       f"more than {done} to train further (got {config.num_epochs})")
    unused = [name for name in overrides if name in _TRAINING and name != "num_epochs"
              and getattr(config, name) != getattr(saved.config, name)]
    if config.num_epochs == done and unused:
        raise RunError(f"{where} has trained {done} epoch{'s' * (done != 1)} and "
                       f"num_epochs ({_flag('num_epochs')}) is {done}: no epoch would train "
                       f"with {', '.join(unused)}, yet the run would keep "
                       f"{'them' if len(unused) > 1 else 'it'} for the next resume; give "
                       f"a larger num_epochs, or leave {'them' if len(unused) > 1 else 'it'} "
                       "out")
    return config


# settings that act only while epochs train (evaluation settings act at the end too)
_TRAINING = frozenset(field.name for field in dataclasses.fields(TrainSpec))


def _changed(saved: SavedRun, config: FitConfig, names) -> list:
    """The experiment settings among ``names`` whose effect differs between the
    saved configuration and ``config``."""
    sizes = (saved.manifest["num_users"], saved.manifest["num_items"])
    return [name for name in names if name in EXPERIMENT_SETTINGS
            and _in_effect(config, name, sizes) != _in_effect(saved.config, name, sizes)]


def _in_effect(config: FitConfig, name: str, sizes) -> Any:
    """What a setting does: settings that a configuration ignores count as None."""
    if name == "sparse":
        return config.model != "popularity" and config.training.is_sparse(*sizes)
    if name == "eval_negatives" and config.protocol != "sampled":
        return None
    if name == "mlp_factors":
        return config.mlp_factors or config.num_factors
    if name.startswith("pretrain_") or name == "alpha":
        return getattr(config, name) if config.pretrain else None
    return getattr(config, name)


def check_source(saved: SavedRun, request: Dict[str, Any]) -> None:
    """Refuse, naming both, a data source that differs from the one the run saved
    (another data set, file, column order or header, a changed file, or a
    named folder without the files)."""
    dataset = request["dataset"]
    if isinstance(dataset, (pd.DataFrame, RecData)):
        _check_frame(saved, dataset)
        return
    given = [key for key in ("dataset", "data_dir", "name") if request[key] is not None]
    if saved.source.get("dataset") in _OBJECTS and given:
        raise RunError(f"{saved.path} was trained on {_OBJECTS[saved.source['dataset']]} "
                       f"given to fit, not on a named data set, so {', '.join(given)} cannot "
                       "name its data: leave them out to continue on the run's own copy of "
                       "the data, or pass the same object as dataset")
    for key in ("dataset", "name", "columns", "header"):
        _check_same(saved, key, request[key])
    named = any(request[key] is not None for key in ("dataset", "data_dir", "name"))
    if not named:
        current = {path: Path(path) for path in saved.source.get("files") or {}}
    else:
        dataset = saved.source.get("dataset") if dataset is None else dataset
        current = {str(path): path for path in sources_of(
            dataset, request["data_dir"], request["name"] or saved.source.get("name"))}
        if request["data_dir"] is not None and not current:
            raise RunError(f"data_dir {request['data_dir']} holds none of the files "
                           f"{saved.path} was trained on ({', '.join(saved.source['files'])}): "
                           "leave out data_dir to continue on the run's own copy of the data")
    _check_digests(saved, current)


# what a run's source records for data given as an object, and how to say it
_OBJECTS = {"dataframe": "a pandas DataFrame", "recdata": "a RecData"}


def _check_frame(saved: SavedRun, frame) -> None:
    digest = frame_digest(frame)
    if saved.source.get("frame_sha256") not in (None, digest):
        kind = "DataFrame" if isinstance(frame, pd.DataFrame) else "RecData"
        raise RunError(f"the {kind} given (sha256 {digest[:12]}) is not the one "
                       f"{saved.path} was trained on (sha256 "
                       f"{saved.source['frame_sha256'][:12]}): a resumed run continues the "
                       "same data; start a new run to train on other data")


def _check_same(saved: SavedRun, key: str, value) -> None:
    if value is None:
        return
    recorded = saved.source.get(key)
    if key == "columns":
        value, recorded = normal_columns(value), normal_columns(recorded)
    if recorded is not None and value != recorded:
        raise RunError(f"{key} ({_flag(key)}) is {value!r} but {saved.path} was trained with "
                       f"{key}={recorded!r}; a resumed run continues the same data: leave "
                       f"out {key}, or start a new run")


def _check_digests(saved: SavedRun, current: Mapping[str, Path]) -> None:
    recorded = saved.source.get("files") or {}
    for (old_path, old), (new_path, path) in zip(sorted(recorded.items()),
                                                 sorted(current.items())):
        if path.is_file() and file_digest(path) != old:
            raise RunError(f"the data changed: {saved.path} was trained on {old_path} (sha256 "
                           f"{old[:12]}), and {new_path} now has sha256 "
                           f"{file_digest(path)[:12]}; a resumed run continues the same data: "
                           "start a new run to train on this one")
