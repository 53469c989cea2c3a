"""The hot loops of ``train_and_evaluate``: compiled blocks of training steps over a run's data.

  TrainingLoop           the data held on the device; index blocks stream in (``pipeline``)
  StreamingTrainingLoop  decoded batches stream in from the files (``streaming``)

Both run K = steps_per_execution steps per call, draw the same binarization
and sampling noise for the same global example and step (``sampling``), and
give one replica or R replicas the same global batches.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from tfvae import data
from tfvae.core import distribute, sampling, xla
from tfvae.core.errors import DataError
from tfvae.data import in_memory, sources, streaming
from tfvae.train.config import TrainConfig
from tfvae.train.hardware import uses_xla

__all__ = ["StreamingTrainingLoop", "TrainingLoop", "make_training_loop", "steps_per_epoch", "xla_enabled"]


def xla_enabled(config: TrainConfig) -> bool:
    """Whether this machine runs ``config``'s steps under XLA (see hardware.uses_xla)."""
    return uses_xla(config, gpu_available=bool(tf.config.list_physical_devices("GPU")))


def make_training_loop(model, strategy, dataset, config: TrainConfig):
    """The loop for ``dataset``: a ``TrainingLoop`` for ``data.ImageData``, a ``StreamingTrainingLoop``
    for ``streaming.StreamData``."""
    if isinstance(dataset, streaming.StreamData):
        return StreamingTrainingLoop(model, strategy, dataset, config)
    return TrainingLoop(model, strategy, dataset, config)


def steps_per_epoch(dataset, global_batch_size: int, num_workers: int = 1) -> int:
    """Optimizer steps in one epoch of ``dataset`` (``data.ImageData`` or ``streaming.StreamData``)."""
    if isinstance(dataset, streaming.StreamData):
        return streaming.steps_per_epoch(dataset.train, global_batch_size, num_workers,
                                         dataset.train.record_ids(dataset.bad_records))
    return in_memory.steps_per_epoch(dataset.num_train_examples, global_batch_size)


def _floats(metrics: dict) -> dict:
    return {name: float(value) for name, value in metrics.items()}


def _reduced_metrics(model, strategy) -> dict:
    """The epoch's running metrics over all replicas and workers, in a replicated block."""

    def local_metric_sums():
        return {m.name: tf.stack([tf.identity(m.total), tf.identity(m.count)]) for m in model.metrics}

    # Reduce the metrics' (total, count) explicitly: Keras metric variables are not reliably
    # aggregated across workers (keras-team/keras#20585), and a ratio of sums is exact either way.
    sums = strategy.run(local_metric_sums)
    reduced = {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for name, value in sums.items()}
    return {name: value[0] / value[1] for name, value in reduced.items()}


def _local_replica_ids(ctx):
    per_worker = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    first = ctx.input_pipeline_id * per_worker
    return tuple(range(first, first + per_worker))


