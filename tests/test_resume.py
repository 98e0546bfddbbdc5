"""A training process killed at any checkpoint loses nothing: the last complete
checkpoint loads, and resuming reaches exactly the uninterrupted result."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neumf import load_model

EPOCHS = 100
ARGS = ["--seed", "0", "--num-epochs", str(EPOCHS), "--batch-size", "16", "--quiet"]
BUDGET = 600  # seconds for every process together; the test's timeout is above it


@pytest.fixture
def train(tmp_path):
    """Start ``neumf train ARGS`` (stderr to a log); any still running at the end is killed."""
    started = []

    def start(*args):
        with open(tmp_path / "stderr.log", "ab") as stderr:
            started.append(subprocess.Popen([sys.executable, "-m", "neumf", "train", *args],
                                            stdout=subprocess.DEVNULL, stderr=stderr))
        return started[-1]

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _epochs_done(run):
    """Epochs in the run's last complete checkpoint (run.json is replaced atomically)."""
    try:
        return json.loads((run / "run.json").read_text())["epochs_done"]
    except FileNotFoundError:
        return 0


def _kill_at_checkpoint(process, run, epoch, deadline, log):
    """SIGKILL ``process`` as soon as its checkpoint of ``epoch`` (or later) is in ``run``."""
    while _epochs_done(run) < epoch:
        assert process.poll() is None, log.read_text()  # it cannot finish before `epoch`
        assert time.monotonic() < deadline, f"no checkpoint of epoch {epoch} in time"
        time.sleep(0.01)  # polling only: the checkpoint decides the moment of the kill
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=_left(deadline))


def _left(deadline):
    return max(deadline - time.monotonic(), 1.0)


@pytest.mark.slow
@pytest.mark.timeout(BUDGET + 60)
def test_sigkill_at_random_checkpoints_then_resume(planted_dir, tmp_path, train):
    deadline = time.monotonic() + BUDGET
    reference = tmp_path / "reference"
    log = tmp_path / "stderr.log"
    done = train("--data-dir", str(planted_dir), "--out", str(reference), *ARGS)
    assert done.wait(timeout=_left(deadline)) == 0, log.read_text()

    run = tmp_path / "killed"
    # four kills, each a random number of new checkpoints after the last one saved
    rng = np.random.default_rng(7)
    epochs_seen = []
    for kill in range(4):
        saved_before = _epochs_done(run)
        if kill == 0:
            process = train("--data-dir", str(planted_dir), "--out", str(run), *ARGS)
        else:
            process = train("--resume", str(run), "--quiet")
        target = saved_before + int(rng.integers(1, 16))  # about 60 at most: below EPOCHS
        _kill_at_checkpoint(process, run, target, deadline, log)
        saved = load_model(run)  # the last complete checkpoint loads
        epochs_seen.append(len(saved.history))
        assert len(saved.history) == _epochs_done(run) > saved_before
    process = train("--resume", str(run), "--quiet")
    assert process.wait(timeout=_left(deadline)) == 0, log.read_text()
    assert len(epochs_seen) == len(set(epochs_seen)) == 4  # four kills at different epochs
    assert epochs_seen == sorted(epochs_seen) and all(0 < e < EPOCHS for e in epochs_seen)

    final, expected = load_model(run), load_model(reference)
    users = np.arange(final.num_users)
    np.testing.assert_array_equal(final.net.score_matrix(users),
                                  expected.net.score_matrix(users))
    assert [h["loss"] for h in final.history] == [h["loss"] for h in expected.history]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["hr@5"] == json.loads((reference / "metrics.json").read_text())["hr@5"]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
