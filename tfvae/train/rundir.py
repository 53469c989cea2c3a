"""The run directory of a training run: its one layout, read and written only here.

  <model_dir>/
    config.json        the resolved TrainConfig, plus the tfvae version that wrote it
    model.json         the VAE's Keras config (parts and objective), so load_model rebuilds it
    metrics.json       validation metrics at the end of training
    flags.txt          train.py's resolved flags (--flagfile=flags.txt repeats the settings)
    run.lock           held by the training process while it runs (see runlock.py)
    checkpoints/       tf.train.CheckpointManager's files (see checkpoints.py)
    train/, validation/  TensorBoard logs
    samples/           scripts/sample.py's PNG grids
    .worker-N/         a non-chief worker's scratch checkpoints during multi-worker training

Every file is written under a temporary name and renamed (``files.write_atomic``).
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras

from tfvae.core import files
from tfvae.train.config import TrainConfig
from tfvae.version import __version__

__all__ = ["RESUMABLE_CHANGES", "RunDirectory", "RunDirectoryError"]

# Settings a resumed run may change: none alters the model or the maths (results do not depend on the
# strategy or the number of replicas for the same global batch).
RESUMABLE_CHANGES = frozenset({
    "epochs", "checkpoint_every_steps", "checkpoint_every_seconds", "summary_every_steps", "eval_every_epochs", "max_checkpoints",
    "validation_examples", "steps_per_execution", "strategy", "devices", "logical_cpu_devices",
    "early_stopping_patience",
})
_VERSION_KEY = "tfvae_version"


class RunDirectoryError(ValueError):
    """A run directory is missing, written by an incompatible tfvae, or holds another run."""


class RunDirectory:
    """The files of one training run under ``path`` (see the module docstring)."""

    def __init__(self, path: str):
        self.path = path
        self.config_path = os.path.join(path, "config.json")
        self.model_path = os.path.join(path, "model.json")
        self.metrics_path = os.path.join(path, "metrics.json")
        self.flags_path = os.path.join(path, "flags.txt")
        self.checkpoint_dir = os.path.join(path, "checkpoints")
        self.train_log_dir = os.path.join(path, "train")
        self.validation_log_dir = os.path.join(path, "validation")
        self.samples_dir = os.path.join(path, "samples")
        self.lock_path = os.path.join(path, "run.lock")

    def scratch_dir(self, task_id: int) -> str:
        """Where non-chief worker ``task_id`` writes its copy of the checkpoints."""
        return os.path.join(self.path, f".worker-{task_id}")

    def has_run(self) -> bool:
        return os.path.exists(self.config_path)

    # ---------------------------------------------------------------- config
    def read_config(self) -> TrainConfig:
        """The run's TrainConfig; RunDirectoryError if absent or written by an incompatible tfvae."""
        values = self._read_json(self.config_path)
        version = values.pop(_VERSION_KEY, None)
        if version is None or version.split(".")[:2] != __version__.split(".")[:2]:
            raise RunDirectoryError(
                f"{self.path} was written by tfvae {version or '0.2.0 or earlier'}, whose run layout tfvae "
                f"{__version__} does not read; train into a new model_dir (or use that version for this one)")
        if "pixel_mixture" not in values and values.get("likelihood") == "discretized_logistic":
            values["pixel_mixture"] = "per_channel"  # written before the field existed: tfvae 0.3.0's likelihood
        return TrainConfig.from_dict(values, self.config_path)

    def write_config(self, config: TrainConfig) -> None:
        values = {_VERSION_KEY: __version__, **config.to_dict()}
        files.write_atomic(self.config_path, json.dumps(values, indent=2, sort_keys=True))

    def check_can_continue(self, config: TrainConfig) -> None:
        """Raises RunDirectoryError if this directory holds a run that ``config`` cannot continue."""
        if not self.has_run():
            return
        previous = self.read_config()
        for field in dataclasses.fields(TrainConfig):
            old, new = getattr(previous, field.name), getattr(config, field.name)
            if old != new and field.name not in RESUMABLE_CHANGES:
                raise RunDirectoryError(
                    f"model_dir {self.path} holds a run with {field.name}={old!r}, not {new!r}; "
                    "use a new model_dir or the same settings")

    # ----------------------------------------------------------------- model
    def write_model(self, model) -> None:
        """model.json: the model's Keras config and build shape (not its optimizer: checkpoints hold that)."""
        serialized = keras.saving.serialize_keras_object(model)
        serialized.pop("compile_config", None)
        files.write_atomic(self.model_path, json.dumps(serialized, indent=1))

    def read_model(self):
        """The run's VAE rebuilt from model.json (weights as initialised; restore a checkpoint into it)."""
        self.read_config()  # the version check
        serialized = self._read_json(self.model_path)
        input_shape = (serialized.pop("build_config", None) or {}).get("input_shape")
        if not input_shape:
            raise RunDirectoryError(f"{self.model_path}: holds no data shape (build_config); was training started?")
        model = keras.saving.deserialize_keras_object(serialized)
        model.build(tuple(input_shape))  # built as the trainer builds it, so checkpoints match it object for object
        return model

    # ---------------------------------------------------- metrics and flags
    def write_metrics(self, metrics: dict) -> None:
        files.write_atomic(self.metrics_path, json.dumps(metrics, indent=1))

    def read_metrics(self) -> dict | None:
        return self._read_json(self.metrics_path) if os.path.exists(self.metrics_path) else None

    def write_flags(self, text: str) -> None:
        files.write_atomic(self.flags_path, text)

    def read_flags(self) -> str | None:
        if not os.path.exists(self.flags_path):
            return None
        with open(self.flags_path) as f:
            return f.read()

    def _read_json(self, path: str) -> dict:
        if not os.path.exists(path):
            raise RunDirectoryError(f"{path}: not found; is {self.path} a tfvae training directory?")
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RunDirectoryError(f"{path}: unreadable ({e})") from None
