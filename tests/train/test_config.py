"""TrainConfig: validation, JSON round trip, XLA choice."""

import dataclasses
import json

import pytest

from tfvae.train.config import CHOICES, TrainConfig, field_help, uses_xla, validate


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(hidden_units=(64, 32), latent_dim=7, learning_rate_decay="cosine", jit_compile="off")
    assert TrainConfig.from_json(config.to_json()) == config


def test_every_field_is_documented_and_its_help_comes_from_the_docstring():
    help_texts = field_help()
    assert set(help_texts) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert help_texts["free_bits"] == "KL floor in nats per group of latent dimensions, per example (0 = none)."
    assert all(text.endswith((".", ")")) and len(text) > 15 for text in help_texts.values())
    from tfvae.data import limits

    assert f"at most {limits.MAX_SHUFFLE_BUFFER}," in help_texts["shuffle_buffer"]  # the help states the ceiling


def test_each_choice_list_is_the_implementing_modules_own_tuple():
    from tfvae.core import distribute
    from tfvae.models import decoders, priors
    from tfvae.objectives import losses, schedules
    from tfvae.train import optimizers

    assert CHOICES["likelihood"] is decoders.LIKELIHOODS and CHOICES["prior"] is priors.PRIORS
    assert CHOICES["objective"] is losses.OBJECTIVES and CHOICES["kl_schedule"] is schedules.SCHEDULES
    assert CHOICES["strategy"] is distribute.STRATEGIES and CHOICES["precision"] is optimizers.PRECISIONS


def test_from_json_rejects_unknown_fields():
    values = json.loads(TrainConfig().to_json())
    values["latent_size"] = 3
    with pytest.raises(ValueError, match="latent_size"):
        TrainConfig.from_json(json.dumps(values))


@pytest.mark.parametrize(
    "field, value, message",
    [("latent_dim", 0, "latent_dim must be > 0"), ("architecture", "rnn", "architecture must be one of"),
     ("jit_compile", "yes", "jit_compile must be one of"), ("epochs", 0, "epochs must be > 0"),
     ("hidden_units", (), "hidden_units must be"),
     ("shuffle_buffer", 2**63 - 1, r"shuffle_buffer must be an int in \[1, 16777216\] \(records\); got 9223372036854775807"),
     ("memory_budget_mb", 0, "memory_budget_mb must be > 0")],
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


@pytest.mark.parametrize("field, value, message", [
    ("beta", -1.0, "beta must be >= 0"),
    ("free_bits_group_size", 3, r"free_bits_group_size must divide latent_dim \(20\) or be at least it; got 3"),
    ("kl_cycle_steps", 5, "kl_cycle_steps must be >= kl_warmup_steps > 0"),
])
def test_rules_between_fields_are_checked_by_the_parts_that_own_them(field, value, message):
    from tfvae.train import factory

    settings = dict(free_bits=0.5, kl_schedule="cyclical", kl_warmup_steps=10, kl_cycle_steps=20)
    config = dataclasses.replace(TrainConfig(), **{**settings, field: value})
    validate(config)  # each field is fine on its own
    with pytest.raises(ValueError, match=message):
        factory.check_config(config)


def test_a_runs_config_json_reads_back_with_the_public_class(tmp_path):
    import tfvae
    from tfvae.train.rundir import RunDirectory

    config = TrainConfig(latent_dim=7, label_column="target", max_value=16)
    RunDirectory(str(tmp_path)).write_config(config)
    with open(tmp_path / "config.json") as f:
        text = f.read()
    assert '"tfvae_version"' in text
    assert TrainConfig.from_json(text) == config
    assert tfvae.load_config(str(tmp_path)) == config


@pytest.mark.parametrize("field, value, message", [
    ("max_value", 0, r"max_value must be an int in \[1, 255\]"), ("max_value", 256, "max_value must be"),
    ("label_column", " ", "label_column must name a CSV column")])
def test_the_data_reading_settings_are_checked(field, value, message):
    with pytest.raises(ValueError, match=message):
        validate(dataclasses.replace(TrainConfig(), **{field: value}))
