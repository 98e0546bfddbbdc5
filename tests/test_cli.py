import contextlib
import dataclasses
import json

import mxnet as mx
import numpy as np
import pytest

from neumf import PRESETS, FitConfig, load_model
from neumf.cli import _one_line, build_parser, main


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
