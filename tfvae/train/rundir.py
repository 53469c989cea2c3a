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

A run directory may come from anywhere (a colleague, a download), so what
its JSON files claim is checked before anything is built, each failure a
one-line ``RunDirectoryError`` naming the file and the field:
config.json must hold each setting with its type and in its range
(``config.validate``); model.json must describe a tfvae ``VAE`` whose data
holds at most ``MAX_DATA_VALUES`` values per example and whose weights,
counted before any is allocated, fit in the bytes its checkpoints hold
(4 per weight), so a file claiming latent_dim 1e10 is refused instead of
exhausting memory.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os

import keras
import tensorflow as tf

from tfvae.core import files
from tfvae.models.vae import VAE
from tfvae.train import config as config_lib
from tfvae.train.config import VERSION_KEY, TrainConfig
from tfvae.version import __version__

__all__ = ["BYTES_PER_WEIGHT", "MAX_DATA_VALUES", "RESUMABLE_CHANGES", "RunDirectory", "RunDirectoryError",
           "count_model_weights"]

MAX_DATA_VALUES = 2**24  # values per example a model.json may claim (4096 x 4096 x 1, 2048 x 2048 x 3)
BYTES_PER_WEIGHT = 4  # a float32 weight: what a checkpoint stores at least per weight of its model

# Settings a resumed run may change: none alters the model or the maths (results do not depend on the
# strategy or the number of replicas for the same global batch; init_from is read only before the first checkpoint).
RESUMABLE_CHANGES = frozenset({
    "epochs", "checkpoint_every_steps", "checkpoint_every_seconds", "summary_every_steps", "eval_every_epochs", "max_checkpoints",
    "validation_examples", "steps_per_execution", "strategy", "devices", "logical_cpu_devices",
    "early_stopping_patience", "deterministic", "init_from",
})


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
        if not isinstance(values, dict):
            raise RunDirectoryError(f"{self.config_path}: expected a JSON object of settings; got "
                                    f"{type(values).__name__}")
        version = values.pop(VERSION_KEY, None)
        if not isinstance(version, str) or version.split(".")[:2] != __version__.split(".")[:2]:
            raise RunDirectoryError(
                f"{self.path} was written by tfvae {_version_text(version)}, whose run layout tfvae "
                f"{__version__} does not read; train into a new model_dir (or use that version for this one)")
        return _config_from_values(values, self.config_path)

    def write_config(self, config: TrainConfig) -> None:
        values = {VERSION_KEY: __version__, **config.to_dict()}
        files.write_atomic(self.config_path, json.dumps(values, indent=2, sort_keys=True))

    def check_can_continue(self, config: TrainConfig, unchecked=()) -> None:
        """Raises RunDirectoryError if this directory holds a run that ``config`` cannot continue.

        ``unchecked``: fields not compared (defaults not fitted to the data yet).
        """
        if not self.has_run():
            return
        previous = self.read_config()
        for field in TrainConfig.settings():
            old, new = getattr(previous, field.name), getattr(config, field.name)
            if old != new and field.name not in RESUMABLE_CHANGES and field.name not in unchecked:
                raise RunDirectoryError(
                    f"model_dir {self.path} holds a run with {field.name}={old!r}, not {new!r}; "
                    "use a new model_dir or the same settings")

    # ----------------------------------------------------------------- model
    def write_model(self, model) -> None:
        """model.json: the model's Keras config and build shape (not its optimizer: checkpoints hold that)."""
        serialized = keras.saving.serialize_keras_object(model)
        serialized.pop("compile_config", None)
        files.write_atomic(self.model_path, json.dumps(serialized, indent=1))

    def read_model(self, max_weights: int | None = None):
        """The run's VAE rebuilt from model.json (weights as initialised; restore a checkpoint into it).

        ``max_weights``: refuse (RunDirectoryError) a model.json whose model
        would hold more weights, counted before any is allocated (None: no
        limit; ``loading.load_model`` passes what the checkpoints can hold).
        """
        self.read_config()  # the version check
        serialized = self._read_json(self.model_path)
        input_shape = _input_shape(serialized, self.model_path)
        if max_weights is not None:
            count = _build(copy.deepcopy(serialized), input_shape, self.model_path, count_only=True)
            if count > max_weights:
                raise RunDirectoryError(
                    f"{self.model_path}: describes a model of {count} weights, more than its checkpoints can hold "
                    f"({max_weights}); it is not the model of this run: refusing to build it")
        return _build(serialized, input_shape, self.model_path)

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
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise RunDirectoryError(f"{path}: unreadable ({_first_line(e)})") from None


