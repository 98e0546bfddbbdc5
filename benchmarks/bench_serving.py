"""Serving speed: batch scoring every user to a CSV, and the HTTP service's
requests per second, on MovieLens-100K (a model trained with the tutorial's
settings) and on synthetic data of ML-1M's size (6,040 users x 3,706 items,
1,000,209 interactions; the NCF preset's sizes, untrained: scoring costs the
same).

    python benchmarks/bench_serving.py --data-dir ../shared/data

The service is queried from a separate client process (8 threads, a new
connection per request, random users, k=10) for ``--seconds`` seconds.
Prints a Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import neumf
from neumf import serving
from neumf.cli import main as cli

CLIENT = r"""
import json, random, sys, threading, time, urllib.request
base, users, seconds = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
done, errors, lock = [0], [0], threading.Lock()
stop = time.monotonic() + seconds
def worker(seed):
    rng = random.Random(seed)
    while time.monotonic() < stop:
        try:
            with urllib.request.urlopen(f"{base}/recommend?user={rng.choice(users)}&k=10",
                                        timeout=30) as response:
                response.read()
            with lock: done[0] += 1
        except Exception:
            with lock: errors[0] += 1
threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"requests": done[0], "errors": errors[0], "seconds": seconds}))
"""


def _batch_seconds(run: Path, export: Path, users, folder: Path) -> float:
    (folder / "users.txt").write_text("\n".join(users) + "\n")
    start = time.perf_counter()
    code = cli(["recommend", "--export", str(export), "--users-file", str(folder / "users.txt"),
                "-k", "10", "--out", str(folder / "recs.csv"), "--overwrite"])
    if code != 0:
        raise RuntimeError("batch scoring failed")
    return time.perf_counter() - start


def _requests_per_second(export: Path, users, seconds: float) -> dict:
    server = serving.make_server(serving.load(export), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        done = subprocess.run([sys.executable, "-c", CLIENT,
                               f"http://127.0.0.1:{server.server_address[1]}",
                               json.dumps(users[:2000]), str(seconds)],
                              capture_output=True, text=True, check=True)
    finally:
        server.shutdown()
        server.server_close()
    result = json.loads(done.stdout)
    result["per_second"] = result["requests"] / result["seconds"]
    return result


def _measure(label: str, result, folder: Path, seconds: float) -> dict:
    export = result.export(folder / "export")
    users = result.data.user_ids.tolist()
    batch = _batch_seconds(result.run_dir, export, users, folder)
    service = _requests_per_second(export, users, seconds)
    return {"data": label, "users": len(users), "items": result.num_items,
            "model": f"{result.config.model} {result.config.num_factors} factors, MLP "
                     f"{list(result.config.nums_hiddens)}",
            "batch_seconds": batch, "users_per_second": len(users) / batch,
            "requests_per_second": service["per_second"], "request_errors": service["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding ml-100k/u.data")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="seconds of HTTP load per data set")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tutorial = neumf.fit(data_dir=args.data_dir, seed=0, verbose=False,
                             out=scratch / "ml100k" / "run")
        rows.append(_measure("ML-100K", tutorial, scratch / "ml100k", args.seconds))
        frame = neumf.synthetic(6040, 3706, 1_000_209, seed=0)
        # the network RESULTS.md records (the neumf preset's until it took a lighter MLP)
        sizes = {"num_factors": 64, "mlp_factors": 64, "nums_hiddens": (128, 64),
                 "dense_init": "xavier"}
        synthetic = neumf.fit(dataset=frame, num_epochs=0, eval_step=0, k=10, ks=(10,),
                              seed=0, verbose=False, out=scratch / "ml1m" / "run", **sizes)
        rows.append(_measure("synthetic ML-1M size", synthetic, scratch / "ml1m",
                             args.seconds))
    print("| data | users x items | model | batch scoring, all users | users/s | "
          "HTTP requests/s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['data']} | {row['users']:,} x {row['items']:,} | {row['model']} | "
              f"{row['batch_seconds']:.2f} s | {row['users_per_second']:,.0f} | "
              f"{row['requests_per_second']:,.0f} ({row['request_errors']} errors) |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
