"""Every warning the library issues names the caller's line (issue 29): the
user's call of fit() or load_dataset(), not the library line that noticed."""

import warnings

import pandas as pd
import pytest

from neumf import fit, load_dataset
from neumf._warn import warn


def _caught(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [record for record in caught if not issubclass(record.category, DeprecationWarning)]


def test_warnings_from_deep_inside_fit_name_this_file(tmp_path):
    # repeated pairs (the reader), a user with one interaction (the split), a
    # catalogue smaller than the default cut-offs (the plan), a collapse (training)
    rows = [(user, item, 5, user * 100 + item) for user in range(12) for item in range(6)]
    rows += [(0, 0, 5, 1), (12, 1, 5, 7)]
    pd.DataFrame(rows).to_csv(tmp_path / "small.csv", header=False, index=False)
    caught = _caught(lambda: fit(dataset="csv", data_dir=tmp_path, name="small.csv",
                                 num_epochs=2, tutorial_exact=True, verbose=False, seed=0))
    assert len({str(record.message)[:30] for record in caught}) >= 3
    for record in caught:
        assert record.filename == __file__, (record.filename, str(record.message))


def test_a_loader_warning_names_this_file(tmp_path):
    pd.DataFrame([(1, 1, 5, 1), (1, 1, 5, 2), (1, 2, 5, 3), (2, 1, 5, 1), (2, 2, 5, 2)]).to_csv(
        tmp_path / "twice.csv", header=False, index=False)
    caught = _caught(lambda: load_dataset("csv", tmp_path, "twice.csv"))
    assert caught and {record.filename for record in caught} == {__file__}


def test_warn_attributes_to_the_first_frame_outside_the_package():
    with pytest.warns(UserWarning, match="here") as caught:
        warn("here")
    assert caught[0].filename == __file__
