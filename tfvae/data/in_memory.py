"""Deterministic, resumable input for training, and batches for evaluation.

Training batches are defined by (seed, epoch) alone:

  order_e = permutation of the N training images drawn from (seed, epoch),
  global batch g of epoch e = order_e[g * B : (g + 1) * B]   (the last partial
  batch is dropped, so every step sees exactly B examples).

With R replicas, replica r receives rows [r * B/R, (r + 1) * B/R) of every
global batch, so the data a step consumes does not depend on R.

The images stay in memory as uint8 (the cache); a ``tf.data`` pipeline streams
only *index blocks* (the indices of k consecutive steps), and the compiled
training step gathers, converts and binarizes its batch on the device, fused
with the step itself. Dynamic binarization x_b = 1[u < x], u ~ U(0, 1), draws
u for the whole global batch from (seed, global step) and keeps the replica's
rows (the global_batch noise scheme, the default), or only the replica's own
examples' u, u of global example i and element e from Philox of
(key(seed, step), (e // 4, i, 0, 0)) (per_example, ``core.counter_noise``):
either way fresh every step and epoch, the same on 1 or R replicas and after a
resume. ``train_batches`` offers the same batches as an ordinary image
dataset (for ``model.fit`` and custom loops).

``InMemoryData`` is a run's data ready for training in memory, one of the
two kinds of ``training_data.TrainingData``; its ``training_feed`` holds the
training images on the device and feeds the loop these index blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfvae.core import counter_noise, distribute, sampling
from tfvae.data import formats, training_data

__all__ = [
    "InMemoryData",
    "IndexFeed",
    "binarize_batch",
    "eval_batches",
    "local_replica_ids",
    "steps_per_epoch",
    "to_float",
    "train_batches",
    "train_index_blocks",
]

_BINARIZE_SALT = 0x5EED


def steps_per_epoch(num_examples: int, global_batch_size: int) -> int:
    """Number of full global batches in one pass over the data."""
    steps = num_examples // global_batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size ({global_batch_size}) must not exceed the number of training examples ({num_examples})"
        )
    return steps


def to_float(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is cast to float32."""
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) * (1.0 / 255.0)
    return tf.cast(images, tf.float32)


def binarize_batch(
    batch: tf.Tensor, seed: int, step: tf.Tensor, replica_id=0, num_replicas: int = 1,
    noise_scheme: str = "global_batch",
) -> tf.Tensor:
    """x_b = 1[u < x] for this replica's rows of a global batch, u ~ U(0, 1) from (seed, step).

    ``noise_scheme`` (``sampling.NOISE_SCHEMES``): "global_batch" draws u for
    the global batch and keeps rows [r B_local, (r + 1) B_local) (tfvae 0.3);
    "per_example" draws only those rows, ``counter_noise.uniform`` with the key
    ``counter_noise.step_key(seed, step, salt)`` and first example r B_local.
    """
    local_batch = batch.shape[0] if batch.shape[0] is not None else tf.shape(batch)[0]
    if sampling.check_noise_scheme(noise_scheme) == "per_example":
        key = counter_noise.step_key(seed, step, salt=_BINARIZE_SALT)
        noise = counter_noise.uniform(key, tf.shape(batch), first_example=replica_id * local_batch)
        return tf.cast(noise < batch, tf.float32)
    if batch.shape.is_fully_defined():
        noise_shape = [local_batch * num_replicas, *batch.shape[1:]]
    else:
        noise_shape = tf.concat([[local_batch * num_replicas], tf.shape(batch)[1:]], 0)
    noise = tf.random.stateless_uniform(
        noise_shape, seed=sampling.step_seed(seed, step, salt=_BINARIZE_SALT), alg=sampling.rng_algorithm()
    )
    start = replica_id * local_batch
    return tf.cast(noise[start : start + local_batch] < batch, tf.float32)


