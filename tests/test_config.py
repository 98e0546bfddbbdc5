"""Settings: FitConfig's defaults and checks, its round trips, and the presets."""

import dataclasses

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
