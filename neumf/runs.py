"""Saved runs: a folder with the model in MXNet's own format, JSON for the rest,
NumPy arrays for the data; no pickle anywhere."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import gluon

from .datasets import RecData
from .model import NeuMF
from .parallel import try_all_gpus
from .training import updaters

__all__ = ["RunError", "export_net", "load_model", "read_run", "save_run"]

FORMAT = 1
MANIFEST, DATA = "run.json", "data.npz"
METRICS, CURVES = "metrics.json", "curves.png"
BEST = "model-best.params"
PathLike = Union[str, os.PathLike]


class RunError(ValueError):
    """A run folder is missing files, was written by another format, or is damaged."""


@dataclass
class SavedRun:
    """A run folder's manifest, read and checked (see :func:`read_run`)."""

    path: Path
    config: Any
    source: Dict[str, Any]
    manifest: Dict[str, Any]


def _atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write through ``write(temporary_name)`` and rename into place, so a reader
    never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the run from other users
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_json(path: Path, value) -> None:
    def write(name: str) -> None:
        with open(name, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=1, allow_nan=False)
    _atomic(path, write)


def _json_safe(value):
    """NaN and infinities as null, NumPy scalars as Python ones."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _structural_names(trainer: gluon.Trainer, net: NeuMF) -> Dict[int, str]:
    """Trainer index -> structural parameter name (``mlp.0.weight``): indices and
    MXNet's own names depend on creation order, so state is saved by structure."""
    by_id = {id(param): name for name, param in net._collect_params_with_prefix().items()}
    return {index: by_id[id(param)] for index, param in enumerate(trainer._params)}


def _optimizer_state(trainer: gluon.Trainer, net: NeuMF) -> Tuple[Dict[str, mx.nd.NDArray],
                                                                    Dict]:
    updater = updaters(trainer)[0]
    names = _structural_names(trainer, net)
    arrays, layout = {}, {}
    for index, state in updater.states.items():
        parts = state if isinstance(state, (tuple, list)) else (state,)
        name = names[index]
        layout[name] = {"tuple": isinstance(state, (tuple, list)),
                        "parts": [None if part is None else f"{name}.{j}"
                                  for j, part in enumerate(parts)]}
        for j, part in enumerate(parts):
            if part is not None:
                arrays[f"{name}.{j}"] = part.as_in_context(mx.cpu())
    optimizer = updater.optimizer
    meta = {"layout": layout, "num_update": optimizer.num_update,
            "update_count": {names[k]: v for k, v in optimizer._index_update_count.items()}}
    return arrays, meta


def _restore_optimizer(trainer: gluon.Trainer, net: NeuMF,
                       arrays: Dict[str, mx.nd.NDArray], meta: Dict) -> None:
    index_of = {name: index for index, name in _structural_names(trainer, net).items()}
    for updater in updaters(trainer):
        for name, entry in meta["layout"].items():
            parts = [None if key is None else arrays[key].copy() for key in entry["parts"]]
            updater.states[index_of[name]] = tuple(parts) if entry["tuple"] else parts[0]
            updater.states_synced[index_of[name]] = False  # moved to the weight's device on use
        optimizer = updater.optimizer
        optimizer.num_update = meta["num_update"]
        counts = {index_of[name]: count for name, count in meta["update_count"].items()}
        # Adam's bias correction reads per-device counts, selected before each update
        devices = {context.device_id for context in net.collect_params().list_ctx()} | {0}
        optimizer._all_index_update_counts = {device: dict(counts) for device in devices}
        optimizer._index_update_count = optimizer._all_index_update_counts[0]


