"""``fit()``: whole runs on small data (and, marked slow, on MovieLens-100K),
its settings reaching the model and trainer, early stopping, pretraining,
the towers and baselines, the paper's presets, several devices, and the
checks it makes before any work."""

import math
import warnings

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

import neumf
from conftest import FEW_CANDIDATES, NO_EPOCHS, SEEN_EVERY_ITEM, write_ncf_files
from neumf import (
    PRESETS,
    CollapseWarning,
    FitConfig,
    evaluate_model,
    fit,
    load_dataset,
    load_model,
    serving,
)
from neumf.datasets import write_ncf
from neumf.interactions import validation_split
from neumf.sampling import sampled_negatives

HISTORY_KEYS = {"epoch", "loss", "hit_rate", "auc", "train_seconds", "eval_seconds",
                "examples_per_sec"}


def _params(net):
    return {name: p.data().asnumpy() for name, p in net._collect_params_with_prefix().items()}


def test_fit_on_planted_data(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_epochs=8, batch_size=64, k=5, verbose=False)
    assert (result.num_users, result.num_items) == (80, 60)
    assert isinstance(result.net, neumf.NeuMF) and result.net.output_activation is None
    assert len(result.history) == 8 and set(result.history[0]) >= HISTORY_KEYS
    assert result.hit_rate == result.history[-1]["hit_rate"] > 0.4  # chance is about 0.1
    assert result.auc == result.history[-1]["auc"] > 0.8
    # the default ks (10, 50) become 5, a tenth of the 60 items
    assert set(result.metrics) == {"hr@5", "ndcg@5", "auc", "mrr"}
    assert result.metrics["hr@5"] == pytest.approx(result.hit_rate)
    assert result.metrics["auc"] == pytest.approx(result.auc)


def test_fit_is_repeatable_with_a_seed(planted_dir):
    runs = [fit(data_dir=planted_dir, seed=3, num_epochs=2, batch_size=64, verbose=False)
            for _ in range(2)]
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    assert runs[0].hit_rate == runs[1].hit_rate


def test_overrides_reach_the_model_and_trainer(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=3, nums_hiddens=[5, 2],
                 num_epochs=1, batch_size=32, lr=0.02, wd=0.0, optimizer="sgd", loss="hinge",
                 devices=[mx.cpu(0), mx.cpu(1)], verbose=False)
    assert result.config.num_factors == 3 and result.config.nums_hiddens == (5, 2)
    shapes = {n: p.shape for n, p in result.net._collect_params_with_prefix().items()}
    assert shapes["P.weight"] == (80, 3) and shapes["mlp.1.weight"] == (2, 5)
    assert result.net.collect_params().list_ctx() == [mx.cpu(0), mx.cpu(1)]


def test_tutorial_exact_uses_the_sigmoid(planted_dir):
    # on this small planted set the tutorial's setting still learns; on ML-100K it
    # collapses (test_tutorial_exact_collapses_and_warns); with stronger decay it
    # collapses here too
    result = fit(data_dir=planted_dir, seed=0, num_epochs=1, tutorial_exact=True, verbose=False)
    assert result.net.output_activation == "sigmoid"
    with pytest.warns(CollapseWarning):
        fit(data_dir=planted_dir, seed=0, num_epochs=6, batch_size=64, wd=1e-3,
            tutorial_exact=True, verbose=False)


def test_zero_epochs_rank_the_untrained_model(planted_dir):
    # hit_rate and auc are the final weights' test metrics (here: the initial weights')
    result = fit(data_dir=planted_dir, num_epochs=0, verbose=False)
    assert result.history == [] and result.hit_rate == result.metrics["hr@5"]
    assert 0.3 < result.metrics["auc"] < 0.7  # an untrained network ranks at about chance


def test_hit_rate_is_the_final_one_when_the_last_epoch_is_not_evaluated(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_epochs=4, eval_step=3, batch_size=64,
                 k=5, verbose=False)
    assert [h["epoch"] for h in result.history if not math.isnan(h["hit_rate"])] == [3]
    assert result.hit_rate == result.metrics["hr@5"] and result.auc == result.metrics["auc"]


