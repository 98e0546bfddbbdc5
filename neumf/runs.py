"""A run folder that belongs to its run: its lock, checkpoints written whole,
and what they hold, read back and checked.

A run folder holds the model in MXNet's own format, JSON for the rest and
NumPy arrays for the data; no pickle anywhere. A checkpoint's files and its
manifest (``run.json``, naming each file with its SHA-256) are all written to
temporary names and checked (MXNet's files read back: MXNet does not report
a failed write) before any is renamed into place, the manifest last: a full
disk or a file-size limit leaves the previous checkpoint whole, and a reader
sees the old checkpoint or the new one. Nothing in the folder is deleted or
overwritten unless a manifest of the run lists it, and nothing is written
through a symbolic link (a file is replaced by a rename, which replaces a
link itself). A folder being trained is locked (``.neumf.lock``, holding the
writer's pid and host; never a link).

"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import gluon

from ._gluon import parameters
from ._util import (
    atomic_write,
    check_path,
    file_digest,
    json_safe,
    open_own_file,
)
from ._version import __version__
from .config import FitConfig
from .interactions import RecData
from .optim_state import optimizer_state, restore_optimizer
from .plotting import plot_history

try:  # POSIX: an OS-level lock, released by the OS when its holder dies
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["RunError", "RunLock", "SavedRun", "TrainingState", "check_mxnet_file",
           "claim_run_folder",
           "load_params", "np_semantics", "read_manifest", "read_run", "restore_training",
           "save_run", "saved_data", "saved_history", "saved_metrics", "write_failure",
           "write_json"]

FORMAT = 2
READABLE_FORMATS = (1, 2)
MANIFEST, DATA = "run.json", "data.npz"
METRICS, CURVES = "metrics.json", "curves.png"
BEST = "model-best.params"
LOCK = ".neumf.lock"
_REQUIRED = ("format", "library", "version", "config", "source", "num_users", "num_items",
             "files", "sha256", "history", "id_maps")
# Temporaries of atomic_write for the run's own file names.
# The names a run's files can have: nothing else is ever removed from a run folder.
_OWN_NAMES = (r"(run\.json|data\.npz|metrics\.json|curves\.png|model-(\d{4,}|best)\.params|"
              r"optimizer-\d{4,}\.states)")
_OWN = re.compile(rf"^{_OWN_NAMES}$")
_TEMPORARY = re.compile(rf"^\.{_OWN_NAMES}\.[^.]+\.tmp$")
PathLike = Union[str, os.PathLike]


class RunError(ValueError):
    """A run folder is missing files, was written by another format, is damaged,
    is another process's, or is not a run at all."""


@dataclass
class TrainingState:
    """What a checkpoint needs beyond the result: the Trainer (optimizer state),
    the sampler (its generator's state), the best epoch's weights kept by early
    stopping, the validation pairs' sampled negatives, and the row-sparse
    tables' optimizer state."""

    trainer: gluon.Trainer | None = None
    sampler: Any = None
    best_weights: Dict[str, np.ndarray] | None = None
    validation_negatives: np.ndarray | None = None
    sparse: Any = None  # neumf.sparse.SparseBatches: the tables' lazy optimizer state
    last_weights: Dict[str, np.ndarray] | None = None  # the last epoch's, when net holds the best
    # a loaded run's optimizer arrays and layout, and sampler state, kept as saved
    saved_optimizer: Tuple[Dict, Dict] | None = None
    saved_sampler: Dict | None = None


# --- the folder: whose it is, and who writes it -----------------------------------------------

