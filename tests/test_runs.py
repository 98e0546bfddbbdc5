"""Saved runs, resuming, recommending and exporting."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import neumf
from conftest import (
    FEW_CANDIDATES,
    QUICK,
    one_error_line,
    run_cli,
    snapshot,
)
from neumf import RunError, fit, load_model, recommend

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")

SETTINGS = {"seed": 0, "batch_size": 64, "k": 5, "verbose": False}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import planted_interactions, write_u_data

    folder = tmp_path_factory.mktemp("data")
    data_dir = write_u_data(folder, planted_interactions())
    out = folder / "run"
    result = fit(data_dir=data_dir, num_epochs=4, out=out, **SETTINGS)
    return result, out, data_dir


def test_run_folder_contents(run):
    result, out, _ = run
    assert sorted(p.name for p in out.iterdir()) == [
        ".neumf.lock", "curves.png", "data.npz", "metrics.json", "model-0004.params",
        "optimizer-0004.states", "run.json"]  # the checkpoints of epochs 1 to 3 were replaced
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(result.metrics) == {"hr@5", "ndcg@5", "auc", "mrr"}  # 60 items: cut-offs of 5
    for key in result.metrics:
        assert metrics[key] == pytest.approx(result.metrics[key])
    assert len(metrics["history"]) == 4 and metrics["timings"]["train_seconds"] > 0
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["version"] == neumf.__version__ and manifest["config"]["num_epochs"] == 4
    png = (out / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    for path in out.iterdir():  # MXNet, JSON and NumPy formats only: no pickle
        assert b"\x80\x04\x95" not in path.read_bytes()[:4]


def test_load_model_round_trips_exactly(run):
    result, out, _ = run
    loaded = load_model(out)
    users = np.arange(result.num_users)
    np.testing.assert_array_equal(loaded.net.score_matrix(users), result.net.score_matrix(users))
    assert loaded.config == result.config and loaded.metrics == pytest.approx(result.metrics)
    assert [h["loss"] for h in loaded.history] == [h["loss"] for h in result.history]


def test_resume_continues_the_same_optimisation(run, tmp_path):
    result, _, data_dir = run
    fit(data_dir=data_dir, num_epochs=2, out=tmp_path / "half", **SETTINGS)
    resumed = fit(resume=tmp_path / "half", num_epochs=4, verbose=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in result.history]
    users = np.arange(result.num_users)
    np.testing.assert_array_equal(resumed.net.score_matrix(users),
                                  result.net.score_matrix(users))


def test_broken_runs_are_refused(run, tmp_path):
    _, out, _ = run
    with pytest.raises(RunError, match="not a complete neumf run; missing run.json"):
        load_model(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in out.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    params = broken / "model-0004.params"
    tampered = bytearray(params.read_bytes())
    tampered[-3] ^= 0xFF
    params.write_bytes(bytes(tampered))
    with pytest.raises(RunError, match="model-0004.params: SHA-256 does not match run.json"):
        load_model(broken)
    params.unlink()
    with pytest.raises(RunError, match="missing model-0004.params, which run.json lists"):
        load_model(broken)
    manifest = json.loads((out / "run.json").read_text())
    manifest["version"] = "7.0.0"
    (broken / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="saved by neumf 7.0.0"):
        load_model(broken)
    (broken / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="run.json: not valid JSON"):
        load_model(broken)


def test_recommend_never_returns_seen_items(run):
    result, _, _ = run
    users = result.data.user_ids[:25].tolist()
    recs = recommend(result, users, k=10)
    seen = result.data.candidates()
    for user, items, scores in zip(recs.users, recs.items, recs.scores):
        index = int(np.flatnonzero(result.data.user_ids == user)[0])
        raw_seen = {result.data.item_ids[i] for i in seen[index]}
        assert len(items) == 10 and not set(items) & raw_seen
        assert np.all(np.diff(scores) <= 0)
        all_scores = result.net.score_matrix(np.array([index]))[0]
        unseen = np.setdiff1d(np.arange(result.num_items), seen[index])
        assert scores[0] == pytest.approx(all_scores[unseen].max())


def test_recommend_filters(run):
    result, _, _ = run
    allowed = result.data.item_ids[:5].tolist()
    recs = recommend(result, ["1"], k=10, exclude_seen=False, items=allowed,
                     exclude=[allowed[0]])
    assert sorted(recs.items[0]) == sorted(allowed[1:])
    frame = recs.to_frame()
    assert list(frame.columns) == ["user", "rank", "item", "score"] and len(frame) == 4
    with pytest.raises(KeyError, match="unknown user id"):
        recommend(result, ["no-such-user"], k=3)


def test_export_matches_the_network(run, tmp_path):
    # the export folder's graph, loaded by MXNet alone (in the shape semantics it was saved in)
    result, _, _ = run
    folder = result.export(tmp_path / "serving" / "neumf")
    symbol, params = folder / "model-symbol.json", folder / "model-0000.params"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MXNet notes the inputs' unknown dtypes
        with mx.util.np_shape(True), mx.util.np_array(True):
            block = mx.gluon.SymbolBlock.imports(str(symbol), ["data0", "data1"], str(params))
            users = mx.np.array(np.repeat(np.arange(result.num_users), result.num_items),
                                dtype="int32")
            items = mx.np.array(np.tile(np.arange(result.num_items), result.num_users),
                                dtype="int32")
            served = block(users, items).asnumpy().reshape(result.num_users, result.num_items)
    np.testing.assert_allclose(served, result.net.score_matrix(np.arange(result.num_users)),
                               rtol=1e-5, atol=1e-6)


FORMAT_1 = Path(__file__).resolve().parent / "fixtures" / "run-format1"


@FEW_CANDIDATES
def test_a_run_saved_by_format_1_loads_resumes_and_recommends(tmp_path):
    # saved by neumf 0.1.0 (commit 48fa478) from neumf.data.synthetic(40, 30, 400, seed=5)
    run = tmp_path / "old"
    shutil.copytree(FORMAT_1, run)
    saved = json.loads((run / "metrics.json").read_text())
    loaded = load_model(run)
    assert json.loads((run / "run.json").read_text())["format"] == 1
    assert loaded.metrics == pytest.approx({key: saved[key] for key in loaded.metrics})
    assert len(loaded.history) == 2 and loaded.config.num_factors == 4
    scores = loaded.net.score_matrix(np.arange(loaded.num_users))
    assert scores.shape == (40, 30) and np.isfinite(scores).all()
    assert len(recommend(loaded, loaded.data.user_ids[0], k=3).items[0]) == 3
    resumed = fit(resume=run, num_epochs=3, verbose=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert json.loads((run / "run.json").read_text())["format"] == 2
    assert not (run / "model-0002.params").exists()  # listed by the old manifest: replaced


def test_a_history_saved_without_lr_resumes_with_nan_there(planted_dir, tmp_path):
    # runs saved before 0.3.0 have no per-epoch lr
    fit(data_dir=planted_dir, seed=0, num_epochs=1, batch_size=64, eval_step=0, verbose=False,
        out=tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "run.json").read_text())
    for stats in manifest["history"]:
        del stats["lr"]
    (tmp_path / "run" / "run.json").write_text(json.dumps(manifest))
    resumed = fit(resume=tmp_path / "run", num_epochs=2, verbose=False)
    assert math.isnan(resumed.history[0]["lr"]) and resumed.history[1]["lr"] == 0.01


# --- a run folder is the run's ---

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
    files = snapshot(folder)
    for overwrite in (False, True):
        with pytest.raises(RunError, match="not empty and is not a neumf run"):
            fit(data_dir=planted_dir, out=folder, overwrite=overwrite, **QUICK)
    assert snapshot(folder) == files
    code, _, err = run_cli(["train", "--data-dir", str(planted_dir), "--num-epochs", "1",
                         "--out", str(folder), "--quiet"])
    assert code == 2 and "model-card.md" in one_error_line(err)


def test_training_into_an_existing_run_needs_overwrite(planted_dir, tmp_path):
    run = tmp_path / "r"
    fit(data_dir=planted_dir, out=run, **{**QUICK, "num_epochs": 3})
    files = snapshot(run)
    with pytest.raises(RunError, match="--resume.*--overwrite|overwrite.*resume"):
        fit(data_dir=planted_dir, out=run, **QUICK)
    assert snapshot(run) == files
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
    code, out, err = run_cli(["train", "--data-dir", str(planted_dir), "--out", str(target)])
    assert code == 2 and "file.txt" in one_error_line(err)
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
