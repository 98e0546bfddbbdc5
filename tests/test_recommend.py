"""Recommendations by raw ids: what a user may pass, and what comes back."""

from __future__ import annotations

import numpy as np
import pytest

import neumf
from conftest import QUICK
from neumf import fit, load_model, recommend

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")


# --- types say what they mean ---

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
