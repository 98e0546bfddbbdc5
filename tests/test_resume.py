"""A training process killed at any checkpoint loses nothing: the last complete
checkpoint loads, and resuming reaches exactly the uninterrupted result."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import QUICK, csv_rows, file_digest, one_error_line, run_cli, snapshot, write_csv
from neumf import RunError, fit, load_model

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")

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


# --- resume continues the same experiment ---

def test_resume_takes_the_split_from_the_run(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, split_mode="random", out=run, **{**QUICK, "seed": None})
    before = load_model(run).data
    fit(resume=run, num_epochs=2, verbose=False)
    after = load_model(run).data
    np.testing.assert_array_equal(after.test_users, before.test_users)
    np.testing.assert_array_equal(after.test_items, before.test_items)
    train = set(zip(after.train_users.tolist(), after.train_items.tolist()))
    assert not train & set(zip(after.test_users.tolist(), after.test_items.tolist()))


@pytest.mark.parametrize("change, flag, saved", [
    ({"seed": 3}, "seed", "0"),
    ({"split_mode": "random"}, "split_mode", "seq-aware"),
    ({"num_factors": 4}, "num_factors", "10"),
    ({"nums_hiddens": (4,)}, "nums_hiddens", "10"),
    ({"loss": "hinge"}, "loss", "bpr"),
    ({"num_negatives": 2}, "num_negatives", "1"),
    ({"protocol": "sampled"}, "protocol", "full"),
    ({"model": "gmf"}, "model", "neumf"),
])
def test_resume_refuses_settings_that_define_the_experiment(planted_dir, tmp_path, change, flag,
                                                            saved):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    files = snapshot(run)
    with pytest.raises(RunError) as info:
        fit(resume=run, num_epochs=2, verbose=False, **change)
    message = str(info.value)
    assert flag in message and saved in message and "--" + flag.replace("_", "-") in message
    assert snapshot(run) == files


def test_resume_refuses_a_changed_data_source(tmp_path):
    rows = csv_rows()
    path = write_csv(tmp_path / "d.csv", rows)
    run = tmp_path / "r"
    with pytest.warns(UserWarning):  # items seen only in the test set
        fit(dataset="csv", data_dir=tmp_path, name="d.csv", out=run, **QUICK)
    before = file_digest(path)
    relabelled = [(user, {"i1": "i2", "i2": "i1"}.get(item, item), stamp)
                  for user, item, stamp in rows]
    write_csv(path, relabelled)
    with pytest.raises(RunError) as info:
        fit(resume=run, num_epochs=2, verbose=False)
    message = str(info.value)
    assert str(path) in message and before[:12] in message and file_digest(path)[:12] in message


@pytest.mark.parametrize("change, words", [
    ({"name": "other.csv"}, ["name", "'d.csv'"]),
    ({"columns": "item,user,timestamp"}, ["columns", "--columns", "user"]),
    ({"header": False}, ["header", "True"]),
    ({"dataset": "ml-100k"}, ["dataset", "'csv'"]),
    ({"data_dir": "empty"}, ["empty", "holds none of the files", "d.csv"]),
])
def test_resume_refuses_another_named_source(tmp_path, change, words):
    rows = csv_rows()
    write_csv(tmp_path / "d.csv", rows)
    write_csv(tmp_path / "other.csv", rows[::-1])
    (tmp_path / "empty").mkdir()
    run = tmp_path / "r"
    with pytest.warns(UserWarning):  # items seen only in the test set
        fit(dataset="csv", data_dir=tmp_path, name="d.csv", columns="user,item,timestamp",
            header=True, out=run, **QUICK)
    files = snapshot(run)
    if "data_dir" in change:
        change = {"data_dir": tmp_path / change["data_dir"]}
    with pytest.raises(RunError) as info:
        fit(resume=run, num_epochs=2, verbose=False, **change)
    assert all(word in str(info.value) for word in words), str(info.value)
    assert snapshot(run) == files


def test_resume_accepts_settings_already_in_effect(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    # the tutorial preset is the defaults; these sizes train dense; full protocol
    # ignores eval_negatives; without pretraining its settings do nothing
    with pytest.warns(UserWarning, match="pretrain_lr apply only with pretrain=True"):
        fit(resume=run, num_epochs=2, verbose=False, preset="tutorial", sparse=False,
            eval_negatives=20, pretrain_lr=0.1, mlp_factors=10)
    assert load_model(run).config.num_epochs == 2
    with pytest.raises(RunError, match="sparse"):
        fit(resume=run, num_epochs=3, verbose=False, sparse=True)
    with pytest.raises(RunError, match="preset 'best' would change"):
        fit(resume=run, num_epochs=3, verbose=False, preset="best")


def test_resume_num_epochs_is_the_total(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **{**QUICK, "num_epochs": 3})
    code, _, err = run_cli(["train", "--resume", str(run), "--num-epochs", "2", "--quiet"])
    assert code == 2
    line = one_error_line(err)
    assert "3 epochs" in line and "total" in line and "got -" not in line
    # as many epochs as trained: nothing trains, so a training setting would only be
    # saved for the next resume (it was, silently); an evaluation setting still acts
    before = (run / "run.json").read_bytes()
    with pytest.raises(RunError, match="no epoch would train with wd, lr"):
        fit(resume=run, num_epochs=3, wd=0.5, lr=3.0, verbose=False)
    assert (run / "run.json").read_bytes() == before
    assert fit(resume=run, num_epochs=3, verbose=False).history[-1]["epoch"] == 3
    result = fit(resume=run, num_epochs=4, verbose=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]


def test_resume_with_another_optimizer_is_refused_and_keeps_the_checkpoint(planted_dir,
                                                                           tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **{**QUICK, "num_epochs": 2})
    files = snapshot(run)
    for optimizer in ("adagrad", "nag", "rmsprop", "ftrl", "sgd"):
        code, _, err = run_cli(["train", "--resume", str(run), "--num-epochs", "3",
                             "--optimizer", optimizer, "--quiet"])
        assert code == 2, err
        line = one_error_line(err)
        assert "optimizer" in line and "adam" in line and optimizer in line
    assert snapshot(run) == files
    assert len(load_model(run).history) == 2


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::neumf.CollapseWarning")  # exact resume, not learning
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adagrad", "nag", "ftrl"])
def test_every_optimizer_resumes_to_the_uninterrupted_result(planted_dir, tmp_path, optimizer):
    settings_ = {**QUICK, "optimizer": optimizer, "lr": 0.01}
    whole = fit(data_dir=planted_dir, out=tmp_path / "whole", **{**settings_, "num_epochs": 3})
    fit(data_dir=planted_dir, out=tmp_path / "half", **{**settings_, "num_epochs": 2})
    resumed = fit(resume=tmp_path / "half", num_epochs=3, verbose=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    users = np.arange(whole.num_users)
    np.testing.assert_array_equal(resumed.net.score_matrix(users), whole.net.score_matrix(users))


def test_a_loaded_run_saved_again_still_resumes_exactly(planted_dir, tmp_path):
    whole = fit(data_dir=planted_dir, out=tmp_path / "whole", **{**QUICK, "num_epochs": 3})
    fit(data_dir=planted_dir, out=tmp_path / "half", **{**QUICK, "num_epochs": 2})
    load_model(tmp_path / "half").save(tmp_path / "copy")  # optimizer and sampler ride along
    resumed = fit(resume=tmp_path / "copy", num_epochs=3, verbose=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    users = np.arange(whole.num_users)
    np.testing.assert_array_equal(resumed.net.score_matrix(users), whole.net.score_matrix(users))


def test_resume_after_early_stopping_continues_from_the_last_weights(planted_dir, tmp_path):
    # patience 1 stops the whole run after epoch 5 (best: 4) and restores the best
    # weights; the half run's net holds its best epoch, its run the last epoch's, which
    # the resumed run continues, as if never stopped
    settings_ = {**QUICK, "validation": True, "lr": 0.05, "num_epochs": 6, "patience": 1}
    whole = fit(data_dir=planted_dir, out=tmp_path / "whole", **settings_)
    fit(data_dir=planted_dir, out=tmp_path / "half", **{**settings_, "num_epochs": 2})
    half = load_model(tmp_path / "half")
    resumed = fit(resume=tmp_path / "half", num_epochs=6, verbose=False)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]
    assert len(whole.history) < 6 and resumed.best_epoch == whole.best_epoch
    assert half.best_epoch in (1, 2)
    users = np.arange(whole.num_users)
    np.testing.assert_array_equal(resumed.net.score_matrix(users), whole.net.score_matrix(users))


def test_a_tampered_manifest_cannot_reach_outside_its_folder(planted_dir, tmp_path):
    run, victim = tmp_path / "r", tmp_path / "victim.txt"
    victim.write_text("keep me")
    fit(data_dir=planted_dir, out=run, **QUICK)
    manifest = json.loads((run / "run.json").read_text())
    manifest["sha256"]["../victim.txt"] = file_digest(victim)
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="names files a run does not have"):
        fit(resume=run, num_epochs=2, verbose=False)
    fit(data_dir=planted_dir, out=run, overwrite=True, **QUICK)  # replaces the run only
    assert victim.read_text() == "keep me" and load_model(run).config.seed == 0
