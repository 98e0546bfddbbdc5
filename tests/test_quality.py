"""Issue 4: towers and baselines, pretraining, validation and early stopping, presets."""

from __future__ import annotations

import dataclasses

import mxnet as mx
import numpy as np
import pytest

from neumf import (
    GMF,
    MLP,
    PRESETS,
    FitConfig,
    NeuMF,
    Popularity,
    fit,
    load_dataset,
    load_model,
    validation_split,
    write_ncf,
)
from neumf.sampling import sampled_negatives


def _pairs(num_users, num_items):
    users = np.repeat(np.arange(num_users), num_items)
    items = np.tile(np.arange(num_items), num_users)
    return (mx.np.array(users, dtype="int32"), mx.np.array(items, dtype="int32"))


@pytest.mark.parametrize("make", [
    lambda: GMF(4, 5, 9), lambda: GMF(4, 5, 9, output_weights=False),
    lambda: MLP(3, 5, 9, [6, 2]), lambda: NeuMF(4, 5, 9, [6, 3], mlp_factors=3),
    lambda: NeuMF(2, 5, 9, [4], output_activation="sigmoid", mlp_factors=5)])
def test_every_model_scores_all_items_like_its_forward_pass(make):
    net = make()
    net.initialize(mx.init.Normal(0.5))
    net.hybridize()
    forward = net(*_pairs(5, 9)).asnumpy().reshape(5, 9)
    np.testing.assert_allclose(net.score_matrix(np.arange(5)), forward, rtol=1e-5, atol=1e-6)


def test_mf_is_the_plain_dot_product():
    net = GMF(3, 4, 6, output_weights=False)
    net.initialize(mx.init.Normal(1.0))
    expected = net.P.weight.data().asnumpy() @ net.Q.weight.data().asnumpy().T
    np.testing.assert_allclose(net.score_matrix(np.arange(4)), expected, rtol=1e-6)
    assert "prediction_layer.weight" not in net._collect_params_with_prefix()


def test_popularity_counts_training_interactions():
    net = Popularity(3, 5)
    net.initialize()
    net.fit_counts(np.array([4, 0, 4, 2, 4]))
    np.testing.assert_array_equal(net.score_matrix([0, 2]), [[1, 0, 1, 0, 3]] * 2)
    scores = net(mx.np.array([1, 2], dtype="int32"), mx.np.array([4, 1], dtype="int32"))
    np.testing.assert_array_equal(scores.asnumpy(), [[3], [0]])


def test_pretraining_loads_both_towers_and_weights_the_output_layer():
    gmf, mlp = GMF(4, 5, 9), MLP(3, 5, 9, [6, 2])
    net = NeuMF(4, 5, 9, [6, 2], mlp_factors=3)
    for block in (gmf, mlp, net):
        block.initialize(mx.init.Normal(1.0))
    net.load_towers(gmf, mlp, alpha=0.25)
    params = {name: p.data().asnumpy() for name, p in net._collect_params_with_prefix().items()}
    for tower in (gmf, mlp):
        for name, param in tower._collect_params_with_prefix().items():
            if name != "prediction_layer.weight":
                np.testing.assert_array_equal(params[name], param.data().asnumpy())
    np.testing.assert_allclose(params["prediction_layer.weight"], np.concatenate(
        [0.25 * gmf.prediction_layer.weight.data().asnumpy(),
         0.75 * mlp.prediction_layer.weight.data().asnumpy()], axis=1), rtol=1e-6)
    # the pretrained NeuMF's score is the alpha-weighted sum of the towers' scores
    np.testing.assert_allclose(
        net.score_matrix(np.arange(5)),
        0.25 * gmf.score_matrix(np.arange(5)) + 0.75 * mlp.score_matrix(np.arange(5)),
        rtol=1e-4, atol=1e-5)


