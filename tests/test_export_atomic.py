"""Exports and runs written whole or not at all, never through a link (issue
27): an export is built beside its folder and swapped in, a checkpoint's
files are checked before any replaces the last one's, the lock is never a
link, and a manifest names nothing outside its folder."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import threading

import pytest

import neumf._util
from conftest import planted_interactions, write_u_data
from neumf import RunError, fit, load_model, serving

SETTINGS = {"seed": 0, "num_epochs": 2, "batch_size": 64, "k": 5, "ks": (5, 10),
            "verbose": False}
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two different trained runs on the same data: (result, run folder) each."""
    folder = tmp_path_factory.mktemp("atomic")
    data_dir = write_u_data(folder, planted_interactions())
    first = fit(data_dir=data_dir, out=folder / "first", **SETTINGS)
    second = fit(data_dir=data_dir, out=folder / "second", **{**SETTINGS, "seed": 1})
    return (first, folder / "first"), (second, folder / "second")


def _records(folder, users=("1", "2", "3")):
    return serving.load(folder).recommend(list(users), 4).to_records()


def _limited(size: int):
    """A child process's setup: files may grow to ``size`` bytes at most."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))


def _largest_cut(path) -> int:
    """A file-size limit that cuts ``path`` within its last 4 KiB (where MXNet's
    buffered last write fails without a word)."""
    return os.path.getsize(path) // 4096 * 4096


def test_overwrite_replaces_links_not_what_they_point_to(runs, tmp_path):
    (result, _), _ = runs
    export = result.export(tmp_path / "export")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("model-0000.params", "model-symbol.json"):
        (elsewhere / name).write_text("precious")
        (export / name).unlink()
        (export / name).symlink_to(elsewhere / name)
    result.export(export, overwrite=True)
    assert [(elsewhere / name).read_text() for name in sorted(os.listdir(elsewhere))] == \
        ["precious", "precious"]
    assert not any(path.is_symlink() for path in export.iterdir())
    assert _records(export) == result_records(result)
    with pytest.raises(RunError, match="symbolic link: name the export folder itself"):
        (tmp_path / "link").symlink_to(export)
        result.export(tmp_path / "link", overwrite=True)


def result_records(result, users=("1", "2", "3")):
    return serving.Recommender.from_result(result).recommend(list(users), 4).to_records()


def test_a_linked_file_in_an_export_is_never_read(runs, tmp_path):
    (result, _), _ = runs
    export = result.export(tmp_path / "export")
    shutil.copy(export / "ids.json", tmp_path / "ids.json")  # the same bytes, elsewhere
    (export / "ids.json").unlink()
    (export / "ids.json").symlink_to(tmp_path / "ids.json")
    with pytest.raises(RunError, match="ids.json is a symbolic link"):
        serving.load(export)


@pytest.mark.parametrize("lock", ["symlink", "hardlink"])
def test_the_run_lock_is_never_written_through_a_link(runs, tmp_path, lock):
    (result, run_dir), _ = runs
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    precious = tmp_path / "precious.txt"
    precious.write_text("precious")
    (run / ".neumf.lock").unlink(missing_ok=True)
    if lock == "symlink":
        (run / ".neumf.lock").symlink_to(precious)
    else:
        os.link(precious, run / ".neumf.lock")
    with pytest.raises(RunError, match=".neumf.lock is (a symbolic link|not a file of its own)"):
        fit(resume=run, num_epochs=3, verbose=False)
    with pytest.raises(RunError, match="the run's lock is never written"):
        load_model(run).save(run)
    assert precious.read_text() == "precious"


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "../secret.txt",
                                  "model-0000.params/../ids.json"])
def test_a_manifest_naming_a_path_outside_is_refused_unread(runs, tmp_path, name):
    (result, _), _ = runs
    export = result.export(tmp_path / "export")
    (tmp_path / "secret.txt").write_text("secret")
    manifest = json.loads((export / "export.json").read_text())
    messages = []
    for named in (name, name.replace("passwd", "no-such-file").replace("secret", "nothing")):
        manifest["sha256"][named] = "0" * 64
        (export / "export.json").write_text(json.dumps(manifest))
        with pytest.raises(RunError, match="names a file an export does not have") as error:
            serving.load(export)
        messages.append(str(error.value).replace(named, "NAME"))
        del manifest["sha256"][named]
    # whether the file exists is not told: the same words either way
    assert messages[0] == messages[1]


def test_a_run_manifest_naming_a_path_outside_is_refused(runs, tmp_path):
    (_, run_dir), _ = runs
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    manifest = json.loads((run / "run.json").read_text())
    manifest["sha256"]["../../../../etc/passwd"] = "0" * 64
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="names files a run does not have"):
        load_model(run)


@pytest.mark.slow  # a CLI process under a file-size limit
def test_an_export_cut_short_by_a_file_size_limit_leaves_the_old_one(runs, tmp_path):
    (result, _), (_, second_dir) = runs
    export = result.export(tmp_path / "export")
    before = {path.name: path.read_bytes() for path in export.iterdir()}
    command = [sys.executable, "-m", "neumf", "export", "--run", str(second_dir), "--out",
               str(export), "--overwrite"]
    for limit in (4096, _largest_cut(export / "model-0000.params")):
        done = subprocess.run(command, capture_output=True, text=True, timeout=200, env=ENV,
                              preexec_fn=_limited(limit))
        assert done.returncode == 2, done.stderr
        assert "the export could not be written" in done.stderr
        assert "the previous export is as it was" in done.stderr
        assert {path.name: path.read_bytes() for path in export.iterdir()} == before
        assert _records(export) == result_records(result)
        assert sorted(os.listdir(tmp_path)) == ["export"]  # nothing left beside it
    done = subprocess.run(command, capture_output=True, text=True, timeout=200, env=ENV)
    assert done.returncode == 0, done.stderr
    assert _records(export) == result_records(runs[1][0])


@pytest.mark.slow  # CLI processes under a file-size limit
def test_a_checkpoint_cut_short_by_a_file_size_limit_keeps_the_last_one(runs, tmp_path):
    (result, run_dir), _ = runs
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    expected = result_records(load_model(run))
    largest = max((path for path in run.iterdir() if path.suffix in (".params", ".states")),
                  key=os.path.getsize)
    command = [sys.executable, "-m", "neumf", "train", "--resume", str(run), "--num-epochs",
               "4", "--quiet"]
    for limit in (4096, _largest_cut(largest)):
        done = subprocess.run(command, capture_output=True, text=True, timeout=200, env=ENV,
                              preexec_fn=_limited(limit))
        assert done.returncode == 2 and "could not be written" in done.stderr, done.stderr
        assert "keeps the previous one" in done.stderr
        loaded = load_model(run)
        assert len(loaded.history) == 2 and result_records(loaded) == expected
    done = subprocess.run(command, capture_output=True, text=True, timeout=200, env=ENV)
    assert done.returncode == 0, done.stderr
    assert len(load_model(run).history) == 4


def test_loads_during_re_exports_see_the_old_or_the_new_export(runs, tmp_path):
    (first, _), (second, _) = runs
    export = first.export(tmp_path / "export")
    answers = [result_records(first), result_records(second)]
    assert answers[0] != answers[1]
    stop, failures = threading.Event(), []

    def re_export():
        try:
            for turn in range(12):
                (second if turn % 2 == 0 else first).export(export, overwrite=True)
        except Exception as exc:  # noqa: BLE001 (reported by the test)
            failures.append(exc)
        finally:
            stop.set()
    writer = threading.Thread(target=re_export)
    writer.start()
    loads = 0
    while not stop.is_set() or loads == 0:
        assert _records(export) in answers
        loads += 1
    writer.join()
    assert failures == [] and loads > 0
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_without_a_swap_the_old_export_is_renamed_aside(runs, tmp_path, monkeypatch):
    (first, _), (second, _) = runs
    export = first.export(tmp_path / "export")
    monkeypatch.setattr(neumf._util, "_RENAME", None)
    second.export(export, overwrite=True)
    assert _records(export) == result_records(second)
    assert sorted(os.listdir(tmp_path)) == ["export"]


def test_an_incomplete_export_is_replaced_only_when_asked(runs, tmp_path):
    (result, _), _ = runs
    partial = tmp_path / "export"
    partial.mkdir()
    (partial / "model-0000.params").write_bytes(b"\0" * 100)  # cut short by an old neumf
    with pytest.raises(RunError, match="already holds an export .an incomplete one."):
        result.export(partial)
    result.export(partial, overwrite=True)
    assert _records(partial) == result_records(result)
    (partial / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="holds files an export does not have .notes.txt."):
        result.export(partial, overwrite=True)
    assert (partial / "notes.txt").read_text() == "mine"
