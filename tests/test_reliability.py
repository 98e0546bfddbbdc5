"""Bad input, fuzzed files, impossible arguments and numeric failure: only the
library's documented errors escape, each naming the file, line or argument."""

import contextlib
import warnings

import mxnet as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_datasets import write_ncf

from conftest import planted_interactions, write_u_data
from neumf import DataError, fit, load_dataset, load_model, read_ratings

GOOD_U_DATA = "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n2\t2\t1\t881250952\n"
GOOD_CSV = "user,item,rating,timestamp\nu1,a,5,881250949\nu1,b,3,881250950\nu2,a,4,881250951\n"
GOOD_ML1M = "1::10::5::978300760\n1::20::3::978300761\n2::10::4::978300762\n2::20::1::978300763\n"

U_DATA_CASES = {
    "wrong column count": ("1\t1\t5\n", "line 1: expected 4"),
    "non-numeric field": ("1\tx\t5\t881250949\n", "line 1: item_id is not an integer"),
    "negative id": ("1\t1\t5\t881250949\n-2\t1\t5\t881250949\n", "line 2: user_id -2 is below"),
    "overflowing id": ("99999999999999999999\t1\t5\t881250949\n", "line 1: user_id .* 64-bit"),
    "empty file": ("", "is empty"),
    "duplicated header": ("1\t1\t5\t881250949\nuser_id\titem_id\trating\ttimestamp\n",
                          "line 2: user_id is not an integer"),
    "mixed delimiters": ("1\t1\t5\t881250949\n2 1 4 881250950\n", "line 2: expected 4"),
    "NaN rating": ("1\t1\tnan\t881250949\n", "line 1: rating is not an integer"),
    "timestamp out of range": ("1\t1\t5\t881250949\n1\t2\t5\t-5\n", "line 2: timestamp -5 is out"),
    "far-future timestamp": ("1\t1\t5\t99999999999\n", "line 1: timestamp 99999999999 is out"),
}

CSV_CASES = {
    "wrong column count": (GOOD_CSV + "u3,c\n", "line 5: expected 4"),
    "non-numeric rating": (GOOD_CSV + "u3,c,five,881250952\n", "line 5: rating is not a number"),
    "empty id": (GOOD_CSV + ",c,5,881250952\n", "line 5: user is empty"),
    "duplicated header": (GOOD_CSV + "user,item,rating,timestamp\n",
                          "line 5: the header line is repeated"),
    "mixed delimiters": (GOOD_CSV + "u3;c;5;881250952\n", "line 5: expected 4"),
    "NaN rating": (GOOD_CSV + "u3,c,nan,881250952\n", "line 5: rating is not a finite number"),
    "timestamp out of range": (GOOD_CSV + "u3,c,5,5000000000\n", "line 5: timestamp .* out of"),
    "overflowing timestamp": (GOOD_CSV + "u3,c,5,1e400\n", "line 5: timestamp is not an integer"),
    "too many fields": (GOOD_CSV + "u3,c,5,881250952,9\n", "line 5: expected 4"),
}