def test_pretraining_refuses_mismatched_towers():
    gmf, mlp = GMF(4, 5, 9), MLP(3, 5, 9, [6, 2])
    net = NeuMF(4, 5, 9, [6, 2])  # MLP embeddings of 4, not 3
    for block in (gmf, mlp, net):
        block.initialize()
    with pytest.raises(ValueError, match="U.weight: pretrained shape"):
        net.load_towers(gmf, mlp)
    with pytest.raises(ValueError, match="alpha"):
        net.load_towers(gmf, mlp, alpha=1.5)


def test_validation_split_holds_out_each_users_latest_training_row(planted_dir):
    data = load_dataset("ml-100k", planted_dir)
    valid = validation_split(data)
    assert len(valid.test_users) == data.num_users
    assert len(valid.train_users) + len(valid.test_users) == len(data.train_users)
    for user in range(data.num_users):
        rows = data.train_users == user
        latest = data.train_items[rows][np.argmax(data.train_times[rows])]
        assert valid.test_items[valid.test_users == user].tolist() == [latest]
        assert latest not in valid.train_items[valid.train_users == user]
    # the held-out pairs are not the test pairs
    assert not set(zip(valid.test_users, valid.test_items)) & set(
        zip(data.test_users, data.test_items))


def test_early_stopping_stops_and_restores_the_best_epoch(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[4], num_epochs=40,
                 batch_size=64, lr=0.2, wd=0.0, validation=True, patience=2, k=5,
                 monitor="hr@5", verbose=False)
    values = [h["val_hr@5"] for h in result.history]
    best = int(np.argmax(values))
    assert len(result.history) == best + 1 + 2 < 40  # stopped two evaluations after the best
    assert result.best_epoch == best + 1
    # the net holds the best epoch's weights: re-evaluating gives the best value
    from neumf import evaluate_model
    valid = validation_split(result.data)
    again = evaluate_model(result.net, valid.test_users, valid.test_items, valid.train_users,
                           valid.train_items, result.num_items, [mx.cpu()], ks=(5,))
    assert again["hr@5"] == pytest.approx(values[best])


def test_early_stopped_run_resumes_without_training_more(planted_dir, tmp_path):
    settings = {"data_dir": planted_dir, "seed": 0, "num_factors": 4, "nums_hiddens": [4],
                    "num_epochs": 40, "batch_size": 64, "lr": 0.2, "wd": 0.0, "validation": True,
                    "patience": 2, "verbose": False}
    first = fit(out=tmp_path / "run", **settings)
    again = fit(resume=tmp_path / "run", verbose=False)
    assert len(again.history) == len(first.history)
    assert again.best_epoch == first.best_epoch
    assert again.metrics == pytest.approx(first.metrics)
    assert load_model(tmp_path / "run").best_epoch == first.best_epoch


def test_patience_without_validation_is_refused():
    with pytest.raises(ValueError, match="needs validation=True"):
        FitConfig(patience=3)


@pytest.mark.parametrize("model", ["gmf", "mlp", "mf", "popularity"])
def test_towers_and_baselines_in_the_same_harness(planted_dir, model, tmp_path):
    result = fit(data_dir=planted_dir, seed=0, model=model, num_factors=4, nums_hiddens=[8],
                 num_epochs=10, batch_size=64, lr=0.05, wd=0.0, k=10, verbose=False,
                 out=tmp_path / "run")
    assert set(result.metrics) == {"hr@10", "ndcg@10", "hr@50", "ndcg@50", "auc", "mrr"}
    loaded = load_model(tmp_path / "run")
    assert type(loaded.net) is type(result.net)
    np.testing.assert_allclose(loaded.net.score_matrix(np.arange(5)),
                               result.net.score_matrix(np.arange(5)))
    if model == "popularity":
        assert result.history == []
        # the planted groups have no popular items: about chance
        assert result.metrics["auc"] < 0.7
    else:  # a learned model finds the planted groups (MLP, the slowest: 0.80-0.92 on seeds 0-4)
        assert result.metrics["auc"] > 0.75