class RunLock:
    """An exclusive lock on a run folder, for as long as a process writes it.
    ``acquire`` refuses at once, naming the holder's pid and host, when another
    process holds it; the OS releases the lock of a process that dies, so a
    stale lock is taken over."""

    def __init__(self, folder: PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self._handle = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:  # written in place (the lock is on its inode), so never through a link
            descriptor = open_own_file(self.path, "the run's lock")
        except ValueError as exc:
            raise RunError(str(exc)) from None
        handle = open(descriptor, "r+", encoding="utf-8")  # noqa: SIM115 (held until release)
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                raise RunError(f"{self.folder} is being written by another neumf process "
                               f"({_describe_holder(holder)}): wait for it to finish, or "
                               "choose another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            if fcntl is not None:
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on host {holder['host']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "an unknown holder"


def claim_run_folder(out: PathLike, *, resume: PathLike | None = None,
                     overwrite: bool = False) -> Path:
    """The run folder ``out`` if a run may be written there, else a RunError
    that says why and what to do: it must name a folder (not a file); an
    existing run is continued only from ``resume`` or replaced with
    ``overwrite``; a non-empty folder that is not a neumf run is never used."""
    if out is None or not str(out).strip():
        raise ValueError(f"out must name a folder for the run; got {str(out)!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file, not a folder: choose a folder for the run (out=, "
                       "--out)")
    if not out.is_dir():
        return out
    entries = sorted(path.name for path in out.iterdir() if path.name != LOCK)
    if MANIFEST in entries:
        same = resume is not None and Path(resume).resolve() == out.resolve()
        if not same and not overwrite:
            raise RunError(f"{out} already holds a neumf run: continue it with resume= "
                           f"(neumf train --resume {out}), or replace it with overwrite=True "
                           "(--overwrite)")
        return out
    foreign = [name for name in entries if not _TEMPORARY.match(name)]
    if foreign and not (out / LOCK).exists():
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunError(f"{out} is not empty and is not a neumf run (it holds {shown}): "
                       "choose a new or empty folder for the run")
    return out


# --- writing --------------------------------------------------------------------------------

@contextlib.contextmanager
def np_semantics():
    """MXNet files record the shape semantics they were written in and refuse to
    load in the other; checkpoints are written from inside the (NumPy-mode)
    training loop and at the end, so always use one."""
    with mx.util.np_shape(True), mx.util.np_array(True):
        yield


def _data_arrays(data: RecData, state: TrainingState | None) -> Dict[str, np.ndarray]:
    arrays = {"train_users": data.train_users, "train_items": data.train_items,
              "test_users": data.test_users, "test_items": data.test_items}
    for optional in ("test_negatives", "train_times"):
        if getattr(data, optional) is not None:
            arrays[optional] = getattr(data, optional)
    if state is not None and state.validation_negatives is not None:
        arrays["validation_negatives"] = state.validation_negatives
    return arrays


class _Staging:
    """Files written to temporaries beside their names in ``folder`` and renamed
    into place together, in the order written, by :meth:`commit` (renames write
    no data: a full disk or a file-size limit can only fail the writes, before
    anything was replaced); :meth:`discard` removes what was not committed."""

    def __init__(self, folder: Path):
        self.folder, self.files = folder, []  # (temporary, final)

    def write(self, name: str, write: Callable[[str], None], *, mxnet: bool = False) -> None:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp",
                                                 dir=self.folder)
        os.close(descriptor)
        self.files.append((Path(temporary), self.folder / name))
        try:
            write(temporary)
        except mx.base.MXNetError as exc:
            raise _WriteFailed(f"{name}: {_mxnet_reason(exc)}") from None
        if mxnet:
            check_mxnet_file(temporary, name)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the file from other users

    def digest(self, name: str) -> str:
        return file_digest(next(temporary for temporary, final in self.files
                                if final.name == name))

    def commit(self) -> None:
        for temporary, final in self.files:
            os.replace(temporary, final)
        self.files = []

    def discard(self) -> None:
        for temporary, _ in self.files:
            temporary.unlink(missing_ok=True)
        self.files = []


def check_mxnet_file(name: PathLike, path: PathLike | None = None) -> None:
    """Read back a file MXNet wrote: MXNet does not always report a failed write
    (under a file-size limit, a write cut short in its last buffer leaves the
    file cut short and no error). A RunError names ``path`` (default
    ``name``)."""
    try:
        with np_semantics():
            mx.nd.load(str(name))
    except mx.base.MXNetError as exc:
        raise _WriteFailed(f"{path or name}: written incomplete, {os.path.getsize(name)} bytes "
                           f"({_mxnet_reason(exc)})") from None


class _WriteFailed(RunError):
    """A file could not be written whole."""


def _mxnet_reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1].replace("MXNetError: ", "", 1)[:200] if lines else type(exc).__name__


def write_failure(exc: BaseException) -> str:
    """Why a write failed, with what to check where it is the disk or a limit."""
    if isinstance(exc, mx.base.MXNetError):
        exc = _WriteFailed(_mxnet_reason(exc))
    if isinstance(exc, OSError) and exc.strerror:
        exc = _WriteFailed(f"{exc.filename or ''}: {exc.strerror}".lstrip(": "))
    return str(exc) + (": is the disk full, or a file-size limit (ulimit -f) set?"
                       if isinstance(exc, (_WriteFailed, OSError)) else "")


def _write_checkpoint_files(result, staging: _Staging, epoch: int
                            ) -> Tuple[Dict[str, str], Dict | None]:
    """The model, best weights, optimizer state and data, staged; returns the
    files by role, and the optimizer's layout."""
    state = result.state
    files = {"model": f"model-{epoch:04d}.params", "data": DATA}
    with np_semantics():
        if state is not None and state.last_weights is not None:  # net holds the best
            last = {name: mx.nd.array(value) for name, value in state.last_weights.items()}
            staging.write(files["model"], lambda name: mx.nd.save(name, last), mxnet=True)
        else:
            staging.write(files["model"], result.net.save_parameters, mxnet=True)
        if state is not None and state.best_weights is not None:
            files["best"] = BEST
            best = {name: mx.nd.array(value) for name, value in state.best_weights.items()}
            staging.write(BEST, lambda name: mx.nd.save(name, best), mxnet=True)
        arrays, meta = _optimizer_arrays(state, result.net)
        if meta is not None:
            files["optimizer"] = f"optimizer-{epoch:04d}.states"
            staging.write(files["optimizer"], lambda name: mx.nd.save(name, arrays),
                          mxnet=True)
    arrays = _data_arrays(result.data, state)

    def write_npz(name: str) -> None:
        with open(name, "wb") as handle:
            np.savez(handle, **arrays)
    staging.write(DATA, write_npz)
    return files, meta


def _optimizer_arrays(state: TrainingState | None, net) -> Tuple[Dict, Dict | None]:
    """The Trainer's state and the row-sparse tables' state, as one set of arrays
    and one layout (None when there is no optimizer state to keep); a loaded
    run's, as it was saved."""
    if state is not None and state.trainer is None and state.sparse is None \
            and state.saved_optimizer is not None:
        return state.saved_optimizer
    if state is None or (state.trainer is None and state.sparse is None):
        return {}, None
    arrays, meta = ({}, {"layout": {}, "num_update": 0, "update_count": {}}) \
        if state.trainer is None else optimizer_state(state.trainer, net)
    if state.sparse is not None:
        sparse_arrays, meta["sparse"] = state.sparse.lazy.state()
        arrays.update(sparse_arrays)
    return arrays, meta


def _sampler_state(state: TrainingState | None):
    if state is None:
        return None
    if state.sampler is not None:
        # the state the next untrained epoch is drawn from (it may be drawn already)
        ahead = getattr(state.sampler, "resume_state", None)
        return ahead if ahead is not None else state.sampler.rng.bit_generator.state
    return state.saved_sampler


def read_manifest(path: Path, missing: str) -> Any:
    """The JSON value in ``path``: a RunError saying ``missing`` where there is
    no such file, or naming the file where it is not JSON."""
    if not path.is_file():
        raise RunError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None


def _json_writer(value) -> Callable[[str], None]:
    def write(name: str) -> None:
        with open(name, "w", encoding="utf-8") as handle:
            json.dump(json_safe(value), handle, indent=1, allow_nan=False)
    return write


def write_json(path: Path, value) -> None:
    atomic_write(path, _json_writer(value))


def _previous_files(run_dir: Path) -> set:
    """The files the folder's current manifest lists (empty without one), only
    those with a run file's own name: a damaged or hostile manifest can name
    nothing else (no path, no other file) for removal."""
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        names = set(manifest.get("files", {}).values()) | set(manifest.get("outputs", ()))
    except (OSError, ValueError, AttributeError, TypeError):
        return set()
    return {name for name in names if isinstance(name, str) and _OWN.match(name)}


def save_run(result, run_dir: PathLike, *, final: bool = True) -> Path:
    """Write ``result`` into ``run_dir`` as a checkpoint (the caller has checked
    the folder with :func:`claim_run_folder` and holds its :class:`RunLock`).

    Files: ``model-EPOCH.params`` and ``optimizer-EPOCH.states`` (MXNet's
    formats), ``data.npz`` (training and test pairs, negatives), then
    ``run.json`` (format, library version, configuration, data source with
    digests, sizes, raw id maps, optimizer layout, sampler state, history,
    final metrics, and the SHA-256 of each file above), all staged and
    checked before any replaces the previous checkpoint's; then
    ``metrics.json`` and, when ``final`` and matplotlib is there,
    ``curves.png``. The previous checkpoint's files that the new manifest no
    longer lists are removed, and nothing else.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_files(run_dir)
    outputs = [METRICS] + ([CURVES] if final else [])  # stale curves go until redrawn
    staging = _Staging(run_dir)
    try:
        files, optimizer_meta = _write_checkpoint_files(result, staging, len(result.history))
        digests = {name: staging.digest(name) for name in files.values()}
        staging.write(MANIFEST, _json_writer(_run_manifest(result, files, digests,
                                                           optimizer_meta, outputs)))
        staging.commit()
    except (OSError, RunError) as exc:  # a full disk, a file-size limit: nothing replaced
        raise RunError(f"{run_dir}: the checkpoint of epoch {len(result.history)} could not "
                       f"be written ({write_failure(exc)}); the folder keeps the previous "
                       "one") from None
    finally:
        staging.discard()
    for name in sorted(previous - set(files.values()) - set(outputs)):
        (run_dir / name).unlink(missing_ok=True)
    for path in run_dir.iterdir():
        if _TEMPORARY.match(path.name):  # left by a writer that was killed
            path.unlink(missing_ok=True)
    timings = {"train_seconds": sum(h["train_seconds"] for h in result.history),
               "eval_seconds": sum(h["eval_seconds"] for h in result.history)}
    write_json(run_dir / METRICS, {**result.metrics, "history": result.history,
                                    "timings": timings})
    if final:
        _draw_curves(result.history, run_dir / CURVES)
    return run_dir


def _run_manifest(result, files: Dict[str, str], digests: Dict[str, str],
                  optimizer_meta: Dict | None, outputs: List[str]) -> Dict[str, Any]:
    data = result.data
    return {
        "format": FORMAT, "library": "neumf", "version": __version__,
        "config": dataclasses.asdict(result.config), "source": result.source,
        "dataset_name": data.name, "num_users": result.num_users,
        "num_items": result.num_items, "epochs_done": len(result.history), "files": files,
        "sha256": digests, "optimizer": optimizer_meta, "history": result.history,
        "sampler_rng": _sampler_state(result.state),
        "best_epoch": result.best_epoch, "towers": result.towers, "metrics": result.metrics,
        "id_maps": {"users": data.user_ids.tolist(), "items": data.item_ids.tolist()},
        "outputs": outputs}


def _draw_curves(history, path: Path) -> None:
    try:
        atomic_write(path, lambda name: plot_history(history, name, fmt="png"))
    except ImportError:
        warnings.warn("matplotlib is not installed, so curves.png was not drawn "
                      "(pip install 'neumf[plot]')", UserWarning, stacklevel=3)


# --- reading --------------------------------------------------------------------------------

@dataclass
class SavedRun:
    """A run folder's manifest, read and checked (see :func:`read_run`)."""

    path: Path
    config: FitConfig
    source: Dict[str, Any]
    manifest: Dict[str, Any]

    @property
    def epochs_done(self) -> int:
        return len(self.manifest["history"])

    def file(self, role: str) -> Path | None:
        """The path of the file the manifest lists for ``role`` (None if none)."""
        name = self.manifest["files"].get(role)
        return None if name is None else self.path / name


def read_run(run_dir: PathLike) -> SavedRun:
    """Read and check a run folder: its manifest, and every file it names against
    the recorded SHA-256. A RunError names the file and what is wrong."""
    run_dir = check_path("run_dir", run_dir)
    path = run_dir / MANIFEST
    manifest = read_manifest(path, f"{run_dir}: not a complete neumf run; missing {MANIFEST} "
                                   "(no checkpoint was finished there)")
    if not isinstance(manifest, dict) or manifest.get("library") != "neumf" \
            or manifest.get("format") not in READABLE_FORMATS:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise RunError(f"{path}: not a neumf run of format {READABLE_FORMATS} "
                       f"(format {found!r})")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise RunError(f"{path}: {', '.join(map(repr, missing))} missing (the manifest is "
                       "damaged, or was not written by neumf)")
    if str(manifest["version"]).split(".")[0] != __version__.split(".")[0]:
        raise RunError(f"{run_dir}: saved by neumf {manifest['version']}, which this "
                       f"neumf {__version__} cannot read")
    named = list(manifest["sha256"]) + list(manifest["files"].values())
    strange = [name for name in named if not isinstance(name, str) or not _OWN.match(name)]
    if strange:
        raise RunError(f"{path}: names files a run does not have ({strange[0]!r}): the "
                       "manifest is damaged or not neumf's")
    for name, expected in manifest["sha256"].items():
        if not (run_dir / name).is_file():
            raise RunError(f"{run_dir}: missing {name}, which {MANIFEST} lists")
        if file_digest(run_dir / name) != expected:
            raise RunError(f"{run_dir / name}: SHA-256 does not match {MANIFEST}; the file "
                           "was modified or damaged")
    try:
        config = FitConfig.from_saved(manifest["config"], str(path))
    except (TypeError, ValueError) as exc:
        raise RunError(f"{path}: the saved config is not valid ({exc})") from None
    return SavedRun(run_dir, config, manifest["source"], manifest)


def saved_history(saved: SavedRun) -> List[Dict[str, float]]:
    """The run's per-epoch history, with JSON's nulls back as NaN (and ``lr``,
    which runs saved before 0.3.0 lack)."""
    return [{"lr": float("nan"), **{key: float("nan") if value is None else value
                                    for key, value in stats.items()}}
            for stats in saved.manifest["history"]]


def saved_data(saved: SavedRun) -> Tuple[RecData, np.ndarray | None]:
    """The training and test pairs, negatives and id maps the run saved, and its
    validation negatives (or None)."""
    manifest = saved.manifest
    try:
        with np.load(saved.path / DATA, allow_pickle=False) as arrays:
            values = {key: arrays[key] for key in arrays.files}
        return RecData(manifest.get("dataset_name", "run"), values["train_users"],
                       values["train_items"], values["test_users"], values["test_items"],
                       manifest["num_users"], manifest["num_items"],
                       np.asarray(manifest["id_maps"]["users"]),
                       np.asarray(manifest["id_maps"]["items"]),
                       values.get("test_negatives"), values.get("train_times")), \
            values.get("validation_negatives")
    except (OSError, KeyError, ValueError) as exc:
        raise RunError(f"{saved.path / DATA}: cannot be read as this run's data ({exc})") \
            from None


def load_params(saved: SavedRun, net: gluon.Block, devices: Sequence[mx.Context]) -> None:
    """The run's last (or only) parameters into a freshly built network."""
    path = saved.file("model")
    arrays = _load_arrays(path)
    own = parameters(net)
    if set(arrays) != set(own):
        raise RunError(f"{path}: holds parameters {sorted(arrays)}, not the saved network's "
                       f"{sorted(own)}")
    with np_semantics():  # by structural name, as NumPy arrays (Gluon's loader makes a
        # file whose names have no dot, as EASE's "weights", legacy arrays)
        if not _initialized(net):
            net.initialize(mx.init.Zero(), ctx=list(devices))
        for name, value in arrays.items():
            if value.shape != own[name].shape:
                raise RunError(f"{path}: {name} has shape {value.shape}, the saved network's "
                               f"{own[name].shape}")
            own[name].set_data(value.as_np_ndarray())


def _initialized(net: gluon.Block) -> bool:
    try:
        for param in net.collect_params().values():
            param.list_ctx()
    except RuntimeError:
        return False
    return True


def _load_arrays(path: Path) -> Dict[str, Any]:
    try:
        with np_semantics():
            return mx.nd.load(str(path))
    except mx.base.MXNetError as exc:
        raise RunError(f"{path}: cannot be read as MXNet arrays ({_mxnet_reason(exc)})") \
            from None


def restore_training(saved: SavedRun, net: gluon.Block, state: TrainingState,
                     devices: Sequence[mx.Context]) -> None:
    """Parameters, optimizer state, sampler state and the best epoch's weights of
    ``saved`` into a freshly built network, Trainer and sampler."""
    load_params(saved, net, devices)
    meta, path = saved.manifest.get("optimizer"), saved.file("optimizer")
    if meta is not None and path is not None:
        arrays = _load_arrays(path)
        if state.trainer is not None:
            restore_optimizer(state.trainer, net, arrays, meta)
        if state.sparse is not None and "sparse" in meta:
            state.sparse.lazy.restore(arrays, meta["sparse"])
        if state.trainer is None and state.sparse is None:  # kept as saved (a loaded run)
            state.saved_optimizer = (arrays, meta)
    sampler_state = saved.manifest.get("sampler_rng")
    if sampler_state is not None and state.sampler is not None:
        state.sampler.rng.bit_generator.state = sampler_state
    state.saved_sampler = sampler_state
    if saved.file("best") is not None:
        state.best_weights = {name: value.asnumpy() for name, value in
                              _load_arrays(saved.file("best")).items()}


def saved_metrics(saved: SavedRun) -> Dict[str, float]:
    """The final metrics: from the manifest (format 2), else from metrics.json,
    which a damaged copy only makes absent (with a warning)."""
    if "metrics" in saved.manifest:
        return {key: float("nan") if value is None else value
                for key, value in saved.manifest["metrics"].items()}
    try:
        stored = json.loads((saved.path / METRICS).read_text(encoding="utf-8"))
        return {key: value for key, value in stored.items()  # format 1 had two more keys
                if key not in ("history", "timings", "hit_rate", "auc_tutorial")}
    except (OSError, ValueError, AttributeError) as exc:
        warnings.warn(f"{saved.path / METRICS}: unreadable ({exc}); the run loads without "
                      "its final metrics", UserWarning, stacklevel=3)
        return {}
