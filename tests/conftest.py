"""Shared fixtures and helpers: seeds, synthetic interaction data, files in the
u.data and NCF formats, small CSV files, the real data directory, device lists,
the CLI run in-process."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from neumf.cli import main
from neumf.generate import synthetic

# Synthetic frames' heaviest users have seen every item (said by a warning, and expected).
SEEN_EVERY_ITEM = pytest.mark.filterwarnings("ignore:.*interacted with every one:UserWarning")
# ... and some test pairs of small catalogues have no more candidates than a cut-off.
FEW_CANDIDATES = pytest.mark.filterwarnings("ignore:.*or fewer candidates:UserWarning")
# ... and baselines trained beside the models get the models' training settings.
NO_EPOCHS = pytest.mark.filterwarnings("ignore:.*computed in closed form:UserWarning")


@pytest.fixture(autouse=True)
def _seed():
    mx.random.seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def planted_interactions(num_groups=4, users_per_group=20, items_per_group=15, per_user=8,
                         seed=0):
    """Users in groups that each interact only with their own group's items.

    Returns 1-based ``(users, items, ratings, timestamps)`` arrays with
    ``per_user + 1`` distinct items per user and distinct timestamps, so the
    seq-aware test item of every user is in its group: the right answer is known.
    """
    rng = np.random.default_rng(seed)
    users, items = [], []
    for group in range(num_groups):
        group_items = np.arange(group * items_per_group, (group + 1) * items_per_group)
        for member in range(users_per_group):
            user = group * users_per_group + member
            chosen = rng.choice(group_items, size=per_user + 1, replace=False)
            users.extend([user] * len(chosen))
            items.extend(chosen.tolist())
    users = np.asarray(users) + 1
    items = np.asarray(items) + 1
    ratings = rng.integers(1, 6, size=len(users))
    stamps = 880_000_000 + rng.permutation(len(users)) * 7
    return users, items, ratings, stamps


def write_u_data(folder: Path, columns, name="u.data") -> Path:
    """Write tab-separated rows as ``<folder>/ml-100k/<name>``; returns the data dir."""
    target = Path(folder) / "ml-100k"
    target.mkdir(parents=True, exist_ok=True)
    rows = np.column_stack(columns)
    (target / name).write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    return Path(folder)


def write_ncf_files(folder, name="toy", num_negatives=20, seed=0):
    """Files in the NCF authors' format built from planted data (0-based ids);
    returns the test pairs' users and items."""
    users, items, _, stamps = planted_interactions(seed=seed)
    users, items = users - 1, items - 1
    rng = np.random.default_rng(seed)
    order = np.lexsort((stamps, users))
    last = np.r_[users[order][1:] != users[order][:-1], True]
    test, train = order[last], order[~last]
    with open(folder / f"{name}.train.rating", "w") as handle:
        handle.writelines(f"{users[j]}\t{items[j]}\t5\t{stamps[j]}\n" for j in train)
    with open(folder / f"{name}.test.rating", "w") as handle:
        handle.writelines(f"{users[j]}\t{items[j]}\t5\t{stamps[j]}\n" for j in test)
    with open(folder / f"{name}.test.negative", "w") as handle:
        for j in test:
            seen = set(items[users == users[j]].tolist())
            pool = np.array([i for i in range(60) if i not in seen])
            negatives = rng.choice(pool, size=num_negatives, replace=False)
            handle.write(f"({users[j]},{items[j]})\t" + "\t".join(map(str, negatives)) + "\n")
    return users[test], items[test]


@pytest.fixture
def planted_dir(tmp_path):
    """A data directory whose ml-100k/u.data holds planted group structure."""
    return write_u_data(tmp_path, planted_interactions())


@pytest.fixture(scope="module")
def taste_frame():
    """A small synthetic frame with four strong taste groups (a model can learn them)."""
    return synthetic(120, 90, 2400, seed=3, num_groups=4, affinity=0.9)


@pytest.fixture
def ml100k_dir():
    """The real MovieLens-100K directory, or skip."""
    folder = os.environ.get("NEUMF_DATA_DIR")
    if not folder or not (Path(folder) / "ml-100k" / "u.data").is_file():
        pytest.skip("MovieLens-100K not available: set NEUMF_DATA_DIR to a folder holding "
                    "ml-100k/u.data (see ../shared/data/README.md)")
    return Path(folder)


@pytest.fixture(params=[1, 2], ids=["1ctx", "2ctx"])
def devices(request):
    return [mx.cpu(i) for i in range(request.param)]


# --- shared by the module tests: small CSV files, the CLI in-process --------------

QUICK = {"seed": 0, "num_epochs": 1, "batch_size": 64, "k": 5, "ks": (5, 10),
         "verbose": False}
# the small files made here leave a few items in the test set only (said, and expected)


def csv_rows(num_users=12, num_items=40, per_user=6, seed=0):
    """``(user, item, timestamp)`` rows with raw string ids; every user's items distinct."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        items = rng.choice(num_items, size=per_user, replace=False)
        stamps = 1_000_000_000 + rng.permutation(per_user) * 60 + user
        rows.extend((f"u{user}", f"i{item}", int(stamp)) for item, stamp in zip(items, stamps))
    return rows


def write_csv(path: Path, rows, header="user,item,timestamp") -> Path:
    lines = ([header] if header else []) + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path):
    return {path: file_digest(path) for path in folder.rglob("*") if path.is_file()}


def run_cli(argv):
    """``neumf`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own exits
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("neumf: error:")]
    assert len(lines) == 1, err
    return lines[0]
