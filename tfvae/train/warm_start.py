"""``--init_from``: a new run starts from another model's weights (fine-tuning a trained or pretrained VAE).

The source is a tfvae run directory (its newest readable checkpoint, as
``load_model`` restores it) or a ``.keras`` file (``scripts/export.py
--keras_file``, the pretrained models in saved_models/). Only the model's
weights are taken: the optimizer's moments, the step, the data position and
the learning-rate and KL schedules start afresh, and the new run's own
settings (objective, learning rate, epochs, ...) apply. So a model trained on
the ELBO can be trained further on the IWAE bound, a pretrained model on
one's own images of the same shape.

The two networks must hold the same weights: as many, in the same order,
each of the same shape, matched in order as ``keras.Model.set_weights``
matches them (not by name: Keras numbers the layers it names in a process). The source is
read, never written, and checked for size before it is built
(``loading.load_model``). A run that already has a checkpoint resumes from
it and ignores the source.
"""

from __future__ import annotations

import os

from absl import logging

from tfvae.train import checkpoints, loading
from tfvae.train.rundir import RunDirectoryError

__all__ = ["InitFromError", "initialize_from"]


class InitFromError(ValueError):
    """The --init_from source cannot be read, or its weights do not fit the run's model (one line)."""


def _load_source(source: str):
    """The source's VAE (built outside any strategy scope; its weights are only read)."""
    if not os.path.exists(source):
        raise InitFromError(f"init_from: {source}: no such run directory or .keras file")
    if not os.path.isdir(source) and not source.endswith(".keras"):
        raise InitFromError(f"init_from: {source}: expected a tfvae run directory or a .keras file")
    try:
        return loading.load_model(source)
    except (RunDirectoryError, checkpoints.CheckpointError) as e:
        raise InitFromError(f"init_from: {e}") from None


def _first_mismatch(target_weights, source_weights, source: str) -> str | None:
    """Why the source's weights cannot be copied into the target's (naming the first that differs), or None."""
    for target, held in zip(target_weights, source_weights, strict=False):  # the common prefix
        if tuple(target.shape) != tuple(held.shape):
            return (f"init_from: {source}: weight {held.path} has shape {list(held.shape)} where this run's "
                    f"{target.path} has {list(target.shape)}; expected the same network")
    if len(source_weights) > len(target_weights):
        return (f"init_from: {source}: its weight {source_weights[len(target_weights)].path} has no counterpart in "
                f"this run's model ({len(source_weights)} weight tensors against {len(target_weights)}); "
                "expected the same network")
    if len(source_weights) < len(target_weights):
        return (f"init_from: {source}: this run's weight {target_weights[len(source_weights)].path} has no "
                f"counterpart in its model ({len(source_weights)} weight tensors against {len(target_weights)}); "
                "expected the same network")
    return None


def initialize_from(model, source: str, model_dir: str | None = None) -> None:
    """Assigns the weights of the model at ``source`` to ``model`` (built under its strategy).

    Called outside ``strategy.scope()`` (cross-replica context), so each
    assignment updates every replica's copy of a mirrored variable; values are
    cast to the target's dtype (tfvae keeps float32 variables under mixed
    precision).

    ``model_dir``: the run's own directory, which cannot be its source.

    Raises:
      InitFromError: the source is missing or unreadable or is ``model_dir``, its weights differ
        in number or shape from ``model``'s, or one is NaN or infinite.
        ``model`` is unchanged.
    """
    if model_dir is not None and os.path.realpath(source) == os.path.realpath(model_dir):
        raise InitFromError(f"init_from: {source}: is this run's own --model_dir; expected another run directory "
                            "or a .keras file")
    source_model = _load_source(source)
    target_weights, source_weights = model.weights, source_model.weights
    mismatch = _first_mismatch(target_weights, source_weights, source)
    if mismatch:
        raise InitFromError(mismatch)
    if not checkpoints.weights_are_finite(source_weights):
        raise InitFromError(f"init_from: {source}: holds non-finite weights (NaN or inf); expected a trained model")
    for target, held in zip(target_weights, source_weights, strict=True):
        target.assign(held.value)
    logging.info("Initialized the model's %d weight tensors from %s; optimizer, step and schedules start afresh",
                 len(target_weights), source)
