"""The HTTP JSON service over a :class:`neumf.serving.Recommender`
(``neumf serve``).

It runs on waitress (the ``serve`` extra: ``pip install 'neumf[serve]'``), a
maintained pure-Python WSGI server with no dependencies: HTTP/1.1 with
keep-alive, a listen backlog of 1,024, one thread reading and writing every
connection and one worker thread (or more) computing the answers in NumPy from
arrays loaded once (thread-safe). Everything a request can hold is bounded
before it is parsed (the request line, the headers, the body, JSON nesting and
numbers, users and results per answer), a request left unfinished is answered
after ``timeout`` seconds, and every answer, including the ones the server
itself makes for requests it cannot parse, is JSON: ``{"error": ...}`` with
its status for anything but a 200.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import logging
import re
import socket
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Dict, List, Tuple

import numpy as np

from ._util import check_int, check_number
from ._version import __version__

if TYPE_CHECKING:  # for annotations only: the service takes any recommender
    from .serving import Recommender

try:  # the server is the optional 'serve' extra: loading and recommending work without it
    from waitress import wasyncore
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser, ParsingError
    from waitress.server import TcpWSGIServer
    from waitress.task import ErrorTask
    from waitress.utilities import BadRequest
    SERVER_MISSING = None
except ImportError as missing:  # pragma: no cover - tested in a process without it
    HTTPChannel = HTTPRequestParser = TcpWSGIServer = ErrorTask = object
    ParsingError = BadRequest = ValueError
    SERVER_MISSING = missing

__all__ = ["MAX_BODY_BYTES", "MAX_HEADER_BYTES", "MAX_JSON_DEPTH", "MAX_NUMBER_CHARS",
           "MAX_RESULTS", "MAX_TARGET_BYTES", "MAX_USERS", "SERVER_MISSING", "Server",
           "make_server"]

MAX_BODY_BYTES = 1 << 20  # a POST body
MAX_USERS = 10_000  # users in one request
MAX_RESULTS = 100_000  # users x k in one answer (about 3 MB of JSON)
MAX_TARGET_BYTES = 8192  # the request line's path and query (414 beyond)
MAX_HEADER_BYTES = 16384  # the request line and headers together (431 beyond)
MAX_JSON_DEPTH = 8  # arrays and objects inside each other in a body
MAX_NUMBER_CHARS = 64  # characters of one number in a body (ids longer than that: strings)
LINGER_SECONDS = 2  # reading what a client still sends after its last answer, before closing


# --- requests: checked before they are parsed, answered in JSON --------------------------------

class _Refused(Exception):
    """A request the service answers with ``status`` and a message."""

    def __init__(self, status: HTTPStatus, message: str, **headers: str):
        super().__init__(message)
        self.status, self.headers = status, headers


class _NumberTooLong(ValueError):
    pass


_ROUTES = {"/health": ("GET", "HEAD"), "/recommend": ("GET", "HEAD", "POST")}
_FIELDS = ("users", "k", "exclude_seen")
_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() takes '٣' and '²'
_MANY_DIGITS = re.compile(r"0*[1-9][0-9]{9,}")


def _number(kind):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise _NumberTooLong(f"a number of {len(text)} characters in the body; at most "
                                 f"{MAX_NUMBER_CHARS} (send a long id as a string)")
        return kind(text)
    return parse


def _constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text ``data``, brackets
    inside strings left out, found in linear time without parsing it (the
    parser recurses once per level; UTF-8 keeps these ASCII bytes apart)."""
    codes = np.frombuffer(data, dtype=np.uint8)
    position = np.arange(len(codes))
    # a quote ends or starts a string unless an odd run of backslashes comes before it
    last_other = np.maximum.accumulate(np.where(codes != 92, position, -1))
    run = np.concatenate(([0], position[:-1] - last_other[:-1])) if len(codes) else position
    quotes = (codes == 34) & (run % 2 == 0)
    outside = np.cumsum(quotes) % 2 == 0  # a closing quote counts as outside: not a bracket
    steps = (np.isin(codes, (91, 123)) & outside).astype(np.int64) \
        - (np.isin(codes, (93, 125)) & outside)
    return int(np.cumsum(steps).max(initial=0))


