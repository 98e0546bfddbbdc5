from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import time

import mxnet as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neumf
from conftest import QUICK, csv_rows, file_digest, one_error_line, run_cli, snapshot, write_csv
from neumf import PRESETS, FitConfig, RunError, fit, load_model
from neumf.cli import _one_line, build_parser, main

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")


def test_train_json_on_planted_data(planted_dir, capsys):
    code = main(["train", "--data-dir", str(planted_dir), "--seed", "0", "--num-epochs", "3",
                 "--batch-size", "64", "--k", "5", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    # 60 items: the default cut-offs become a tenth of the catalogue, 5
    assert {"hr@5", "ndcg@5", "auc", "mrr"} == set(report["metrics"])
    assert report["metrics"]["hr@5"] > 0.2
    assert report["config"]["num_epochs"] == 3 and report["config"]["seed"] == 0
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]


def test_train_prints_the_tutorial_lines(planted_dir, capsys):
    assert main(["train", "--data-dir", str(planted_dir), "--num-epochs", "1",
                 "--nums-hiddens", "4", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1:" in out and "test hit rate" in out and "examples/sec on" in out


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    bad = tmp_path / "ml-100k"
    bad.mkdir()
    (bad / "u.data").write_text("1\t1\t5\n")
    assert main(["train", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neumf: error:") and "line 1" in err


@pytest.mark.parametrize("command", ["train", "evaluate", "recommend", "launch", "export",
                                     "serve"])
def test_help_documents_every_option(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    subparser = build_parser()._subparsers._group_actions[0].choices[command]
    for action in subparser._actions:
        assert action.help, action.dest
        takes_value = action.nargs != 0 and action.option_strings and action.dest != "help"
        if takes_value and not action.required:
            assert "default" in action.help, action.dest
    if command == "train":
        for spec in dataclasses.fields(FitConfig):
            assert "--" + spec.name.replace("_", "-") in out
        assert "learning rate (default: 0.01)" in out
        assert "(default: [10, 10, 10])" in out and "{adam,sgd," in out
        assert "dense up to 50,000 users + items" in out and "SPARSE_ROWS" not in out


@pytest.mark.parametrize("argv, expected", [
    (["--bogus"], "neumf: error: the following arguments are required: command (see neumf "
                  "--help)"),
    (["evaluate"], "neumf: error: evaluate: the following arguments are required: --run"),
    (["export", "--run", "r", "--out", " "], "neumf: error: --out is empty"),
])
def test_usage_errors_say_which_command_once(capsys, argv, expected):
    with contextlib.suppress(SystemExit):
        assert main(argv) == 2
    assert capsys.readouterr().err.startswith(expected)


def test_train_evaluate_recommend_end_to_end(planted_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "ml-100k", "--data-dir", str(planted_dir), "--seed", "0",
                 "--num-epochs", "3", "--batch-size", "64", "--out", str(run), "--quiet"]) == 0
    assert f"saved to {run}" in capsys.readouterr().out
    assert (run / "curves.png").stat().st_size > 0
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("hr@5", "ndcg@5", "auc", "mrr"):  # 60 items: default cut-offs of 5
        assert 0 <= saved[key] <= 1

    assert main(["evaluate", "--run", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"] == "full"
    assert report["metrics"]["hr@5"] == pytest.approx(saved["hr@5"])
    assert main(["evaluate", "--run", str(run), "--protocol", "sampled", "--eval-negatives",
                 "5", "--json"]) == 0
    sampled = json.loads(capsys.readouterr().out)["metrics"]
    assert sampled["hr@5"] >= 0.8  # 6 candidates: 5 of them in the top 5 by chance
    assert sampled["ndcg@5"] < 1.0 and 0.5 < sampled["auc"] <= 1.0

    assert main(["recommend", "--run", str(run), "--user", "1", "--user", "7", "-k", "4",
                 "--json"]) == 0
    # the one shape of a user's recommendations (README, "Serve it")
    recs = {entry["user"]: entry["items"]
            for entry in json.loads(capsys.readouterr().out)["recommendations"]}
    assert list(recs) == ["1", "7"] and all(len(v) == 4 for v in recs.values())
    data = load_model(run).data
    user = int(np.flatnonzero(data.user_ids == "1")[0])
    seen = {data.item_ids[i] for i in data.train_items[data.train_users == user]}
    assert len(seen) == 8 and not {entry["item"] for entry in recs["1"]} & seen
    assert main(["recommend", "--run", str(run), "--user", "1", "-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["user", "rank", "item", "score"] and len(table) == 3
    assert main(["recommend", "--run", str(run), "--user", "nobody"]) == 2
    assert "unknown user id(s): nobody" in capsys.readouterr().err


def test_resume_from_the_command_line(planted_dir, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data-dir", str(planted_dir), "--seed", "0", "--batch-size", "64", "--json"]
    assert main(["train", *common, "--num-epochs", "2", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--num-epochs", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in report["history"]] == [1, 2, 3]
    assert report["config"]["batch_size"] == 64


def test_preset_flags_override_only_when_given(planted_dir, capsys):
    main(["train", "--data-dir", str(planted_dir), "--preset", "best", "--num-epochs", "2",
          "--patience", "0", "--seed", "0", "--json"])
    config = json.loads(capsys.readouterr().out)["config"]
    # from the preset, untouched by the flags' defaults
    preset = {key: list(value) if isinstance(value, tuple) else value
              for key, value in PRESETS["best"].items() if key != "num_epochs"}
    assert {key: config[key] for key in preset} == preset
    assert config["num_factors"] != FitConfig().num_factors
    # given on the command line, even where equal to FitConfig's default
    assert config["num_epochs"] == 2 and config["patience"] == 0
    main(["train", "--data-dir", str(planted_dir), "--preset", "best", "--num-factors", "10",
          "--num-epochs", "1", "--json"])
    assert json.loads(capsys.readouterr().out)["config"]["num_factors"] == 10


def test_a_switch_a_preset_turns_on_can_be_turned_off(planted_dir, capsys):
    flags = ["train", "--data-dir", str(planted_dir), "--preset", "mf", "--num-epochs", "1",
             "--protocol", "full", "--json"]
    main(flags)
    assert json.loads(capsys.readouterr().out)["config"]["biases"] is True
    main(flags + ["--no-biases"])
    assert json.loads(capsys.readouterr().out)["config"]["biases"] is False


def test_an_mxnet_error_is_its_message_not_its_trace():
    try:
        (mx.nd.ones((2, 3)) + mx.nd.ones((4, 5))).wait_to_read()
    except mx.base.MXNetError as exc:
        line = _one_line(exc)
    assert line.startswith("MXNet: Check failed") and "could not be broadcast" in line


# --- messages, not tracebacks ---

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
    code, _, err = run_cli(["train", "--data-dir", str(planted_dir), "--batch-size", "64",
                         "--quiet", *args])
    assert code == 2
    line = one_error_line(err)
    for word in words:
        assert word in line.replace("-", "_") or word in line


def test_name_naming_a_folder(tmp_path):
    (tmp_path / "d.csv").mkdir()
    code, _, err = run_cli(["train", "--dataset", "csv", "--data-dir", str(tmp_path), "--name",
                         "d.csv", "--quiet"])
    assert code == 2 and "folder" in one_error_line(err)


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
    code, out, err = run_cli(["recommend", "--run", str(run), "--user", "1", "-k", "2"])
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_a_negative_rating_is_named(tmp_path):
    rows = csv_rows(num_users=6, per_user=4)
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
    code, _, err = run_cli(["train", "--data-dir", str(tmp_path), "--quiet"])
    assert code == 2 and "Traceback" not in err
    code, _, err = run_cli(["--debug", "train", "--data-dir", str(tmp_path), "--quiet"])
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


# --- the property: any combination of flags and small files ---

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
    write_csv(folder / "d.csv", [(f"u{u}", f"i{i}", t) for u, i, t in rows], header=header)
    (folder / "foreign").mkdir()
    (folder / "foreign" / "keep.txt").write_text("mine")
    (folder / "file").write_text("mine")
    before = snapshot(folder)
    argv = ["train", "--dataset", "csv", "--data-dir", str(folder), "--name", "d.csv",
            "--seed", "0", "--quiet", *args]
    if out != "none":
        argv += ["--out", str(folder / out)]
    if "--num-epochs" not in args:
        argv += ["--num-epochs", "1"]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        code, _, err = run_cli(argv)
    except _Hang:
        pytest.fail(f"hung: neumf {' '.join(argv)}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        one_error_line(err)
    for path, expected in before.items():
        assert path.is_file() and file_digest(path) == expected, (argv, path)


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
