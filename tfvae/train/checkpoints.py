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
    ``CheckpointError``;
  * weights that are not finite are never checkpointed:
    ``NonFiniteWeightsError`` (a ``CheckpointError``) names the step and the
    last good checkpoint, which is kept;
  * the index is not trusted to name files: only ``ckpt-N`` (N an int) in
    ``checkpoints/`` itself is a checkpoint. Other entries (paths outside
    the folder, other names) are ignored with a warning and never read,
    moved or deleted; the run's owner rewrites the index without them before
    its first save, since ``tf.train.CheckpointManager`` deletes the oldest
    entries of its index when it rotates checkpoints.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import time

import tensorflow as tf
from absl import logging

__all__ = [
    "CheckpointError",
    "CheckpointWriteError",
    "NonFiniteWeightsError",
    "TrainingState",
    "checkpoint_paths",
    "stored_bytes",
    "weights_are_finite",
]

_PREFIX = "ckpt"  # tf.train.CheckpointManager's default checkpoint_name
_NAME = re.compile(rf"{_PREFIX}-(\d+)")
DAMAGED_DIR = "damaged"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the model."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written; the previous ones are intact."""


class NonFiniteWeightsError(CheckpointError, FloatingPointError):
    """The weights are not finite (training diverged); no checkpoint was written, the previous ones are intact."""


def _is_checkpoint_path(path: str, directory: str) -> bool:
    """Whether ``path`` names ``<directory>/ckpt-N`` (N an int): the only checkpoints tfvae reads or moves."""
    return (os.path.dirname(os.path.abspath(path)) == os.path.abspath(directory)
            and _NAME.fullmatch(os.path.basename(path)) is not None)


def _index_entries(directory: str) -> list[str] | None:
    """The checkpoint paths the index of ``directory`` names (relative ones joined to it); None without a readable
    index."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # noqa: BLE001 - a damaged index: the caller falls back to the files themselves
        return None
    if state is None:
        return None
    return list(dict.fromkeys([*state.all_model_checkpoint_paths, state.model_checkpoint_path]))


def _rewrite_index(directory: str, kept: list[str]) -> None:
    """Rewrites the index of ``directory`` to name ``kept`` (oldest first; none: the index is removed).

    Each kept entry keeps its timestamp, so ``tf.train.CheckpointManager``
    still rotates it (an entry without one it would treat as preserved for
    ever and leave out of the next index); one that had none gets the
    current time.
    """
    index = os.path.join(directory, "checkpoint")
    if not kept:
        os.remove(index)
        return
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # noqa: BLE001 - a damaged index is replaced
        state = None
    stamps, last_preserved = {}, 0.0
    if state is not None:
        last_preserved = min(state.last_preserved_timestamp, time.time())
        if len(state.all_model_checkpoint_timestamps) == len(state.all_model_checkpoint_paths):
            stamps = dict(zip(state.all_model_checkpoint_paths, state.all_model_checkpoint_timestamps, strict=True))
    now = time.time()
    tf.compat.v1.train.update_checkpoint_state(
        directory, kept[-1], all_model_checkpoint_paths=kept,
        all_model_checkpoint_timestamps=[stamps.get(p, now) for p in kept], last_preserved_timestamp=last_preserved)


def checkpoint_paths(directory: str) -> list[str]:
    """The checkpoints of ``directory``, newest first: those its index names (only ``<directory>/ckpt-N``), or
    without such entries the ``ckpt-N.index`` files on disk."""
    entries = _index_entries(directory) or []
    paths = [p for p in entries if _is_checkpoint_path(p, directory)]
    ignored = [p for p in entries if p not in paths]
    if ignored:
        logging.warning("%s: ignoring index entries that are not checkpoints in that folder (ckpt-N): %s",
                        os.path.join(directory, "checkpoint"), ", ".join(ignored))
    if not paths:
        paths = [name[: -len(".index")] for name in glob.glob(os.path.join(glob.escape(directory), f"{_PREFIX}-*.index"))
                 if _is_checkpoint_path(name[: -len(".index")], directory)]
    return sorted(set(paths), key=_checkpoint_number, reverse=True)


def stored_bytes(path: str) -> int:
    """Bytes on disk of the checkpoint ``path`` (its index and data files; 0 if it has none)."""
    return sum(os.path.getsize(name) for name in glob.glob(glob.escape(path) + ".*") if os.path.isfile(name))


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
        self._manager = None  # made at the first save, after the index is cleaned (see _clean_index)

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The manager that writes and rotates checkpoints in ``save_dir``; its index names only ckpt-N there."""
        if self._manager is None:
            self._clean_index()
            self._manager = tf.train.CheckpointManager(self.checkpoint, self.save_dir, max_to_keep=self.max_to_keep)
        return self._manager

    def _clean_index(self) -> None:
        """Rewrites ``save_dir``'s index without the entries that are not its checkpoints, which the manager would
        otherwise delete when it rotates (the owner's job: only called before a save)."""
        entries = _index_entries(self.save_dir)
        if not entries:
            return
        kept = sorted((p for p in entries if _is_checkpoint_path(p, self.save_dir)), key=_checkpoint_number)
        if len(kept) == len(entries):
            return
        logging.warning("%s: dropping index entries that are not checkpoints in that folder: %s",
                        os.path.join(self.save_dir, "checkpoint"), ", ".join(p for p in entries if p not in kept))
        _rewrite_index(self.save_dir, kept)

    @property
    def latest(self) -> str | None:
        """The newest checkpoint of the run's folder (by the index, checked as ``candidates`` does); None if none."""
        paths = self.candidates()
        return paths[0] if paths else None

    def candidates(self) -> list[str]:
        """Checkpoint paths, newest first (``checkpoint_paths``)."""
        return checkpoint_paths(self.directory)

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
        _rewrite_index(self.directory, sorted(kept, key=_checkpoint_number))
        self._manager = None

    def save(self) -> str:
        """Writes a checkpoint numbered by the global step, if all weights are finite.

        Raises NonFiniteWeightsError for non-finite weights and
        CheckpointWriteError if the files cannot be written; in both cases
        the previous checkpoints are left as they were.
        """
        step = self.global_step
        if not weights_are_finite(self.model.weights):
            raise NonFiniteWeightsError(
                f"refusing to checkpoint non-finite weights at step {step} (training diverged: a smaller learning "
                f"rate or gradient clipping may help); the last good checkpoint {self.latest} is kept"
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
    match = _NAME.fullmatch(os.path.basename(path))
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
