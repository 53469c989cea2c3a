"""``load_model(model_dir)``: the trained VAE of a training run, for Python use."""

from __future__ import annotations

import os

from tfvae.train import checkpoints, hardware
from tfvae.train.config import TrainConfig
from tfvae.train.rundir import BYTES_PER_WEIGHT, RunDirectory

__all__ = ["latest_checkpoint", "load_config", "load_model"]


def load_config(model_dir: str) -> TrainConfig:
    """The ``TrainConfig`` saved in ``<model_dir>/config.json`` (RunDirectoryError if absent or incompatible)."""
    return RunDirectory(model_dir).read_config()


def latest_checkpoint(model_dir: str) -> str | None:
    """The name of the run's newest checkpoint (e.g. ``ckpt-39``), the one ``load_model`` restores; None if none."""
    paths = checkpoints.checkpoint_paths(RunDirectory(model_dir).checkpoint_dir)
    return os.path.basename(paths[0]) if paths else None


def load_model(model_dir: str, checkpoint: str | None = None):
    """Rebuilds the run's VAE from model.json and restores its latest checkpoint.

    Args:
      model_dir: a directory written by ``train_and_evaluate`` (scripts/train.py).
      checkpoint: a checkpoint path prefix to load instead of the latest.

    model.json is checked before it is built: a model with more weights
    than the checkpoints' files can hold (``rundir.BYTES_PER_WEIGHT`` bytes
    each) is refused before any memory is allocated for it.

    Raises:
      RunDirectoryError: model_dir is not a run directory of this tfvae
        version, or its config.json or model.json is unusable.
      CheckpointError: no checkpoint, or an unreadable one.
    """
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
