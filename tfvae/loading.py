"""``load_model(model_dir)``: the trained VAE of a training run, for Python use."""

from __future__ import annotations

import json
import os

import keras

from tfvae import checkpoints
from tfvae.config import TrainConfig
from tfvae.training import CONFIG_FILE, MODEL_FILE

__all__ = ["load_model", "load_config"]


def load_config(model_dir: str) -> TrainConfig:
    """The ``TrainConfig`` saved in ``<model_dir>/config.json``."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found; is {model_dir} a tfvae training directory?")
    with open(path) as f:
        return TrainConfig.from_json(f.read())


def load_model(model_dir: str, checkpoint: str | None = None):
    """Rebuilds the run's VAE from model.json and restores its latest checkpoint.

    Args:
      model_dir: a directory written by ``train_and_evaluate`` (scripts/train.py).
      checkpoint: a checkpoint path prefix to load instead of the latest.

    Raises:
      FileNotFoundError: model_dir has no model.json.
      CheckpointError: no checkpoint, or an unreadable one.
    """
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: not found; is {model_dir} a tfvae training directory?")
    with open(path) as f:
        model = keras.saving.deserialize_keras_object(json.load(f))
    model.build((None, *model.decoder.data_shape))
    state = checkpoints.TrainingState(model, None, model_dir)
    if checkpoint is None:
        state.restore_latest(require=True)
    else:
        try:
            state.checkpoint.restore(checkpoint).assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001 - reported with the path, one line
            raise checkpoints.CheckpointError(f"{checkpoint}: cannot restore ({str(e).splitlines()[0]})") from None
    return model
