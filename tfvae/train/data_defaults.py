"""Defaults fitted to the data: what a setting the user left unset becomes when the data calls for it.

Three settings, and only when the user did not set them:

  batch_size  at most the training examples (rounded down to a multiple of
              the replicas), as scikit-learn's ``batch_size=min(200, n)``:
              the default 128 would leave a smaller training split no step.
  likelihood  gaussian for a real-valued table (vectors [D] of floats that
              are not all 0 or 1), whose values are measurements, not
              intensities to binarize; bernoulli (the default) otherwise;
  gaussian_scale  then per_pixel (a learned scale per column), as the
              columns of a table measure different things on their own
              scales; the default, one scale shared by all, suits pixels.

Nothing else changes: on Fashion-MNIST (60,000 images, uint8) every default
stays as it is, so the shipped flagfiles' figures do not move. The settings
the user chose are those the command line names (``cli.settings_given``);
from Python, those that differ from ``TrainConfig``'s defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from tfvae.data.summary import DataDescription
from tfvae.train.config import TrainConfig

__all__ = ["FITTED_SETTINGS", "fit_to_data", "settings_changed_from_defaults"]

FITTED_SETTINGS = ("batch_size", "likelihood", "gaussian_scale")


def settings_changed_from_defaults(config: TrainConfig) -> frozenset[str]:
    """The fields of ``config`` that differ from ``TrainConfig()``'s: the settings a Python caller chose."""
    defaults = TrainConfig()
    return frozenset(name for name in TrainConfig.field_names() if getattr(config, name) != getattr(defaults, name))


def fit_to_data(config: TrainConfig, data: DataDescription, settings_given: Collection[str],
                num_replicas: int = 1) -> tuple[TrainConfig, dict[str, str]]:
    """(``config`` with its unset defaults fitted to ``data``, {setting: why it changed}).

    Args:
      config: the run's settings.
      data: the data as read (``data.describe``).
      settings_given: the names of the settings the user chose; they are kept.
      num_replicas: replicas in sync (a batch is split evenly over them).
    """
    changes, reasons = {}, {}
    train_examples = min(data.train_examples, config.train_examples or data.train_examples)
    if "batch_size" not in settings_given and train_examples < config.batch_size:
        batch_size = max(num_replicas, train_examples // num_replicas * num_replicas)
        changes["batch_size"] = batch_size
        reasons["batch_size"] = (f"{batch_size}, not the default {config.batch_size}: the training split has "
                                 f"{train_examples} examples")
    if "likelihood" not in settings_given and data.kind == "vectors" and data.real_valued \
            and config.likelihood == "bernoulli":
        changes["likelihood"] = "gaussian"
        reasons["likelihood"] = "gaussian, not the default bernoulli: the table holds real values (floats not all 0 or 1)"
        if "gaussian_scale" not in settings_given:
            changes["gaussian_scale"] = "per_pixel"
            reasons["likelihood"] += ", with a learned scale per column (--gaussian_scale=per_pixel)"
            reasons["gaussian_scale"] = "per_pixel: a learned scale per column of the table"
    return dataclasses.replace(config, **changes), reasons
