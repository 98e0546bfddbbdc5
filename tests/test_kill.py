"""A training process killed at random moments loses nothing: the last complete
checkpoint loads, and resuming reaches exactly the uninterrupted result."""

import json
import signal
import subprocess
import sys
import time

import numpy as np

from neumf import load_model

ARGS = ["--seed", "0", "--num-epochs", "100", "--batch-size", "16", "--quiet"]


def _train(log, *args):
    with open(log, "ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "neumf", "train", *args],
                                stdout=subprocess.DEVNULL, stderr=stderr)


def test_sigkill_at_random_moments_then_resume(planted_dir, tmp_path):
    reference = tmp_path / "reference"
    log = tmp_path / "stderr.log"
    done = _train(log, "--data-dir", str(planted_dir), "--out", str(reference), *ARGS)
    assert done.wait(timeout=300) == 0, log.read_text()

    run = tmp_path / "killed"
    rng = np.random.default_rng(7)
    kills, epochs_seen = 0, []
    while True:
        if (run / "run.json").is_file():
            process = _train(log, "--resume", str(run), "--quiet")
        else:  # killed before the first checkpoint: nothing to resume
            process = _train(log, "--data-dir", str(planted_dir), "--out", str(run), *ARGS)
        if kills < 4:
            time.sleep(float(rng.uniform(1.3, 2.2)))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=60)
                kills += 1
                if (run / "run.json").is_file():
                    saved = load_model(run)  # the last complete checkpoint loads
                    epochs_seen.append(len(saved.history))
                continue
        assert process.wait(timeout=300) == 0, log.read_text()
        break
    assert kills == 4
    assert epochs_seen == sorted(epochs_seen) and all(0 < e < 100 for e in epochs_seen)

    final, expected = load_model(run), load_model(reference)
    users = np.arange(final.num_users)
    np.testing.assert_array_equal(final.net.score_matrix(users),
                                  expected.net.score_matrix(users))
    assert [h["loss"] for h in final.history] == [h["loss"] for h in expected.history]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["hr@10"] == json.loads((reference / "metrics.json").read_text())["hr@10"]
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