@contextlib.contextmanager
def _np_semantics():
    """MXNet files record the shape semantics they were written in and refuse to
    load in the other; checkpoints are written from inside the (NumPy-mode)
    training loop and at the end, so always use one."""
    with mx.util.np_shape(True), mx.util.np_array(True):
        yield


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_run(result, run_dir: PathLike, *, final: bool = True) -> Path:
    """Write ``result`` (a :class:`neumf.FitResult`) into ``run_dir`` as a checkpoint.

    Files: ``model-EPOCH.params`` and ``optimizer-EPOCH.states`` (MXNet's
    formats), ``data.npz`` (training and test pairs), then ``run.json`` (format,
    library version, configuration, data source, sizes, raw id maps, optimizer
    layout, sampler state, history, and the SHA-256 of each file above), then
    ``metrics.json`` and, when ``final`` and matplotlib is there, ``curves.png``.
    Every file goes to a temporary name and is renamed into place, and
    ``run.json`` names the new files only once they are complete, so a process
    killed at any moment leaves the previous checkpoint loadable.
    """
    from . import __version__

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data: RecData = result.data
    epoch = len(result.history)
    files = {"model": f"model-{epoch:04d}.params", "data": DATA}
    with _np_semantics():
        _atomic(run_dir / files["model"], result.net.save_parameters)
    if result.best_params is not None:  # early stopping's best epoch, for resume
        files["best"] = BEST
        best = {name: mx.nd.array(value) for name, value in result.best_params.items()}
        with _np_semantics():
            _atomic(run_dir / BEST, lambda name: mx.nd.save(name, best))
    optimizer_meta = None
    if result.trainer is not None:
        files["optimizer"] = f"optimizer-{epoch:04d}.states"
        arrays, optimizer_meta = _optimizer_state(result.trainer, result.net)
        with _np_semantics():
            _atomic(run_dir / files["optimizer"], lambda name: mx.nd.save(name, arrays))
    arrays = {"train_users": data.train_users, "train_items": data.train_items,
              "test_users": data.test_users, "test_items": data.test_items}
    for optional in ("test_negatives", "train_times"):
        if getattr(data, optional) is not None:
            arrays[optional] = getattr(data, optional)

    def write_npz(name: str) -> None:
        with open(name, "wb") as handle:
            np.savez(handle, **arrays)
    _atomic(run_dir / DATA, write_npz)
    history = _json_safe(result.history)
    sampler_state = (None if result.sampler is None
                     else result.sampler.rng.bit_generator.state)
    _write_json(run_dir / MANIFEST, _json_safe({
        "format": FORMAT, "library": "neumf", "version": __version__,
        "config": dataclasses.asdict(result.config), "source": result.source,
        "dataset_name": data.name, "num_users": result.num_users,
        "num_items": result.num_items, "epochs_done": epoch, "files": files,
        "sha256": {name: _sha256(run_dir / name) for name in files.values()},
        "optimizer": optimizer_meta, "sampler_rng": sampler_state, "history": history,
        "best_epoch": result.best_epoch, "towers": result.towers,
        "id_maps": {"users": data.user_ids.astype(str).tolist(),
                    "items": data.item_ids.astype(str).tolist()}}))
    _remove_stale(run_dir, set(files.values()))
    timings = {"train_seconds": sum(h["train_seconds"] for h in result.history),
               "eval_seconds": sum(h["eval_seconds"] for h in result.history)}
    _write_json(run_dir / METRICS, _json_safe({
        **result.metrics, "hit_rate": result.hit_rate, "auc_tutorial": result.auc,
        "history": history, "timings": timings}))
    if final:
        try:
            from .plotting import plot_history
            _atomic(run_dir / CURVES,
                    lambda name: plot_history(result.history, name, fmt="png"))
        except ImportError:
            warnings.warn("matplotlib is not installed, so curves.png was not drawn "
                          "(pip install 'neumf[plot]')", UserWarning, stacklevel=2)
    return run_dir


def _remove_stale(run_dir: Path, keep: set) -> None:
    """Older checkpoints' files and temporaries a killed writer left behind."""
    for path in run_dir.iterdir():
        stale_checkpoint = (path.name.startswith(("model-", "optimizer-"))
                            and path.name not in keep)
        if stale_checkpoint or (path.name.startswith(".") and path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)


def read_run(run_dir: PathLike) -> SavedRun:
    """Read and check a run folder: its manifest, and every file it names against
    the recorded SHA-256."""
    from . import __version__
    from .experiment import FitConfig

    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise RunError(f"{run_dir}: not a complete neumf run; missing {MANIFEST} (no "
                       "checkpoint was finished there)")
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{run_dir / MANIFEST}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("library") != "neumf" \
            or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise RunError(f"{run_dir / MANIFEST}: not a neumf run of format {FORMAT} "
                       f"(format {found!r})")
    if str(manifest.get("version", "")).split(".")[0] != __version__.split(".")[0]:
        raise RunError(f"{run_dir}: saved by neumf {manifest.get('version')}, which this "
                       f"neumf {__version__} cannot read")
    for name, expected in manifest["sha256"].items():
        path = run_dir / name
        if not path.is_file():
            raise RunError(f"{run_dir}: missing {name}, which {MANIFEST} lists")
        if _sha256(path) != expected:
            raise RunError(f"{path}: SHA-256 does not match {MANIFEST}; the file was "
                           "modified or damaged")
    config = dict(manifest["config"])
    config["nums_hiddens"] = tuple(config["nums_hiddens"])
    if "ks" in config:
        config["ks"] = tuple(config["ks"])
    return SavedRun(run_dir, FitConfig(**config), manifest["source"], manifest)


