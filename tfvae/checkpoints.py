"""Training state on disk: model, optimizer, step and input position.

The state is a ``tf.train.Checkpoint`` of the model, the optimizer (whose
``iterations`` is the global step) and the position in the data
(``epoch``, ``step_in_epoch``), saved by a ``tf.train.CheckpointManager``
in the run directory's ``checkpoints/`` (``rundir.RunDirectory.checkpoint_dir``). TensorFlow writes each checkpoint's files
before it updates the ``checkpoint`` index, so the index never names a
half-written checkpoint. A checkpoint is only written when every weight is
finite, so a diverged step never replaces the last good one.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["CheckpointError", "TrainingState", "weights_are_finite"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the model."""


def weights_are_finite(variables) -> bool:
    values = [tf.convert_to_tensor(v) for v in variables]
    return bool(all(tf.reduce_all(tf.math.is_finite(v)) for v in values if v.dtype.is_floating))


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
        self.manager = tf.train.CheckpointManager(self.checkpoint, save_dir or self.directory, max_to_keep=max_to_keep)

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore_latest(self, require: bool = False) -> str | None:
        """Restores the newest checkpoint; reports (never skips) an unreadable one."""
        path = self.latest
        if path is None:
            if require:
                raise CheckpointError(f"{self.directory}: no checkpoint found")
            return None
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
            if self.optimizer is None:
                status.expect_partial()  # an inference load leaves the optimizer's slots behind, on purpose
        except Exception as e:  # noqa: BLE001 - any failure to read it is reported with its path
            first_line = (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
            raise CheckpointError(f"{path}: checkpoint is unreadable or does not match the model ({first_line})") from None
        return path

    def save(self) -> str:
        """Writes a checkpoint numbered by the global step, if all weights are finite."""
        if not weights_are_finite(self.model.weights):
            raise FloatingPointError(
                f"refusing to checkpoint non-finite weights at step {self.global_step}; "
                f"the last good checkpoint {self.latest} is kept"
            )
        return self.manager.save(checkpoint_number=self.global_step)

    @property
    def global_step(self) -> int:
        return int(self.optimizer.iterations.numpy()) if self.optimizer is not None else 0
