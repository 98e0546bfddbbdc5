"""The NCF development protocol (issue 15): a validation split in the NCF format
made from a training file alone."""

import numpy as np

import neumf
from neumf.datasets import ncf_validation_split


def _train_file(folder, name="toy"):
    """An NCF training file: 30 users x 25 items, each user's lines newest first,
    the first users with real timestamps, the rest with placeholder zeros."""
    rng = np.random.default_rng(0)
    lines = []
    for user in range(30):
        items = rng.choice(25, size=6, replace=False)
        stamps = [1_000_000 - 10 * n for n in range(6)] if user < 5 else [0] * 6
        lines += [f"{user}\t{item}\t1\t{stamp}" for item, stamp in zip(items, stamps)]
    (folder / f"{name}.train.rating").write_text("\n".join(lines) + "\n")
    return lines


def test_newest_line_of_each_user_is_held_out_with_unseen_negatives(tmp_path):
    lines = _train_file(tmp_path)
    paths = ncf_validation_split(tmp_path, "toy", tmp_path / "dev", negatives=10, seed=0)
    assert [path.name for path in paths] == ["toy-validation.train.rating",
                                            "toy-validation.test.rating",
                                            "toy-validation.test.negative"]
    data = neumf.load_dataset("ncf", tmp_path / "dev", "toy-validation")
    newest = {int(line.split("\t")[0]): int(line.split("\t")[1])
              for line in reversed(lines)}  # the first line of each user wins
    assert dict(zip(data.test_users.tolist(), data.test_items.tolist())) == newest
    assert len(data.train_users) == len(lines) - 30
    for user, row in zip(data.test_users, data.test_negatives):
        rated = {int(line.split("\t")[1]) for line in lines if int(line.split("\t")[0]) == user}
        assert len(set(row.tolist())) == 10 and not set(row.tolist()) & rated
    assert not (tmp_path / "toy.test.rating").exists()  # the real test files are never made


def test_presets_run_on_the_validation_split(tmp_path):
    _train_file(tmp_path)
    ncf_validation_split(tmp_path, "toy", tmp_path, negatives=10, seed=0)
    result = neumf.fit(dataset="ncf", data_dir=tmp_path, name="toy-validation", preset="gmf",
                       num_epochs=2, num_factors=4, mlp_factors=4, seed=0, verbose=False)
    assert 0 <= result.metrics["hr@10"] <= 1 and result.config.protocol == "sampled"