def _history(saved: SavedRun) -> List[Dict[str, float]]:
    return [{key: float("nan") if value is None else value for key, value in stats.items()}
            for stats in saved.manifest["history"]]


def _load_params(saved: SavedRun, net: NeuMF, devices: Sequence[mx.Context]) -> None:
    try:
        with _np_semantics():
            net.load_parameters(str(saved.path / saved.manifest["files"]["model"]),
                                ctx=list(devices))
    except (mx.base.MXNetError, AssertionError, ValueError) as exc:
        raise RunError(f"{saved.path / saved.manifest['files']['model']}: cannot be loaded "
                       "into the saved network "
                       f"({str(exc).splitlines()[0]})") from None


def restore_training_state(saved: SavedRun, net: NeuMF, trainer: gluon.Trainer, sampler,
                           devices: Sequence[mx.Context]
                           ) -> Tuple[List[Dict[str, float]], Dict[str, np.ndarray] | None]:
    """Load parameters, optimizer state and sampler state from ``saved`` into a
    freshly built network, trainer and sampler; returns the saved history and
    the best epoch's weights kept for early stopping (or None)."""
    _load_params(saved, net, devices)
    meta = saved.manifest.get("optimizer")
    if meta is not None:
        optimizer_file = saved.path / saved.manifest["files"]["optimizer"]
        with _np_semantics():
            arrays = mx.nd.load(str(optimizer_file))
        _restore_optimizer(trainer, net, arrays, meta)
    if saved.manifest.get("sampler_rng") is not None:
        sampler.rng.bit_generator.state = saved.manifest["sampler_rng"]
    best = None
    if "best" in saved.manifest["files"]:
        with _np_semantics():
            best = {name: value.asnumpy() for name, value in
                    mx.nd.load(str(saved.path / saved.manifest["files"]["best"])).items()}
    return _history(saved), best


def saved_data(saved: SavedRun) -> RecData:
    """The training and test pairs and id maps a run saved."""
    manifest = saved.manifest
    with np.load(saved.path / DATA, allow_pickle=False) as arrays:
        values = {key: arrays[key] for key in arrays.files}
    id_maps = manifest["id_maps"]
    if (len(id_maps["users"]), len(id_maps["items"])) != (manifest["num_users"],
                                                          manifest["num_items"]):
        raise RunError(f"{saved.path / MANIFEST}: id maps do not match the model's sizes")
    return RecData(manifest["dataset_name"], values["train_users"], values["train_items"],
                   values["test_users"], values["test_items"], manifest["num_users"],
                   manifest["num_items"], np.asarray(id_maps["users"]),
                   np.asarray(id_maps["items"]), values.get("test_negatives"),
                   values.get("train_times"))


def load_model(run_dir: PathLike, devices: Sequence[mx.Context] | None = None):
    """Load a saved run as a :class:`neumf.FitResult` (network, configuration,
    history, metrics, data and id maps), ready to evaluate, recommend or export."""
    from .experiment import FitResult, build_model

    saved = read_run(run_dir)
    manifest, config = saved.manifest, saved.config
    devices = list(devices) if devices is not None else try_all_gpus()
    net = build_model(config, manifest["num_users"], manifest["num_items"])
    _load_params(saved, net, devices)
    net.hybridize(static_alloc=True)
    data = saved_data(saved)
    metrics_path = saved.path / METRICS
    metrics = {}
    if metrics_path.is_file():
        stored = json.loads(metrics_path.read_text(encoding="utf-8"))
        metrics = {key: value for key, value in stored.items()
                   if key not in ("history", "timings", "hit_rate", "auc_tutorial")}
    history = _history(saved)
    evaluated = [h for h in history if not math.isnan(h["hit_rate"])]
    return FitResult(net=net, config=config, history=history, num_users=manifest["num_users"],
                     num_items=manifest["num_items"],
                     hit_rate=evaluated[-1]["hit_rate"] if evaluated else float("nan"),
                     auc=evaluated[-1]["auc"] if evaluated else float("nan"),
                     metrics=metrics, data=data, source=saved.source,
                     best_epoch=manifest.get("best_epoch"), towers=manifest.get("towers") or {})


def export_net(net: NeuMF, prefix: PathLike) -> Tuple[Path, Path]:
    """Export the hybridized network as ``<prefix>-symbol.json`` and
    ``<prefix>-0000.params``, loadable with ``gluon.SymbolBlock.imports``."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    net.hybridize(static_alloc=True)
    device = net.collect_params().list_ctx()[0]
    probe = mx.np.zeros((1,), dtype="int32", ctx=device)
    net(probe, probe)  # export needs a traced graph
    net.export(str(prefix))
    return Path(f"{prefix}-symbol.json"), Path(f"{prefix}-0000.params")
