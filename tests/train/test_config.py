"""TrainConfig: its sections and flat view, the settings' help and choices, each value's check, the rules between
fields, the JSON round trip, the XLA choice."""

import ast
import dataclasses
import json
import pathlib

import pytest
from conftest import REPO

import tfvae
from tfvae.train import rules, sections
from tfvae.train.config import SECTIONS, TrainConfig, field_help, validate
from tfvae.train.hardware import uses_xla
from tfvae.train.settings import choices_of, help_of

# The flat settings: the flag names and the keys of a run's config.json (tfvae 0.3.0's, plus pixel_mixture). A
# setting dropped from its section, renamed or added shows here first.
FLAT_NAMES = [
    "activation", "architecture", "batch_size", "beta", "blocks_per_level", "channels", "checkpoint_every_seconds",
    "checkpoint_every_steps", "clip_global_norm", "conditional", "data_dir", "dataset", "deterministic", "devices",
    "early_stopping_patience", "epochs", "eval_every_epochs", "flow", "flow_hidden_units", "flow_steps", "free_bits",
    "free_bits_group_size", "gaussian_scale", "gradient_spike_factor", "hidden_units", "image_feature", "image_size",
    "init_from", "input_mode", "jit_compile", "kl_cycle_steps", "kl_method", "kl_schedule", "kl_warmup_steps", "label_column",
    "label_feature", "ladder_units", "latent_dim", "latent_dims", "learning_rate", "learning_rate_decay",
    "likelihood", "logical_cpu_devices", "max_checkpoints", "max_value", "memory_budget_mb", "mixture_components",
    "noise_scheme", "normalization", "objective", "pixel_mixture", "posterior", "precision", "prior", "prior_components",
    "samples_per_example", "seed", "shuffle_buffer", "skip_bad_records", "steps_per_execution", "strategy",
    "summary_every_steps", "test_binarization_seed", "train_examples", "validation_examples", "validation_split",
]


# ------------------------------------------------------------------ sections and the flat view
def test_the_flat_settings_are_the_flag_names_and_config_json_keys():
    assert sorted(TrainConfig.field_names()) == FLAT_NAMES
    assert sorted(TrainConfig().to_dict()) == FLAT_NAMES
    assert sorted(json.loads(TrainConfig().to_json())) == FLAT_NAMES


def test_each_setting_lives_in_exactly_one_section():
    owners = {}
    for name, section in SECTIONS.items():
        for field in dataclasses.fields(section):
            assert field.name not in owners, f"{field.name} is in {owners.get(field.name)} and {name}"
            owners[field.name] = name
    assert sorted(owners) == FLAT_NAMES
    assert all(TrainConfig.section_of(setting) == section for setting, section in owners.items())
    assert [f.name for f in dataclasses.fields(TrainConfig)] == list(SECTIONS)


def test_flat_keywords_and_sections_make_the_same_config():
    flat = TrainConfig(epochs=3, latent_dim=8, beta=0.5, strategy="mirrored", seed=4, dataset="mnist")
    sectioned = TrainConfig(optimization=sections.OptimizationConfig(epochs=3),
                            model=sections.ModelConfig(latent_dim=8), loss=sections.LossConfig(beta=0.5),
                            distribution=sections.DistributionConfig(strategy="mirrored"),
                            run=sections.RunConfig(seed=4), data=sections.DataConfig(dataset="mnist"))
    assert flat == sectioned
    assert flat.model.latent_dim == flat.latent_dim == 8 and flat.optimization.epochs == flat.epochs == 3
    assert flat.loss.objective == flat.objective == "elbo"  # the section is `loss`: `objective` stays the setting
    assert TrainConfig.from_dict(flat.to_dict()) == flat
    assert TrainConfig(**flat.to_dict()) == flat


