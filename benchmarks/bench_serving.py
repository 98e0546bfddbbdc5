"""Serving speed: batch scoring every user to a CSV, and a load test of
``neumf serve`` (issue 27), on MovieLens-100K (a model trained with the
tutorial's settings) and on synthetic data of ML-1M's size (6,040 users x
3,706 items, 1,000,209 interactions; NeuMF with 64 factors and an MLP of
[128, 64], one epoch).

    python benchmarks/bench_serving.py --data-dir ../shared/data [--keep DIR]

The load test starts ``neumf serve`` in its own process and sends it
``--requests`` requests (``GET /recommend?user=ID&k=10``, users drawn at
random, seed 0) from ``--clients`` concurrent keep-alive clients in another
process (one asyncio loop, one connection each, reopened only when the
server closes it). It reports requests per second, latency p50 / p99 / max
(from sending the request to the last byte of the answer, a reconnection
included), errors (no answer, or not a 200) and connection resets apart,
the connections opened, the tracebacks in the server's log, and whether
every answer equals ``neumf recommend``'s for that user (the same items;
scores to 1e-5). On ML-100K the load runs twice: on a fresh server, and
again after the server has been sent malformed requests (a client that hangs
up, JSON nested 10,000 deep, a 400-digit user id). ``--command`` measures
another server command instead (``{export}`` is replaced by the export
folder; it must print ``http://HOST:PORT`` on its first line). Prints a
Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _machine import cpu_model  # benchmarks/_machine.py, beside this script

import neumf
from neumf.cli import main as cli

CLIENT = r"""
import asyncio, json, sys, time
host, port, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
users = json.loads(sys.argv[3])
stats = {"latency": [], "errors": 0, "resets": 0, "connections": 0, "status": {}}
answers, queue = {}, list(reversed(users))