def _epoch_order(num_examples, global_batch_size, seed, epoch, num_replicas, replica_ids):
    """[steps, len(replica_ids), B / R] example indices of one epoch."""
    distribute.check_batch_size(global_batch_size, num_replicas)
    steps = steps_per_epoch(num_examples, global_batch_size)
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)[: steps * global_batch_size]
    return order.reshape(steps, num_replicas, global_batch_size // num_replicas)[:, list(replica_ids)]


def train_index_blocks(
    num_examples: int,
    global_batch_size: int,
    seed: int,
    epoch: int,
    block_steps: Sequence[int],
    num_replicas: int = 1,
    replica_ids: Sequence[int] = (0,),
    skip_steps: int = 0,
) -> tf.data.Dataset:
    """Index blocks of one epoch: element = (indices [K, B / R] int32, count int32).

    Args:
      num_examples: N, the training set size.
      global_batch_size: B, examples per optimizer step over all replicas.
      seed, epoch: define the order.
      block_steps: how many steps each block holds, in order; their sum must
        be the epoch's remaining steps. Blocks are padded to K = max(block_steps)
        rows, and ``count`` tells how many rows are real.
      num_replicas: R, replicas in the whole job.
      replica_ids: global ids of the replicas this pipeline feeds, in the order
        the strategy takes them; each block yields one element per replica.
      skip_steps: steps of this epoch already done (exact resume).
    """
    order = _epoch_order(num_examples, global_batch_size, seed, epoch, num_replicas, replica_ids)[skip_steps:]
    if sum(block_steps) != len(order):
        raise ValueError(f"block_steps sum to {sum(block_steps)}, but {len(order)} steps remain in epoch {epoch}")
    width = max(block_steps)
    blocks, counts, start = [], [], 0
    for count in block_steps:
        block = np.zeros((width, *order.shape[1:]), np.int32)
        block[:count] = order[start : start + count]
        start += count
        for j in range(len(replica_ids)):
            blocks.append(block[:, j])
            counts.append(count)
    dataset = tf.data.Dataset.from_tensor_slices((np.stack(blocks), np.asarray(counts, np.int32)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def train_batches(
    images: np.ndarray,
    global_batch_size: int,
    seed: int,
    epoch: int,
    binarize: bool,
    first_step: int = 0,
    noise_scheme: str = "global_batch",
) -> tf.data.Dataset:
    """One epoch of float32 [B, H, W, C] training batches as an image dataset.

    The same batches the training loop builds on the device: global step
    ``first_step + g`` of the run binarizes with the noise of that step, by
    ``noise_scheme`` (``binarize_batch``).
    """
    order = _epoch_order(len(images), global_batch_size, seed, epoch, 1, (0,))[:, 0]
    images = tf.convert_to_tensor(images)

    def load(step, indices):
        batch = to_float(tf.gather(images, indices))
        return binarize_batch(batch, seed, step, noise_scheme=noise_scheme) if binarize else batch

    steps = np.arange(first_step, first_step + len(order), dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((steps, order.astype(np.int32)))
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def eval_batches(images: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """Float32 batches of fixed images in order (the last batch may be smaller)."""
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    return dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def local_replica_ids(context: tf.distribute.InputContext) -> tuple[int, ...]:
    """Global ids of the replicas the input pipeline of ``context`` feeds, in the order the strategy takes them."""
    per_worker = context.num_replicas_in_sync // context.num_input_pipelines
    first = context.input_pipeline_id * per_worker
    return tuple(range(first, first + per_worker))


@dataclasses.dataclass(frozen=True)
class InMemoryData(formats.ExampleArrays):
    """A run's data ready for training, held in memory (a ``training_data.TrainingData``).

    What ``data.make_ready`` makes of data as loaded (``formats.LoadedArrays``,
    or example sources decoded whole): the training images as they will be
    trained on (uint8 in [0, 255] or float32 in [0, 1], the first
    ``train_examples``), the test images float32, binarized once with
    ``test_binarization_seed`` when ``binarize``. tfvae 0.3.0 called it ``ImageData``.

    Attributes:
      train_images, test_images: [N, H, W, C] images or [N, D] vectors.
      source: what the data is, for messages.
      train_labels, test_labels: int32 labels for a conditional run, else None.
      binarize: whether training batches are binarized dynamically (Bernoulli likelihood).
      num_classes: max(label) + 1 for a conditional run, else 0.
      bad_records: records left out with ``skip_bad_records``.
      test_binarization_seed: the seed of the test images' binarization (None: not binarized, or not known).
    """

    train_images: np.ndarray
    test_images: np.ndarray
    source: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    binarize: bool = False
    num_classes: int = 0
    bad_records: tuple = ()
    test_binarization_seed: int | None = None

    def steps_per_epoch(self, global_batch_size: int, num_workers: int = 1) -> int:
        """Full global batches in one pass over the training images (every worker holds them all)."""
        del num_workers  # each worker gathers its replicas' rows of every global batch from its own copy
        return steps_per_epoch(self.num_train_examples, global_batch_size)

    def training_feed(self, strategy: tf.distribute.Strategy, global_batch_size: int, seed: int,
                      shuffle_buffer: int = 0) -> IndexFeed:
        """The training images on the device, fed as index blocks; ``shuffle_buffer`` is for streamed data only
        (data in memory are permuted whole every epoch)."""
        del shuffle_buffer
        return IndexFeed(self, strategy, global_batch_size, seed)

    def test_split(self, test_binarization_seed: int | None = None, max_examples: int = 0):
        """(test images, test labels or None), the first ``max_examples`` (0: all), as ``evaluation`` takes them.

        The images were binarized when the data were made ready; a ``test_binarization_seed`` other than that
        one is a ValueError (``training_data.resolve_test_seed``).
        """
        if self.binarize:
            training_data.resolve_test_seed(self.test_binarization_seed, test_binarization_seed)
        images = self.test_images[: max_examples or None]
        return images, None if self.test_labels is None else self.test_labels[: len(images)]


class IndexFeed:
    """``InMemoryData``'s ``training_data.TrainingFeed``: images on the device, index blocks streamed.

    Every device a replica of this worker computes on holds its own copy of
    the training images (and labels), and a replica gathers its batch from
    the copy on its device: with several GPUs no replica reads another's
    memory. The copies are made by each worker from its own data, outside
    the strategy's scope: a multi-worker strategy would broadcast a variable
    made in its scope from the chief (and cannot broadcast uint8), and every
    worker holds the same data. Replica r of the sync group reads copy
    r mod D, D the devices of a worker (every worker has D replicas, in the
    order of its devices).
    """

    def __init__(self, data: InMemoryData, strategy: tf.distribute.Strategy, global_batch_size: int, seed: int):
        self.num_examples, self.global_batch_size, self.seed = data.num_train_examples, global_batch_size, seed
        self.devices = distribute.replica_devices(strategy)
        self.image_copies, self.label_copies = [], []
        for device in self.devices:
            with tf.device(device):
                self.image_copies.append(tf.Variable(data.train_images, trainable=False, name="train_images"))
                if data.train_labels is not None:
                    self.label_copies.append(tf.Variable(data.train_labels, trainable=False, name="train_labels"))

    def local_copy(self) -> int:
        """Which copy the calling replica reads: its id in the sync group mod the worker's devices (0 outside a
        replica context, or when the id is not known while tracing)."""
        context = tf.distribute.get_replica_context()
        replica = None if context is None else tf.get_static_value(context.replica_id_in_sync_group)
        return 0 if replica is None else int(replica) % len(self.devices)

    def blocks(self, epoch: int, plan: Sequence[int], skip_steps: int,
               context: tf.distribute.InputContext) -> tf.data.Dataset:
        """``train_index_blocks`` of ``epoch`` for the replicas of ``context``: a row holds example indices."""
        return train_index_blocks(self.num_examples, self.global_batch_size, self.seed, epoch, plan,
                                  context.num_replicas_in_sync, local_replica_ids(context), skip_steps)

    def examples(self, row):
        """(images, labels or None) of one row of example indices, gathered from this replica's device."""
        copy = self.local_copy()
        labels = tf.gather(self.label_copies[copy], row) if self.label_copies else None
        return tf.gather(self.image_copies[copy], row), labels

    def check_records(self) -> None:
        """Nothing to check: the images were validated when loaded."""
