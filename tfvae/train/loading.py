"""``load_model(path)``: a trained VAE for Python use, from a training run or a ``.keras`` file."""

from __future__ import annotations

import json
import os
import zipfile

import keras

from tfvae.models.vae import VAE
from tfvae.train import checkpoints, hardware
from tfvae.train.config import TrainConfig
from tfvae.train.rundir import BYTES_PER_WEIGHT, RunDirectory, RunDirectoryError, count_model_weights

__all__ = ["MAX_KERAS_CONFIG_BYTES", "latest_checkpoint", "load_config", "load_keras_file", "load_model"]

MAX_KERAS_CONFIG_BYTES = 2**24  # a .keras file's config.json (a VAE's is a few kB)
_KERAS_CONFIG = "config.json"
_KERAS_WEIGHTS = "model.weights.h5"


def load_config(model_dir: str) -> TrainConfig:
    """The ``TrainConfig`` saved in ``<model_dir>/config.json`` (RunDirectoryError if absent or incompatible)."""
    return RunDirectory(model_dir).read_config()


def latest_checkpoint(model_dir: str) -> str | None:
    """The name of the run's newest checkpoint (e.g. ``ckpt-39``), the one ``load_model`` restores; None if none."""
    paths = checkpoints.checkpoint_paths(RunDirectory(model_dir).checkpoint_dir)
    return os.path.basename(paths[0]) if paths else None


def load_model(model_dir: str, checkpoint: str | None = None):
    """Rebuilds the run's VAE from model.json and restores its latest checkpoint; or opens a ``.keras`` file.

    Args:
      model_dir: a directory written by ``train_and_evaluate`` (scripts/train.py), or a ``.keras`` file
        (``model.save``, ``scripts/export.py --keras_file``, the pretrained models in saved_models/):
        ``load_keras_file``.
      checkpoint: a checkpoint path prefix to load instead of the latest (run directories only).

    model.json is checked before it is built: a model with more weights
    than the checkpoints' files can hold (``rundir.BYTES_PER_WEIGHT`` bytes
    each) is refused before any memory is allocated for it.

    Raises:
      RunDirectoryError: model_dir is not a run directory of this tfvae
        version, or its config.json or model.json is unusable.
      CheckpointError: no checkpoint, or an unreadable one.
    """
    if str(model_dir).endswith(".keras") and not os.path.isdir(model_dir):
        if checkpoint is not None:
            raise ValueError(f"{model_dir}: a .keras file holds one set of weights; checkpoint must be None")
        return load_keras_file(model_dir)
    run = RunDirectory(model_dir)
    config = run.read_config()
    paths = [checkpoint] if checkpoint is not None else checkpoints.checkpoint_paths(run.checkpoint_dir)
    if not paths:
        raise checkpoints.CheckpointError(f"{run.checkpoint_dir}: no checkpoint found")
    model = run.read_model(max_weights=max(checkpoints.stored_bytes(p) for p in paths) // BYTES_PER_WEIGHT)
    hardware.warn_if_emulated(config.precision)
    state = checkpoints.TrainingState(model, None, run.checkpoint_dir)
    if checkpoint is None:
        state.restore_latest(require=True)
    else:
        try:
            state.checkpoint.restore(checkpoint).assert_existing_objects_matched().expect_partial()
        except Exception as e:  # noqa: BLE001 - reported with the path, one line
            raise checkpoints.CheckpointError(f"{checkpoint}: cannot restore ({str(e).splitlines()[0]})") from None
    return model


def load_keras_file(path: str) -> VAE:
    """The tfvae VAE saved in the ``.keras`` file ``path``, checked before Keras builds it.

    A .keras file is a zip of ``config.json`` (the model's Keras config) and
    ``model.weights.h5``. Before anything is built, the config is read
    (at most ``MAX_KERAS_CONFIG_BYTES``), must describe a tfvae ``VAE``, and
    may claim at most as many weights as the weights file can hold
    (``BYTES_PER_WEIGHT`` bytes each, counted in a throwaway graph); then
    Keras loads it in safe mode (no code in the file runs). Every refusal is
    one ``RunDirectoryError`` line naming the file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            entries = {info.filename: info for info in archive.infolist()}
            missing = [name for name in (_KERAS_CONFIG, _KERAS_WEIGHTS) if name not in entries]
            if missing:
                raise RunDirectoryError(f"{path}: not a Keras model file (no {' or '.join(missing)} in it)")
            if entries[_KERAS_CONFIG].file_size > MAX_KERAS_CONFIG_BYTES:
                raise RunDirectoryError(f"{path}: its {_KERAS_CONFIG} claims {entries[_KERAS_CONFIG].file_size} "
                                        f"bytes, more than {MAX_KERAS_CONFIG_BYTES}")
            serialized = json.loads(archive.read(_KERAS_CONFIG))
            weight_bytes = entries[_KERAS_WEIGHTS].file_size
    except FileNotFoundError:
        raise RunDirectoryError(f"{path}: no such file") from None
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, RecursionError) as e:
        if isinstance(e, RunDirectoryError):
            raise
        raise RunDirectoryError(f"{path}: not a readable .keras file ({type(e).__name__}: "
                                f"{(str(e).splitlines() or ['?'])[0]})") from None
    count = count_model_weights(serialized, path)
    if count > weight_bytes // BYTES_PER_WEIGHT:
        raise RunDirectoryError(f"{path}: describes a model of {count} weights, more than its weights file can hold "
                                f"({weight_bytes // BYTES_PER_WEIGHT}); refusing to build it")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - whatever a damaged file makes Keras raise: one line
        raise RunDirectoryError(f"{path}: cannot load ({type(e).__name__}: {(str(e).splitlines() or ['?'])[0]})") \
            from None
    if not isinstance(model, VAE):
        raise RunDirectoryError(f"{path}: holds a {type(model).__name__}, not a tfvae VAE")
    return model