def _version_text(version) -> str:
    if version is None:
        return "0.2.0 or earlier"
    return version if isinstance(version, str) else _short(version)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_error(field: dataclasses.Field, default, value) -> str | None:
    """Why ``value`` (from JSON) cannot be the TrainConfig field with this default; None if it can."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if field.name == "data_dir":
        return None if value is None or isinstance(value, str) else "a string or null"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if is_int(value) else "an int"
    if isinstance(default, float):
        ok = (is_int(value) or isinstance(value, float)) and math.isfinite(value)
        return None if ok else "a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, tuple):
        element_ok = (lambda v: isinstance(v, str)) if field.name == "devices" else is_int
        ok = isinstance(value, list) and len(value) <= 64 and all(element_ok(v) for v in value)
        return None if ok else ("a list of strings" if field.name == "devices" else "a list of ints")
    return None


def _config_from_values(values, path: str) -> TrainConfig:
    """The TrainConfig of config.json's ``values``, each field checked for its type and range."""
    if not isinstance(values, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object of settings; got {type(values).__name__}")
    defaults = TrainConfig()
    for field in TrainConfig.settings():
        if field.name in values:
            expected = _type_error(field, getattr(defaults, field.name), values[field.name])
            if expected:
                raise RunDirectoryError(f"{path}: {field.name} must be {expected}; got {_short(values[field.name])}")
    try:
        config = TrainConfig.from_dict(values, path)
        config_lib.validate(config)
    except ValueError as e:
        raise RunDirectoryError(f"{path}: {_first_line(e)}") from None
    return config


def _input_shape(serialized, path: str) -> tuple:
    """model.json's data shape (None, H, W, C) (or (None, D) for vectors), each size a positive int, at most
    MAX_DATA_VALUES values per example."""
    if not isinstance(serialized, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object (a Keras model config); got "
                                f"{type(serialized).__name__}")
    build_config = serialized.pop("build_config", None)
    input_shape = build_config.get("input_shape") if isinstance(build_config, dict) else None
    if not input_shape:
        raise RunDirectoryError(f"{path}: holds no data shape (build_config); was training started?")
    sizes = input_shape[1:] if isinstance(input_shape, list) else None
    if (not sizes or len(sizes) > 3 or input_shape[0] is not None
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in sizes)):
        raise RunDirectoryError(f"{path}: build_config.input_shape must be [null, sizes...] with 1 to 3 positive "
                                f"ints; got {_short(input_shape)}")
    if math.prod(sizes) > MAX_DATA_VALUES:
        raise RunDirectoryError(f"{path}: build_config.input_shape claims {math.prod(sizes)} values per example, "
                                f"more than the {MAX_DATA_VALUES} tfvae reads; got {input_shape}")
    return tuple(input_shape)


def count_model_weights(serialized, path: str) -> int:
    """The number of weights of the VAE a Keras model config (model.json, a .keras file's config.json) describes,
    counted without allocating them; RunDirectoryError naming ``path`` if it is not a buildable tfvae VAE."""
    serialized = copy.deepcopy(serialized)
    return _build(serialized, _input_shape(serialized, path), path, count_only=True)


def _build(serialized: dict, input_shape: tuple, path: str, count_only: bool = False):
    """The VAE of ``serialized`` built for ``input_shape``; with ``count_only`` just its number of weights, from a
    build in a throwaway graph (variables there have shapes but no memory)."""
    try:
        if count_only:
            with tf.Graph().as_default():
                model = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
                _check_is_vae(model, path)
                model.build(input_shape)
                return sum(math.prod(int(d) for d in v.shape) for v in model.weights)
        model = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
        _check_is_vae(model, path)
        model.build(input_shape)  # built as the trainer builds it, so checkpoints match it object for object
        return model
    except RunDirectoryError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a hand-edited or hostile file makes Keras raise: one line
        raise RunDirectoryError(f"{path}: cannot rebuild the model ({type(e).__name__}: {_first_line(e)})") from None


def _check_is_vae(model, path: str) -> None:
    if not isinstance(model, VAE):
        raise RunDirectoryError(f"{path}: describes a {type(model).__name__}, not a tfvae VAE")
