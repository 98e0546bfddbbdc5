"""Serving a trained model: an export loaded as a :class:`Recommender` that
recommends and scores by raw ids with nothing else from the run, and a small
HTTP JSON service over it.

The service is the standard library's ``ThreadingHTTPServer``: no dependency
beyond what neumf already needs (MXNet 1.9 pins NumPy below 1.24, which
today's web frameworks have moved past), one thread per request, and every
answer computed in NumPy from arrays loaded once (thread-safe; the matrix
products release the GIL). Request bodies, users per request and ``k`` are
bounded; bad input is a 400, an unknown id a 404, each with a JSON message.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import stat
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterator, Sequence, Tuple, Union

import mxnet as mx
import numpy as np

from ._gluon import get_weights
from ._util import check_bool, check_int, check_path, check_positive_int
from ._version import __version__
from .interactions import SeenIndex
from .recommend import IdMap, Recommendations, as_raw_ids, recommend_blocks
from .runs import (
    EXPORT_FILES,
    EXPORT_GRAPH,
    EXPORT_IDS,
    EXPORT_MANIFEST,
    EXPORT_SEEN,
    FitResult,
    RunError,
)
from .scoring import ScorerSpec, score_all

__all__ = ["MAX_BODY_BYTES", "MAX_RESULTS", "MAX_USERS", "Recommender", "load", "make_server"]

MAX_BODY_BYTES = 1 << 20  # a POST body
MAX_USERS = 10_000  # users in one request
MAX_RESULTS = 100_000  # users x k in one answer (about 3 MB of JSON)
LOAD_ATTEMPTS = 5  # reads of an export that is replaced while it is read
PathLike = Union[str, os.PathLike]


class Recommender:
    """A trained model that recommends and scores by raw ids: its weights (as
    NumPy arrays), its id maps and each user's training items.

    A raw id is a string, or a number read as its decimal text (an integer of
    any size, a whole-number float as that integer: ``7.0`` is ``"7"``, as in
    the data); an id the model does not know raises KeyError naming it."""

    def __init__(self, weights: Dict[str, np.ndarray], spec: ScorerSpec, user_ids: Sequence,
                 item_ids: Sequence, seen: SeenIndex, info: Dict | None = None):
        self.weights, self.spec, self.seen = weights, spec, seen
        self.user_ids, self.item_ids = IdMap(user_ids, "user"), IdMap(item_ids, "item")
        self.info = dict(info or {})

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def __repr__(self) -> str:
        return (f"Recommender({self.info.get('model', '?')}: {self.num_users} users x "
                f"{self.num_items} items)")

    @classmethod
    def from_result(cls, result: FitResult) -> Recommender:
        """A trained or loaded run's model (see :func:`neumf.load_model`)."""
        data = result.data
        return cls(get_weights(result.net), result.net.scorer_spec(), data.user_ids,
                   data.item_ids, SeenIndex.from_pairs(data.train_users, data.train_items,
                                                       result.num_items),
                   {"model": result.config.model, "metrics": result.metrics})

    def _scores(self, users: np.ndarray) -> np.ndarray:
        return score_all(self.weights, users, self.spec)

    def recommend_blocks(self, users, k: int = 10, exclude_seen: bool = True, *,
                         items=None, exclude=None) -> Iterator[Recommendations]:
        """:meth:`recommend` a block of users at a time (bounded memory)."""
        return recommend_blocks(self._scores, users, self.user_ids, self.item_ids, k,
                                seen=self.seen if check_bool("exclude_seen", exclude_seen)
                                else None, items=items,
                                exclude=exclude)

    def recommend(self, users, k: int = 10, exclude_seen: bool = True, *, items=None,
                  exclude=None) -> Recommendations:
        """The ``k`` best items of each of ``users`` (one raw id or a list), best
        first, leaving out each user's training items unless ``exclude_seen``
        is False; ``items`` restricts the candidates, ``exclude`` removes some.
        An unknown id raises KeyError naming it."""
        blocks = list(self.recommend_blocks(users, k, exclude_seen, items=items,
                                            exclude=exclude))
        return Recommendations([user for block in blocks for user in block.users],
                               [row for block in blocks for row in block.items],
                               [row for block in blocks for row in block.scores])

    def score(self, users, items) -> np.ndarray:
        """Scores of every listed item for every listed user, by raw ids: shape
        (len(users), len(items)), float32 (higher ranks first)."""
        user_index = self.user_ids.index(as_raw_ids(users))
        item_index = self.item_ids.index(as_raw_ids(items, "items"))
        return self._scores(user_index)[:, item_index]


