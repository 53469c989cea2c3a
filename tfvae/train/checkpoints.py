"""Training state on disk: model, optimizer, step and input position.

The state is a ``tf.train.Checkpoint`` of the model, the optimizer (whose
``iterations`` is the global step) and the position in the data
(``epoch``, ``step_in_epoch``), saved by a ``tf.train.CheckpointManager``
in the run directory's ``checkpoints/`` (``rundir.RunDirectory.checkpoint_dir``).
TensorFlow writes each checkpoint's files before it updates the
``checkpoint`` index, so the index never names a half-written checkpoint.

Faults:
  * a checkpoint is only written when every weight is finite, so a diverged
    step never replaces the last good one;
  * a write that fails (disk full, read-only directory, quota) raises
    ``CheckpointWriteError`` naming the path and the cause; the failed
    write's partial files are removed and the previous checkpoints and index
    stay as they were, so a rerun resumes exactly from the last one;
  * a damaged checkpoint (a truncated or corrupt file) is skipped on restore
    with a warning: the newest readable one is restored and, by the run's
    owner, the damaged one is moved to ``checkpoints/damaged/`` (never
    deleted) and dropped from the index. Only when none is readable is it a
    ``CheckpointError``.
"""

from __future__ import annotations

import glob
import os
import re
import shutil

import tensorflow as tf
from absl import logging

__all__ = ["CheckpointError", "CheckpointWriteError", "TrainingState", "weights_are_finite"]

_PREFIX = "ckpt"  # tf.train.CheckpointManager's default checkpoint_name
DAMAGED_DIR = "damaged"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the model."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written; the previous ones are intact."""


def weights_are_finite(variables) -> bool:
    values = [tf.convert_to_tensor(v) for v in variables]
    return bool(all(tf.reduce_all(tf.math.is_finite(v)) for v in values if v.dtype.is_floating))


def _first_line(error: BaseException) -> str:
    text = (getattr(error, "message", None) or getattr(error, "strerror", None) or str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


class TrainingState:
    """Model, optimizer and input position, with save and exact restore.

    Args:
      model: the VAE (built).
      optimizer: its optimizer (built), possibly None for inference-only loads.
      directory: the run's checkpoint folder (``RunDirectory.checkpoint_dir``).
      max_to_keep: checkpoints kept on disk.
      save_dir: where ``save`` writes, if not ``directory`` (a non-chief
        worker's scratch copy); restores always read ``directory``.
    """

    def __init__(self, model, optimizer, directory: str, max_to_keep: int = 3, save_dir: str | None = None):
        self.model = model
        self.optimizer = optimizer
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        parts = dict(model=model, epoch=self.epoch, step_in_epoch=self.step_in_epoch)
        if optimizer is not None:
            parts["optimizer"] = optimizer
        self.checkpoint = tf.train.Checkpoint(**parts)
        self.directory = directory
        self.save_dir = save_dir or directory
        self.max_to_keep = max_to_keep
        self.manager = self._make_manager()

    def _make_manager(self):
        return tf.train.CheckpointManager(self.checkpoint, self.save_dir, max_to_keep=self.max_to_keep)

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def candidates(self) -> list[str]:
        """Checkpoint paths, newest first: those the index names, or (without a readable index) those on disk."""
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except Exception:  # noqa: BLE001 - a damaged index: fall back to the files themselves
            state = None
        if state is not None and state.all_model_checkpoint_paths:
            paths = list(state.all_model_checkpoint_paths)  # relative ones already joined to the directory
        else:
            paths = [name[: -len(".index")] for name in glob.glob(os.path.join(self.directory, f"{_PREFIX}-*.index"))]
        return sorted(set(paths), key=_checkpoint_number, reverse=True)

    def restore_latest(self, require: bool = False, move_aside_damaged: bool = False) -> str | None:
        """Restores the newest readable checkpoint; returns its path (None if there is none).

        A damaged newer one is skipped with a warning and, with
        ``move_aside_damaged`` (the run's owner: the training chief), moved to
        ``checkpoints/damaged/`` and dropped from the index. CheckpointError
        if checkpoints exist but none is readable (or ``require`` and none exists).
        """
        paths = self.candidates()
        if not paths:
            if require:
                raise CheckpointError(f"{self.directory}: no checkpoint found")
            return None
        damaged = []
        for path in paths:
            try:
                self._restore(path)
            except CheckpointError as e:
                logging.warning("%s; trying the previous checkpoint", e)
                damaged.append((path, str(e)))
                continue
            if damaged:
                logging.warning("resuming from %s instead of the newer damaged %s", path,
                                ", ".join(os.path.basename(p) for p, _ in damaged))
                if move_aside_damaged:
                    self._move_aside([p for p, _ in damaged], kept=[p for p in paths if p not in dict(damaged)])
            return path
        raise CheckpointError(f"{damaged[0][1]}; no older checkpoint in {self.directory} is readable either")

    def _restore(self, path: str) -> None:
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
            if self.optimizer is None:
                status.expect_partial()  # an inference load leaves the optimizer's slots behind, on purpose
        except Exception as e:  # noqa: BLE001 - any failure to read it is reported with its path
            raise CheckpointError(f"{path}: checkpoint is unreadable or does not match the model "
                                  f"({_first_line(e)})") from None

    def _move_aside(self, damaged: list[str], kept: list[str]) -> None:
        """Moves the damaged checkpoints' files to checkpoints/damaged/ and rewrites the index without them."""
        folder = os.path.join(self.directory, DAMAGED_DIR)
        os.makedirs(folder, exist_ok=True)
        for path in damaged:
            for name in glob.glob(glob.escape(path) + ".*"):
                target = os.path.join(folder, os.path.basename(name))
                suffix = 1
                while os.path.exists(target):
                    target = os.path.join(folder, f"{os.path.basename(name)}.{suffix}")
                    suffix += 1
                os.replace(name, target)
            logging.warning("moved the damaged checkpoint %s to %s", path, folder)
        kept = sorted(kept, key=_checkpoint_number)
        tf.compat.v1.train.update_checkpoint_state(self.directory, kept[-1], all_model_checkpoint_paths=kept)
        self.manager = self._make_manager()

    def save(self) -> str:
        """Writes a checkpoint numbered by the global step, if all weights are finite.

        Raises FloatingPointError for non-finite weights and
        CheckpointWriteError if the files cannot be written; in both cases
        the previous checkpoints are left as they were.
        """
        step = self.global_step
        if not weights_are_finite(self.model.weights):
            raise FloatingPointError(
                f"refusing to checkpoint non-finite weights at step {step}; "
                f"the last good checkpoint {self.latest} is kept"
            )
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            prefix = os.path.join(self.save_dir, f"{_PREFIX}-{step}")
            for leftover in glob.glob(glob.escape(prefix) + ".*") + glob.glob(glob.escape(prefix) + "_temp*"):
                _delete(leftover)
            raise CheckpointWriteError(
                f"{prefix}: cannot write the checkpoint of step {step} ({_first_line(e)}); the previous checkpoint "
                f"{self.latest} is kept: free space (or make the directory writable) and rerun to resume from it"
            ) from None

    @property
    def global_step(self) -> int:
        return int(self.optimizer.iterations.numpy()) if self.optimizer is not None else 0


def _checkpoint_number(path: str) -> int:
    match = re.search(r"-(\d+)$", path)
    return int(match.group(1)) if match else -1


def _delete(path: str) -> None:
    """Removes a file or folder left by a failed write; what cannot be removed stays."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            pass
