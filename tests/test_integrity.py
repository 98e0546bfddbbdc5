"""Integrity under ordinary misuse (issue 11): no silent wrong result, no lost
file, no hang. One test (or one parametrized family) per class of misuse; each
runs on small synthetic data made here."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mxnet as mx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neumf
from neumf import DataError, RunError, fit, load_model, recommend
from neumf.cli import main
from neumf.download import DownloadError
from neumf.sampling import sampled_negatives

QUICK = {"seed": 0, "num_epochs": 1, "batch_size": 64, "k": 5, "ks": (5, 10),
         "verbose": False}
# the small files made here leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")


def _csv_rows(num_users=12, num_items=40, per_user=6, seed=0):
    """``(user, item, timestamp)`` rows with raw string ids; every user's items distinct."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        items = rng.choice(num_items, size=per_user, replace=False)
        stamps = 1_000_000_000 + rng.permutation(per_user) * 60 + user
        rows.extend((f"u{user}", f"i{item}", int(stamp)) for item, stamp in zip(items, stamps))
    return rows


def _write_csv(path: Path, rows, header="user,item,timestamp") -> Path:
    lines = ([header] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path):
    return {path: _digest(path) for path in folder.rglob("*") if path.is_file()}


def _cli(argv):
    """``neumf`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own exits
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("neumf: error:")]
    assert len(lines) == 1, err
    return lines[0]


# --- 1. resume continues the same experiment --------------------------------------------

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
    files = _snapshot(run)
    with pytest.raises(RunError) as info:
        fit(resume=run, num_epochs=2, verbose=False, **change)
    message = str(info.value)
    assert flag in message and saved in message and "--" + flag.replace("_", "-") in message
    assert _snapshot(run) == files


def test_resume_refuses_a_changed_data_source(tmp_path):
    rows = _csv_rows()
    path = _write_csv(tmp_path / "d.csv", rows)
    run = tmp_path / "r"
    with pytest.warns(UserWarning):  # items seen only in the test set
        fit(dataset="csv", data_dir=tmp_path, name="d.csv", out=run, **QUICK)
    before = _digest(path)
    relabelled = [(user, {"i1": "i2", "i2": "i1"}.get(item, item), stamp)
                  for user, item, stamp in rows]
    _write_csv(path, relabelled)
    with pytest.raises(RunError) as info:
        fit(resume=run, num_epochs=2, verbose=False)
    message = str(info.value)
    assert str(path) in message and before[:12] in message and _digest(path)[:12] in message


@pytest.mark.parametrize("change, words", [
    ({"name": "other.csv"}, ["name", "'d.csv'"]),
    ({"columns": "item,user,timestamp"}, ["columns", "--columns", "user"]),
    ({"header": False}, ["header", "True"]),
    ({"dataset": "ml-100k"}, ["dataset", "'csv'"]),
    ({"data_dir": "empty"}, ["empty", "holds none of the files", "d.csv"]),
])
def test_resume_refuses_another_named_source(tmp_path, change, words):
    rows = _csv_rows()
    _write_csv(tmp_path / "d.csv", rows)
    _write_csv(tmp_path / "other.csv", rows[::-1])
    (tmp_path / "empty").mkdir()
    run = tmp_path / "r"
    with pytest.warns(UserWarning):  # items seen only in the test set
        fit(dataset="csv", data_dir=tmp_path, name="d.csv", columns="user,item,timestamp",
            header=True, out=run, **QUICK)
    files = _snapshot(run)
    if "data_dir" in change:
        change = {"data_dir": tmp_path / change["data_dir"]}
    with pytest.raises(RunError) as info:
        fit(resume=run, num_epochs=2, verbose=False, **change)
    assert all(word in str(info.value) for word in words), str(info.value)
    assert _snapshot(run) == files


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
    code, _, err = _cli(["train", "--resume", str(run), "--num-epochs", "2", "--quiet"])
    assert code == 2
    line = _one_error_line(err)
    assert "3 epochs" in line and "total" in line and "got -" not in line
    result = fit(resume=run, num_epochs=4, verbose=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]


def test_resume_with_another_optimizer_is_refused_and_keeps_the_checkpoint(planted_dir,
                                                                           tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **{**QUICK, "num_epochs": 2})
    files = _snapshot(run)
    for optimizer in ("adagrad", "nag", "rmsprop", "ftrl", "sgd"):
        code, _, err = _cli(["train", "--resume", str(run), "--num-epochs", "3",
                             "--optimizer", optimizer, "--quiet"])
        assert code == 2, err
        line = _one_error_line(err)
        assert "optimizer" in line and "adam" in line and optimizer in line
    assert _snapshot(run) == files
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
    manifest["sha256"]["../victim.txt"] = _digest(victim)
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="names files a run does not have"):
        fit(resume=run, num_epochs=2, verbose=False)
    fit(data_dir=planted_dir, out=run, overwrite=True, **QUICK)  # replaces the run only
    assert victim.read_text() == "keep me" and load_model(run).config.seed == 0


# --- 2. a run folder is the run's ----------------------------------------------------------

def test_saving_never_deletes_files_it_did_not_write(planted_dir, tmp_path):
    run = tmp_path / "p"
    fit(data_dir=planted_dir, out=run, **QUICK)
    for name in ("model-card.md", "optimizer-notes.txt", "notes.tmp", ".model-0001.params.x"):
        (run / name).write_text("mine")
    fit(resume=run, num_epochs=3, verbose=False)
    for name in ("model-card.md", "optimizer-notes.txt", "notes.tmp", ".model-0001.params.x"):
        assert (run / name).read_text() == "mine"
    assert not (run / "model-0001.params").exists()  # the run's own old checkpoint went


def test_training_into_a_foreign_folder_is_refused(planted_dir, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "model-card.md").write_text("x")
    files = _snapshot(folder)
    for overwrite in (False, True):
        with pytest.raises(RunError, match="not empty and is not a neumf run"):
            fit(data_dir=planted_dir, out=folder, overwrite=overwrite, **QUICK)
    assert _snapshot(folder) == files
    code, _, err = _cli(["train", "--data-dir", str(planted_dir), "--num-epochs", "1",
                         "--out", str(folder), "--quiet"])
    assert code == 2 and "model-card.md" in _one_error_line(err)


def test_training_into_an_existing_run_needs_overwrite(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **{**QUICK, "num_epochs": 3})
    files = _snapshot(run)
    with pytest.raises(RunError, match="--resume.*--overwrite|overwrite.*resume"):
        fit(data_dir=planted_dir, out=run, **QUICK)
    assert _snapshot(run) == files
    fit(data_dir=planted_dir, out=run, overwrite=True, **QUICK)
    assert len(load_model(run).history) == 1
    assert not (run / "model-0003.params").exists()


@pytest.mark.parametrize("out", ["", " "])
def test_an_empty_out_is_refused(planted_dir, tmp_path, out, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ValueError, match="out"):
        fit(data_dir=planted_dir, out=out, **QUICK)
    assert list((tmp_path / "cwd").iterdir()) == []


def test_out_naming_a_file_is_refused_before_training(planted_dir, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep")
    code, out, err = _cli(["train", "--data-dir", str(planted_dir), "--out", str(target)])
    assert code == 2 and "file.txt" in _one_error_line(err)
    assert "epoch 1" not in out and target.read_text() == "keep"


@pytest.mark.slow
def test_a_second_writer_is_refused_at_once(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from neumf.runs import RunLock; "
         "lock = RunLock(sys.argv[1]); lock.acquire(); print('locked', flush=True); "
         "time.sleep(60)", str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with pytest.raises(RunError) as info:
            fit(resume=run, num_epochs=2, verbose=False)
        assert time.monotonic() - start < 10
        message = str(info.value)
        assert str(holder.pid) in message and socket.gethostname() in message
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # the holder was killed: its lock is stale and is taken over
    result = fit(resume=run, num_epochs=2, verbose=False)
    assert len(result.history) == 2


# --- 3. every sampling loop terminates -------------------------------------------------------

def _user_who_has_seen_everything(tmp_path, num_items=40):
    rows = _csv_rows(num_users=10, num_items=num_items, per_user=8)
    rows += [("all", f"i{item}", 1_000_000_000 + item) for item in range(num_items)]
    return _write_csv(tmp_path / "full.csv", rows)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["sampled", "full"])
def test_a_user_who_has_seen_every_item_does_not_hang(tmp_path, protocol):
    _user_who_has_seen_everything(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(dataset="csv", data_dir=tmp_path, name="full.csv", protocol=protocol,
                     eval_negatives=99, **QUICK)
    assert np.isfinite(result.metrics["auc"])
    messages = " ".join(str(w.message) for w in caught)
    # the saturated user's test item is its only candidate: a hit whatever the model does
    assert f"1 of 11 test pairs are ranked among 10 or fewer candidates ({protocol}" in messages
    if protocol == "sampled":  # the saturated user has no negative left: said, with a count
        assert "fewer than 99 items they never interacted with (fewest: 0)" in messages


@pytest.mark.parametrize("settings, count", [
    ({"protocol": "sampled", "eval_negatives": 9, "ks": (5, 10)}, "12 of 12"),
    ({"protocol": "sampled", "eval_negatives": 10, "ks": (5, 10)}, None),
    ({"protocol": "full", "ks": (5, 24)}, "12 of 12"),  # 29 items, 5 trained on each
    ({"protocol": "full", "ks": (5, 23)}, None),
])
def test_a_cutoff_that_every_pair_reaches_is_said(tmp_path, settings, count):
    _write_csv(tmp_path / "d.csv", _csv_rows())  # 12 users with 5 of 40 items to train on
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(dataset="csv", data_dir=tmp_path, name="d.csv", **{**QUICK, **settings})
    said = [str(w.message) for w in caught if "or fewer candidates" in str(w.message)]
    assert said == ([] if count is None else [said[0]])
    if count is not None:
        assert said[0].startswith(f"{count} test pairs are ranked among")


def test_ratings_of_zero_or_below_in_a_dataframe_are_said():
    frame = pd.DataFrame({"user": [1, 1, 2, 2], "item": [1, 2, 1, 3], "rating": [5, -1, 0, 3]})
    with pytest.warns(UserWarning, match="dataframe: 2 rows with a rating of 0 or below "
                                         r"\(first: row 1\)"):
        neumf.from_frame(frame)


@pytest.mark.timeout(60)
def test_the_ncf_presets_do_not_hang_on_a_saturated_user(tmp_path):
    _user_who_has_seen_everything(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit(dataset="csv", data_dir=tmp_path, name="full.csv", preset="neumf",
                     num_epochs=1, patience=0, verbose=False, seed=0)
    assert np.isfinite(result.metrics["hr@10"])


def test_sampled_negatives_are_distinct_unseen_and_never_the_test_item(tmp_path):
    _user_who_has_seen_everything(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = neumf.load_dataset("csv", tmp_path, "full.csv")
        negatives = sampled_negatives(data, 99, seed=0)
    assert negatives.shape[0] == len(data.test_users)
    for user, item, row in zip(data.test_users, data.test_items, negatives):
        drawn = row[row >= 0]
        seen = set(data.train_items[data.train_users == user].tolist()) | {int(item)}
        assert len(set(drawn.tolist())) == len(drawn)  # without replacement
        assert not set(drawn.tolist()) & seen
        assert len(drawn) == min(99, data.num_items - len(seen))  # all unseen items when short


def test_sampled_protocol_with_every_unseen_item_equals_the_full_protocol(tmp_path):
    rows = _csv_rows(num_users=15, num_items=30, per_user=7, seed=2)
    _write_csv(tmp_path / "d.csv", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = fit(dataset="csv", data_dir=tmp_path, name="d.csv", protocol="full", **QUICK)
        data = full.data
        negatives = sampled_negatives(data, 1000, seed=0)
    metrics = neumf.evaluate_model(full.net, data.test_users, data.test_items,
                                   data.train_users, data.train_items, data.num_items,
                                   [mx.cpu()], negatives=negatives, ks=(1, 5, 10))
    expected = neumf.evaluate_model(full.net, data.test_users, data.test_items,
                                    data.train_users, data.train_items, data.num_items,
                                    [mx.cpu()], ks=(1, 5, 10))
    assert metrics == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_eval_negatives_must_be_positive(planted_dir, tmp_path, value):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    code, _, err = _cli(["evaluate", "--run", str(run), "--protocol", "sampled",
                         "--eval-negatives", value])
    assert code == 2 and "eval_negatives" in _one_error_line(err).replace("-", "_")
    code, _, err = _cli(["train", "--data-dir", str(planted_dir), "--protocol", "sampled",
                         "--eval-negatives", value, "--quiet"])
    assert code == 2 and "eval_negatives" in _one_error_line(err).replace("-", "_")


# --- 4. columns by name ---------------------------------------------------------------------

def test_a_user_item_timestamp_header_splits_by_time(tmp_path):
    rows = _csv_rows(num_users=30, per_user=5, seed=4)
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    _write_csv(tmp_path / "d.csv", shuffled, header="user,item,timestamp")
    data = neumf.load_dataset("csv", tmp_path, "d.csv")
    latest = {}
    for user, item, stamp in rows:
        if stamp > latest.get(user, ("", -1))[1]:
            latest[user] = (item, stamp)
    got = {data.user_ids[u]: data.item_ids[i] for u, i in zip(data.test_users, data.test_items)}
    assert got == {user: item for user, (item, _) in latest.items()}


@pytest.mark.parametrize("header", ["item_id,user_id,ts", "movieId,userId,time",
                                    "product_id,customer_id,timestamp"])
def test_header_columns_are_taken_by_name(tmp_path, header):
    rows = _csv_rows(num_users=10, per_user=5)
    _write_csv(tmp_path / "d.csv", [(item, user, stamp) for user, item, stamp in rows],
               header=header)
    data = neumf.load_dataset("csv", tmp_path, "d.csv")
    assert set(data.user_ids.tolist()) == {f"u{i}" for i in range(10)}
    assert all(item.startswith("i") for item in data.item_ids.tolist())


def test_a_dataframe_is_read_by_column_name():
    rows = _csv_rows(num_users=10, per_user=5)
    frame = pd.DataFrame({"item_id": [r[1] for r in rows], "user_id": [r[0] for r in rows],
                          "timestamp": [r[2] for r in rows]})
    data = neumf.from_frame(frame)
    assert set(data.user_ids.tolist()) == {f"u{i}" for i in range(10)}
    explicit = neumf.from_frame(frame.rename(columns={"item_id": "a", "user_id": "b"}),
                                columns={"user": "b", "item": "a", "timestamp": "timestamp"})
    np.testing.assert_array_equal(explicit.user_ids, data.user_ids)
    with pytest.raises(DataError, match="'a'.*'b'|'b'.*'a'"):
        neumf.from_frame(frame.rename(columns={"item_id": "a", "user_id": "b"}))


def test_an_unmappable_header_is_refused_with_the_names_it_found(tmp_path):
    rows = _csv_rows(num_users=8, per_user=4)
    _write_csv(tmp_path / "d.csv", [(u, i) for u, i, _ in rows], header="shopper,thing")
    with pytest.raises(DataError, match="shopper.*thing"):
        neumf.load_dataset("csv", tmp_path, "d.csv")
    code, _, err = _cli(["train", "--dataset", "csv", "--data-dir", str(tmp_path), "--name",
                         "d.csv", "--columns", "user,item", "--num-epochs", "1", "--k", "5",
                         "--quiet"])
    assert code == 0, err


def test_a_headerless_file_keeps_its_first_line(tmp_path):
    rows = [("user0", "item1", 1), ("user0", "item2", 2), ("user1", "item1", 3),
            ("user1", "item3", 4), ("user2", "item2", 5), ("user2", "item3", 6)]
    _write_csv(tmp_path / "d.csv", rows, header=None)
    data = neumf.load_dataset("csv", tmp_path, "d.csv")
    assert len(data.train_users) + len(data.test_users) == 6
    assert "user0" in data.user_ids.tolist()


def test_quotes_and_spaces_follow_csv_rules(tmp_path):
    (tmp_path / "d.csv").write_text('user, item, timestamp\n"a, b", x, 1\n"a, b", "y", 2\n'
                                    'c, x, 3\nc, y, 4\n')
    data = neumf.load_dataset("csv", tmp_path, "d.csv")
    assert sorted(data.user_ids.tolist()) == ["a, b", "c"]
    assert sorted(data.item_ids.tolist()) == ["x", "y"]


def test_columns_flag_names_the_columns(tmp_path):
    rows = _csv_rows(num_users=10, per_user=5, seed=5)
    _write_csv(tmp_path / "d.csv", [(stamp, item, user) for user, item, stamp in rows],
               header=None)
    data = neumf.load_dataset("csv", tmp_path, "d.csv", columns=("timestamp", "item", "user"))
    assert set(data.user_ids.tolist()) == {f"u{i}" for i in range(10)}
    result = fit(dataset="csv", data_dir=tmp_path, name="d.csv",
                 columns=["timestamp", "item", "user"], **QUICK)
    assert set(result.data.user_ids.tolist()) == {f"u{i}" for i in range(10)}


@pytest.mark.parametrize("columns, words", [
    ("user,itm,timestamp", "got ['user', 'itm', 'timestamp']"),
    ("user,item,timestamp,rating", "line 1 has 3 fields"),
    ("user,user,item", "give the user twice"),
])
def test_columns_that_are_not_roles_are_refused_before_reading(tmp_path, columns, words):
    _write_csv(tmp_path / "d.csv", _csv_rows())
    code, _, err = _cli(["train", "--dataset", "csv", "--data-dir", str(tmp_path), "--name",
                         "d.csv", "--columns", columns, "--quiet"])
    assert code == 2 and words in _one_error_line(err)


@pytest.mark.filterwarnings("ignore:.*single interaction:UserWarning")
def test_columns_as_a_mapping_take_the_header_names(tmp_path):
    _write_csv(tmp_path / "d.csv", _csv_rows(num_users=10, per_user=5))
    data = neumf.load_dataset("csv", tmp_path, "d.csv",
                              columns={"user": "item", "item": "user"})
    assert data.user_ids[0].startswith("i") and data.item_ids[0].startswith("u")
    with pytest.raises(DataError, match="must map roles"):
        neumf.load_dataset("csv", tmp_path, "d.csv", columns={"user": "usr", "item": "item"})


def test_a_data_dir_that_is_a_file_is_named(tmp_path):
    path = _write_csv(tmp_path / "d.csv", _csv_rows())
    for argv in (["--dataset", "csv", "--name", "d.csv"], []):
        code, _, err = _cli(["train", *argv, "--data-dir", str(path), "--quiet"])
        assert code == 2 and f"data_dir {path} is a file, not a folder" in _one_error_line(err)


def test_timestamps_mixing_seconds_and_dates_are_refused_naming_both(tmp_path):
    (tmp_path / "d.csv").write_text("user,item,timestamp\n1,1,1000000000\n"
                                    "1,2,2001-09-09T01:46:41\n2,1,1000000100\n2,3,1000000200\n")
    with pytest.raises(DataError, match=r"d.csv: timestamps mix numbers \(line 2: '1000000000'"
                                        r"\) and text \(line 3: '2001-09-09T01:46:41'\)"):
        neumf.load_dataset("csv", tmp_path, "d.csv")
    frame = pd.DataFrame({"user": [1, 1], "item": [1, 2], "timestamp": ["2001-01-01", "7"]})
    with pytest.raises(DataError, match=r"numbers \(row 1: '7'\) and text \(row 0"):
        neumf.from_frame(pd.concat([frame, frame.assign(user=2)]))


# --- 5./6. duplicates and leaks are counted, and both evaluators agree ------------------------

def test_duplicate_pairs_count_once_and_evaluators_agree(tmp_path):
    rows = _csv_rows(num_users=20, per_user=6, seed=6)
    latest = {}
    for user, item, stamp in rows:
        if stamp > latest.get(user, ("", -1))[1]:
            latest[user] = (item, stamp)
    # every user's test item also appears earlier; and one pair is repeated
    extra = [(user, item, stamp - 10_000) for user, (item, stamp) in latest.items()]
    extra += [rows[0], rows[0]]
    _write_csv(tmp_path / "d.csv", rows + extra)
    with pytest.warns(UserWarning, match=r"\d+ repeated"):
        result = fit(dataset="csv", data_dir=tmp_path, name="d.csv", eval_step=1,
                     **{**QUICK, "k": 10})
    data = result.data
    train = list(zip(data.train_users.tolist(), data.train_items.tolist()))
    assert len(train) == len(set(train))
    assert not set(train) & set(zip(data.test_users.tolist(), data.test_items.tolist()))
    assert result.history[-1]["hit_rate"] == pytest.approx(result.metrics["hr@10"])
    assert result.history[-1]["auc"] == pytest.approx(result.metrics["auc"])
    assert result.metrics["hr@10"] < 1.0


# --- 8. types say what they mean ------------------------------------------------------------

def test_recommend_takes_one_user_as_a_string_or_an_int(planted_dir):
    result = fit(data_dir=planted_dir, **QUICK)
    assert recommend(result, "42", k=3).users == ["42"]
    assert recommend(result, 42, k=3).users == ["42"]
    assert recommend(result, ["4", "2"], k=3).users == ["4", "2"]
    assert recommend(result, np.array([4, 2]), k=3).users == ["4", "2"]


def test_types_are_checked_by_argument_name(planted_dir):
    result = fit(data_dir=planted_dir, nums_hiddens=10, **QUICK)
    assert result.config.nums_hiddens == (10,)
    for name, value in (("lr", "0.1"), ("num_epochs", "3"), ("batch_size", 2.5),
                        ("num_factors", True), ("seed", "zero")):
        with pytest.raises((TypeError, ValueError), match=name):
            fit(data_dir=planted_dir, **{**QUICK, name: value})
    # a string such as 'no' would count as True; a number is not a path
    for name, value in (("verbose", "no"), ("header", "yes"), ("overwrite", 1),
                        ("out", 5), ("data_dir", 5), ("resume", 5), ("name", 5)):
        with pytest.raises(TypeError, match=f"^{name} must be"):
            fit(**{"data_dir": planted_dir, **QUICK, name: value})
    with pytest.raises(TypeError, match="^exclude_seen must be True or False; got 'no'"):
        recommend(result, "1", k=3, exclude_seen="no")
    with pytest.raises(TypeError, match="load a run folder with neumf.load_model"):
        recommend("some/run", "1", k=3)
    with pytest.raises(TypeError, match="^run_dir must be a path"):
        load_model(5)


def test_recommend_takes_a_served_recommender(planted_dir, tmp_path):
    result = fit(data_dir=planted_dir, out=tmp_path / "r", **QUICK)
    served = neumf.serving.load(result.export(tmp_path / "e"))
    direct, through = recommend(result, ["1", "2"], k=4), recommend(served, ["1", "2"], k=4)
    assert direct.items == through.items
    with pytest.raises(TypeError, match="^exclude_seen must be True or False"):
        served.recommend("1", 3, exclude_seen="false")


# --- 9. messages, not tracebacks ------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--lr", "1e9", "--num-epochs", "2"], ["loss"]),
    (["--num-negatives", "1000000"], ["num_negatives"]),
    (["--num-factors", "100000000"], ["num_factors"]),
    (["--devices", "cpu:0,cpu:0"], ["cpu(0)"]),
    (["--batch-size", "100000", "--nums-hiddens", "100000000"], ["batch_size", "nums_hiddens"]),
    (["--kvstore", "dist_sync"], ["neumf launch --num-workers N"]),
    (["--sparse", "--optimizer", "rmsprop"], ["sparse training supports", "--dense"]),
])
def test_cli_prints_one_line_and_exits_2(planted_dir, tmp_path, args, words):
    code, _, err = _cli(["train", "--data-dir", str(planted_dir), "--batch-size", "64",
                         "--quiet", *args])
    assert code == 2
    line = _one_error_line(err)
    for word in words:
        assert word in line.replace("-", "_") or word in line


def test_name_naming_a_folder(tmp_path):
    (tmp_path / "d.csv").mkdir()
    code, _, err = _cli(["train", "--dataset", "csv", "--data-dir", str(tmp_path), "--name",
                         "d.csv", "--quiet"])
    assert code == 2 and "folder" in _one_error_line(err)


def test_damaged_run_json_names_what_is_wrong(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    manifest = json.loads((run / "run.json").read_text())
    broken = dict(manifest, config={**manifest["config"], "bogus_setting": 1})
    (run / "run.json").write_text(json.dumps(broken))
    with pytest.raises(RunError, match="bogus_setting"):
        load_model(run)
    del broken["sha256"]
    broken["config"] = manifest["config"]
    (run / "run.json").write_text(json.dumps(broken))
    with pytest.raises(RunError, match="sha256.*missing|missing.*sha256"):
        load_model(run)


def test_a_corrupt_metrics_file_does_not_block_recommend(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **QUICK)
    (run / "metrics.json").write_text("{broken")
    code, out, err = _cli(["recommend", "--run", str(run), "--user", "1", "-k", "2"])
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_a_negative_rating_is_named(tmp_path):
    rows = _csv_rows(num_users=6, per_user=4)
    lines = [f"{u},{i},{-1 if n == 3 else 4},{t}" for n, (u, i, t) in enumerate(rows)]
    (tmp_path / "d.csv").write_text("user,item,rating,timestamp\n" + "\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="d.csv.*1 row.*rating"):
        neumf.load_dataset("csv", tmp_path, "d.csv")


def test_duplicate_devices_are_refused(planted_dir):
    with pytest.raises(ValueError, match="cpu\\(0\\).*more than once|twice"):
        fit(data_dir=planted_dir, devices=[mx.cpu(0), mx.cpu(0)], **QUICK)


def test_devices_given_as_a_count_are_refused_by_name_and_as_text_are_parsed(planted_dir):
    with pytest.raises(ValueError, match="devices must be a list.*got 2"):
        fit(data_dir=planted_dir, devices=2, **QUICK)
    result = fit(data_dir=planted_dir, devices="cpu:0,cpu:1", **QUICK)
    assert np.isfinite(result.metrics["auc"])


def test_validation_numbers_are_called_validation(planted_dir, capsys):
    fit(data_dir=planted_dir, validation=True, seed=0, num_epochs=2, batch_size=64, k=5)
    out = capsys.readouterr().out
    assert "validation hit rate" in out and "test hit rate" not in out


def test_collapse_warning_names_a_batch_larger_than_the_data(planted_dir):
    with pytest.warns(neumf.CollapseWarning, match="batch") as caught:
        fit(data_dir=planted_dir, seed=0, num_epochs=8, batch_size=10**6, lr=1e-5, wd=1e-3,
            tutorial_exact=True, k=5, verbose=False)
    assert "one batch" in str(caught[0].message)


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text("1\t1\t5\n")
    code, _, err = _cli(["train", "--data-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "Traceback" not in err
    code, _, err = _cli(["--debug", "train", "--data-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "Traceback" in err


@pytest.mark.slow
def test_ctrl_c_says_where_the_checkpoint_is(planted_dir, tmp_path):
    run = tmp_path / "r"
    process = subprocess.Popen(
        [sys.executable, "-m", "neumf", "train", "--data-dir", str(planted_dir), "--seed", "0",
         "--num-epochs", "100000", "--batch-size", "16", "--quiet", "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C at a terminal: a runner started in the background (SIGINT
        # ignored, which children inherit) must not make the child deaf to it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (run / "run.json").is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err and str(run) in err
    assert len(load_model(run).history) >= 1


# --- 10. offline first run ------------------------------------------------------------------

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


# --- the property: any combination of flags and small files ----------------------------------

class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


FLAGS = {
    "--num-epochs": ["0", "1", "2", "-1", "x"],
    "--batch-size": ["0", "1", "7", "1000000000"],
    "--lr": ["0.01", "0", "-1", "1e9", "nan"],
    "--num-negatives": ["1", "3", "0", "100000"],
    "--k": ["1", "5", "0", "1000000"],
    "--ks": ["5", "0", "3 7"],
    "--protocol": ["full", "sampled", "other"],
    "--eval-negatives": ["1", "99", "0", "-5", "100000"],
    "--model": ["neumf", "gmf", "mlp", "mf", "popularity"],
    "--split-mode": ["seq-aware", "random"],
    "--nums-hiddens": ["4", "4 2", "0"],
    "--columns": ["user,item", "user,item,timestamp", "item,user", "user", "user,user"],
    "--num-factors": ["1", "3", "0", "-2"],
    "--eval-step": ["0", "1", "5"],
    "--patience": ["0", "1", "3"],
}
SWITCHES = ["--validation", "--tutorial-exact", "--pretrain", "--json", "--overwrite"]


@st.composite
def cli_cases(draw):
    rows = draw(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9),
                                   st.integers(1, 40)), min_size=1, max_size=40))
    header = draw(st.sampled_from(["user,item,timestamp", "item,user,time", "a,b,c", None]))
    flags = draw(st.lists(st.sampled_from(sorted(FLAGS)), unique=True, max_size=5))
    args = []
    for flag in flags:
        args += [flag, *draw(st.sampled_from(FLAGS[flag])).split()]
    args += draw(st.lists(st.sampled_from(SWITCHES), unique=True, max_size=2))
    out = draw(st.sampled_from(["new", "file", "foreign", "none"]))
    return rows, header, args, out


@pytest.mark.slow
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cli_cases())
def test_any_flags_exit_0_or_2_and_touch_no_other_file(tmp_path_factory, case):
    rows, header, args, out = case
    folder = tmp_path_factory.mktemp("fuzz")
    _write_csv(folder / "d.csv", [(f"u{u}", f"i{i}", t) for u, i, t in rows], header=header)
    (folder / "foreign").mkdir()
    (folder / "foreign" / "keep.txt").write_text("mine")
    (folder / "file").write_text("mine")
    before = _snapshot(folder)
    argv = ["train", "--dataset", "csv", "--data-dir", str(folder), "--name", "d.csv",
            "--seed", "0", "--quiet", *args]
    if out != "none":
        argv += ["--out", str(folder / out)]
    if "--num-epochs" not in args:
        argv += ["--num-epochs", "1"]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        code, _, err = _cli(argv)
    except _Hang:
        pytest.fail(f"hung: neumf {' '.join(argv)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        _one_error_line(err)
    for path, digest in before.items():
        assert path.is_file() and _digest(path) == digest, (argv, path)


def test_zero_epochs_are_saved_and_load(planted_dir, tmp_path):
    result = fit(data_dir=planted_dir, out=tmp_path / "r", **{**QUICK, "num_epochs": 0})
    loaded = load_model(tmp_path / "r")
    assert loaded.history == [] and loaded.metrics == pytest.approx(result.metrics)


class _FreedWithCtrlC:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)


def test_a_ctrl_c_swallowed_by_a_finalizer_is_raised_again():
    # MXNet frees arrays constantly; Python drops an exception raised in __del__
    from neumf._interrupt import interrupts_that_land

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), interrupts_that_land():
        _FreedWithCtrlC()  # the KeyboardInterrupt is raised, and dropped, in here
        while time.monotonic() - start < 10:  # without the fix: trains on
            time.sleep(0.01)
    assert time.monotonic() - start < 5
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_swallowed_ctrl_c_does_not_land_after_the_command_ended():
    from neumf._interrupt import interrupts_that_land

    with interrupts_that_land():
        _FreedWithCtrlC()  # swallowed just as the command ends: its repeat is pending
    try:
        time.sleep(0.3)
    except KeyboardInterrupt:
        pytest.fail("the repeat of a swallowed Ctrl-C landed after the command ended")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