@pytest.mark.slow
def test_log_loss_with_several_negatives_learns(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_epochs=6, batch_size=64, k=5, loss="log",
                 num_negatives=4, verbose=False)
    assert result.history[0]["examples_per_sec"] > 0
    assert result.hit_rate > 0.4  # chance is about 0.1


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


# --- checks before any work -------------------------------------------------------------------

@pytest.mark.parametrize("overrides, error, message", [
    ({"num_factor": 10}, TypeError, "num_factor"),
    ({"optimizer": "adamw"}, ValueError, "optimizer must be one of"),
    ({"loss": "bce"}, ValueError, "loss must be one of"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
    ({"nums_hiddens": []}, ValueError, "nums_hiddens must be a non-empty list"),
    ({"lr": -1.0}, ValueError, "lr must be positive"),
    ({"split_mode": "seq_aware"}, ValueError, "split_mode must be one of"),
    ({"biases": "yes"}, TypeError, "biases must be True or False"),
])
def test_bad_overrides_fail_before_any_work(tmp_path, overrides, error, message):
    with pytest.raises(error, match=message):
        fit(data_dir=tmp_path / "nothing-here", **overrides)
    assert not (tmp_path / "nothing-here").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"devices": [mx.gpu(3)]}, "device gpu\\(3\\) does not exist"),
    ({"devices": ["cpu"]}, "devices must be MXNet contexts"),
    ({"devices": []}, "devices must list at least one context"),
    ({"num_factors": -1}, "num_factors must be a positive integer"),
    ({"nums_hiddens": ()}, "nums_hiddens must be a non-empty list"),
    ({"protocol": "leave-two-out"}, "protocol must be one of"),
    ({"model": "mlp", "biases": True}, "biases apply to models neumf, gmf and mf"),
])
def test_impossible_arguments_fail_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        fit(data_dir=tmp_path / "never-read", verbose=False, **overrides)
    assert not (tmp_path / "never-read").exists()


def test_k_larger_than_the_catalogue(planted_dir):
    with pytest.raises(ValueError, match="k=100 is larger than the catalogue of 60 items"):
        fit(data_dir=planted_dir, k=100, verbose=False)


