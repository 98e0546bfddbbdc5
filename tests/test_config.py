"""Settings: FitConfig's defaults and checks, its round trips, and the presets."""

import dataclasses

import numpy as np
import pytest

from neumf import PRESETS, FitConfig, fit


def test_defaults_are_the_tutorials():
    config = FitConfig()
    assert (config.num_factors, config.nums_hiddens, config.num_epochs, config.batch_size,
            config.lr, config.wd, config.optimizer, config.loss, config.init_sigma) == \
        (10, (10, 10, 10), 10, 1024, 0.01, 1e-5, "adam", "bpr", 0.01)


def test_config_round_trips_through_asdict():
    config = FitConfig(seed=1, nums_hiddens=[4])
    assert dataclasses.replace(FitConfig(), **dataclasses.asdict(config)) == config


def test_config_fields_round_trip_with_new_fields():
    config = FitConfig(**PRESETS["neumf-pretrained"])
    assert FitConfig(**dataclasses.asdict(config)) == config


def test_a_saved_config_with_a_retired_setting_still_reads():
    # runs saved by 0.3 hold pretrain_parallel, which changed no number
    saved = {**dataclasses.asdict(FitConfig(**PRESETS["neumf-pretrained"])),
             "pretrain_parallel": True}
    assert FitConfig.from_saved(saved) == FitConfig(**PRESETS["neumf-pretrained"])
    with pytest.raises(ValueError, match="unknown setting.*'pretrain_paralel'"):
        FitConfig.from_saved({**saved, "pretrain_paralel": True})


def test_patience_without_validation_is_refused():
    with pytest.raises(ValueError, match="needs validation=True"):
        FitConfig(patience=3)


def test_unknown_kvstore_is_refused():
    with pytest.raises(ValueError, match="kvstore must be one of"):
        fit(kvstore="nccl")


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


def test_each_pretrained_tower_gets_its_own_settings():
    both = FitConfig(pretrain=True, pretrain_epochs=4, pretrain_lr=0.01).pretraining
    assert both.tower("gmf", 9) == {"model": "gmf", "optimizer": "adam", "lr": 0.01,
                                    "num_epochs": 4}
    # the MLP tower has no biases to learn (the GMF tower's go to NeuMF)
    assert both.tower("mlp", 9) == {**both.tower("gmf", 9), "model": "mlp", "biases": False}
    own = FitConfig(pretrain=True, gmf_tower="MF", mlp_pretrain_epochs=2,
                    mlp_pretrain_lr=0.5).pretraining
    assert own.tower("gmf", 9) == {"model": "mf", "optimizer": "adam", "lr": 1e-3,
                                   "num_epochs": 9}
    assert own.tower("mlp", 9) == {"model": "mlp", "optimizer": "adam", "lr": 0.5,
                                   "num_epochs": 2, "biases": False}
    with pytest.raises(ValueError, match="gmf_tower"):
        FitConfig(pretrain=True, gmf_tower="neumf")
    with pytest.raises(ValueError, match="mlp_pretrain_epochs"):
        FitConfig(pretrain=True, mlp_pretrain_epochs=0)
    with pytest.raises(ValueError, match="mlp_pretrain_lr"):
        FitConfig(pretrain=True, mlp_pretrain_lr=-1.0)


def test_linear_schedule_lowers_the_rate_each_epoch():
    linear = FitConfig(lr=0.3, num_epochs=3, lr_schedule="Linear").training
    assert linear.lr_schedule == "linear"
    np.testing.assert_allclose([linear.learning_rate(e) for e in (1, 2, 3)], [0.3, 0.2, 0.1])
    constant = FitConfig(lr=0.3, num_epochs=3).training
    assert [constant.learning_rate(e) for e in (1, 2, 3)] == [0.3] * 3
    for epoch in (0, 4):  # epochs run from 1 to num_epochs
        with pytest.raises(ValueError, match="epoch must be"):
            linear.learning_rate(epoch)
    with pytest.raises(ValueError, match="at most num_epochs"):
        FitConfig(num_epochs=0, lr_schedule="linear").training.learning_rate(1)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        FitConfig(lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr_schedule 'linear' needs a kvstore of one process"):
        FitConfig(lr_schedule="linear", kvstore="dist_sync")