def _json_body(data: bytes):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"the body is not UTF-8 ({exc.reason} at byte "
                       f"{exc.start})") from None
    depth = _json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"the body nests arrays and objects {depth} "
                       f"deep; at most {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, parse_int=_number(int), parse_float=_number(float),
                          parse_constant=_constant, object_pairs_hook=_unique_keys)
    except _NumberTooLong as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({exc})") from None


def _unique_keys(pairs) -> Dict:
    """A JSON object whose keys are each given once ({"k": 2, "k": 3} is refused,
    as k=2&k=3 is in a query)."""
    counts = collections.Counter(key for key, _ in pairs)
    twice = sorted(key for key, count in counts.items() if count > 1)
    if twice:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"{twice[0]} is given twice")
    return dict(pairs)


def _k(value, num_items: int) -> int:
    text = value if isinstance(value, str) else None
    if text is not None and _DIGITS.fullmatch(text):
        value = int(text)
    elif text is not None and _MANY_DIGITS.fullmatch(text):  # no int() of 10,000 digits
        raise _Refused(HTTPStatus.BAD_REQUEST, f"k={text[:20]}{'...' * (len(text) > 20)} "
                       f"is larger than the catalogue of {num_items} items")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"k must be a positive integer (ASCII digits, "
                       f"or a JSON integer); got {value!r}")
    if value > num_items:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"k={value} is larger than the catalogue of "
                       f"{num_items} items")
    return value


def _flag(text: str | None) -> bool:
    if text is None:
        return True
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise _Refused(HTTPStatus.BAD_REQUEST, f"exclude_seen must be true or false; got {text!r}")


def _query(environ) -> Dict[str, List[str]]:
    try:
        text = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8")
        query = urllib.parse.parse_qs(text, keep_blank_values=True, errors="strict",
                                      max_num_fields=MAX_USERS + len(_FIELDS))
    except UnicodeError:
        raise _Refused(HTTPStatus.BAD_REQUEST, "the query is not UTF-8") from None
    except ValueError:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"over {MAX_USERS} users in one "
                       "request") from None
    unknown = sorted(set(query) - {"user", "k", "exclude_seen"})
    twice = [name for name in ("k", "exclude_seen") if len(query.get(name, ())) > 1]
    if unknown or twice:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"unknown query field {unknown[0]!r}: use user=ID "
                       "(repeatable), k=10 and exclude_seen=false" if unknown else
                       f"{twice[0]} is given twice")
    return query


def _post_fields(environ) -> Dict:
    length = environ.get("CONTENT_LENGTH")
    if length is None or not _DIGITS.fullmatch(length.strip() or "x"):
        raise _Refused(HTTPStatus.LENGTH_REQUIRED, "a POST needs a Content-Length")
    if int(length) > MAX_BODY_BYTES:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                       f"the body holds {length} bytes; at most {MAX_BODY_BYTES}")
    body = _json_body(environ["wsgi.input"].read(int(length)))
    if not isinstance(body, dict) or not isinstance(body.get("users"), list):
        raise _Refused(HTTPStatus.BAD_REQUEST, 'the body must be {"users": [ids], "k": 10, '
                       '"exclude_seen": true}')
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"unknown field {unknown[0]!r}: the body is "
                       '{"users": [ids], "k": 10, "exclude_seen": true}')
    if not isinstance(body.get("exclude_seen", True), bool):
        raise _Refused(HTTPStatus.BAD_REQUEST, "exclude_seen must be true or false")
    return body


