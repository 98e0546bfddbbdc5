"""The GroupLens downloader against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import threading
import time
import zipfile

import pytest

import neumf
from neumf import download as download_module
from neumf import read_data_ml100k
from neumf.download import DownloadError, download_ml100k

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")

U_DATA = "1\t1\t5\t100\n1\t2\t3\t50\n2\t1\t4\t70\n"


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def http_server():
    """Serves ``files[path]`` bytes on 127.0.0.1 and counts requests per path."""
    files, hits = {}, {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            hits[self.path] = hits.get(self.path, 0) + 1
            body = files.get(self.path)
            if callable(body):  # a body that changes from request to request
                body = body(hits[self.path])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, files, hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(http_server):
    """The module's server with no files and no requests counted yet."""
    base, files, hits = http_server
    files.clear()
    hits.clear()
    return base, files, hits


def test_good_zip_is_extracted_and_cached(tmp_path, server):
    base, files, hits = server
    body = _zip({"ml-100k/u.data": U_DATA, "ml-100k/README": "hello"})
    files["/ml-100k.zip"] = body
    sha1 = hashlib.sha1(body).hexdigest()
    path = download_ml100k(tmp_path, url=base + "/ml-100k.zip", sha1=sha1)
    assert path == tmp_path / "ml-100k" / "u.data" and path.read_text() == U_DATA
    assert (tmp_path / "ml-100k.zip").read_bytes() == body
    assert download_ml100k(tmp_path, url=base + "/ml-100k.zip", sha1=sha1) == path
    (tmp_path / "ml-100k" / "u.data").unlink()  # re-extracted from the cached zip
    assert download_ml100k(tmp_path, url=base + "/ml-100k.zip", sha1=sha1).is_file()
    assert hits == {"/ml-100k.zip": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k", "ml-100k.zip"]


def test_reader_downloads_when_the_file_is_missing(tmp_path, server, monkeypatch):
    base, files, _ = server
    body = _zip({"ml-100k/u.data": U_DATA})
    files["/movielens/ml-100k.zip"] = body
    monkeypatch.setattr(download_module, "ML100K_URL", base + "/movielens/ml-100k.zip")
    monkeypatch.setattr(download_module, "ML100K_SHA1", hashlib.sha1(body).hexdigest())
    data, num_users, num_items = read_data_ml100k(tmp_path)
    assert len(data) == 3 and (num_users, num_items) == (2, 2)


def test_wrong_sha1_is_refused_after_retries_and_leaves_nothing(tmp_path, server):
    base, files, hits = server
    files["/ml-100k.zip"] = _zip({"ml-100k/u.data": U_DATA})
    with pytest.raises(DownloadError, match="SHA-1 .* does not match"):
        download_ml100k(tmp_path, url=base + "/ml-100k.zip", sha1="0" * 40, backoff=0)
    assert list(tmp_path.iterdir()) == []
    assert hits == {"/ml-100k.zip": 3}  # the first try and two retries


def test_truncated_transfer_is_retried(tmp_path, server):
    base, files, hits = server
    body = _zip({"ml-100k/u.data": U_DATA})
    files["/ml-100k.zip"] = lambda count: body[:len(body) // 2] if count == 1 else body
    path = download_ml100k(tmp_path, url=base + "/ml-100k.zip",
                           sha1=hashlib.sha1(body).hexdigest(), backoff=0)
    assert path.read_text() == U_DATA and hits == {"/ml-100k.zip": 2}


def test_corrupt_cached_zip_is_replaced(tmp_path, server):
    base, files, hits = server
    body = _zip({"ml-100k/u.data": U_DATA})
    files["/ml-100k.zip"] = body
    (tmp_path / "ml-100k.zip").write_bytes(body[:20])  # truncated earlier download
    download_ml100k(tmp_path, url=base + "/ml-100k.zip", sha1=hashlib.sha1(body).hexdigest())
    assert (tmp_path / "ml-100k.zip").read_bytes() == body and hits == {"/ml-100k.zip": 1}


def test_http_error_is_reported_and_leaves_nothing(tmp_path, server):
    base, _, _ = server
    with pytest.raises(DownloadError, match="download failed"):
        download_ml100k(tmp_path, url=base + "/missing.zip", sha1="0" * 40, backoff=0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match="HTTP Error 404"):
        download_ml100k(tmp_path / "new", url=base + "/missing.zip", sha1="0" * 40,
                        backoff=0)
    assert not (tmp_path / "new").exists()  # a folder made for the download goes too


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt", "ml-100k/../../evil.txt"])
def test_escaping_members_are_refused(tmp_path, server, member):
    base, files, _ = server
    body = _zip({"ml-100k/u.data": U_DATA, member: "x"})
    files["/ml-100k.zip"] = body
    target = tmp_path / "data"
    with pytest.raises(DownloadError, match="outside"):
        download_ml100k(target, url=base + "/ml-100k.zip", sha1=hashlib.sha1(body).hexdigest())
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "ml-100k.zip").exists()  # a refused archive is not kept
    assert not (target / "ml-100k").exists()


def test_data_home_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("NEUMF_DATA_DIR", str(tmp_path / "env"))
    assert download_module.data_home(tmp_path / "arg") == tmp_path / "arg"
    assert download_module.data_home() == tmp_path / "env"
    monkeypatch.delenv("NEUMF_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert download_module.data_home() == tmp_path / "cache" / "neumf"


# --- offline first run ---

def test_missing_data_says_where_it_looked(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a closed port: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("NEUMF_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        neumf.download.download_ml100k(url=f"http://127.0.0.1:{port}/ml-100k.zip", backoff=0.01)
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert str(tmp_path / "env") in message and "NEUMF_DATA_DIR" in message
    assert f"127.0.0.1:{port}" in message and "data_dir" in message


@pytest.mark.slow
def test_a_silent_server_is_given_up_on(tmp_path):
    with socket.socket() as server:  # accepts, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/ml-100k.zip"
        start = time.monotonic()
        with pytest.raises(DownloadError):
            neumf.download.download_ml100k(tmp_path, url=url, timeout=1.0, retries=1, backoff=0.01)
        assert time.monotonic() - start < 15
    assert neumf.download.DEFAULT_TIMEOUT <= 30