def test_no_test_pairs_is_said_not_only_shown_as_nan(tmp_path):
    # one interaction per user: all kept for training, nothing to test
    frame = pd.DataFrame({"user": [1, 2, 3, 4], "item": [1, 2, 3, 1], "rating": 5,
                          "timestamp": [1, 2, 3, 4]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(dataset=frame, num_epochs=1, k=1, ks=(1,), verbose=False)
    assert any("there are no test pairs" in str(w.message) for w in caught), caught
    assert math.isnan(result.metrics["hr@1"])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(planted_dir, tmp_path):
    run = tmp_path / "run"
    fit(data_dir=planted_dir, seed=0, num_epochs=2, batch_size=64, out=run, verbose=False)
    with pytest.raises(FloatingPointError, match="epoch 3, batch \\d+: the loss is (nan|inf)"):
        fit(resume=run, num_epochs=4, lr=1e38, verbose=False)
    saved = load_model(run)
    assert len(saved.history) == 2
    assert np.isfinite(saved.net.score_matrix(np.arange(saved.num_users))).all()


# --- validation and early stopping --------------------------------------------------------------

def test_early_stopping_stops_and_restores_the_best_epoch(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[4], num_epochs=40,
                 batch_size=64, lr=0.2, wd=0.0, validation=True, patience=2, k=5,
                 monitor="hr@5", verbose=False)
    values = [h["val_hr@5"] for h in result.history]
    best = int(np.argmax(values))
    assert len(result.history) == best + 1 + 2 < 40  # stopped two evaluations after the best
    assert result.best_epoch == best + 1
    # the net holds the best epoch's weights: re-evaluating gives the best value
    valid = validation_split(result.data)
    again = evaluate_model(result.net, valid.test_users, valid.test_items, valid.train_users,
                           valid.train_items, result.num_items, [mx.cpu()], ks=(5,))
    assert again["hr@5"] == pytest.approx(values[best])


@pytest.mark.slow
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


@NO_EPOCHS
# --- towers, baselines, pretraining and the paper's presets ----------------------------------

@pytest.mark.parametrize("model", [pytest.param(model, marks=pytest.mark.slow)
                                   for model in ("gmf", "mlp", "mf")] + ["popularity"])
def test_towers_and_baselines_in_the_same_harness(planted_dir, model, tmp_path):
    result = fit(data_dir=planted_dir, seed=0, model=model, num_factors=4, nums_hiddens=[8],
                 num_epochs=10, batch_size=64, lr=0.05, wd=0.0, k=10, verbose=False,
                 out=tmp_path / "run")
    assert set(result.metrics) == {"hr@5", "ndcg@5", "hr@10", "ndcg@10", "auc", "mrr"}
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


@pytest.mark.slow
def test_fit_with_pretraining_reports_the_towers(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[8],
                 num_epochs=6, batch_size=64, lr=0.05, wd=0.0, pretrain=True,
                 pretrain_lr=0.05, pretrain_epochs=10, optimizer="sgd", verbose=False)
    assert set(result.towers) == {"gmf", "mlp"}
    assert all(metrics["auc"] > 0.7 for metrics in result.towers.values()), result.towers
    # fine-tuning starts from both towers and keeps at least the better one's quality
    assert result.metrics["auc"] > max(m["auc"] for m in result.towers.values()) - 0.02


def test_a_dot_product_tower_and_per_tower_settings_reach_pretraining(planted_dir,
                                                                     monkeypatch):
    trained = []
    original = neumf.experiment.train

    def recording(data, config, *args, **kwargs):
        trained.append((config.model, config.num_epochs, config.lr))
        return original(data, config, *args, **kwargs)

    monkeypatch.setattr(neumf.experiment, "train", recording)
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[8], num_epochs=0,
                 batch_size=64, pretrain=True, gmf_tower="mf", pretrain_epochs=2,
                 pretrain_lr=0.02, mlp_pretrain_epochs=1, mlp_pretrain_lr=0.01, alpha=0.7,
                 eval_step=0, verbose=False)
    assert trained[1:] == [("mf", 2, 0.02), ("mlp", 1, 0.01)]  # after NeuMF's own call
    assert set(result.towers) == {"mf", "mlp"}
    h = result.net.prediction_layer.weight.data().asnumpy()[0, :4]
    np.testing.assert_allclose(h, np.full(4, 0.7), rtol=1e-6)  # no fine-tuning: h = alpha


@pytest.mark.parametrize("sparse", [False, True])
def test_biases_train_save_load_and_serve(planted_dir, tmp_path, sparse):
    result = fit(data_dir=planted_dir, seed=0, model="mf", biases=True, num_factors=4,
                 num_epochs=4, batch_size=64, lr=0.05, k=10, sparse=sparse, verbose=False,
                 out=tmp_path / "run")
    weights = _params(result.net)
    assert weights["item_bias.weight"].shape == (60, 1)
    assert np.abs(weights["item_bias.weight"]).max() > 0.05  # trained, not left at the start
    assert result.metrics["auc"] > 0.75
    loaded = load_model(tmp_path / "run")
    assert loaded.net.biases and loaded.config.biases
    np.testing.assert_allclose(loaded.net.score_matrix(np.arange(5)),
                               result.net.score_matrix(np.arange(5)))
    users = result.data.user_ids[:4].tolist()
    served = serving.load(result.export(tmp_path / "export")).recommend(users, k=5)
    assert served.items == neumf.recommend(result, users, k=5).items


def test_pretraining_with_biases_gives_them_to_neumf(planted_dir):
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[8], num_epochs=0,
                 batch_size=64, pretrain=True, gmf_tower="mf", biases=True, pretrain_epochs=2,
                 pretrain_lr=0.02, mlp_pretrain_epochs=1, alpha=0.7, eval_step=0,
                 verbose=False)
    assert result.net.biases and set(result.towers) == {"mf", "mlp"}
    # no fine-tuning: NeuMF's biases are alpha times the MF tower's, which learned some
    assert np.abs(_params(result.net)["item_bias.weight"]).max() > 0.7 * 0.05


