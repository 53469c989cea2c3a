"""Streaming input: training batches read from an example source, in bounded memory, resumable exactly.

The batches of epoch e on worker w are a function of (seed, e, w) alone:

  files_w   = the source's files i with i % W == w  (shard-level split: every
              example belongs to one worker)
  order     = files_w permuted from (seed, e, w), read interleaved (16 at a time)
  records   = that stream shuffled in a buffer of min(shuffle_buffer, records
              of files_w) records (tf.data's shuffle, seeded from (seed, e,
              w); a buffer of at least the worker's records shuffles all of
              them whatever its size, so the bound changes no order)
  epoch     = the first S * B / W records, S = steps per epoch (the same on
              every worker: the smallest share's full batches)

Records are shuffled while still encoded (bytes, not pixels) and decoded in
parallel after the shuffle, so a resume at step s skips s * B / W encoded
records instead of decoding them, and memory holds the shuffle buffer of
encoded records and a few decoded batches, whatever the size of the data.
The worker's share of a global batch is cut into its R local replicas'
rows in order, as the in-memory pipeline does, so one worker's batches do
not depend on its number of replicas. Dynamic binarization happens in the
training step after decoding (``pipeline.binarize_batch``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tfvae.core import distribute
from tfvae.core.errors import DataError
from tfvae.data import limits, pixels, sources, training_data
from tfvae.data.sources import BadRecord, ExampleSource

__all__ = ["StreamData", "StreamFeed", "TestSplit", "check_shuffle_buffer", "steps_per_epoch", "train_blocks", "train_dataset",
           "worker_files"]


class TestSplit:
    """A test split read in batches, for ``evaluation``: the first ``num_examples`` records of ``source``.

    Images come as float32 in [0, 1], binarized once with ``binarize_seed``
    when it is not None, equal to the same split binarized whole in memory
    (``pixels.Binarizer``); labels come with them when ``with_labels``.
    """

    def __init__(self, source: ExampleSource, binarize_seed: int | None, with_labels: bool,
                 skipped: frozenset = frozenset(), max_examples: int = 0):
        self.source, self.binarize_seed, self.with_labels, self.skipped = source, binarize_seed, with_labels, skipped
        available = source.num_examples - len(skipped)
        self.num_examples = min(max_examples, available) if max_examples else available

    def __len__(self) -> int:
        return self.num_examples

    @property
    def shape(self) -> tuple[int, ...]:
        """(examples, H, W, C), as an array of the split would have."""
        return (self.num_examples, *self.source.data_shape)

    def batches(self, batch_size: int):
        """(x float32 [b, H, W, C], labels int32 [b] or None) in order."""
        binarizer = pixels.Binarizer(self.binarize_seed) if self.binarize_seed is not None else None
        decoded = self.source.decoded(self.skipped).take(self.num_examples).batch(batch_size).prefetch(2)
        for images, labels in decoded.as_numpy_iterator():
            x = binarizer(images) if binarizer else pixels.to_unit_interval(images)
            yield x, labels if self.with_labels else None


@dataclasses.dataclass(frozen=True)
class StreamData:
    """A run's data when the training split is streamed (a ``training_data.TrainingData``).

    The validation examples (the first ``validation_examples`` test
    examples) are held in memory, as ``in_memory.InMemoryData`` holds them; the whole test
    split is read again by ``evaluation`` through ``test_split``.

    Attributes:
      train, test: the splits' example sources.
      test_images: the validation images, float32 [n, H, W, C] (binarized once when ``binarize``).
      test_labels: their int32 labels for a conditional run, else None.
      source: what the data is, for messages.
      binarize: whether training batches are binarized dynamically (Bernoulli likelihood).
      num_classes: max(label) + 1 for a conditional run, else 0.
      bad_records: records left out with ``skip_bad_records`` (train and test).
      test_binarization_seed: the seed of the test split's one binarization (None: not binarized, or not known).
    """

    train: ExampleSource
    test: ExampleSource
    test_images: np.ndarray
    test_labels: np.ndarray | None
    source: str
    binarize: bool = False
    num_classes: int = 0
    bad_records: tuple[BadRecord, ...] = ()
    test_binarization_seed: int | None = None

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return self.train.data_shape

    @property
    def num_train_examples(self) -> int:
        return self.train.num_examples - len(self.train.record_ids(self.bad_records))

    def steps_per_epoch(self, global_batch_size: int, num_workers: int = 1) -> int:
        """Full global batches per epoch: the smallest worker share's count of full B / W batches."""
        return steps_per_epoch(self.train, global_batch_size, num_workers, self.train.record_ids(self.bad_records))

    def training_feed(self, strategy: tf.distribute.Strategy, global_batch_size: int, seed: int,
                      shuffle_buffer: int) -> StreamFeed:
        """Each worker's ``train_blocks`` of the training files, decoded batches in a block."""
        return StreamFeed(self, global_batch_size, seed, shuffle_buffer, distribute.num_workers(strategy))

    def test_split(self, test_binarization_seed: int | None = None, max_examples: int = 0) -> tuple[TestSplit, None]:
        """(the whole test split read in batches, None): what ``evaluation`` takes as (images, labels).

        Binarized once with the seed the data were made ready with; a ``test_binarization_seed`` other than that
        one is a ValueError (``training_data.resolve_test_seed``; 0 when neither is known).
        """
        seed = training_data.resolve_test_seed(self.test_binarization_seed, test_binarization_seed)
        return TestSplit(self.test, (0 if seed is None else seed) if self.binarize else None,
                         bool(self.num_classes), self.test.record_ids(self.bad_records), max_examples), None