class TrainingLoop:
    """Compiled blocks of training steps over a run's data held in memory; the hot loop of ``train_and_evaluate``.

    The training images stay on the device (a variable); a ``tf.data``
    pipeline streams only index blocks (``in_memory.train_index_blocks``), and
    one call of ``run_block`` runs K steps: with one replica, gather,
    binarization and K whole train steps fused in one (XLA) while loop; with
    several, a loop of ``strategy.run`` calls whose replica-local part
    (gather, binarization, loss and gradients) is compiled while the
    all-reduce and the update run outside XLA (tf.distribute cannot
    synchronise inside a compiled function). Both draw the same noise for the
    same global example and step.

    Every element of ``epoch_input`` is (block, count): K rows, one per step,
    of which the first ``count`` are real; ``rows_to_batch`` turns one row
    into that step's (x, labels). Here a row holds example indices.

    Args:
      model: a built, compiled VAE (``build_model_and_optimizer``).
      strategy: the strategy it was built under.
      dataset: the run's ``data.ImageData`` (``data.prepare_data``).
      config: the run's settings (batch size, seed, steps per call, XLA).

    Example (what scripts/benchmark.py times):
      model, _ = training.build_model_and_optimizer(config, dataset, strategy)
      loop = loops.make_training_loop(model, strategy, dataset, config)
      iterator = iter(loop.epoch_input(epoch=0, plan=[50] * 10))
      logs = loop.run_block(iterator, 50)    # 50 steps; {"loss", "elbo", "rate", "distortion"}
    """

    def __init__(self, model, strategy, dataset: data.ImageData, config: TrainConfig):
        self.model, self.strategy, self.config = model, strategy, config
        self.num_examples = len(dataset.train_images)
        self.steps_per_epoch = in_memory.steps_per_epoch(self.num_examples, config.batch_size)
        self.binarize = dataset.binarize
        # Each worker holds the data itself: multi-worker strategies would broadcast a variable made in their
        # scope from the chief (and cannot broadcast uint8); one machine's replicas get a copy each.
        multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        with contextlib.nullcontext() if multi_worker else strategy.scope():
            self.images = tf.Variable(dataset.train_images, trainable=False, name="train_images")
            self.labels = None if dataset.train_labels is None else tf.Variable(
                dataset.train_labels, trainable=False, name="train_labels")
        self._compile()

    def _compile(self):
        self.xla = xla_enabled(self.config)
        if self.strategy.num_replicas_in_sync == 1:
            self._run_block = self._fused_block_function()
        else:
            self._run_block = self._replicated_block_function()

    def epoch_input(self, epoch: int, plan: list[int], skip_steps: int = 0, repeat: bool = False):
        """The (distributed) dataset of index blocks of ``epoch`` for the given block plan."""
        def dataset_fn(num_replicas, replica_ids):
            blocks = in_memory.train_index_blocks(self.num_examples, self.config.batch_size, self.config.seed, epoch,
                                                 plan, num_replicas, replica_ids, skip_steps)
            return blocks.repeat() if repeat else blocks

        if self.strategy.num_replicas_in_sync == 1:
            return dataset_fn(num_replicas=1, replica_ids=(0,))
        return self.strategy.distribute_datasets_from_function(
            lambda ctx: dataset_fn(num_replicas=ctx.num_replicas_in_sync, replica_ids=_local_replica_ids(ctx)))

    def run_block(self, iterator, num_steps: int) -> dict:
        """Runs the next block's steps (``num_steps``, as planned); returns the epoch's running metrics as floats."""
        del num_steps  # each block carries its own count
        return _floats(self._run_block(iterator))

    def reset_metrics(self) -> None:
        for metric in self.model.metrics:
            metric.reset_state()

    def rows_to_batch(self, indices_row):
        """(x, labels or None) of this replica's rows of one step."""
        return self._binarized(in_memory.to_float(tf.gather(self.images, indices_row))), (
            None if self.labels is None else tf.gather(self.labels, indices_row))

    def _binarized(self, x):
        if not self.binarize:
            return x
        replica_id, num_replicas = sampling.replica_position()
        return in_memory.binarize_batch(x, self.config.seed, self.model.optimizer.iterations, replica_id, num_replicas)

    def _fused_block_function(self):
        model, strategy = self.model, self.strategy

        def train_block(block, count):
            def one_step(i):
                x, y = self.rows_to_batch(_row(block, i))
                logs = model.train_step(x if y is None else (x, y))
                with tf.control_dependencies([logs["loss"]]):
                    return i + 1

            tf.while_loop(lambda i: i < count, one_step, [tf.constant(0)], parallel_iterations=1)

        compiled_block = xla.function(train_block, jit_compile=self.xla)

        @tf.function
        def run_block(iterator):
            block, count = next(iterator)
            strategy.run(compiled_block, args=(block, count))
            return {m.name: m.result() for m in model.metrics}

        return run_block

    def _replicated_block_function(self):
        model, strategy = self.model, self.strategy
        compiled_gradients = xla.function(
            lambda row: model.compute_loss_and_gradients(*self.rows_to_batch(row)), jit_compile=self.xla)

        def replica_step(block, i):
            model.apply_gradients_across_replicas(*compiled_gradients(_row(block, i)))

        @tf.function
        def run_block(iterator):
            block, count = next(iterator)
            for i in tf.range(strategy.experimental_local_results(count)[0]):
                strategy.run(replica_step, args=(block, i))
            return _reduced_metrics(model, strategy)

        return run_block


def _row(block, i):
    return tf.nest.map_structure(lambda t: t[i], block)


class StreamingTrainingLoop(TrainingLoop):
    """``TrainingLoop``'s compiled blocks over batches streamed from the training files.

    ``epoch_input`` is this worker's ``streaming.train_blocks`` of the epoch
    (distributed over its replicas with ``distribute_datasets_from_function``):
    each block holds the K steps' decoded uint8 batches, so conversion,
    binarization and K train steps run fused as in memory. A record that
    fails to decode stops the block with a DataError naming it
    (``sources.find_bad_records``).

    Args: as ``TrainingLoop``, with ``dataset`` a ``streaming.StreamData``.
    """

    def __init__(self, model, strategy, dataset: streaming.StreamData, config: TrainConfig):
        self.model, self.strategy, self.config, self.dataset = model, strategy, config, dataset
        self.binarize = dataset.binarize
        self.skipped = dataset.train.record_ids(dataset.bad_records)
        self.steps_per_epoch = steps_per_epoch(dataset, config.batch_size, distribute.num_workers(strategy))
        self.with_labels = bool(dataset.num_classes)
        self._compile()

    def epoch_input(self, epoch: int, plan: list[int], skip_steps: int = 0, repeat: bool = False):
        """The (distributed) dataset of this worker's blocks of ``epoch`` from step ``skip_steps`` on."""
        def dataset_fn(num_workers, worker_index, num_local_replicas):
            blocks = streaming.train_blocks(
                self.dataset.train, self.config.batch_size, self.config.seed, epoch, self.steps_per_epoch, plan,
                self.config.shuffle_buffer, num_workers, worker_index, num_local_replicas, skip_steps, self.skipped,
                self.with_labels)
            return blocks.repeat() if repeat else blocks

        if self.strategy.num_replicas_in_sync == 1:
            return dataset_fn(1, 0, 1)
        return self.strategy.distribute_datasets_from_function(lambda ctx: dataset_fn(
            ctx.num_input_pipelines, ctx.input_pipeline_id, ctx.num_replicas_in_sync // ctx.num_input_pipelines))

    def run_block(self, iterator, num_steps: int) -> dict:
        try:
            return super().run_block(iterator, num_steps)
        except tf.errors.InvalidArgumentError:
            bad = sources.find_bad_records(self.dataset.train, limit=1)
            if not bad:
                raise
            raise DataError(f"{bad[0]}; pass --skip_bad_records to leave such records out") from None

    def rows_to_batch(self, row):
        """(x, labels or None) of this replica's streamed batch of one step."""
        images, labels = row if self.with_labels else (row, None)
        return self._binarized(in_memory.to_float(images)), labels