def test_pretrained_towers_share_the_negatives_drawn_once(planted_dir, monkeypatch):
    drawn = []
    original = neumf.experiment.sampled_negatives

    def counting(data, count, seed):
        drawn.append((len(data.test_users), count))
        return original(data, count, seed)

    monkeypatch.setattr(neumf.experiment, "sampled_negatives", counting)
    result = fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[8], num_epochs=1,
                 batch_size=64, pretrain=True, pretrain_epochs=1, protocol="sampled",
                 eval_negatives=30, validation=True, k=5, ks=(5,), verbose=False)
    # the test pairs' and the validation pairs' negatives, each drawn once with the count asked
    assert drawn == [(80, 30), (80, 30)] and set(result.towers) == {"gmf", "mlp"}


@pytest.mark.parametrize("preset", ["gmf", pytest.param("mlp", marks=pytest.mark.slow),
                                    pytest.param("neumf", marks=pytest.mark.slow),
                                    pytest.param("neumf-pretrained", marks=pytest.mark.slow)])
def test_paper_presets_on_ncf_files(planted_dir, tmp_path, preset):
    data = load_dataset("ml-100k", planted_dir)
    negatives = sampled_negatives(data, 20, seed=0)
    write_ncf(data, tmp_path, "toy", negatives)
    # the paper's sizes and learning rate are for ML-1M: a few steps suffice here
    small = {"num_epochs": 8, "num_factors": 8, "mlp_factors": 8, "nums_hiddens": [16, 8],
             "batch_size": 64}
    if preset == "neumf-pretrained":
        small.update(pretrain_lr=0.02, pretrain_epochs=8, mlp_pretrain_lr=0.02,
                     mlp_pretrain_epochs=8)
    else:
        small["lr"] = 0.02
    result = fit(dataset="ncf", data_dir=tmp_path, name="toy", preset=preset, seed=0,
                 verbose=False, **small)
    assert {"hr@10", "ndcg@10"} <= set(result.metrics)
    assert result.config.protocol == "sampled" and result.config.loss == "log"
    # 21 candidates: chance HR@10 is 10/21
    assert result.metrics["hr@10"] > 0.7, result.metrics


def test_paper_protocol_on_ncf_files_in_one_call(tmp_path):
    write_ncf_files(tmp_path)
    result = fit(dataset="ncf", data_dir=tmp_path, name="toy", protocol="sampled", seed=0,
                 num_epochs=8, batch_size=64, k=10, ks=(10,), verbose=False)
    assert {"hr@10", "ndcg@10", "auc", "mrr"} <= set(result.metrics)
    # 21 candidates per test item: chance HR@10 is 10/21; the planted groups are learned
    assert result.metrics["hr@10"] > 0.8 and result.metrics["ndcg@10"] > 0.4


# --- several devices ----------------------------------------------------------------------------