class _Service:
    """The WSGI application: ``GET /health``, ``GET /recommend?user=ID&k=10
    [&exclude_seen=false]``, ``POST /recommend`` with ``{"users": [...], "k":
    10, "exclude_seen": true}``, and ``HEAD`` wherever ``GET`` is served."""

    def __init__(self, recommender: Recommender, log: bool):
        self.recommender, self.log = recommender, log

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        try:
            status, body, headers = HTTPStatus.OK, self._answer(environ), {}
        except _Refused as exc:
            status, body, headers = exc.status, {"error": str(exc)}, exc.headers
        except Exception as exc:  # noqa: BLE001 (a defect: a JSON 500 and one line in the log)
            status, body, headers = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal "
                                                                        "error"}, {}
            print(f"neumf serve: internal error ({type(exc).__name__}: {exc}) answering "
                  f"{_shown(environ)}", file=sys.stderr, flush=True)
        data = json.dumps(body).encode("utf-8")
        start_response(f"{status.value} {status.phrase}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(data))), *headers.items()])
        if self.log:
            print(f"{environ.get('REMOTE_ADDR', '-')} {_shown(environ)} {status.value} "
                  f"{len(data)} {1000 * (time.perf_counter() - started):.1f} ms",
                  file=sys.stderr, flush=True)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [data]  # HEAD: GET's headers

    def _answer(self, environ) -> Dict:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        target = environ.get("REQUEST_URI") or path + "?" + environ.get("QUERY_STRING", "")
        if len(target) > MAX_TARGET_BYTES:
            raise _Refused(HTTPStatus.REQUEST_URI_TOO_LONG, f"the request target holds "
                           f"{len(target)} bytes; at most {MAX_TARGET_BYTES} (send many users "
                           "with POST /recommend)")
        if path not in _ROUTES:
            raise _Refused(HTTPStatus.NOT_FOUND, f"no such path: {path[:200]!r}; use GET "
                           "/health, GET /recommend or POST /recommend")
        if method not in _ROUTES[path]:
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{method[:20]} is not served on "
                           f"{path}: use {', '.join(_ROUTES[path])}",
                           Allow=", ".join(_ROUTES[path]))
        if path == "/health":
            recommender = self.recommender
            return {"status": "ok", "model": recommender.info.get("model"),
                    "users": recommender.num_users, "items": recommender.num_items,
                    "version": __version__}
        if method == "POST":
            body = _post_fields(environ)
            return {"recommendations": self._recommend(body["users"], body.get("k", 10),
                                                       body.get("exclude_seen", True))}
        query = _query(environ)
        records = self._recommend(query.get("user", []), (query.get("k") or ["10"])[0],
                                  _flag((query.get("exclude_seen") or [None])[0]))
        return records[0] if len(records) == 1 else {"recommendations": records}

    def _recommend(self, users, k, exclude_seen: bool) -> List[Dict]:
        recommender = self.recommender
        if not users:
            raise _Refused(HTTPStatus.BAD_REQUEST, "name at least one user (user=ID)")
        if len(users) > MAX_USERS:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"{len(users)} users in one request; at most {MAX_USERS}")
        if not all(isinstance(user, (str, int, float)) and not isinstance(user, bool)
                   for user in users):
            raise _Refused(HTTPStatus.BAD_REQUEST, "users must be raw ids (strings or "
                           "numbers)")
        k = _k(k, recommender.num_items)
        if len(users) * k > MAX_RESULTS:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"{len(users)} users x k={k} is {len(users) * k} results; at "
                           f"most {MAX_RESULTS} in one answer: split the request")
        try:
            return recommender.recommend(users, k, exclude_seen).to_records()
        except KeyError as exc:  # an unknown raw id
            raise _Refused(HTTPStatus.NOT_FOUND, exc.args[0] if exc.args else str(exc)) \
                from None
        except (TypeError, ValueError) as exc:  # an id that is no id (a NaN, an infinity)
            raise _Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None


def _shown(environ) -> str:
    """The request line for a log, control characters escaped."""
    return _shown_line(f"{environ.get('REQUEST_METHOD', '?')} "
                       f"{environ.get('REQUEST_URI', '')} {environ.get('SERVER_PROTOCOL', '')}")