async def one(user, conn):
    if conn[0] is None:
        conn[:] = await asyncio.open_connection(host, port)
        stats["connections"] += 1
    reader, writer = conn
    writer.write(f"GET /recommend?user={user}&k=10 HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
    body = await reader.readexactly(int(fields["content-length"]))
    if head[0].startswith("HTTP/1.0") or fields.get("connection") == "close":
        writer.close()
        conn[:] = [None, None]
    return int(head[0].split()[1]), body

async def client():
    conn = [None, None]
    while queue:
        user = queue.pop()
        start = time.perf_counter()
        try:
            status, body = await asyncio.wait_for(one(user, conn), 30)
            stats["status"][status] = stats["status"].get(status, 0) + 1
            if status == 200:
                answers.setdefault(user, json.loads(body))
            else:
                stats["errors"] += 1
        except ConnectionResetError:
            stats["resets"] += 1
            conn[:] = [None, None]
        except Exception:
            stats["errors"] += 1
            conn[:] = [None, None]
        stats["latency"].append(time.perf_counter() - start)

async def main():
    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    stats["seconds"] = time.perf_counter() - start

asyncio.run(main())
print(json.dumps({"stats": stats, "answers": answers}))
"""
def _post(body: bytes) -> bytes:
    return b"POST /recommend HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)


# Requests a hostile client sends before the second load (each on its own connection).
HOSTILE = (b"GET /health HTTP/1.1\r\n",  # ... and hangs up
           _post(b"[" * 10_000 + b"]" * 10_000), _post(b'{"users": [' + b"9" * 400 + b"]}"))


def _exports(data_dir: str | None, folder: Path) -> list:
    """The two exports (made once in ``folder``): ML-100K, and ML-1M's size."""
    ml100k, ml1m = folder / "ml100k" / "export", folder / "ml1m" / "export"
    if not ml100k.is_dir():
        neumf.fit(data_dir=data_dir, seed=0, verbose=False,
                  out=folder / "ml100k" / "run").export(ml100k)
    if not ml1m.is_dir():
        frame = neumf.synthetic(6040, 3706, 1_000_209, seed=0)
        sizes = {"num_factors": 64, "mlp_factors": 64, "nums_hiddens": (128, 64),
                 "dense_init": "xavier"}
        neumf.fit(dataset=frame, num_epochs=1, eval_step=0, k=10, ks=(10,), seed=0,
                  verbose=False, out=folder / "ml1m" / "run", **sizes).export(ml1m)
    return [("ML-100K", ml100k), ("synthetic ML-1M size", ml1m)]


def _expected(export: Path, users, folder: Path) -> tuple:
    """What ``neumf recommend`` gives every user (k=10), and its seconds."""
    (folder / "users.txt").write_text("\n".join(users) + "\n")
    seconds = {}
    for suffix in (".csv", ".jsonl"):
        start = time.perf_counter()
        if cli(["recommend", "--export", str(export), "--users-file",
                str(folder / "users.txt"), "-k", "10", "--out", str(folder / f"recs{suffix}"),
                "--overwrite"]) != 0:
            raise RuntimeError("batch scoring failed")
        seconds[suffix] = time.perf_counter() - start
    lines = (folder / "recs.jsonl").read_text().splitlines()
    return {entry["user"]: _pairs(entry) for entry in map(json.loads, lines)}, seconds[".csv"]


def _pairs(entry: dict) -> list:
    """A user's (item, score) pairs from either shape a version of neumf wrote."""
    if "scores" in entry:  # neumf 0.3's --out .jsonl
        return list(zip(entry["items"], entry["scores"]))
    return [(pair["item"], pair["score"]) for pair in entry["items"]]


def _same(answers: dict, expected: dict) -> int:
    """Answers that differ from ``expected`` (items, or scores beyond 1e-5)."""
    wrong = 0
    for user, answer in answers.items():
        got, want = _pairs(answer), expected[user]
        wrong += [item for item, _ in got] != [item for item, _ in want] or not np.allclose(
            [score for _, score in got], [score for _, score in want], rtol=1e-5, atol=1e-6)
    return wrong


def _start(export: Path, command: str | None, log) -> tuple:
    argv = shlex.split(command.format(export=export)) if command else \
        [sys.executable, "-m", "neumf", "serve", "--export", str(export), "--port", "0"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
    line = process.stdout.readline()
    found = re.search(r"http://([^:/\s]+):(\d+)", line)
    if not found:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    return process, found.group(1), int(found.group(2))


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and its threads so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(host: str, port: int, users, clients: int, expected: dict, pid: int) -> dict:
    cpu = _cpu_seconds(pid)
    done = subprocess.run([sys.executable, "-c", CLIENT, host, str(port), json.dumps(users),
                           str(clients)], capture_output=True, text=True, check=True)
    cpu = _cpu_seconds(pid) - cpu
    out = json.loads(done.stdout)
    stats, latency = out["stats"], np.array(out["stats"]["latency"]) * 1000
    return {"requests": len(users), "per_second": len(users) / stats["seconds"],
            "server_cpu_ms": 1000 * cpu / len(users),
            "p50_ms": float(np.percentile(latency, 50)),
            "p99_ms": float(np.percentile(latency, 99)), "max_ms": float(latency.max()),
            "over_1s": int((latency > 1000).sum()), "errors": stats["errors"],
            "resets": stats["resets"], "connections": stats["connections"],
            "status": stats["status"], "answers": len(out["answers"]),
            "wrong_answers": _same(out["answers"], expected)}


def _hostile(host: str, port: int) -> int:
    """Send :data:`HOSTILE`; returns how many got no answer at all."""
    unanswered = 0
    for request in HOSTILE:
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.sendall(request)
            if b"\r\n\r\n" in request:  # the first one hangs up
                try:
                    unanswered += not connection.recv(65536)
                except OSError:
                    unanswered += 1
    return unanswered


def _service(label: str, export: Path, users, args, expected: dict, folder: Path) -> list:
    rows = []
    log_path = folder / "server.log"
    with open(log_path, "w") as log:
        process, host, port = _start(export, args.command, log)
        try:
            rows.append({"data": label, "server": "fresh",
                         **_load(host, port, users, args.clients, expected, process.pid),
                         "tracebacks": log_path.read_text().count("Traceback")})
            if label == "ML-100K":
                unanswered = _hostile(host, port)
                time.sleep(0.5)
                rows.append({"data": label, "server": f"after malformed requests "
                             f"({unanswered} of {len(HOSTILE) - 1} unanswered)",
                             **_load(host, port, users, args.clients, expected, process.pid),
                             "tracebacks": log_path.read_text().count("Traceback")})
        finally:
            process.terminate()
            process.wait(30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/u.data")
    parser.add_argument("--keep", default=None,
                        help="folder to keep the exports in and reuse (default: a temporary one)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per load")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--only", choices=("ml-100k", "ml-1m"), default=None)
    parser.add_argument("--command", default=None, help="a server command instead of neumf "
                                                        "serve ({export}: the export folder)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores; "
          f"Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        for label, export in _exports(args.data_dir, folder):
            if args.only and args.only != {"ML-100K": "ml-100k"}.get(label, "ml-1m"):
                continue
            all_users = neumf.serving.load(export).user_ids.raw.tolist()
            expected, batch = _expected(export, all_users, export.parent)
            users = np.random.default_rng(0).choice(all_users, args.requests).tolist()
            for row in _service(label, export, users, args, expected, export.parent):
                rows.append({**row, "users": len(all_users), "batch_seconds": batch})
    print("| data | server | requests/s | server CPU per request | p50 | p99 | max | errors | "
          "resets | connections | tracebacks | answers = neumf recommend |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['data']} | {row['server']} | {row['per_second']:,.0f} | "
              f"{row['server_cpu_ms']:.2f} ms | "
              f"{row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms | {row['max_ms']:.0f} ms | "
              f"{row['errors']} | {row['resets']} | {row['connections']} | "
              f"{row['tracebacks']} | {row['answers'] - row['wrong_answers']} of "
              f"{row['answers']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