class StreamFeed:
    """``StreamData``'s ``training_data.TrainingFeed``: blocks of decoded uint8 batches read from the files.

    A record that fails to decode stops the block; ``check_records`` then
    finds it and raises a DataError naming it (``sources.find_bad_records``).
    """

    def __init__(self, data: StreamData, global_batch_size: int, seed: int, shuffle_buffer: int, num_workers: int):
        self.source, self.global_batch_size, self.seed, self.shuffle_buffer = (data.train, global_batch_size, seed,
                                                                               shuffle_buffer)
        self.skipped = data.train.record_ids(data.bad_records)
        self.steps = data.steps_per_epoch(global_batch_size, num_workers)
        self.with_labels = bool(data.num_classes)

    def blocks(self, epoch: int, plan, skip_steps: int, context: tf.distribute.InputContext) -> tf.data.Dataset:
        """This worker's ``train_blocks`` of ``epoch`` from step ``skip_steps`` on, for its local replicas."""
        return train_blocks(self.source, self.global_batch_size, self.seed, epoch, self.steps, plan,
                            self.shuffle_buffer, context.num_input_pipelines, context.input_pipeline_id,
                            context.num_replicas_in_sync // context.num_input_pipelines, skip_steps, self.skipped,
                            self.with_labels)

    def examples(self, row):
        """(images, labels or None) of this replica's streamed batch of one step."""
        return row if self.with_labels else (row, None)

    def check_records(self) -> None:
        """DataError naming the first training record that does not decode, if there is one."""
        bad = sources.find_bad_records(self.source, limit=1)
        if bad:
            raise DataError(f"{bad[0]}; pass --skip_bad_records to leave such records out")


def worker_files(source: ExampleSource, num_workers: int, worker_index: int) -> list[int]:
    """The file ids worker ``worker_index`` of ``num_workers`` reads: i % num_workers == worker_index.

    A source of kind "dataset" is one file that every worker reads, keeping
    every W-th example (``train_dataset``).
    """
    if source.kind == "dataset":
        return [0]
    if len(source.files) < num_workers:
        raise DataError(f"{source.name}: {len(source.files)} shards cannot be split across {num_workers} workers; "
                        f"write at least {num_workers} (scripts/make_tfrecords.py --num_shards)")
    return list(range(worker_index, len(source.files), num_workers))


def _worker_examples(source, num_workers, worker_index, skipped) -> int:
    if source.kind == "dataset":
        return len(range(worker_index, source.num_examples, num_workers))
    files = worker_files(source, num_workers, worker_index)
    return sum(source.counts[f] for f in files) - sum(1 for f, _ in skipped if f % num_workers == worker_index)


def steps_per_epoch(source: ExampleSource, global_batch_size: int, num_workers: int = 1,
                    skipped: frozenset = frozenset()) -> int:
    """Full global batches per epoch: the smallest worker share's count of full B / W batches."""
    distribute.check_batch_size(global_batch_size, num_workers)
    local = global_batch_size // num_workers
    shares = [_worker_examples(source, num_workers, w, skipped) for w in range(num_workers)]
    steps = min(shares) // local
    if steps == 0:
        raise ValueError(f"batch_size ({global_batch_size}) must not exceed the training examples a worker reads "
                         f"({min(shares)} of {sum(shares)} over {num_workers} workers)")
    return steps


def check_shuffle_buffer(shuffle_buffer: int) -> int:
    """``shuffle_buffer`` if it is an int in [1, ``limits.MAX_SHUFFLE_BUFFER``]; else a one-line ValueError."""
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, (int, np.integer)) or not (
            1 <= shuffle_buffer <= limits.MAX_SHUFFLE_BUFFER):
        raise ValueError(f"shuffle_buffer must be an int in [1, {limits.MAX_SHUFFLE_BUFFER}] (records); got "
                         f"{shuffle_buffer!r}")
    return int(shuffle_buffer)


