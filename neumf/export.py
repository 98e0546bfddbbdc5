"""The serving export: a self-contained folder a model is served from, written
whole and read whole.

An export holds the hybridized graph and its parameters (``model-symbol.json``,
``model-0000.params``; inputs ``data0`` user and ``data1`` item indices,
int32; saved in MXNet's NumPy shape semantics), the raw id maps
(``ids.json``), each user's training items (``seen.npz``) and ``export.json``
(format, library version, the model's kind and sizes, the parameters'
structural names, every file's SHA-256). It is written into a new sibling
folder, checked, then swapped into place, so a reader sees the old export or
the new one and a failed write leaves the old one as it was; it is read
through one open folder, so a replaced export is read whole, old or new.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Dict, Tuple, Union

import mxnet as mx
import numpy as np
from mxnet import gluon

from ._gluon import parameters
from ._util import atomic_write, check_path, file_digest, fsync_folder, replace_folder
from ._version import __version__
from .runs import RunError, check_mxnet_file, np_semantics, write_failure, write_json

__all__ = ["EXPORT_FILES", "EXPORT_MANIFEST", "export_net", "export_run", "read_export"]

EXPORT_FORMAT, EXPORT_MANIFEST = 1, "export.json"
EXPORT_GRAPH, EXPORT_IDS, EXPORT_SEEN = "model", "ids.json", "seen.npz"
EXPORT_PARAMS = f"{EXPORT_GRAPH}-0000.params"
# An export's files besides its manifest: nothing else is read from, or kept in, its folder.
EXPORT_FILES = (f"{EXPORT_GRAPH}-symbol.json", EXPORT_PARAMS, EXPORT_IDS, EXPORT_SEEN)
LOAD_ATTEMPTS = 5  # reads of an export that is replaced while it is read
PathLike = Union[str, os.PathLike]


# --- writing --------------------------------------------------------------------------------

def export_net(net: gluon.Block, prefix: PathLike) -> Tuple[Path, Path]:
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


_EXPORT_TEMPORARY = re.compile(r"^\.(export\.json|ids\.json|seen\.npz|model-symbol\.json|"
                               r"model-0000\.params)\.[^.]+\.tmp$")


def _check_export_folder(folder: Path, overwrite: bool) -> None:
    """An export may go to ``folder``: new, empty, or (with ``overwrite``) an
    export, whole or cut short, holding nothing but an export's files."""
    if not folder.name or folder.name in (".", ".."):
        raise ValueError(f"name the export folder itself; got {str(folder)!r}")
    if folder.is_symlink():
        raise RunError(f"{folder} is a symbolic link: name the export folder itself (an "
                       "export replaces its folder whole, never writing through a link)")
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder} is a file, not a folder for the export")
    entries = sorted(os.listdir(folder)) if folder.is_dir() else []
    own = (EXPORT_MANIFEST, *EXPORT_FILES)
    foreign = [name for name in entries if name not in own and not _EXPORT_TEMPORARY.match(name)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunError(f"{folder} is not empty and is not a neumf export (it holds {shown}): "
                       "choose a new or empty folder" if EXPORT_MANIFEST not in entries else
                       f"{folder} holds files an export does not have ({shown}): move them "
                       "away, or choose another folder")
    if entries and not overwrite:
        raise RunError(f"{folder} already holds an export"
                       + ("" if EXPORT_MANIFEST in entries else " (an incomplete one)")
                       + ": replace it with overwrite=True (--overwrite), or choose another "
                         "folder")


def _write_export(result, folder: Path) -> None:
    data, net = result.data, result.net
    with np_semantics():
        export_net(net, folder / EXPORT_GRAPH)
    write_json(folder / EXPORT_IDS, {"users": data.user_ids.tolist(),
                                      "items": data.item_ids.tolist()})
    order = np.lexsort((data.train_items, data.train_users))
    indptr = np.searchsorted(data.train_users[order], np.arange(result.num_users + 1))

    def write_seen(name: str) -> None:
        with open(name, "wb") as handle:
            np.savez(handle, indptr=indptr, items=data.train_items[order].astype(np.int32))
    atomic_write(folder / EXPORT_SEEN, write_seen)
    check_mxnet_file(folder / EXPORT_PARAMS, EXPORT_PARAMS)
    json.loads((folder / f"{EXPORT_GRAPH}-symbol.json").read_text(encoding="utf-8"))
    write_json(folder / EXPORT_MANIFEST, {
        "format": EXPORT_FORMAT, "library": "neumf-export", "version": __version__,
        "model": result.config.model, "scorer": net.scorer_spec().to_dict(),
        "num_users": result.num_users, "num_items": result.num_items,
        "parameters": {name: param.name for name, param in parameters(net).items()},
        "inputs": ["data0", "data1"], "shape_semantics": "numpy", "metrics": result.metrics,
        "config": dataclasses.asdict(result.config),
        "run": None if result.run_dir is None else str(result.run_dir),
        "sha256": {name: file_digest(folder / name) for name in EXPORT_FILES}})


def export_run(result, folder: PathLike, *, overwrite: bool = False) -> Path:
    """Write a self-contained serving folder: the hybridized graph and its
    parameters (``model-symbol.json``, ``model-0000.params``; inputs ``data0``
    user and ``data1`` item indices, int32; output the score, shape (batch, 1);
    saved in MXNet's NumPy shape semantics), the raw id maps (``ids.json``),
    each user's training items (``seen.npz``, for leaving them out), then
    ``export.json`` (format, library version, the model's kind and sizes, the
    parameters' structural names, every file's SHA-256). Returns the folder.

    The export is written into a new folder beside ``folder``, read back and
    flushed to the disk, then swapped into place in one step where the system
    can (Linux), so a reader sees the old export or the new one; the old one
    is removed after. A failed write (a full disk, a file-size limit) removes
    the new folder and leaves the old export as it was."""
    folder = Path(os.path.abspath(check_path("folder", folder)))
    _check_export_folder(folder, overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        _write_export(result, staged)
        os.chmod(staged, 0o755)  # mkdtemp's 0700 would hide the export from other users
        fsync_folder(staged)
        _check_export_folder(folder, overwrite)  # as it is now, just before replacing it
        replace_folder(staged, folder)
    except (OSError, ValueError, mx.base.MXNetError) as exc:  # a full disk, a size limit
        raise RunError(f"{folder}: the export could not be written ({write_failure(exc)}); "
                       + ("the previous export is as it was" if folder.exists()
                          else "nothing was written")) from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return folder


# --- reading --------------------------------------------------------------------------------

class _Replaced(Exception):
    """The export folder was replaced while it was read: read it again."""


def _read_at(directory: int, folder: Path, name: str) -> bytes:
    """The bytes of ``name`` in the open folder ``directory``: never through a
    symbolic link, never anything but a regular file."""
    try:
        descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_NONBLOCK", 0), dir_fd=directory)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunError(f"{folder / name} is a symbolic link: an export holds its own "
                           "files, never links") from None
        raise
    with open(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise RunError(f"{folder / name} is not a regular file")
        return handle.read()


def _still_there(directory: int, folder: Path) -> bool:
    """Whether ``folder`` still names the folder open as ``directory``."""
    try:
        here, there = os.fstat(directory), os.stat(folder)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _check_manifest(manifest, path: Path) -> Dict:
    """The manifest if it is an export's, naming exactly an export's files
    (refused before any file is read: a name like ``../x`` or ``/x`` is never
    looked up, so no message tells whether such a file exists)."""
    if not isinstance(manifest, dict) or manifest.get("library") != "neumf-export" \
            or manifest.get("format") != 1 or not isinstance(manifest.get("sha256"), dict):
        raise RunError(f"{path}: not a neumf export of format 1")
    strange = sorted(str(name) for name in manifest["sha256"] if name not in EXPORT_FILES)
    if strange:
        raise RunError(f"{path}: names a file an export does not have ({strange[0]!r}): the "
                       "manifest is damaged or not neumf's")
    missing = [name for name in EXPORT_FILES if name not in manifest["sha256"]]
    if missing:
        raise RunError(f"{path}: does not list {missing[0]}: the manifest is damaged")
    return manifest


def _read_files(directory: int, folder: Path) -> Tuple[Dict, Dict[str, bytes]]:
    """The manifest and every file it lists, from the open folder, each checked
    against its SHA-256."""
    try:
        text = _read_at(directory, folder, EXPORT_MANIFEST)
    except FileNotFoundError:
        if not _still_there(directory, folder):
            raise _Replaced() from None
        raise RunError(f"{folder}: not a neumf export; missing {EXPORT_MANIFEST} (write one "
                       "with FitResult.export(folder) or 'neumf export')") from None
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunError(f"{folder / EXPORT_MANIFEST}: not valid JSON ({exc})") from None
    manifest = _check_manifest(manifest, folder / EXPORT_MANIFEST)
    contents = {}
    for name in EXPORT_FILES:
        try:
            contents[name] = _read_at(directory, folder, name)
        except FileNotFoundError:
            if not _still_there(directory, folder):
                raise _Replaced() from None
            raise RunError(f"{folder}: missing {name}, which {EXPORT_MANIFEST} lists") \
                from None
        if hashlib.sha256(contents[name]).hexdigest() != manifest["sha256"][name]:
            if not _still_there(directory, folder):
                raise _Replaced()
            raise RunError(f"{folder / name}: SHA-256 does not match {EXPORT_MANIFEST}; the "
                           "file was modified or damaged")
    return manifest, contents


def _read_export(folder: Path) -> Tuple[Dict, Dict[str, bytes]]:
    try:
        directory = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise _Replaced() from None  # or missing: said after the last attempt
    except NotADirectoryError:
        raise RunError(f"{folder} is a file, not an export folder") from None
    try:
        return _read_files(directory, folder)
    finally:
        os.close(directory)


def read_export(folder: PathLike) -> Tuple[Dict, Dict[str, bytes]]:
    """The manifest of the export in ``folder`` and the bytes of its files, each
    checked against its SHA-256, read through the folder opened once (again if
    it was replaced meanwhile); a file that is a symbolic link, and a manifest
    naming a file an export does not have, are refused."""
    folder = check_path("folder", folder)
    for attempt in range(LOAD_ATTEMPTS):
        try:
            return _read_export(folder)
        except _Replaced:
            time.sleep(0.02 * (attempt + 1))
    if not os.path.lexists(folder):
        raise RunError(f"{folder}: no such export folder (write one with "
                       "FitResult.export(folder) or 'neumf export')")
    raise RunError(f"{folder}: the export was replaced {LOAD_ATTEMPTS} times while it was "
                   "read; try again")
