"""The one checked reader: every bad line is named with its file and line, the
numeric and text paths agree, and fuzzed files only ever raise DataError."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neumf
from conftest import (
    QUICK,
    SEEN_EVERY_ITEM,
    csv_rows,
    one_error_line,
    run_cli,
    write_csv,
    write_ncf_files,
)
from neumf import DataError, fit, load_dataset, tables
from neumf.generate import synthetic
from neumf.tables import read_table
from neumf.tutorial import read_ratings

# small files leave a few items in the test set only (said, and expected)
pytestmark = pytest.mark.filterwarnings("ignore:.*only in the test set:UserWarning")

GOOD_U_DATA = "1\t1\t5\t881250949\n1\t2\t3\t881250950\n2\t1\t4\t881250951\n2\t2\t1\t881250952\n"
GOOD_CSV = "user,item,rating,timestamp\nu1,a,5,881250949\nu1,b,3,881250950\nu2,a,4,881250951\n"
GOOD_ML1M = "1::10::5::978300760\n1::20::3::978300761\n2::10::4::978300762\n2::20::1::978300763\n"
GOOD = "1\t1\t5\t100\n1\t2\t3\t50\n2\t1\t4\t70\n"

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


def _write(tmp_path, text):
    path = tmp_path / "u.data"
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(U_DATA_CASES))
def test_u_data_reader_names_file_and_line(tmp_path, case):
    text, message = U_DATA_CASES[case]
    path = _write(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        read_ratings(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text, message", [
    (GOOD + "3\t1\t5\n", "line 4: expected 4 '\\\\t'-separated fields .* got 3"),
    (GOOD + "3\t1\t5\t1\t9\n", "line 4: expected 4 '\\\\t'-separated fields .* got 5"),
    ("1\t1\t5\t100\n2\tx\t3\t50\n", "line 2: item_id is not an integer: 'x'"),
    ("1\t1\t5\t100\n2.5\t1\t3\t50\n", "line 2: user_id is not an integer: '2.5'"),
    ("1 1 5 100\n", "line 1: expected 4 '\\\\t'-separated fields"),
    ("1\t1\t5\t100\n0\t1\t3\t50\n", "line 2: user_id 0 is below 1"),
    ("1\t1\t5\t100\n\n3\t1\t3\t50\n", "line 3: user_id 3 exceeds the 2 distinct user_ids"),
    ("1\t1\t5\t99999999999999999999999\n", "line 1: timestamp 9+ does not fit in a 64-bit integer"),
    ("", "is empty"),
])
def test_u_data_messages_quote_the_field_and_the_rule(tmp_path, text, message):
    path = _write(tmp_path, text)
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


@SEEN_EVERY_ITEM
def test_numeric_and_string_readers_agree(tmp_path):
    frame = synthetic(30, 20, 300, seed=0)
    frame.to_csv(tmp_path / "ints.csv", index=False)
    # the same ids as strings that are not numbers take the string path
    text = frame.assign(user="u" + frame.user.astype(str), item="i" + frame.item.astype(str))
    text.to_csv(tmp_path / "text.csv", index=False)
    numeric = load_dataset("csv", tmp_path, "ints.csv")
    strings = load_dataset("csv", tmp_path, "text.csv")
    for name in ("train", "test"):
        for kind, ids in (("users", "user_ids"), ("items", "item_ids")):
            as_numbers = getattr(numeric, ids)[getattr(numeric, f"{name}_{kind}")]
            as_text = getattr(strings, ids)[getattr(strings, f"{name}_{kind}")]
            assert [text[1:] for text in as_text] == as_numbers.tolist()


# --- fuzzing: only the documented error escapes ----------------------------------------------

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


@pytest.mark.slow
@FUZZ
@given(blob=st.binary(max_size=400))
def test_random_bytes_only_raise_data_errors(tmp_path, blob):
    write_ncf_files(tmp_path, num_negatives=3)
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


@pytest.mark.slow
@FUZZ
@given(data=st.data())
def test_mutated_valid_files_only_raise_data_errors(tmp_path, data):
    write_ncf_files(tmp_path, num_negatives=3)
    (tmp_path / "ml-1m").mkdir(exist_ok=True)
    originals = {"u.data": GOOD_U_DATA.encode(), "data.csv": GOOD_CSV.encode(),
                 "ml-1m/ratings.dat": GOOD_ML1M.encode()}
    for name in ("toy.train.rating", "toy.test.rating", "toy.test.negative"):
        originals[name] = (tmp_path / name).read_bytes()
    for name, text in originals.items():
        (tmp_path / name).write_bytes(_mutate(text, data))
    for call in _fuzz_targets(tmp_path).values():
        _only_data_errors(call)


@pytest.mark.parametrize("chunk", [1 << 24, 5])  # 5: a field start on every chunk boundary
@pytest.mark.parametrize("twins", [("007", "7"), ("+7", "7"), ("-07", "-7")])
def test_ids_that_a_number_would_merge_stay_apart(tmp_path, monkeypatch, chunk, twins):
    monkeypatch.setattr(tables, "_CHUNK", chunk)
    path = tmp_path / "ids.csv"
    path.write_text("user,item\n" + "".join(f"{i},1\n" for i in range(8, 30))
                    + f"{twins[0]},1\n{twins[1]},2\n")
    users = read_table(path)["user"].astype(str).tolist()
    assert twins[0] in users and twins[1] in users
    plain = tmp_path / "plain.csv"
    plain.write_text("user,item\n10,1\n7,2\n")
    assert read_table(plain)["user"].dtype.kind == "i"  # the fast path still applies


# --- columns by name ---

def test_a_user_item_timestamp_header_splits_by_time(tmp_path):
    rows = csv_rows(num_users=30, per_user=5, seed=4)
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    write_csv(tmp_path / "d.csv", shuffled, header="user,item,timestamp")
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
    rows = csv_rows(num_users=10, per_user=5)
    write_csv(tmp_path / "d.csv", [(item, user, stamp) for user, item, stamp in rows],
               header=header)
    data = neumf.load_dataset("csv", tmp_path, "d.csv")
    assert set(data.user_ids.tolist()) == {f"u{i}" for i in range(10)}
    assert all(item.startswith("i") for item in data.item_ids.tolist())


def test_a_dataframe_is_read_by_column_name():
    rows = csv_rows(num_users=10, per_user=5)
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
    rows = csv_rows(num_users=8, per_user=4)
    write_csv(tmp_path / "d.csv", [(u, i) for u, i, _ in rows], header="shopper,thing")
    with pytest.raises(DataError, match="shopper.*thing"):
        neumf.load_dataset("csv", tmp_path, "d.csv")
    code, _, err = run_cli(["train", "--dataset", "csv", "--data-dir", str(tmp_path), "--name",
                         "d.csv", "--columns", "user,item", "--num-epochs", "1", "--k", "5",
                         "--quiet"])
    assert code == 0, err


def test_a_headerless_file_keeps_its_first_line(tmp_path):
    rows = [("user0", "item1", 1), ("user0", "item2", 2), ("user1", "item1", 3),
            ("user1", "item3", 4), ("user2", "item2", 5), ("user2", "item3", 6)]
    write_csv(tmp_path / "d.csv", rows, header=None)
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
    rows = csv_rows(num_users=10, per_user=5, seed=5)
    write_csv(tmp_path / "d.csv", [(stamp, item, user) for user, item, stamp in rows],
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
    write_csv(tmp_path / "d.csv", csv_rows())
    code, _, err = run_cli(["train", "--dataset", "csv", "--data-dir", str(tmp_path), "--name",
                         "d.csv", "--columns", columns, "--quiet"])
    assert code == 2 and words in one_error_line(err)


@pytest.mark.filterwarnings("ignore:.*single interaction:UserWarning")
@pytest.mark.filterwarnings("ignore:.*names no timestamp:UserWarning")  # said, and true here
def test_columns_as_a_mapping_take_the_header_names(tmp_path):
    write_csv(tmp_path / "d.csv", csv_rows(num_users=10, per_user=5))
    data = neumf.load_dataset("csv", tmp_path, "d.csv",
                              columns={"user": "item", "item": "user"})
    assert data.user_ids[0].startswith("i") and data.item_ids[0].startswith("u")
    with pytest.raises(DataError, match="must map roles"):
        neumf.load_dataset("csv", tmp_path, "d.csv", columns={"user": "usr", "item": "item"})


def test_a_data_dir_that_is_a_file_is_named(tmp_path):
    path = write_csv(tmp_path / "d.csv", csv_rows())
    for argv in (["--dataset", "csv", "--name", "d.csv"], []):
        code, _, err = run_cli(["train", *argv, "--data-dir", str(path), "--quiet"])
        assert code == 2 and f"data_dir {path} is a file, not a folder" in one_error_line(err)


def test_timestamps_mixing_seconds_and_dates_are_refused_naming_both(tmp_path):
    (tmp_path / "d.csv").write_text("user,item,timestamp\n1,1,1000000000\n"
                                    "1,2,2001-09-09T01:46:41\n2,1,1000000100\n2,3,1000000200\n")
    with pytest.raises(DataError, match=r"d.csv: timestamps mix numbers \(line 2: '1000000000'"
                                        r"\) and text \(line 3: '2001-09-09T01:46:41'\)"):
        neumf.load_dataset("csv", tmp_path, "d.csv")
    frame = pd.DataFrame({"user": [1, 1], "item": [1, 2], "timestamp": ["2001-01-01", "7"]})
    with pytest.raises(DataError, match=r"numbers \(row 1: '7'\) and text \(row 0"):
        neumf.from_frame(pd.concat([frame, frame.assign(user=2)]))


def test_columns_skipping_a_field_on_purpose_are_not_warned_about(tmp_path):
    path = write_csv(tmp_path / "d.csv", csv_rows(), header="")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*names no timestamp")
        neumf.load_dataset("csv", name=str(path), columns="user,item,-")