@pytest.mark.parametrize("case", sorted(U_DATA_CASES))
def test_u_data_reader_names_file_and_line(tmp_path, case):
    text, message = U_DATA_CASES[case]
    path = tmp_path / "u.data"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as info:
        read_ratings(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_csv_reader_names_file_and_line(tmp_path, case):
    text, message = CSV_CASES[case]
    (tmp_path / "data.csv").write_text(text)
    with pytest.raises(DataError, match=message) as info:
        load_dataset("csv", tmp_path, "data.csv")
    assert str(tmp_path / "data.csv") in str(info.value)


@pytest.mark.parametrize("line, message", [
    ("3::30::5\n", "line 5: expected 4"),
    ("3::30::x::978300764\n", "line 5: rating is not a number"),
    ("3::30::5::-1\n", "line 5: timestamp -1 is out of range"),
])
def test_ml1m_reader_names_file_and_line(tmp_path, line, message):
    (tmp_path / "ml-1m").mkdir()
    (tmp_path / "ml-1m" / "ratings.dat").write_text(GOOD_ML1M + line)
    with pytest.raises(DataError, match=message):
        load_dataset("ml-1m", tmp_path)


def test_ncf_rules_for_out_of_range_ids_and_coinciding_negatives(tmp_path):
    write_ncf(tmp_path, num_negatives=5)
    negative = tmp_path / "toy.test.negative"
    lines = negative.read_text().splitlines()
    pair, *negatives = lines[0].split("\t")
    test_item = pair.strip("()").split(",")[1]
    lines[0] = "\t".join([pair, test_item, "999", *negatives[2:]])  # the test item, outside
    negative.write_text("\n".join(lines) + "\n")
    with open(tmp_path / "toy.test.rating", "a") as handle:
        handle.write("500\t3\t5\t1\n")  # a user the training file does not have
    with open(negative, "a") as handle:
        handle.write("(500,3)\t1\t2\t3\t4\t5\n")
    with pytest.warns(UserWarning) as caught:
        data = load_dataset("ncf", tmp_path, "toy")
    messages = " ".join(str(w.message) for w in caught)
    assert "1 test pairs name a user or item the training file does not have" in messages
    assert "removed 1 negatives outside the catalogue and 1 equal to their test item" in messages
    assert len(data.test_users) == 80 and (data.test_negatives[0, :2] == -1).all()
    assert (data.test_negatives[1:] >= 0).all()


def _fuzz_targets(folder):
    """Each reader over files in ``folder``: u.data, csv, ml-1m and the three NCF files."""
    return {
        "u.data": lambda: read_ratings(folder / "u.data"),
        "csv": lambda: load_dataset("csv", folder, "data.csv"),
        "ml-1m": lambda: load_dataset("ml-1m", folder),
        "ncf": lambda: load_dataset("ncf", folder, "toy"),
    }


def _only_data_errors(call):
    # DataError is the documented error; anything else escapes and fails the test
    with warnings.catch_warnings(), contextlib.suppress(DataError):
        warnings.simplefilter("ignore")
        call()


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(blob=st.binary(max_size=400))
def test_random_bytes_only_raise_data_errors(tmp_path, blob):
    write_ncf(tmp_path, num_negatives=3)
    (tmp_path / "ml-1m").mkdir(exist_ok=True)
    for name in ("u.data", "data.csv", "ml-1m/ratings.dat", "toy.train.rating",
                 "toy.test.negative"):
        (tmp_path / name).write_bytes(blob)
    for call in _fuzz_targets(tmp_path).values():
        _only_data_errors(call)


def _mutate(text: bytes, data) -> bytes:
    """Random edits of a valid file: flip, delete, insert or duplicate."""
    for _ in range(data.draw(st.integers(1, 4))):
        if not text:
            break
        at = data.draw(st.integers(0, len(text) - 1))
        kind = data.draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
        if kind == "flip":
            text = text[:at] + bytes([text[at] ^ data.draw(st.integers(1, 255))]) + text[at + 1:]
        elif kind == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 8)):]
        elif kind == "insert":
            text = text[:at] + data.draw(st.binary(min_size=1, max_size=8)) + text[at:]
        else:
            end = text.find(b"\n", at) + 1 or len(text)
            text = text[:end] + text[at:end] + text[end:]
    return text


@FUZZ
@given(data=st.data())
def test_mutated_valid_files_only_raise_data_errors(tmp_path, data):
    write_ncf(tmp_path, num_negatives=3)
    (tmp_path / "ml-1m").mkdir(exist_ok=True)
    originals = {"u.data": GOOD_U_DATA.encode(), "data.csv": GOOD_CSV.encode(),
                 "ml-1m/ratings.dat": GOOD_ML1M.encode()}
    for name in ("toy.train.rating", "toy.test.rating", "toy.test.negative"):
        originals[name] = (tmp_path / name).read_bytes()
    for name, text in originals.items():
        (tmp_path / name).write_bytes(_mutate(text, data))
    for call in _fuzz_targets(tmp_path).values():
        _only_data_errors(call)


@pytest.mark.parametrize("overrides, message", [
    ({"devices": [mx.gpu(3)]}, "device gpu\\(3\\) does not exist"),
    ({"devices": ["cpu"]}, "devices must be MXNet contexts"),
    ({"devices": []}, "devices must list at least one context"),
    ({"num_factors": -1}, "num_factors must be a positive integer"),
    ({"nums_hiddens": ()}, "nums_hiddens must be a non-empty list"),
    ({"protocol": "leave-two-out"}, "protocol must be one of"),
])
def test_impossible_arguments_fail_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        fit(data_dir=tmp_path / "never-read", verbose=False, **overrides)
    assert not (tmp_path / "never-read").exists()


def test_k_larger_than_the_catalogue(planted_dir):
    with pytest.raises(ValueError, match="k=100 is larger than the catalogue of 60 items"):
        fit(data_dir=planted_dir, k=100, verbose=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(planted_dir, tmp_path):
    run = tmp_path / "run"
    fit(data_dir=planted_dir, seed=0, num_epochs=2, batch_size=64, out=run, verbose=False)
    with pytest.raises(FloatingPointError, match="epoch 3, batch \\d+: the loss is (nan|inf)"):
        fit(resume=run, num_epochs=4, lr=1e38, verbose=False)
    saved = load_model(run)
    assert len(saved.history) == 2
    assert np.isfinite(saved.net.score_matrix(np.arange(saved.num_users))).all()


def test_planted_data_dir_helper_round_trip(tmp_path):
    folder = write_u_data(tmp_path, planted_interactions())
    assert read_ratings(folder / "ml-100k" / "u.data")[1:] == (80, 60)
