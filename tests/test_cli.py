import dataclasses
import json

import pytest

from neumf import FitConfig
from neumf.cli import build_parser, main


def test_train_json_on_planted_data(planted_dir, capsys):
    code = main(["train", "--data-dir", str(planted_dir), "--seed", "0", "--num-epochs", "3",
                 "--batch-size", "64", "--k", "5", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["metrics"]) == {"hr@5", "auc"} and report["metrics"]["hr@5"] > 0.2
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


def test_help_documents_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for spec in dataclasses.fields(FitConfig):
        assert "--" + spec.name.replace("_", "-") in out
    assert "learning rate (default: 0.01)" in out
    assert "(default: [10, 10, 10])" in out and "{adam,sgd," in out
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        assert action.help, action.dest