def _seed(seed: int, epoch: int, worker_index: int) -> int:
    return int(np.random.default_rng([seed, epoch, worker_index, 0x57EA]).integers(2**31 - 1))


def train_dataset(source: ExampleSource, global_batch_size: int, seed: int, epoch: int, steps: int,
                  shuffle_buffer: int, num_workers: int = 1, worker_index: int = 0, skip_steps: int = 0,
                  skipped: frozenset = frozenset(), with_labels: bool = False) -> tf.data.Dataset:
    """This worker's batches of one epoch (module docstring): uint8 images [B/W, H, W, C] (and int32 labels).

    Args:
      source: the training split.
      global_batch_size: B, examples per step over all workers and replicas.
      seed, epoch: define the order (with the worker index).
      steps: steps per epoch (``steps_per_epoch``).
      shuffle_buffer: records in the shuffle buffer (1: read order), at most
        ``limits.MAX_SHUFFLE_BUFFER``; bounded by the records this worker reads.
      num_workers, worker_index: this input pipeline among all.
      skip_steps: steps of this epoch already done (exact resume).
      skipped: (file id, record index) of records to leave out.
      with_labels: yield (images, labels) instead of images.
    """
    local_batch = global_batch_size // num_workers
    buffer = min(check_shuffle_buffer(shuffle_buffer), _worker_examples(source, num_workers, worker_index, skipped))
    files = np.array(worker_files(source, num_workers, worker_index))
    order = files[np.random.default_rng([seed, epoch, worker_index]).permutation(len(files))]
    dataset = source.records(order, skipped)
    if source.kind == "dataset" and num_workers > 1:
        dataset = dataset.shard(num_workers, worker_index)
    if buffer > 1:
        dataset = dataset.shuffle(buffer, seed=_seed(seed, epoch, worker_index),
                                  reshuffle_each_iteration=False)
    dataset = dataset.take(steps * local_batch).skip(skip_steps * local_batch).batch(local_batch, drop_remainder=True)

    def decode(payloads):
        images, labels = source.decode_batch(payloads)
        return (images, labels) if with_labels else images

    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_blocks(source: ExampleSource, global_batch_size: int, seed: int, epoch: int, steps: int, plan,
                 shuffle_buffer: int, num_workers: int = 1, worker_index: int = 0, num_local_replicas: int = 1,
                 skip_steps: int = 0, skipped: frozenset = frozenset(), with_labels: bool = False,
                 ) -> tf.data.Dataset:
    """``train_dataset``'s batches grouped as the training loop runs them: (block, count) per replica.

    ``plan`` gives the steps of each compiled call (their sum: the steps
    left in the epoch). Block b holds the batches of its plan[b] steps,
    padded to K = max(plan) rows, and ``count`` = plan[b]; each block is cut
    into the R local replicas' shares (rows [r B/(W R), (r+1) B/(W R)) of every
    step's batch), one element per replica in order, as
    ``pipeline.train_index_blocks`` does for data in memory.
    """
    if sum(plan) != steps - skip_steps:
        raise ValueError(f"plan sums to {sum(plan)}, but {steps - skip_steps} steps remain in epoch {epoch}")
    distribute.check_batch_size(global_batch_size // num_workers, num_local_replicas)
    batches = train_dataset(source, global_batch_size, seed, epoch, steps, shuffle_buffer, num_workers, worker_index,
                            skip_steps, skipped, with_labels)
    width, replicas = max(plan), num_local_replicas
    ends, sizes = tf.constant(np.cumsum(plan), tf.int64), tf.constant(plan, tf.int64)
    blocks = batches.enumerate().group_by_window(
        key_func=lambda j, batch: tf.searchsorted(ends, [j], side="right", out_type=tf.int64)[0],
        reduce_func=lambda key, window: window.map(lambda j, batch: batch).batch(width),
        window_size_func=lambda key: tf.gather(sizes, key))

    def per_replica(*block):
        block = block if with_labels else block[0]
        count = tf.shape(tf.nest.flatten(block)[0])[0]

        def split(t):
            t = tf.pad(t, [[0, width - count]] + [[0, 0]] * (t.shape.rank - 1))
            shape = tf.shape(t)
            t = tf.reshape(t, tf.concat([[width, replicas, shape[1] // replicas], shape[2:]], 0))
            return tf.transpose(t, [1, 0, *range(2, t.shape.rank)])

        return tf.data.Dataset.from_tensor_slices((tf.nest.map_structure(split, block), tf.fill([replicas], count)))

    # One block ahead is enough (a block is a whole compiled call), and bounds memory: a block of 50 steps of
    # 128 64x64x3 images is 79 MB.
    return blocks.flat_map(per_replica).prefetch(num_local_replicas)