# --- loading: one whole export, read through one open folder ---------------------------------

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


def _recommender(folder: Path, manifest: Dict, contents: Dict[str, bytes]) -> Recommender:
    try:
        with mx.util.np_shape(True), mx.util.np_array(True):
            arrays = mx.nd.load_frombuffer(contents[f"{EXPORT_GRAPH}-0000.params"])
            by_name = {key.split(":", 1)[-1]: value.asnumpy() for key, value in arrays.items()}
        weights = {structural: by_name[name]
                   for structural, name in manifest["parameters"].items()}
        ids = json.loads(contents[EXPORT_IDS].decode("utf-8"))
        with np.load(io.BytesIO(contents[EXPORT_SEEN]), allow_pickle=False) as seen:
            indptr, items = seen["indptr"], seen["items"]
        users = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        return Recommender(weights, ScorerSpec(**manifest["scorer"]), ids["users"],
                           ids["items"], SeenIndex.from_pairs(users, items,
                                                              manifest["num_items"]),
                           {"model": manifest["model"], "metrics": manifest.get("metrics", {}),
                            "version": manifest["version"], "folder": str(folder)})
    except (mx.base.MXNetError, KeyError, TypeError, ValueError, AttributeError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise RunError(f"{folder}: the export's files do not make a model ({reason}): it "
                       "was not written by this neumf, or was damaged") from None


def load(folder: PathLike) -> Recommender:
    """Load an export written by :meth:`neumf.FitResult.export` (or ``neumf
    export``): files checked against their SHA-256, parameters read under the
    shape semantics they were saved in, nothing else needed from the run.

    The folder is opened once and every file read through it, so an export
    being replaced (``neumf export --overwrite``) is read whole, old or new,
    never a mixture; a file that is a symbolic link, and a manifest naming a
    file an export does not have, are refused."""
    folder = check_path("folder", folder)
    for attempt in range(LOAD_ATTEMPTS):
        try:
            manifest, contents = _read_export(folder)
            return _recommender(folder, manifest, contents)
        except _Replaced:
            time.sleep(0.02 * (attempt + 1))
    if not os.path.lexists(folder):
        raise RunError(f"{folder}: no such export folder (write one with "
                       "FitResult.export(folder) or 'neumf export')")
    raise RunError(f"{folder}: the export was replaced {LOAD_ATTEMPTS} times while it was "
                   "read; try again")


class _BadRequest(Exception):
    """A request the service answers with ``status`` and a message."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _flag(text: str | None, default: bool) -> bool:
    if text is None:
        return default
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise _BadRequest(HTTPStatus.BAD_REQUEST, f"exclude_seen must be true or false; got {text!r}")


def _k(value, num_items: int) -> int:
    try:
        k = check_positive_int("k", int(value) if isinstance(value, str) else value)
    except (TypeError, ValueError) as exc:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"k must be a positive integer; got "
                          f"{value!r}") from exc
    if k > num_items:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"k={k} is larger than the catalogue of "
                          f"{num_items} items")
    return k


class _Handler(BaseHTTPRequestHandler):
    """``GET /health``, ``GET /recommend?user=ID&k=10[&exclude_seen=false]`` and
    ``POST /recommend`` with ``{"users": [...], "k": 10, "exclude_seen": true}``."""

    server_version = f"neumf/{__version__}"
    timeout = 30  # seconds a client may take to send its request

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's signature)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: Dict, **headers: str) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json",
                            "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _answer(self, compute) -> None:
        try:
            self._send(HTTPStatus.OK, compute())
        except _BadRequest as exc:
            self._send(exc.status, {"error": str(exc)})
        except KeyError as exc:  # an unknown raw id
            self._send(HTTPStatus.NOT_FOUND, {"error": exc.args[0] if exc.args else str(exc)})

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/health":
            self._answer(lambda: self._health())
        elif url.path == "/recommend":
            self._answer(lambda: self._recommend(query.get("user", []),
                                                 (query.get("k") or ["10"])[-1],
                                                 _flag((query.get("exclude_seen") or [None])[-1],
                                                       True), single=True))
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path: {url.path}"})

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        if urllib.parse.urlsplit(self.path).path != "/recommend":
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
            return
        self._answer(self._post_recommend)

    def _not_allowed(self):
        self.close_connection = True  # a body, if any, is not read
        self._send(HTTPStatus.METHOD_NOT_ALLOWED,
                   {"error": f"{self.command} is not served: use GET /health, GET /recommend "
                             "or POST /recommend"}, Allow="GET, POST")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    def _post_recommend(self) -> Dict:
        length = self.headers.get("Content-Length")
        if length is None or not (length.isascii() and length.isdigit()):
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"the body holds {length} bytes; at most {MAX_BODY_BYTES}")
        try:
            body = json.loads(self.rfile.read(int(length)).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({exc})") from None
        if not isinstance(body, dict) or not isinstance(body.get("users"), list):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, 'the body must be {"users": [ids], '
                              '"k": 10, "exclude_seen": true}')
        exclude_seen = body.get("exclude_seen", True)
        if not isinstance(exclude_seen, bool):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "exclude_seen must be true or false")
        return self._recommend(body["users"], body.get("k", 10), exclude_seen, single=False)

    def _health(self) -> Dict:
        recommender = self.server.recommender
        return {"status": "ok", "model": recommender.info.get("model"),
                "users": recommender.num_users, "items": recommender.num_items,
                "version": __version__}

    def _recommend(self, users, k, exclude_seen: bool, *, single: bool) -> Dict:
        recommender = self.server.recommender
        if not users:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "name at least one user (user=ID)")
        if len(users) > MAX_USERS:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"{len(users)} users in one request; at most {MAX_USERS}")
        if not all(isinstance(user, (str, int)) and not isinstance(user, bool)
                   for user in users):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "users must be raw ids (strings or "
                              "integers)")
        k = _k(k, recommender.num_items)
        if len(users) * k > MAX_RESULTS:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"{len(users)} users x k={k} is {len(users) * k} results; at "
                              f"most {MAX_RESULTS} in one answer: split the request")
        result = recommender.recommend(users, k, exclude_seen)
        answer = result.to_dict()
        if single and len(users) == 1:
            return {"user": result.users[0], "items": answer[result.users[0]]}
        return {"recommendations": answer}


def make_server(recommender: Recommender, host: str = "127.0.0.1", port: int = 8080, *,
                quiet: bool = True) -> ThreadingHTTPServer:
    """An HTTP server answering for ``recommender`` (not yet serving: call its
    ``serve_forever()``; ``port=0`` picks a free port, see ``server_address``)."""
    if not 0 <= check_int("port", port) <= 65535:
        raise ValueError(f"port must be in 0..65535 (0: any free port); got {port}")
    try:
        server = ThreadingHTTPServer((host, port), _Handler)
    except OSError as exc:
        raise OSError(f"cannot serve on {host}:{port}: {exc.strerror or exc}"
                      + (" (another process listens there: choose another --port)"
                         if exc.errno == errno.EADDRINUSE else "")) from None
    server.daemon_threads = True
    server.recommender, server.quiet = recommender, quiet
    return server