def test_a_flat_write_reaches_the_section_and_copies_share_no_section():
    config = TrainConfig()
    config.epochs = 7
    assert config.optimization.epochs == 7
    longer = dataclasses.replace(config, epochs=9)
    same = config.replace(latent_dim=3)
    assert (config.epochs, longer.epochs, same.latent_dim, config.latent_dim) == (7, 9, 3, 20)
    assert longer.model is not config.model and same.optimization is not config.optimization
    assert config.replace(model=sections.ModelConfig(latent_dim=5), epochs=2).latent_dim == 5


def test_unknown_keywords_and_attributes_are_refused():
    with pytest.raises(TypeError, match="unexpected keyword argument 'latent_size'"):
        TrainConfig(latent_size=3)
    with pytest.raises(AttributeError, match="latent_size"):
        TrainConfig().latent_size  # noqa: B018
    with pytest.raises(TypeError, match="model must be a ModelConfig; got DataConfig"):
        TrainConfig(model=sections.DataConfig())


def test_latent_dims_set_latent_dim_in_the_model_section():
    assert TrainConfig(latent_dims=(32, 16)).latent_dim == 48
    assert dataclasses.replace(TrainConfig(latent_dims=(4, 4)), latent_dims=(2, 2)).model.latent_dim == 4


def test_json_round_trip_keeps_every_field():
    config = TrainConfig(hidden_units=(64, 32), latent_dim=7, learning_rate_decay="cosine", jit_compile="off",
                         image_size=(8, 8), devices=("/cpu:0",))
    assert TrainConfig.from_json(config.to_json()) == config


def test_a_config_json_without_noise_scheme_reads_as_the_global_batch_scheme_of_earlier_runs():
    values = TrainConfig(seed=4).to_dict()
    del values["noise_scheme"]
    assert TrainConfig.from_dict(values).noise_scheme == "global_batch" == TrainConfig().noise_scheme


def test_from_json_rejects_unknown_fields():
    values = json.loads(TrainConfig().to_json())
    values["latent_size"] = 3
    with pytest.raises(ValueError, match="latent_size"):
        TrainConfig.from_json(json.dumps(values))


def test_a_runs_config_json_reads_back_with_the_public_class(tmp_path):
    from tfvae.train.rundir import RunDirectory

    config = TrainConfig(latent_dim=7, label_column="target", max_value=16)
    RunDirectory(str(tmp_path)).write_config(config)
    with open(tmp_path / "config.json") as f:
        text = f.read()
    assert '"tfvae_version"' in text
    assert TrainConfig.from_json(text) == config
    assert tfvae.load_config(str(tmp_path)) == config


# ------------------------------------------------------------------ help and choices
def test_every_setting_is_documented_where_it_is_declared_and_that_is_its_flags_help():
    from absl import flags

    from tfvae.train import cli

    flag_values = flags.FlagValues()
    cli.define_config_flags(flag_values)
    for field in TrainConfig.settings():
        choices = choices_of(field) if isinstance(field.default, str) else None  # absl lists an enum's values first
        shown = f"<{'|'.join(choices)}>: {help_of(field)}" if choices else help_of(field)
        assert flag_values[field.name].help == shown and help_of(field) == field_help()[field.name]
        assert help_of(field).endswith((".", ")")) and len(help_of(field)) > 15, field.name
    assert field_help()["free_bits"] == "KL floor in nats per group of latent dimensions, per example (0 = none)."
    from tfvae.data import limits

    assert f"at most {limits.MAX_SHUFFLE_BUFFER}," in field_help()["shuffle_buffer"]  # the help states the ceiling


