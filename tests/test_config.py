"""TrainConfig: validation, JSON round trip, XLA choice."""

import dataclasses
import json

import pytest

from tfvae.config import TrainConfig, uses_xla, validate


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(hidden_units=(64, 32), latent_dim=7, learning_rate_decay="cosine", jit_compile="off")
    assert TrainConfig.from_json(config.to_json()) == config


def test_from_json_reads_boolean_jit_compile_of_older_runs():
    values = json.loads(TrainConfig().to_json())
    values["jit_compile"] = False
    assert TrainConfig.from_json(json.dumps(values)).jit_compile == "off"
    values["jit_compile"] = True
    assert TrainConfig.from_json(json.dumps(values)).jit_compile == "on"


def test_from_json_rejects_unknown_fields():
    values = json.loads(TrainConfig().to_json())
    values["latent_size"] = 3
    with pytest.raises(ValueError, match="latent_size"):
        TrainConfig.from_json(json.dumps(values))


@pytest.mark.parametrize(
    "field, value, message",
    [("latent_dim", 0, "latent_dim must be > 0"), ("architecture", "rnn", "architecture must be one of"),
     ("jit_compile", "yes", "jit_compile must be one of"), ("beta", -1.0, "beta must be >= 0"),
     ("hidden_units", (), "hidden_units must be")],
)
def test_validate_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        validate(dataclasses.replace(TrainConfig(), **{field: value}))


def test_auto_xla_skips_convolutions_on_cpu_only():
    mlp, conv = TrainConfig(architecture="mlp"), TrainConfig(architecture="conv", hidden_units=(32, 64))
    assert uses_xla(mlp, gpu_available=False)
    assert not uses_xla(conv, gpu_available=False)
    assert uses_xla(conv, gpu_available=True)
    assert uses_xla(dataclasses.replace(conv, jit_compile="on"), gpu_available=False)
    assert not uses_xla(dataclasses.replace(mlp, jit_compile="off"), gpu_available=True)