@SEEN_EVERY_ITEM
@FEW_CANDIDATES
@pytest.mark.parametrize("kvstore", ["device", "local"])
@pytest.mark.parametrize("num_devices", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_several_contexts_match_one(taste_frame, kvstore, num_devices):
    # SGD: Adam divides by the gradient's magnitude, which turns the rounding
    # differences of summing per-device gradients in another order into
    # full-size steps wherever gradients are ~0 (a dead ReLU's weights)
    settings = {"dataset": taste_frame, "seed": 0, "num_epochs": 3, "batch_size": 256,
                "lr": 1.0, "optimizer": "sgd", "wd": 1e-4, "init_sigma": 0.3, "verbose": False,
                "eval_step": 3}
    one = fit(devices=[mx.cpu(0)], **settings)
    many = fit(devices=[mx.cpu(i) for i in range(num_devices)], kvstore=kvstore, **settings)
    reference = _params(one.net)
    for name, value in _params(many.net).items():
        np.testing.assert_allclose(value, reference[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert many.metrics["auc"] == pytest.approx(one.metrics["auc"], abs=1e-3)


# --- MovieLens-100K (skipped without the data) ------------------------------------------------

@pytest.mark.slow
def test_default_fit_learns(ml100k_dir):
    # target: mean over seeds 0, 1, 2 of HR@50 >= 0.28 and AUC >= 0.84 with the
    # tutorial's hyperparameters; a popularity ranking scores 0.215 and 0.799
    results = [fit(data_dir=ml100k_dir, seed=seed, verbose=False) for seed in (0, 1, 2)]
    assert np.mean([r.hit_rate for r in results]) >= 0.28
    assert np.mean([r.auc for r in results]) >= 0.84
    assert all(r.history[-1]["loss"] < 0.3 for r in results)


@pytest.mark.slow
def test_tutorial_exact_collapses_and_warns(ml100k_dir):
    with pytest.warns(CollapseWarning, match="after epoch 1"):
        result = fit(data_dir=ml100k_dir, seed=0, num_epochs=2, tutorial_exact=True,
                     verbose=False)
    assert result.history[-1]["score_spread"] == 0.0
    assert result.history[-1]["loss"] == pytest.approx(np.log(2), abs=1e-4)
    assert result.hit_rate < 0.05 and result.auc == pytest.approx(0.5, abs=0.01)  # chance


def test_a_pretraining_preset_with_pretraining_off_says_what_it_trains(planted_dir):
    # the warning gives the run's own settings, not the preset's where they were changed
    with pytest.warns(UserWarning, match="optimizer 'sgd', lr 0.01 and num_epochs 1 .*"
                                         "preset 'neumf' is the one tuned"):
        result = fit(data_dir=planted_dir, preset="neumf-pretrained", pretrain=False,
                     num_epochs=1, num_factors=4, mlp_factors=4, nums_hiddens=[8], k=10,
                     ks=(10,), protocol="full", verbose=False)
    assert not result.config.pretrain and not result.towers


def test_pretraining_settings_without_pretraining_are_named(planted_dir):
    with pytest.warns(UserWarning, match="gmf_tower, mlp_pretrain_epochs apply only with "
                                         "pretrain=True") as caught:
        fit(data_dir=planted_dir, seed=0, num_epochs=0, gmf_tower="mf", mlp_pretrain_epochs=2,
            verbose=False)
    assert any(record.filename == __file__ for record in caught)  # points at the caller


@pytest.mark.parametrize("sparse", [False, True])
def test_a_linear_schedule_sets_each_epochs_rate_and_resumes_it(planted_dir, tmp_path,
                                                                monkeypatch, sparse):
    rates = []
    original = neumf.training._one_epoch

    def recording(net, loader, loss, trainer, devices, epoch, *args):
        rate = trainer.learning_rate
        if sparse:  # the tables' own optimizer, beside the dense layers' Trainer
            assert next(arg for arg in args if hasattr(arg, "lazy")).lazy.lr == rate
        rates.append((epoch, rate))
        return original(net, loader, loss, trainer, devices, epoch, *args)

    monkeypatch.setattr(neumf.training, "_one_epoch", recording)
    settings = {"seed": 0, "num_factors": 4, "nums_hiddens": [8], "batch_size": 64, "lr": 0.04,
                "lr_schedule": "linear", "sparse": sparse, "eval_step": 0, "verbose": False}
    fit(data_dir=planted_dir, num_epochs=2, out=tmp_path / "run", **settings)
    resumed = fit(resume=tmp_path / "run", num_epochs=4, verbose=False)  # E: the new total
    np.testing.assert_allclose(rates, [(1, 0.04), (2, 0.02), (3, 0.02), (4, 0.01)])
    assert [stats["lr"] for stats in resumed.history] == [rate for _, rate in rates]
    with pytest.raises(ValueError, match="lr_schedule"):
        fit(resume=tmp_path / "run", num_epochs=5, lr_schedule="constant", verbose=False)


def test_a_presets_schedule_refused_across_processes_says_how_to_train_it():
    with pytest.raises(ValueError, match=r"--lr-schedule constant\) \(preset 'mf' sets "
                                         r"lr_schedule='linear': give another value"):
        fit(preset="mf", kvstore="dist_sync", verbose=False)
    assert FitConfig(**{**PRESETS["mf"], "kvstore": "dist_sync",
                        "lr_schedule": "constant"}).training.distributed


def test_each_pretrained_tower_follows_the_schedule_over_its_own_epochs(planted_dir,
                                                                       monkeypatch):
    rates = []
    original = neumf.training._one_epoch

    def recording(net, loader, loss, trainer, devices, epoch, *args):
        rates.append((type(net).__name__, epoch, trainer.learning_rate))
        return original(net, loader, loss, trainer, devices, epoch, *args)

    monkeypatch.setattr(neumf.training, "_one_epoch", recording)
    fit(data_dir=planted_dir, seed=0, num_factors=4, nums_hiddens=[8], num_epochs=1,
        batch_size=64, lr=0.01, pretrain=True, pretrain_epochs=2, pretrain_lr=0.02,
        mlp_pretrain_epochs=1, lr_schedule="linear", sparse=False, eval_step=0, verbose=False)
    assert [(name, epoch) for name, epoch, _ in rates] == [
        ("GMF", 1), ("GMF", 2), ("MLP", 1), ("NeuMF", 1)]
    np.testing.assert_allclose([rate for *_, rate in rates], [0.02, 0.01, 0.02, 0.01])


@pytest.mark.parametrize("model, sparse", [("neumf", False), ("neumf", True), ("mf", True)])
def test_a_linear_schedule_trains_as_its_rates_epoch_by_epoch_on_two_devices(
        planted_dir, tmp_path, model, sparse):
    # mf with sparse tables has no Trainer at all: the rate reaches the tables alone
    devices = [mx.cpu(0), mx.cpu(1)]
    settings = {"seed": 0, "model": model, "num_factors": 4, "nums_hiddens": [8],
                "batch_size": 64, "sparse": sparse, "eval_step": 0, "verbose": False,
                "devices": devices}
    scheduled = fit(data_dir=planted_dir, num_epochs=2, lr=0.04, lr_schedule="linear",
                    **settings)
    fit(data_dir=planted_dir, num_epochs=1, lr=0.04, out=tmp_path / "run", **settings)
    by_hand = fit(resume=tmp_path / "run", num_epochs=2, lr=0.02, verbose=False,
                  devices=devices)
    assert scheduled.history[-1]["loss"] == by_hand.history[-1]["loss"]
    for name, values in _params(scheduled.net).items():
        np.testing.assert_array_equal(values, _params(by_hand.net)[name], err_msg=name)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_fit_takes_what_from_frame_and_load_dataset_return(taste_frame, tmp_path):
    data = neumf.from_frame(taste_frame)
    settings = {"num_epochs": 1, "seed": 0, "verbose": False, "k": 10, "ks": (10,)}
    from_data = fit(dataset=data, out=tmp_path / "run", **settings)
    from_frame = fit(dataset=taste_frame, **settings)
    assert from_data.metrics == from_frame.metrics
    assert fit(resume=tmp_path / "run", dataset=data, num_epochs=2, verbose=False).history
    other = neumf.from_frame(taste_frame.iloc[::2])
    with pytest.raises(neumf.RunError, match="the RecData given .* is not the one"):
        fit(resume=tmp_path / "run", dataset=other, num_epochs=3, verbose=False)
    # a named source cannot stand for an object's data (was a KeyError: 'recdata')
    for named in ({"data_dir": tmp_path}, {"dataset": "ml-100k"}, {"name": "x.csv"}):
        with pytest.raises(neumf.RunError, match="trained on a RecData given to fit"):
            fit(resume=tmp_path / "run", num_epochs=3, verbose=False, **named)
    assert fit(resume=tmp_path / "run", num_epochs=3, verbose=False).history[-1]["epoch"] == 3


@pytest.mark.parametrize("num_items, protocol, expected", [
    (1682, "full", (50, (10, 50), "ndcg@10")),     # ML-100K keeps the tutorial's 50
    (200, "full", (20, (10, 20), "ndcg@10")),      # a tenth of the catalogue
    (60, "full", (5, (5,), "ndcg@5")),
    (3706, "sampled", (10, (10,), "ndcg@10")),    # 99 negatives: 100 candidates
])
def test_default_cut_offs_are_a_tenth_of_the_candidates_at_most(num_items, protocol,
                                                                 expected):
    data = neumf.RecData("toy", np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64),
                         np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64), 1, num_items,
                         np.array(["u"]), np.arange(num_items).astype(str))
    config = neumf.planning.fit_to_catalogue(FitConfig(protocol=protocol), data, set())
    assert (config.k, config.ks, config.monitor) == expected
    given = neumf.planning.fit_to_catalogue(FitConfig(k=50, ks=(50,)), data,
                                               {"k", "ks"}) if num_items >= 50 else None
    assert given is None or (given.k, given.ks) == (50, (50,))  # a cut-off given is kept
