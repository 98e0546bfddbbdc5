"""One object (issue 29): what fit() returns and what neumf.load() gives back
recommend and score by raw ids as neumf.recommend does; a run also evaluates,
saves and exports."""

import numpy as np
import pytest

import neumf
from conftest import planted_interactions, write_u_data
from neumf import RunError, fit, load, load_model, recommend
from neumf.serving import Recommender

SETTINGS = {"seed": 0, "num_epochs": 3, "batch_size": 64, "k": 5, "ks": (5, 10),
            "verbose": False}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("result")
    result = fit(data_dir=write_u_data(folder, planted_interactions()), out=folder / "run",
                 **SETTINGS)
    return result, folder / "run", result.export(folder / "export")


def _records(recommendations):
    return [(entry["user"], [item["item"] for item in entry["items"]],
             [round(item["score"], 4) for item in entry["items"]])
            for entry in recommendations.to_records()]


def test_every_model_object_recommends_and_scores_as_neumf_recommend(trained):
    result, run, export = trained
    users, items = ["1", "42", "7"], ["3", "5", "11"]
    expected = recommend(result, users, k=4)
    for model in (result, load_model(run), load(run), load(export)):
        assert _records(model.recommend(users, k=4)) == _records(expected)
        np.testing.assert_allclose(model.score(users, items),
                                   result.score(users, items), rtol=1e-5, atol=1e-6)
        again = model.recommend("1", 3, exclude_seen=False, items=items + ["2"],
                                exclude=["3"])
        assert _records(again) == _records(recommend(result, "1", 3, False,
                                                     items=items + ["2"], exclude=["3"]))
    assert isinstance(load(run), neumf.FitResult) and isinstance(load(export), Recommender)
    scores = result.score(users, items)
    assert scores.shape == (3, 3) and scores.dtype == np.float32
    # a score is the one its recommendation carries
    first = expected.to_records()[0]
    top = first["items"][0]
    assert result.score([first["user"]], [top["item"]])[0, 0] == pytest.approx(top["score"],
                                                                              rel=1e-5)


def test_a_run_evaluates_saves_and_exports_from_the_object(trained, tmp_path):
    result, run, _ = trained
    assert result.evaluate() == pytest.approx(result.metrics)
    loaded = load(run)
    assert loaded.evaluate() == pytest.approx(result.metrics)
    sampled = loaded.evaluate("sampled", eval_negatives=20)
    assert set(sampled) == set(result.metrics) and sampled["auc"] > 0.5
    with pytest.raises(ValueError, match="eval_negatives applies to the sampled protocol"):
        loaded.evaluate(eval_negatives=20)
    with pytest.raises(ValueError, match="protocol must be one of"):
        loaded.evaluate("every")
    loaded.save(tmp_path / "copy")
    assert load(tmp_path / "copy").metrics == loaded.metrics
    exported = load(loaded.export(tmp_path / "export"))
    assert _records(exported.recommend(["1"], 5)) == _records(result.recommend(["1"], 5))


def test_load_says_what_a_folder_is_not(tmp_path):
    with pytest.raises(RunError, match="no such run or export folder"):
        load(tmp_path / "missing")
    (tmp_path / "other").mkdir()
    with pytest.raises(RunError, match=r"neither a run folder \(no run.json\) nor an export"):
        load(tmp_path / "other")


def test_a_file_or_an_export_given_as_a_run_is_named(trained):
    _, run, export = trained
    with pytest.raises(RunError, match=r"run.json is a file: give the run or export folder"):
        load(run / "run.json")
    with pytest.raises(RunError, match="is a serving export, not a run folder"):
        load_model(export)


def test_the_top_level_is_small_and_holds_the_tutorials_names():
    assert len(neumf.__all__) <= 30
    assert {"NeuMF", "PRDataset", "hit_and_auc", "evaluate_ranking", "train_ranking",
            "try_all_gpus", "read_data_ml100k", "split_data_ml100k", "load_data_ml100k",
            "BPRLoss", "HingeLossbRec", "fit", "load"} <= set(neumf.__all__)
    assert all(hasattr(neumf, name) for name in neumf.__all__)