def _shown_line(line: str) -> str:
    return '"' + line[:300].encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


# --- the server: waitress, its own answers in JSON too ----------------------------------------

def _server_error(error) -> Tuple[int, str]:
    """The status and message of an answer waitress makes itself."""
    code = getattr(error, "code", 500)
    if code == 431:
        return code, f"the request line and headers hold over {MAX_HEADER_BYTES} bytes"
    if code == 413:
        return code, f"the body holds over {MAX_BODY_BYTES} bytes; at most {MAX_BODY_BYTES}"
    if code == 501:
        return code, "only Transfer-Encoding: chunked is understood"
    if code in (400, 408) and str(getattr(error, "body", "")).startswith("the "):
        return code, str(error.body)  # the timeouts' own words
    return code, f"malformed request: {str(getattr(error, 'body', '') or 'not HTTP')[:200]}"


class _ErrorTask(ErrorTask):
    """The answer to a request waitress could not parse: JSON, then close."""

    def execute(self):
        code, message = _server_error(self.request.error)
        body = json.dumps({"error": message}).encode("utf-8")
        self.status = f"{code} {HTTPStatus(code).phrase}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)
        if self.channel.server.log:
            line = getattr(self.request, "first_line", b"") or b"?"
            print(f"{self.channel.addr[0]} {_shown_line(line.decode('latin-1'))} {code} "
                  f"{len(body)} ({message})", file=sys.stderr, flush=True)


class _Parser(HTTPRequestParser):
    """Waitress's parser, refusing a request whose length is given twice or
    by both Content-Length and Transfer-Encoding (RFC 9112 6.3: a smuggling
    attempt), instead of taking one of them."""

    def parse_header(self, header_plus: bytes):
        super().parse_header(header_plus)  # first: the answer's HTTP version is the request's
        names = [line.split(b":", 1)[0].strip().lower()
                 for line in header_plus.split(b"\r\n")[1:]]
        if names.count(b"content-length") > 1:
            raise ParsingError("Content-Length is given more than once")
        if b"content-length" in names and b"transfer-encoding" in names:
            raise ParsingError("both Content-Length and Transfer-Encoding are given")


class _Channel(HTTPChannel):
    """A connection, closed by the server the way RFC 9112 9.6 asks: after the
    last answer it stops sending, then reads and drops what the client still
    sends for up to :data:`LINGER_SECONDS` before closing. Closing with unread
    input would reset the connection, and a client still sending (a body or
    headers over the limits) would lose the answer that refused them."""

    error_task_class = _ErrorTask
    parser_class = _Parser
    linger_until = None

    def handle_close(self):
        if self.linger_until is not None or not self.will_close or not self.connected:
            super().handle_close()  # a client that closed first, an error, or lingered
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            super().handle_close()
            return
        self.will_close, self.linger_until = False, time.monotonic() + LINGER_SECONDS

    def readable(self):
        return True if self.linger_until is not None else super().readable()

    def writable(self):  # asked every turn of the loop: the deadline is checked here
        if self.linger_until is not None:
            return time.monotonic() >= self.linger_until
        return super().writable()

    def handle_write(self):
        if self.linger_until is not None:
            super().handle_close()
        else:
            super().handle_write()

    def handle_read(self):
        if self.linger_until is None:
            super().handle_read()
        else:
            with contextlib.suppress(OSError):
                self.recv(65536)  # dropped; at the end of input recv() closes


class _RequestTimeout(BadRequest):
    code = 408
    reason = "Request Timeout"


