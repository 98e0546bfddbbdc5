"""Serving (issue 14): a self-contained export, the Recommender that loads it,
the HTTP service, batch scoring from the shell, and beyond-accuracy metrics."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

import neumf
from conftest import planted_interactions, write_u_data
from neumf import RunError, fit, load_model, recommend, serving
from neumf.cli import main
from neumf.evaluation import catalogue_metrics
from neumf.interactions import SeenIndex
from neumf.metrics import popularity_percentiles
from neumf.service import make_server

SETTINGS = {"seed": 0, "num_epochs": 3, "batch_size": 64, "k": 5, "ks": (5, 10),
            "verbose": False}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    data_dir = write_u_data(folder, planted_interactions())
    result = fit(data_dir=data_dir, out=folder / "run", **SETTINGS)
    return result, folder / "run", result.export(folder / "export")


def test_export_is_self_contained_and_checked(run, tmp_path):
    result, _, export = run
    names = sorted(path.name for path in export.iterdir())
    assert names == ["export.json", "ids.json", "model-0000.params", "model-symbol.json",
                     "seen.npz"]
    manifest = json.loads((export / "export.json").read_text())
    assert manifest["version"] == neumf.__version__ and manifest["num_items"] == 60
    assert manifest["inputs"] == ["data0", "data1"]
    with pytest.raises(RunError, match="already holds an export"):
        result.export(export)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not empty and is not a neumf export"):
        result.export(tmp_path / "foreign")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in export.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    (damaged / "ids.json").write_text('{"users": [], "items": []}')
    with pytest.raises(RunError, match="ids.json: SHA-256 does not match"):
        serving.load(damaged)


@pytest.mark.slow  # starts a Python process
def test_a_fresh_process_recommends_what_the_run_recommends(run):
    result, _, export = run
    users = result.data.user_ids[:12].tolist()
    script = ("import json, sys, neumf.serving as s; r = s.load(sys.argv[1]); "
              "rec = r.recommend(json.loads(sys.argv[2]), k=7); "
              "print(json.dumps({'items': rec.items, "
              "'scores': [[float(x) for x in row] for row in rec.scores]}))")
    done = subprocess.run([sys.executable, "-c", script, str(export), json.dumps(users)],
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    served = json.loads(done.stdout)
    expected = recommend(result, users, k=7)
    assert served["items"] == expected.items
    np.testing.assert_allclose(served["scores"], np.array(expected.scores), rtol=1e-5,
                               atol=1e-6)


def test_score_is_the_networks_score_by_raw_ids(run):
    result, _, export = run
    recommender = serving.load(export)
    users, items = ["3", "17"], ["5", "1", "60"]
    scores = recommender.score(users, items)
    data = result.data
    user_index = [int(np.flatnonzero(data.user_ids == user)[0]) for user in users]
    item_index = [int(np.flatnonzero(data.item_ids == item)[0]) for item in items]
    pairs = result.net(mx.np.array(np.repeat(user_index, 3), dtype="int32"),
                       mx.np.array(np.tile(item_index, 2), dtype="int32"))
    np.testing.assert_allclose(scores, pairs.asnumpy().reshape(2, 3), rtol=1e-5, atol=1e-6)
    assert recommender.score("3", "5").shape == (1, 1)
    with pytest.raises(KeyError, match="unknown item id"):
        recommender.score("3", "no-such-item")
    assert "neumf: 80 users x 60 items" in repr(recommender)


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def _post(url, body: bytes, headers=None):
    return _request(url, body, "POST", {"Content-Type": "application/json", **(headers or {})})


def _request(url, body, method, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@pytest.fixture
def service(run):
    recommender = serving.load(run[2])
    server = make_server(recommender, "127.0.0.1", 0)
    # shutdown() waits for the loop's next poll: 0.05 s, not the default 0.5 s per test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", recommender
    server.shutdown()
    server.server_close()


def test_http_service_answers_like_the_recommender(service):
    base, recommender = service
    status, health = _get(base + "/health")
    assert status == 200 and health["status"] == "ok" and health["items"] == 60
    status, one = _get(base + "/recommend?user=7&k=3")
    assert status == 200 and one == recommender.recommend("7", 3).to_records()[0]
    assert one["user"] == "7" and len(one["items"]) == 3 and set(one["items"][0]) == \
        {"item", "score"}
    status, many = _post(base + "/recommend", json.dumps({"users": ["1", 2], "k": 4}).encode())
    # one shape: a user's record, as GET answers it, in a list in the order asked
    assert status == 200 and list(many) == ["recommendations"]
    assert many["recommendations"] == recommender.recommend(["1", "2"], 4).to_records()
    status, two = _get(base + "/recommend?user=1&user=2&k=4")
    assert status == 200 and two == many
    status, with_seen = _get(base + "/recommend?user=7&k=60&exclude_seen=false")
    assert status == 200 and len(with_seen["items"]) == 60


@pytest.mark.parametrize("method, path, body, code, words", [
    ("GET", "/recommend?user=nobody", None, 404, "unknown user id(s): nobody"),
    ("GET", "/recommend?user=1&k=0", None, 400, "k must be a positive integer"),
    ("GET", "/recommend?user=1&k=ten", None, 400, "k must be a positive integer"),
    ("GET", "/recommend?user=1&k=61", None, 400, "larger than the catalogue"),
    ("GET", "/recommend", None, 400, "name at least one user"),
    ("GET", "/recommend?user=1&exclude_seen=maybe", None, 400, "exclude_seen"),
    ("GET", "/nowhere", None, 404, "no such path"),
    ("POST", "/recommend", b"{not json", 400, "not JSON"),
    ("POST", "/recommend", b'{"user": "1"}', 400, "the body must be"),
    ("POST", "/recommend", b'{"users": [["1"]]}', 400, "raw ids"),
    ("POST", "/recommend", b'{"users": ["1"], "k": 2.5}', 400, "k must be"),
    ("POST", "/recommend", json.dumps({"users": ["1"] * 10_001}).encode(), 413, "at most"),
    ("POST", "/recommend", json.dumps({"users": ["1"] * 10_000, "k": 11}).encode(), 413,
     "is 110000 results; at most 100000"),
    ("PUT", "/recommend", b"{}", 405, "PUT is not served"),
    ("DELETE", "/recommend", None, 405, "DELETE is not served"),
    ("POST", "/health", b"{}", 405, "POST is not served on /health: use GET, HEAD"),
    ("GET", "/recommend?users=1", None, 400, "unknown query field 'users'"),
    ("GET", "/recommend?user=1&k=2&k=3", None, 400, "k is given twice"),
    ("POST", "/recommend", b'{"users": ["1"], "exclude-seen": false}', 400,
     "unknown field 'exclude-seen'"),
    ("POST", "/recommend", b'{"users": [NaN]}', 400, "NaN is not a JSON number"),
    ("POST", "/recommend", b'{"users": [1e400]}', 400, "users must be raw ids; got inf"),
    ("POST", "/recommend", b'{"users": [true]}', 400, "raw ids"),
    ("POST", "/recommend", b'{"users": ["1"]}\xff', 400, "not UTF-8"),
])
def test_http_service_refuses_bad_requests_clearly(service, method, path, body, code, words):
    base, _ = service
    status, answer = _get(base + path) if method == "GET" else _post(base + path, body) \
        if method == "POST" else _request(base + path, body, method)
    assert status == code and words in answer["error"]


def test_http_service_wants_a_content_length_in_ascii_digits(service):
    base, _ = service
    host, port = base.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        # '²' passes str.isdigit() but not int(): the header is read as Latin-1
        connection.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: "
                           b"\xb2\r\n\r\n")
        answer = b"".join(iter(lambda: connection.recv(65536), b"")).decode("latin-1")
    head, body = answer.split("\r\n\r\n", 1)
    assert head.startswith("HTTP/1.1 400") and "application/json" in head
    assert "Content-Length" in json.loads(body)["error"]


def test_a_port_in_use_is_named(run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot serve on 127.0.0.1:{port}: .*another "
                                          "process listens there"):
            make_server(serving.load(run[2]), "127.0.0.1", port)
    with pytest.raises(ValueError, match="port must be in 0..65535"):
        make_server(serving.load(run[2]), "127.0.0.1", 70000)


def test_http_service_bounds_the_body_and_survives_concurrency(service):
    base, recommender = service
    status, answer = _post(base + "/recommend", b"x" * 10, {"Content-Length": str(1 << 30)})
    assert status == 413 and "at most" in answer["error"]
    users = recommender.user_ids.raw[:40].tolist()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda user: _get(f"{base}/recommend?user={user}&k=5"), users))
    expected = recommender.recommend(users, 5)
    assert [status for status, _ in answers] == [200] * len(users)
    # one user at a time or forty at once: the same items; scores to float32 rounding
    assert [[entry["item"] for entry in answer["items"]] for _, answer in answers] == \
        expected.items
    np.testing.assert_allclose([[entry["score"] for entry in answer["items"]]
                                for _, answer in answers], np.array(expected.scores),
                               rtol=1e-5, atol=1e-7)


@pytest.mark.slow  # starts a Python process
def test_serve_from_the_shell_until_ctrl_c(run):
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "neumf", "serve", "--export", str(run[2]),
                                "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert "serving" in process.stdout.readline()
        status, health = _get(f"http://127.0.0.1:{port}/health")
        assert status == 200 and health["users"] == 80
    finally:
        process.send_signal(__import__("signal").SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err


def test_batch_scoring_from_a_file_equals_recommend(run, tmp_path, capsys):
    result, run_dir, export = run
    users = result.data.user_ids.tolist()
    (tmp_path / "users.txt").write_text("\n".join(users) + "\n")
    for source in (["--run", str(run_dir)], ["--export", str(export)]):
        out = tmp_path / "recs.csv"
        assert main(["recommend", *source, "--users-file", str(tmp_path / "users.txt"),
                     "-k", "4", "--out", str(out), "--overwrite"]) == 0
        frame = pd.read_csv(out, dtype={"user": str, "item": str})
        expected = recommend(result, users, k=4).to_frame()
        assert frame[["user", "rank", "item"]].equals(expected[["user", "rank", "item"]])
        np.testing.assert_allclose(frame["score"], expected["score"], rtol=1e-5, atol=1e-6)
    jsonl = tmp_path / "recs.jsonl"
    assert main(["recommend", "--export", str(export), "--users-file",
                 str(tmp_path / "users.txt"), "-k", "2", "--out", str(jsonl)]) == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    # the service's shape, a line per user
    assert lines == serving.load(export).recommend(users, 2).to_records()
    capsys.readouterr()
    assert main(["recommend", "--export", str(export), "--users-file",
                 str(tmp_path / "users.txt"), "--out", str(jsonl)]) == 2
    assert "exists" in capsys.readouterr().err
    (tmp_path / "bad.txt").write_text("\ufeff1\nnobody\n\nnoone\n")  # a BOM, as Notepad writes
    assert main(["recommend", "--export", str(export), "--users-file",
                 str(tmp_path / "bad.txt"), "--out", str(tmp_path / "x.csv")]) == 2
    assert f"{tmp_path / 'bad.txt'} line 2: unknown user id 'nobody' (and 1 more unknown)" \
        in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


class _Table(mx.gluon.nn.Block):
    """Scores from a fixed users x items table."""

    def __init__(self, table):
        super().__init__()
        self.table = np.asarray(table, dtype=np.float32)

    def forward(self, users, items):
        return mx.np.array(self.table[users.asnumpy(), items.asnumpy()])


def test_coverage_and_popularity_by_hand():
    # 3 users, 5 items; user 0 has seen item 0; counts give percentiles by hand
    table = [[9, 8, 7, 1, 0], [0, 1, 9, 8, 7], [5, 9, 1, 2, 8]]
    seen = SeenIndex.from_pairs(np.array([0]), np.array([0]), 5)
    counts = np.array([10, 3, 3, 0, 7])
    percent = popularity_percentiles(counts)
    np.testing.assert_allclose(percent, [100, 37.5, 37.5, 0, 75])
    metrics = catalogue_metrics(_Table(table), np.arange(3), seen, counts, (1, 2), [mx.cpu()])
    # top-1: items 1, 2, 1 -> coverage 2/5; top-2: {1, 2}, {2, 3}, {1, 4} -> 4/5
    assert metrics["coverage@1"] == pytest.approx(2 / 5)
    assert metrics["coverage@2"] == pytest.approx(4 / 5)
    assert metrics["popularity@1"] == pytest.approx((37.5 + 37.5 + 37.5) / 3)
    assert metrics["popularity@2"] == pytest.approx((37.5 * 2 + 37.5 + 0 + 37.5 + 75) / 6)


def test_hit_rate_by_user_activity(run):
    result = run[0]
    data = result.data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = neumf.evaluate_model(result.net, data.test_users, data.test_items,
                                       data.train_users, data.train_items, data.num_items,
                                       [mx.cpu()], ks=(5,), beyond_accuracy=True)
    # every planted user trained on 8 items: all are "cold" (the lowest third)
    assert metrics["hr@5_cold"] == pytest.approx(metrics["hr@5"])
    assert np.isnan(metrics["hr@5_warm"]) and np.isnan(metrics["hr@5_heavy"])
    assert 0 < metrics["coverage@5"] <= 1 and 0 <= metrics["popularity@5"] <= 100


def test_evaluate_report_draws_a_picture(run, tmp_path, capsys):
    _, run_dir, _ = run
    assert main(["evaluate", "--run", str(run_dir), "--run", str(run_dir), "--report",
                 str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.png").read_bytes().startswith(b"\x89PNG")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(report) == 1 and "coverage@5" in next(iter(report.values()))
    capsys.readouterr()
    # with --json, stdout is JSON lines only; the report's files are named on stderr
    assert main(["evaluate", "--run", str(run_dir), "--json", "--report",
                 str(tmp_path / "report2")]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["run"] for line in out.splitlines()] == [str(run_dir)]
    assert "report2" in err


def test_a_short_repr_and_small_catalogue_defaults(run, tmp_path):
    result, run_dir, _ = run
    text = repr(load_model(run_dir))
    assert text.startswith("FitResult(neumf on ml-100k: 80 users x 60 items, 3 epochs")
    assert len(text) < 300
    rows = [(f"u{u}", f"i{(u * 7 + j) % 12}", j) for u in range(10) for j in range(5)]
    pd.DataFrame(rows, columns=["user", "item", "timestamp"]).to_csv(tmp_path / "small.csv",
                                                                     index=False)
    # 12 items: the default cut-offs become a tenth of the catalogue at most, 1; the
    # metrics' names say so
    small = fit(dataset="csv", data_dir=tmp_path, name="small.csv", num_epochs=1,
                verbose=False)
    assert small.config.k == 1 and small.config.ks == (1,) and "hr@1" in small.metrics
