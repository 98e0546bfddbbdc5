"""The HTTP service as a hostile client meets it (issue 27): real sockets
against a real server, every answer JSON with its status, no request left
unanswered, nothing in the server's log."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import neumf
from conftest import planted_interactions, write_u_data
from neumf import fit, serving
from neumf.service import make_server

SETTINGS = {"seed": 0, "num_epochs": 2, "batch_size": 64, "k": 5, "ks": (5, 10),
            "verbose": False}
BODY = b'{"users": ["1"], "k": 2}'


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("http")
    result = fit(data_dir=write_u_data(folder, planted_interactions()), **SETTINGS)
    return result.export(folder / "export")


@pytest.fixture(scope="module")
def service(export):
    """A server with a one-second timeout, in a thread: (port, recommender)."""
    recommender = serving.load(export)
    server = make_server(recommender, "127.0.0.1", 0, timeout=1)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server.server_address[1], recommender
    server.shutdown()
    server.server_close()


def _exchange(port: int, data: bytes, *, timeout: float = 10) -> bytes:
    """Send ``data`` on a new connection; everything the server answers until it
    closes the connection (or ``timeout`` passes: a test failure)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _answers(raw: bytes) -> list:
    """(status line, headers, JSON body) of each answer in ``raw``."""
    answers = []
    while raw:
        head, raw = raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value for name, value in
                   (line.split(": ", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        body, raw = raw[:length], raw[length:]
        answers.append((lines[0], headers, json.loads(body) if body else None))
    return answers


def _one(port: int, data: bytes) -> tuple:
    answers = _answers(_exchange(port, data))
    assert len(answers) == 1, answers
    status, headers, body = answers[0]
    assert headers["content-type"] == "application/json"
    return int(status.split()[1]), body


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /recommend HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def test_keep_alive_answers_many_requests_on_one_connection(service):
    port, recommender = service
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    first = None
    for path in ("/health", "/recommend?user=1&k=2", "/recommend?user=nobody",
                 "/recommend?user=2&k=3"):
        connection.request("GET", path)
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.version == 11 and response.getheader("Connection") != "close"
        first = first or connection.sock
        assert connection.sock is first  # the same connection throughout
    assert response.status == 200 and body == recommender.recommend("2", 3).to_records()[0]
    connection.request("POST", "/recommend", BODY)
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["recommendations"][0][
        "user"] == "1" and connection.sock is first
    connection.close()


@pytest.mark.parametrize("framing", [
    b"Content-Length: 25\r\nContent-Length: 5\r\n",
    b"Content-Length: 25, 5\r\n",
    b"Transfer-Encoding: chunked\r\nContent-Length: 25\r\n",
    b"Content-Length: 25\r\nTransfer-Encoding: chunked\r\n",
], ids=["two lengths", "a list of lengths", "TE then CL", "CL then TE"])
def test_a_request_framed_two_ways_is_refused(service, framing):
    port, _ = service
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = b"POST /recommend HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n" + BODY + b"x" + smuggled
    answers = _answers(_exchange(port, raw))
    # one answer, a refusal; the request hidden in the body is never answered
    assert [status for status, _, _ in answers] == ["HTTP/1.1 400 Bad Request"]
    assert "Content-Length" in answers[0][2]["error"]


def test_deep_json_and_long_numbers_are_refused_before_parsing(service):
    port, recommender = service
    status, body = _one(port, _post(b"[" * 10_000 + b"]" * 10_000))
    assert status == 400 and "nests arrays and objects 10000 deep; at most 8" in body["error"]
    status, body = _one(port, _post(b'{"users": [' + b"9" * 400 + b"]}"))
    assert status == 400 and "a number of 400 characters" in body["error"]
    # brackets inside strings are no nesting, even after an escaped quote
    status, body = _one(port, _post(b'{"users": ["[[[[[[[[[[[[[[[[[[\\"[[[[[[[[["], "k": 1}'))
    assert status == 404 and "unknown user id" in body["error"]
    started = time.monotonic()  # counted in linear time: 400,000 escaped quotes
    status, body = _one(port, _post(b'["' + b'\\"' * 400_000 + b"]"))
    assert status == 400 and "not JSON" in body["error"] and time.monotonic() - started < 2
    # in Python, a long number is an id like any other: unknown, not an OverflowError
    with pytest.raises(KeyError, match="unknown user id"):
        recommender.recommend(10 ** 399)


def test_a_short_body_is_answered_when_the_timeout_passes(service):
    port, _ = service
    started = time.monotonic()
    status, body = _one(port, b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                              b"\r\n\r\n" + BODY[:10])
    assert status == 400 and "the body stopped after 10 of its 100 bytes" in body["error"]
    assert time.monotonic() - started < 5  # one-second timeout, checked every second
    # headers that never end (bare LFs, or a client that stalls) are a 408
    status, body = _one(port, b"GET /health HTTP/1.1\nHost: x\n\n")
    assert status == 408 and "did not end within 1 s" in body["error"]


def test_long_request_lines_and_headers_are_json(service):
    port, _ = service
    status, body = _one(port, b"GET /recommend?user=" + b"1" * 10_000
                        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 414 and "at most 8192" in body["error"]
    status, body = _one(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000
                        + b"\r\n\r\n")
    assert status == 431 and "over 16384 bytes" in body["error"]
    status, body = _one(port, b"GET /recommend?user=" + b"1" * 20_000 + b" HTTP/1.1\r\n\r\n")
    assert status == 431
    status, body = _one(port, b"NONSENSE\r\n\r\n")
    assert status == 400 and "malformed request" in body["error"]
    status, body = _one(port, _post(b"{}" * 10, b"Transfer-Encoding: gzip\r\n")
                        .replace(b"Content-Length: 20\r\n", b""))
    assert status == 501 and "chunked" in body["error"]


def test_head_is_served_where_get_is(service):
    port, _ = service
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for path in ("/health", "/recommend?user=1&k=2", "/recommend?user=nobody", "/nowhere"):
        connection.request("GET", path)
        got = connection.getresponse()
        body = got.read()
        connection.request("HEAD", path)
        head = connection.getresponse()
        assert head.read() == b"" and head.status == got.status
        assert head.getheader("Content-Length") == str(len(body))
    connection.request("POST", "/health", b"{}")
    refused = connection.getresponse()
    assert refused.status == 405 and refused.getheader("Allow") == "GET, HEAD"
    assert "POST is not served on /health" in json.loads(refused.read())["error"]
    connection.close()


@pytest.mark.parametrize("query", ["k=%D9%A3", "k=%C2%B2", "k=2.0", "k=+2", "k=0x2", "k="])
def test_k_in_a_query_is_ascii_digits(service, query):
    port, _ = service
    status, body = _one(port, f"GET /recommend?user=1&{query} HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n".encode())
    assert status == 400 and "k must be a positive integer" in body["error"]


@pytest.mark.parametrize("k", ["1000000000000", "99999999999999999999", "9" * 5000])
def test_a_huge_k_in_a_query_is_larger_than_the_catalogue(service, k):
    port, _ = service
    status, body = _one(port, f"GET /recommend?user=1&k={k} HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n".encode())
    assert status == 400 and "is larger than the catalogue" in body["error"]


def test_a_field_given_twice_in_a_body_is_refused(service):
    port, _ = service
    status, body = _one(port, _post(b'{"users": ["1"], "k": 2, "k": 3}'))
    assert status == 400 and "k is given twice" in body["error"]


@pytest.mark.parametrize("k", ["2.0", '"٣"', '"2.0"', "true", "-1"])
def test_k_in_a_body_is_an_integer(service, k):
    port, _ = service
    status, body = _one(port, _post(b'{"users": ["1"], "k": ' + k.encode() + b"}"))
    assert status == 400 and "k must be a positive integer" in body["error"]


def test_ids_mean_the_same_over_http_and_in_python(service):
    port, recommender = service
    # a number is its decimal text, a whole-number float that integer, as in the data
    for users in ([7.0], [7], ["7"]):
        status, body = _one(port, _post(json.dumps({"users": users, "k": 3}).encode()))
        assert status == 200 and body["recommendations"] == \
            recommender.recommend(users, 3).to_records() == \
            recommender.recommend("7", 3).to_records()
    # text is an id as it is: "7.0" is not "7", in a query as in Python
    status, body = _one(port, b"GET /recommend?user=7.0 HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 404 and "unknown user id(s): 7.0" in body["error"]
    with pytest.raises(KeyError, match="unknown user id"):
        recommender.recommend("7.0")
    status, body = _one(port, b"GET /recommend?user=%FF HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 400 and "UTF-8" in body["error"]


@pytest.mark.slow  # starts the server in its own process
def test_hostile_requests_leave_no_traceback_in_the_log(export):
    process = subprocess.Popen([sys.executable, "-m", "neumf", "serve", "--export", str(export),
                                "--port", "0", "--timeout", "1"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        port = int(process.stdout.readline().split("http://127.0.0.1:")[1].split()[0])
        for hang_up in (b"GET /health HTTP/1.1\r\n", b"POST /recommend HTTP/1.1\r\n"
                        b"Content-Length: 500\r\n\r\n{", b"GET /recommend?user=1 HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port)) as connection:
                connection.sendall(hang_up)  # ... and hangs up at once
        for hostile in (_post(b"[" * 10_000 + b"]" * 10_000),
                        _post(b'{"users": [' + b"9" * 400 + b"]}"),
                        _post(BODY, b"Content-Length: 5\r\n"), b"\x16\x03\x01\x02\x00\r\n\r\n",
                        b"GET /recommend?user=" + b"1" * 20_000 + b" HTTP/1.1\r\n\r\n"):
            assert 400 <= _one(port, hostile)[0] < 500
        assert _one(port, b"POST /recommend HTTP/1.1\r\nContent-Length: 50\r\n\r\n{")[0] == 400
        assert _one(port, b"GET /recommend?user=1&k=2 HTTP/1.1\r\nConnection: close\r\n\r\n"
                    )[0] == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and err.strip() == "stopped", err


@pytest.mark.slow  # a process without the server library
def test_serve_says_how_to_install_the_server(export):
    script = ("import sys; sys.modules['waitress'] = None; import neumf.serving as s; "
              "r = s.load(sys.argv[1]); assert r.recommend('1', 2).users == ['1']; "
              "from neumf.cli import main; raise SystemExit(main(['serve', '--export', "
              "sys.argv[1]]))")
    done = subprocess.run([sys.executable, "-c", script, str(export)], capture_output=True,
                          text=True, timeout=100, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 2
    assert "neumf: error: neumf serve needs the server library waitress" in done.stderr
    assert "pip install 'neumf[serve]'" in done.stderr and "Traceback" not in done.stderr


def test_the_version_is_in_the_server_header(service):
    port, _ = service
    raw = _exchange(port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert f"Server: neumf/{neumf.__version__}".encode() in raw
