"""What a run is about to do, said once at its start, and the warnings that name the settings to change.

``summary_lines`` describe the data as read (``data.describe``), the model's
likelihood and why it was chosen, the batch, steps per epoch and total
steps, and the validation examples; ``start_warnings`` flag a run too short
to learn much and integer data that the default 8-bit scale squashes;
``collapse_warning`` flags a rate that ended near 0 (the posterior
collapsed onto the prior: the code says almost nothing about x). The
trainer logs them with absl (``logging.info`` and ``logging.warning``).
"""

from __future__ import annotations

import math
from collections.abc import Collection

from tfvae.data.summary import DataDescription
from tfvae.train.config import TrainConfig

__all__ = ["COLLAPSED_RATE_NATS", "SHORT_RUN_STEPS", "collapse_warning", "start_warnings", "summary_lines"]

SHORT_RUN_STEPS = 500  # fewer optimizer steps than this: the run is too short to learn much more than the mean
SUGGESTED_STEPS = 2000
COLLAPSED_RATE_NATS = math.log(2)  # a rate below one bit per example: the code carries almost nothing about x
SMALL_INTEGER_MAX = 64  # integer data whose largest value is below this look like another scale than 0-255
CONTINUOUS_LIKELIHOODS = ("gaussian", "continuous_bernoulli")


def summary_lines(config: TrainConfig, data: DataDescription, steps_per_epoch: int, validation_examples: int,
                  fitted: dict[str, str], settings_given: Collection[str], model=None) -> list[str]:
    """The run's summary, a few lines: data, model and likelihood, steps, validation.

    ``model``: a VAE given from Python instead of the one ``config`` describes; its parts are named instead.
    """
    total = steps_per_epoch * config.epochs
    batch = fitted.get("batch_size", str(config.batch_size))
    scale = f", integers read as value / {config.max_value}" if config.max_value != 255 else ""
    used = ""
    if config.train_examples and config.train_examples < data.train_examples:
        used = f" on the first {config.train_examples} training examples (--train_examples)"
    return [
        f"data: {data.text()}{scale}",
        _model_line(config, fitted, settings_given, model),
        f"training{used}: batch {batch}; {steps_per_epoch} steps per epoch x {config.epochs} epochs = {total} steps",
        f"validation: {_validation(config, data, validation_examples)}",
    ]


def start_warnings(config: TrainConfig, data: DataDescription, steps_per_epoch: int,
                   settings_given: Collection[str]) -> list[str]:
    """Warnings before training: a run shorter than ``SHORT_RUN_STEPS``; integer data far below 255."""
    warnings = []
    total = steps_per_epoch * config.epochs
    if total < SHORT_RUN_STEPS:
        epochs = math.ceil(SUGGESTED_STEPS / steps_per_epoch)
        warnings.append(
            f"this run is only {total} optimizer steps ({config.epochs} epochs of {steps_per_epoch}); a VAE needs "
            f"thousands to learn more than the average example: raise --epochs (--epochs={epochs} gives "
            f"{epochs * steps_per_epoch} steps) or lower --batch_size (TrainConfig.epochs, .batch_size)")
    if (data.dtype == "uint8" and data.value_range is not None and 0 < data.value_range[1] < SMALL_INTEGER_MAX
            and config.max_value == 255 and "max_value" not in settings_given):
        low, high = (int(v) for v in data.value_range)
        warnings.append(
            f"integer data in [{low}, {high}] are read as 8-bit values, x / 255, so they lie in [0, "
            f"{high / 255:.3f}]; if {high} is their full scale, pass --max_value={high} (TrainConfig.max_value)")
    return warnings


def collapse_warning(rate: float) -> str | None:
    """A warning when the final validation rate (nats per example) is below one bit; else None."""
    if rate >= COLLAPSED_RATE_NATS:
        return None
    return (f"the rate KL(q(z|x) || p(z)) ended at {rate:.3g} nats per example, under one bit: the posterior has "
            "collapsed onto the prior and the code says almost nothing about each example (samples all look "
            "alike); train longer (--epochs), warm the KL up (--kl_warmup_steps), keep a floor (--free_bits) or "
            "lower --beta")


def _model_line(config: TrainConfig, fitted: dict[str, str], settings_given: Collection[str], model) -> str:
    if model is None:
        return f"model: {_family(config)}; likelihood {_likelihood(config, fitted, settings_given)}"
    parts = ", ".join(type(part).__name__ for part in (model.encoder, model.decoder, model.prior_layer))
    return f"model: given from Python ({parts}); its decoder is its likelihood"


def _family(config: TrainConfig) -> str:
    if len(config.latent_dims) > 1:
        latent = f"hierarchical latents {list(config.latent_dims)} (bottom to top)"
    else:
        latent = f"latent_dim {config.latent_dim}"
    conditional = ", conditional on the labels" if config.conditional else ""
    return (f"{config.architecture} {list(config.hidden_units)}, {latent}, {config.posterior} posterior, "
            f"{config.prior} prior{conditional}")


def _likelihood(config: TrainConfig, fitted: dict[str, str], settings_given: Collection[str]) -> str:
    if "likelihood" in fitted:
        chosen = f"{fitted['likelihood']} (--likelihood to choose another)"
    elif "likelihood" in settings_given:
        chosen = f"{config.likelihood} (--likelihood)"
    else:
        chosen = f"{config.likelihood} (the default)"
    if config.likelihood == "bernoulli":
        chosen += "; values are binarized, x ~ Bernoulli(value), afresh every step"
    if config.likelihood in CONTINUOUS_LIKELIHOODS:
        chosen += ("; a density on [0, 1]^D, so log-likelihoods can be positive and bits_per_dim negative, and "
                   "neither compares with a discrete likelihood's")
    return chosen


def _validation(config: TrainConfig, data: DataDescription, count: int) -> str:
    asked = config.validation_examples
    if asked and asked <= count:
        return f"the first {count} test examples (--validation_examples)"
    note = f"--validation_examples={asked} asks for more" if asked else "--validation_examples=0: all"
    return f"all {count} test examples ({note})"
