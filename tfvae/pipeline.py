"""Deterministic, resumable ``tf.data`` input pipelines.

Training batches are defined by (seed, epoch) alone:

  order_e = permutation of the N training images drawn from (seed, epoch),
  global batch g of epoch e = order_e[g * B : (g + 1) * B]   (the last partial
  batch is dropped, so every step sees exactly B examples).

With R replicas, replica r receives rows [r * B/R, (r + 1) * B/R) of every
global batch, so the data a step consumes does not depend on R. Dynamic
binarization x_b = 1[u < x], u ~ U(0, 1), draws u for the whole global batch
from (seed, epoch, g) and slices the replica's rows: a fresh binarization every
epoch that is the same on 1 or R replicas and after a resume. The images stay
in memory as uint8 (the cache); conversion and binarization happen after it.
A resumed epoch skips its first ``skip_steps`` batches before any work is done.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

__all__ = ["eval_batches", "steps_per_epoch", "train_batches"]

_BINARIZE_SALT = 0x5EED


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Number of full global batches in one pass over the data."""
    steps = num_examples // global_batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size ({global_batch_size}) must not exceed the number of training examples ({num_examples})"
        )
    return steps


def _to_float(images: tf.Tensor) -> tf.Tensor:
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) * (1.0 / 255.0)
    return tf.cast(images, tf.float32)


def train_batches(
    images: np.ndarray | tf.Tensor,
    global_batch_size: int,
    seed: int,
    epoch: int,
    binarize: bool,
    num_replicas: int = 1,
    replica_ids: Sequence[int] = (0,),
    skip_steps: int = 0,
) -> tf.data.Dataset:
    """Per-replica batches of one epoch, in replica-major order within each step.

    Args:
      images: [N, H, W, C] uint8 or float32 training images (held in memory).
      global_batch_size: examples per optimizer step over all replicas.
      seed, epoch: define the order and the binarization noise.
      binarize: draw x_b ~ Bernoulli(x) afresh (dynamic binarization).
      num_replicas: replicas in the whole job.
      replica_ids: the global ids of the replicas this pipeline feeds, in the
        order the strategy takes them (a worker's local replicas).
      skip_steps: global steps of this epoch already done (exact resume).

    Returns:
      A dataset of float32 [B / num_replicas, H, W, C] batches:
      len(replica_ids) consecutive elements per global step.
    """
    if global_batch_size % num_replicas:
        raise ValueError(
            f"batch_size ({global_batch_size}) must be divisible by the number of replicas ({num_replicas})"
        )
    num_examples = int(images.shape[0])
    steps = steps_per_epoch(num_examples, global_batch_size)
    local_batch = global_batch_size // num_replicas
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)[: steps * global_batch_size]
    order = order.reshape(steps, num_replicas, local_batch)[skip_steps:, list(replica_ids)]
    step_index = np.repeat(np.arange(skip_steps, steps), len(replica_ids))
    replica_index = np.tile(np.asarray(replica_ids, np.int32), steps - skip_steps)
    order = order.reshape(-1, local_batch)
    images = tf.convert_to_tensor(images)
    image_shape = images.shape[1:]

    def load(step, replica, indices):
        batch = _to_float(tf.gather(images, indices))
        if binarize:
            seed_g = tf.random.experimental.stateless_fold_in(
                tf.constant([seed & 0x7FFFFFFF, _BINARIZE_SALT], tf.int64), epoch * steps + step
            )
            noise = tf.random.stateless_uniform([global_batch_size, *image_shape], seed=seed_g)
            start = replica * local_batch
            batch = tf.cast(noise[start : start + local_batch] < batch, tf.float32)
        return batch

    dataset = tf.data.Dataset.from_tensor_slices(
        (step_index.astype(np.int64), replica_index, order.astype(np.int64))
    )
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_batches(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Float32 batches of fixed images in order (the last batch may be smaller)."""
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