def test_fit_with_pretraining_reports_the_towers(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[8],
                 num_epochs=6, batch_size=64, lr=0.05, wd=0.0, pretrain=True,
                 pretrain_lr=0.05, pretrain_epochs=10, optimizer="sgd", verbose=False)
    assert set(result.towers) == {"gmf", "mlp"}
    assert all(metrics["auc"] > 0.7 for metrics in result.towers.values()), result.towers
    # fine-tuning starts from both towers and keeps at least the better one's quality
    assert result.metrics["auc"] > max(m["auc"] for m in result.towers.values()) - 0.02


def test_presets_are_valid_configs_and_overridable():
    for _name, settings in PRESETS.items():
        FitConfig(**settings)
    assert dict(PRESETS["tutorial"]) == {}
    assert PRESETS["neumf-pretrained"]["pretrain"] and PRESETS["gmf"]["model"] == "gmf"
    with pytest.raises(TypeError):
        PRESETS["best"]["lr"] = 1.0  # read-only


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="preset must be one of"):
        fit(preset="fastest")


@pytest.mark.parametrize("preset", ["gmf", "mlp", "neumf", "neumf-pretrained"])
def test_paper_presets_on_ncf_files(planted_dir, tmp_path, preset):
    data = load_dataset("ml-100k", planted_dir)
    negatives = sampled_negatives(data, 20, seed=0)
    write_ncf(data, tmp_path, "toy", negatives)
    # the paper's sizes and learning rate are for ML-1M: a few steps suffice here
    small = {"num_epochs": 8, "num_factors": 8, "mlp_factors": 8, "nums_hiddens": [16, 8],
                 "batch_size": 64, "pretrain_lr": 0.02, "pretrain_epochs": 8}
    if preset != "neumf-pretrained":
        small["lr"] = 0.02
    result = fit(dataset="ncf", data_dir=tmp_path, name="toy", preset=preset, seed=0,
                 verbose=False, **small)
    assert {"hr@10", "ndcg@10"} <= set(result.metrics)
    assert result.config.protocol == "sampled" and result.config.loss == "log"
    # 21 candidates: chance HR@10 is 10/21
    assert result.metrics["hr@10"] > 0.7, result.metrics


def test_write_ncf_round_trips(planted_dir, tmp_path):
    data = load_dataset("ml-100k", planted_dir)
    negatives = sampled_negatives(data, 7, seed=1)
    negatives[0, 5:] = -1  # a shorter row
    write_ncf(data, tmp_path, "toy", negatives)
    back = load_dataset("ncf", tmp_path, "toy")
    for field in ("train_users", "train_items", "test_users", "test_items"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))
    np.testing.assert_array_equal(back.test_negatives, negatives)
    np.testing.assert_array_equal(back.train_times, data.train_times)  # validation uses them
    assert (back.num_users, back.num_items) == (data.num_users, data.num_items)


def test_config_fields_round_trip_with_new_fields():
    config = FitConfig(**PRESETS["neumf-pretrained"])
    assert FitConfig(**dataclasses.asdict(config)) == config


def test_eval_step_zero_ranks_the_test_set_once(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[4], num_epochs=3,
                 batch_size=64, eval_step=0, k=10, verbose=False)
    assert all(np.isnan(h["hit_rate"]) and h["eval_seconds"] == 0 for h in result.history)
    assert result.hit_rate == result.metrics["hr@10"] and result.auc == result.metrics["auc"]
    with pytest.raises(ValueError, match="validation needs per-epoch evaluation"):
        FitConfig(eval_step=0, validation=True)


def test_fit_reports_its_seconds(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_epochs=1, verbose=False)
    assert 0 < result.seconds["wall"] < 120 and result.seconds["cpu"] > 0
    assert result.seconds["wall"] >= sum(h["train_seconds"] for h in result.history)
