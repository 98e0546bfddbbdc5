"""Training across processes: each worker's shard, the launcher, and
synchronous distributed training end to end (marked slow: it starts processes)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import SEEN_EVERY_ITEM
from neumf import load_model
from neumf.distributed import launch, shard_rows


def _params(net):
    return {name: p.data().asnumpy() for name, p in net._collect_params_with_prefix().items()}


def _running(command):
    """PIDs of live processes whose command line is exactly ``command``."""
    wanted = "\0".join(command) + "\0"
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline") as handle:
                if handle.read() == wanted:
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


PS_ROLE = [sys.executable, "-c", "import neumf"]  # what launch runs as scheduler and server


def test_shards_cover_every_row_with_equal_lengths():
    shards = [shard_rows(1003, rank, 3, multiple=64) for rank in range(3)]
    assert {len(shard) for shard in shards} == {384}
    assert set(np.concatenate(shards).tolist()) == set(range(1003))
    assert all(np.all(shard % 3 == rank) for rank, shard in enumerate(shards))
    with pytest.raises(ValueError, match="2 training pairs cannot be shared by 3 workers"):
        shard_rows(2, 0, 3)


@pytest.mark.parametrize("settings, error, words", [
    ({"num_workers": 10**6}, MemoryError, "1000002 MXNet processes"),
    ({"num_workers": 1, "timeout": 0}, ValueError, "timeout must be positive"),
    ({"num_workers": 1, "port": 70000}, ValueError, "port must be in 1..65535"),
    ({"num_workers": 0}, ValueError, "num_workers"),
])
def test_launch_refuses_what_the_host_cannot_run_before_starting(settings, error, words):
    worker = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(error, match=words):
        launch(worker, **settings)
    assert _running(worker) == [] and _running(PS_ROLE) == []


@pytest.mark.slow
def test_launch_reports_a_failing_worker_and_cleans_up():
    code = launch([sys.executable, "-c", "import sys; sys.exit(3)"], num_workers=2,
                  num_servers=1, timeout=60)
    assert code == 3
    assert _running(PS_ROLE) == []  # the scheduler and server were stopped too


@pytest.mark.slow
def test_launch_times_out_and_cleans_up():
    worker = [sys.executable, "-c", "import time; time.sleep(60)"]
    code = launch(worker, num_workers=1, timeout=2)
    assert code == 124
    assert _running(worker) == [] and _running(PS_ROLE) == []


@pytest.mark.slow
@pytest.mark.timeout(240)  # above the launcher's 150 s and the subprocess's 180 s
@SEEN_EVERY_ITEM
def test_dist_sync_workers_agree_and_learn(taste_frame, tmp_path):
    taste_frame.to_csv(tmp_path / "syn.csv", index=False)
    command = [sys.executable, "-m", "neumf", "launch", "-n", "2", "-s", "1", "--timeout",
               "150", "--", "neumf", "train", "--dataset", "csv", "--data-dir", str(tmp_path),
               "--name", "syn.csv", "--kvstore", "dist_sync", "--num-epochs", "4", "--seed",
               "0", "--wd", "0", "--batch-size", "256", "--quiet", "--out",
               str(tmp_path / "run")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {f"saved to {tmp_path / 'run' / f'worker-{rank}'}" for rank in (0, 1)} <= set(
        done.stdout.splitlines())
    workers = [load_model(tmp_path / "run" / f"worker-{rank}") for rank in (0, 1)]
    first, second = (_params(worker.net) for worker in workers)
    for name, value in first.items():
        np.testing.assert_array_equal(value, second[name], err_msg=name)
    assert workers[0].metrics == workers[1].metrics
    assert workers[0].metrics["auc"] > 0.75  # chance is 0.5: the taste groups are learned
    assert len(workers[0].history) == 4