def test_each_choice_list_is_the_implementing_modules_own_tuple():
    from tfvae import data
    from tfvae.core import distribute, sampling
    from tfvae.data import sources
    from tfvae.models import decoders, encoders, priors
    from tfvae.nn import networks, resnet
    from tfvae.objectives import bounds, losses, schedules
    from tfvae.train import hardware, optimizers

    implemented = {
        "likelihood": decoders.LIKELIHOODS, "gaussian_scale": decoders.GAUSSIAN_SCALES,
        "pixel_mixture": decoders.PIXEL_MIXTURES, "posterior": encoders.POSTERIORS, "prior": priors.PRIORS,
        "flow": priors.PRIOR_FLOWS, "architecture": networks.ARCHITECTURES, "normalization": resnet.NORMALIZATIONS,
        "kl_schedule": schedules.SCHEDULES, "kl_method": bounds.KL_METHODS, "objective": losses.OBJECTIVES,
        "learning_rate_decay": optimizers.LEARNING_RATE_DECAYS, "precision": optimizers.PRECISIONS,
        "strategy": distribute.STRATEGIES, "jit_compile": hardware.JIT_COMPILE_MODES,
        "input_mode": data.INPUT_MODES, "channels": sources.CHANNELS, "noise_scheme": sampling.NOISE_SCHEMES,
    }
    declared = {f.name: choices_of(f) for f in TrainConfig.settings() if choices_of(f) is not None}
    assert set(declared) == set(implemented)
    assert all(declared[name] is implemented[name] for name in implemented)


def test_a_choice_flag_offers_exactly_the_registered_choices():
    from absl import flags

    from tfvae.train import cli

    flag_values = flags.FlagValues()
    cli.define_config_flags(flag_values)
    for field in TrainConfig.settings():
        if choices_of(field) is not None and isinstance(field.default, str):
            assert flag_values[field.name].parser.enum_values == list(choices_of(field)), field.name


def test_the_config_imports_no_implementation_module():
    allowed = {"tfvae.train.rules", "tfvae.train.sections", "tfvae.train.settings", "tfvae.core.choices",
               "tfvae.data.limits"}  # limits: the table of stated ceilings (shuffle_buffer's)
    for name in ("config.py", "sections.py", "settings.py", "rules.py"):
        tree = ast.parse(pathlib.Path(REPO, "tfvae", "train", name).read_text())
        for node in tree.body:  # module level (config.py's 0.3.0 names import lazily, in __getattr__)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tfvae"):
                imported = {f"{node.module}.{a.name}" for a in node.names} if node.module.count(".") == 1 \
                    else {node.module}
                assert imported <= allowed, f"{name} imports {sorted(imported - allowed)}"
            assert not isinstance(node, ast.Import) or not any(a.name.startswith("tfvae") for a in node.names)


def test_the_0_3_0_module_names_still_read():
    from tfvae.train import config, hardware

    assert config.CHOICES["likelihood"] == choices_of(dataclasses.fields(sections.ModelConfig)[0])
    assert config.uses_xla is hardware.uses_xla and config.JIT_COMPILE_MODES == ("auto", "on", "off")