class _WaitressServer(TcpWSGIServer):
    """Waitress's TCP server with the channels above, answering a request left
    unfinished for ``channel_timeout`` seconds (waitress would close it
    unanswered): a 400 for a body that stopped short of its length, a 408
    for a request line or headers that never ended."""

    channel_class = _Channel
    log = False

    def maintenance(self, now):
        cutoff = now - self.adj.channel_timeout
        for channel in list(self.active_channels.values()):
            request = channel.request
            if request is None or request.completed or channel.requests \
                    or channel.last_activity >= cutoff:
                continue
            with channel.requests_lock:
                expected = "" if request.chunked else f" of its {request.content_length}"
                request.error = BadRequest(
                    f"the body stopped after {request.body_bytes_received}{expected} bytes "
                    f"(nothing more came for {self.adj.channel_timeout} s)") \
                    if request.headers_finished else _RequestTimeout(
                    f"the request line and headers did not end within "
                    f"{self.adj.channel_timeout} s (each line ends with CR LF, the headers "
                    "with an empty line)")
                request.completed, channel.request = True, None
                channel.requests.append(request)
                channel.last_activity = now
                self.add_task(channel)
        super().maintenance(now)


class Server:
    """An HTTP server answering for a recommender (see :func:`make_server`):
    ``serve_forever()`` until ``shutdown()`` (from another thread) or Ctrl-C,
    then ``server_close()``; ``server_address`` is the ``(host, port)`` it
    listens on."""

    def __init__(self, server: TcpWSGIServer, sockets: Dict):
        self._server, self._map = server, sockets
        self._stop, self._stopped = threading.Event(), threading.Event()
        self._stopped.set()

    @property
    def server_address(self) -> Tuple[str, int]:
        return self._server.effective_host, self._server.effective_port

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Answer requests until :meth:`shutdown`."""
        self._stopped.clear()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=poll_interval, map=self._map, use_poll=True, count=1)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (it finishes its current poll first)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._server.pull_trigger()
        self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket and every connection; stop the workers."""
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        wasyncore.close_all(self._map)


def make_server(recommender: Recommender, host: str = "127.0.0.1", port: int = 8080, *,
                quiet: bool = True, threads: int = 1, timeout: float = 10) -> Server:
    """An HTTP server answering for ``recommender`` (not yet serving: call its
    ``serve_forever()``; ``port=0`` picks a free port, see ``server_address``).

    ``threads`` compute answers side by side: more than one only contend for
    the GIL on small requests (ML-100K, 50 clients: 2 threads answer a third
    fewer a second than 1, at three times the p99), but keep answering while
    one long request is computed. ``timeout`` is how many seconds a connection may stay silent, idle
    between requests or in the middle of one (a body that stops short is
    then answered with a 400). ``quiet=False`` logs every request to stderr.
    Needs the ``serve`` extra (waitress)."""
    if SERVER_MISSING is not None:
        raise ImportError("serving over HTTP needs waitress: pip install 'neumf[serve]' (or "
                          "pip install waitress)")
    if not 0 <= check_int("port", port) <= 65535:
        raise ValueError(f"port must be in 0..65535 (0: any free port); got {port}")
    threads = check_int("threads", threads, 1)
    timeout = max(1, round(check_number("timeout", timeout, positive=True)))
    # queueing is how a busy server works: not a warning a line per request
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    sockets = {}
    try:
        server = _WaitressServer(
            _Service(recommender, not quiet), map=sockets, host=host, port=port,
            threads=threads, backlog=1024, connection_limit=1000, asyncore_use_poll=True,
            channel_timeout=timeout, cleanup_interval=max(1, timeout // 4),
            max_request_header_size=MAX_HEADER_BYTES,
            max_request_body_size=MAX_BODY_BYTES + 1, log_socket_errors=False,
            ident=f"neumf/{__version__}", expose_tracebacks=False)
    except OSError as exc:
        wasyncore.close_all(sockets)  # the socket and the wake-up pipe made before binding
        raise OSError(f"cannot serve on {host}:{port}: {exc.strerror or exc}"
                      + (" (another process listens there: choose another --port)"
                         if exc.errno == errno.EADDRINUSE else "")) from None
    server.log = not quiet
    if recommender.num_users:  # NumPy's and BLAS's first calls: before a client waits on them
        recommender.recommend(recommender.user_ids.raw[0], min(10, recommender.num_items))
    return Server(server, sockets)
