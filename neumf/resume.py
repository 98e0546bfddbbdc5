"""Continuing a saved run: which settings may change, and whether the data is
still the data the run was trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping

import pandas as pd

from ._util import file_digest
from .config import EXPERIMENT_SETTINGS, FitConfig
from .datasets import sources_of
from .interactions import frame_digest
from .runs import RunError, SavedRun

__all__ = ["check_source", "resumed_config"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resumed_config(saved: SavedRun, preset: str | None,
                   overrides: Mapping[str, Any]) -> FitConfig:
    """The saved configuration with the settings a resumed run may change:
    a RunError names any other setting, the saved value and what to do."""
    where = saved.path
    if preset is not None and preset != saved.source.get("preset"):
        raise RunError(f"{where} was made with preset {saved.source.get('preset')!r}; a "
                       "resumed run keeps its settings: leave out preset (--preset)")
    config = dataclasses.replace(saved.config, **overrides)
    for name in overrides:
        if name in EXPERIMENT_SETTINGS and getattr(config, name) != getattr(saved.config, name):
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
    return config


def check_source(saved: SavedRun, request: Dict[str, Any]) -> None:
    """Refuse, naming both, a data source that differs from the one the run saved
    (a changed file, or another file named on resume)."""
    recorded = saved.source.get("files") or {}
    dataset = request["dataset"]
    if isinstance(dataset, pd.DataFrame):
        digest = frame_digest(dataset)
        if saved.source.get("frame_sha256") not in (None, digest):
            raise RunError(f"the DataFrame given (sha256 {digest[:12]}) is not the one "
                           f"{saved.path} was trained on (sha256 "
                           f"{saved.source['frame_sha256'][:12]}): a resumed run continues the "
                           "same data; start a new run to train on other data")
        return
    named = any(request[key] is not None for key in ("dataset", "data_dir", "name"))
    dataset = saved.source.get("dataset") if dataset is None else dataset
    current = ({str(path): path for path in sources_of(
        dataset, request["data_dir"], request["name"] or saved.source.get("name"))}
               if named else {path: Path(path) for path in recorded})
    for (old_path, old), (new_path, path) in zip(sorted(recorded.items()),
                                                 sorted(current.items())):
        if path.is_file() and file_digest(path) != old:
            raise RunError(f"the data changed: {saved.path} was trained on {old_path} (sha256 "
                           f"{old[:12]}), and {new_path} now has sha256 "
                           f"{file_digest(path)[:12]}; a resumed run continues the same data: "
                           "start a new run to train on this one")