# ------------------------------------------------------------------ each value on its own
@pytest.mark.parametrize(
    "field, value, message",
    [("latent_dim", 0, "latent_dim must be > 0"), ("architecture", "rnn", "architecture must be one of"),
     ("jit_compile", "yes", "jit_compile must be one of"), ("epochs", 0, "epochs must be > 0"),
     ("hidden_units", (), "hidden_units must be"),
     ("shuffle_buffer", 2**63 - 1, r"shuffle_buffer must be an int in \[1, 16777216\] \(records\); got 9223372036854775807"),
     ("memory_budget_mb", 0, "memory_budget_mb must be > 0"), ("beta", -1.0, "beta must be >= 0; got -1.0"),
     ("channels", 2, r"channels must be one of \(0, 1, 3, 4\); got 2"),
     ("gradient_spike_factor", 0.5, r"gradient_spike_factor must be 0 \(off\) or > 1; got 0.5"),
     ("image_size", (8,), r"image_size must be empty or two positive ints H,W; got \[8\]"),
     ("validation_split", 1.0, r"validation_split must lie in \(0, 1\); got 1.0"),
     ("latent_dims", (8, 0), r"latent_dims must be positive ints; got \[8, 0\]"),
     ("max_value", 0, r"max_value must be an int in \[1, 255\]"), ("max_value", 256, "max_value must be"),
     ("label_column", " ", "label_column must name a CSV column"),
     ("noise_scheme", "per_replica", r"noise_scheme must be one of \('global_batch', 'per_example'\)")],
)
def test_validate_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError, match=message) as error:
        validate(dataclasses.replace(TrainConfig(), **{field: value}))
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------ the rules between fields
# One config per rule that breaks it (and nothing else), with the start of its message.
BROKEN_RULES = {
    "iwae_takes_no_free_bits": ({"objective": "iwae", "free_bits": 1.0}, "free_bits must be 0 with objective=iwae"),
    "per_dimension_free_bits_need_factorised_kl": (
        {"free_bits": 0.5, "posterior": "full"},
        "free_bits_group_size must be at least the (top) latent size 20 unless posterior=diagonal"),
    "free_bits_groups_fit_the_layers": ({"free_bits": 0.5, "free_bits_group_size": 3},
                                        "free_bits_group_size must divide latent_dim (20) or be at least it; got 3"),
    "cyclical_schedule_has_a_cycle": ({"kl_schedule": "cyclical", "kl_warmup_steps": 10, "kl_cycle_steps": 5},
                                      "kl_cycle_steps must be >= kl_warmup_steps > 0 for a cyclical schedule"),
    "hierarchy_has_diagonal_posteriors": ({"latent_dims": (8, 4), "posterior": "iaf"},
                                          "posterior must be diagonal with several --latent_dims"),
    "hierarchy_is_unconditional": ({"latent_dims": (8, 4), "conditional": True},
                                   "conditional must be off with several --latent_dims"),
    "conditional_prior_depends_on_labels": ({"conditional": True, "prior": "vamp"},
                                            "prior must not be vamp with conditional"),
    "real_nvp_needs_two_dimensions": ({"prior": "flow", "flow": "real_nvp", "latent_dim": 1},
                                      "latent_dim must be >= 2 with prior=flow and flow=real_nvp"),
    "conv_image_size_fits_the_strides": ({"architecture": "conv", "hidden_units": (8, 8), "image_size": (10, 12)},
                                         "image_size must be divisible by 4 (2 ** len(hidden_units))"),
}


def test_every_rule_has_a_config_that_breaks_it():
    assert sorted(rule.__name__ for rule in rules.RULES) == sorted(BROKEN_RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN_RULES))
def test_a_broken_rule_gives_its_one_line_error_before_any_part_is_built(rule):
    settings, message = BROKEN_RULES[rule]
    config = TrainConfig(**settings)
    assert [r.__name__ for r in rules.RULES if r(config)] == [rule]  # this rule only
    with pytest.raises(ValueError) as error:
        validate(config)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_broken_rule_names_its_flag_on_the_command_line():
    from tfvae.train import cli

    settings, _ = BROKEN_RULES["cyclical_schedule_has_a_cycle"]
    assert cli.flag_error(ValueError(rules.cyclical_schedule_has_a_cycle(TrainConfig(**settings)))).startswith(
        "flag --kl_cycle_steps must be")


def test_the_rules_keep_what_the_parts_accept():
    from tfvae.train import factory

    for settings in ({"free_bits": 0.5, "free_bits_group_size": 4}, {"latent_dims": (8, 4)},
                     {"kl_schedule": "cyclical", "kl_warmup_steps": 5, "kl_cycle_steps": 10},
                     {"prior": "flow", "flow": "real_nvp", "latent_dim": 2},
                     {"architecture": "conv", "hidden_units": (8, 8), "image_size": (12, 16)}):
        factory.check_config(TrainConfig(**settings), (12, 16, 1))  # validates, then builds the parts


# ------------------------------------------------------------------ XLA
def test_auto_xla_skips_convolutions_on_cpu_only():
    mlp, conv = TrainConfig(architecture="mlp"), TrainConfig(architecture="conv", hidden_units=(32, 64))
    assert uses_xla(mlp, gpu_available=False)
    assert not uses_xla(conv, gpu_available=False)
    assert uses_xla(conv, gpu_available=True)
    assert uses_xla(dataclasses.replace(conv, jit_compile="on"), gpu_available=False)
    assert not uses_xla(dataclasses.replace(mlp, jit_compile="off"), gpu_available=True)
