"""The hot loop of ``train_and_evaluate``: compiled blocks of training steps over a run's data.

``TrainingLoop`` runs K = steps_per_execution steps per call over any
``data.training_data.TrainingData`` (data in memory, streamed from files,
or a user's ``tf.data``), through the ``TrainingFeed`` the data give it: the
data held on the device with index blocks streamed in (``in_memory``), or
decoded batches streamed in from the files (``streaming``). It draws the
same binarization and sampling noise for the same global example and step
(``sampling``, by the run's ``noise_scheme``), and gives one replica or R
replicas the same global batches.
"""

from __future__ import annotations

import tensorflow as tf

from tfvae.core import distribute, sampling, xla
from tfvae.core.errors import DataError
from tfvae.data import in_memory
from tfvae.data.training_data import TrainingData
from tfvae.train.config import TrainConfig
from tfvae.train.hardware import uses_xla

__all__ = ["StreamingTrainingLoop", "TrainingLoop", "make_training_loop", "steps_per_epoch", "xla_enabled"]


def xla_enabled(config: TrainConfig) -> bool:
    """Whether this machine runs ``config``'s steps under XLA (see hardware.uses_xla)."""
    return uses_xla(config, gpu_available=bool(tf.config.list_physical_devices("GPU")))


def make_training_loop(model, strategy, dataset: TrainingData, config: TrainConfig):
    """The ``TrainingLoop`` of ``dataset`` (in memory or streamed; the data tell the loop how they are read)."""
    return TrainingLoop(model, strategy, dataset, config)


def steps_per_epoch(dataset: TrainingData, global_batch_size: int, num_workers: int = 1) -> int:
    """Optimizer steps in one epoch of ``dataset``: ``dataset.steps_per_epoch(global_batch_size, num_workers)``."""
    return dataset.steps_per_epoch(global_batch_size, num_workers)


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


class TrainingLoop:
    """Compiled blocks of training steps over a run's data; the hot loop of ``train_and_evaluate``.

    The data's ``training_feed`` gives, per epoch, blocks of K steps (for
    data in memory: index blocks, the images staying on the device; for
    streamed data: decoded batches), and one call of ``run_block`` runs K
    steps: with one replica, the step's examples (``feed.examples``),
    conversion, binarization and K whole train steps fused in one (XLA)
    while loop; with several, a loop of ``strategy.run`` calls whose
    replica-local part (examples, binarization, loss and gradients) is
    compiled while the all-reduce and the update run outside XLA
    (tf.distribute cannot synchronise inside a compiled function). Both draw
    the same noise for the same global example and step.

    Every element of ``epoch_input`` is (block, count): K rows, one per step,
    of which the first ``count`` are real; ``rows_to_batch`` turns one row
    into that step's (x, labels). A block that fails on a record that does
    not decode stops with a DataError naming it (``feed.check_records``).

    Args:
      model: a built, compiled VAE (``build_model_and_optimizer``).
      strategy: the strategy it was built under.
      dataset: the run's data (``data.prepare_data``): any ``training_data.TrainingData``.
      config: the run's settings (batch size, seed, steps per call, XLA, shuffle buffer).

    Example (what scripts/benchmark.py times):
      model, _ = training.build_model_and_optimizer(config, dataset, strategy)
      loop = loops.make_training_loop(model, strategy, dataset, config)
      iterator = iter(loop.epoch_input(epoch=0, plan=[50] * 10))
      logs = loop.run_block(iterator, 50)    # 50 steps; {"loss", "elbo", "rate", "distortion"}
    """

    def __init__(self, model, strategy, dataset: TrainingData, config: TrainConfig):
        self.model, self.strategy, self.config = model, strategy, config
        self.binarize = dataset.binarize
        self.steps_per_epoch = dataset.steps_per_epoch(config.batch_size, distribute.num_workers(strategy))
        self.feed = dataset.training_feed(strategy, config.batch_size, config.seed, config.shuffle_buffer)
        self._compile()

    def _compile(self):
        self.xla = xla_enabled(self.config)
        if self.strategy.num_replicas_in_sync == 1:
            self._run_block = self._fused_block_function()
        else:
            self._run_block = self._replicated_block_function()

    def epoch_input(self, epoch: int, plan: list[int], skip_steps: int = 0, repeat: bool = False):
        """The (distributed) dataset of this worker's blocks of ``epoch`` for the given block plan, from step
        ``skip_steps`` on."""
        def dataset_fn(context):
            blocks = self.feed.blocks(epoch, plan, skip_steps, context)
            return blocks.repeat() if repeat else blocks

        if self.strategy.num_replicas_in_sync == 1:
            return dataset_fn(tf.distribute.InputContext())
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def run_block(self, iterator, num_steps: int) -> dict:
        """Runs the next block's steps (``num_steps``, as planned); returns the epoch's running metrics as floats."""
        del num_steps  # each block carries its own count
        try:
            return _floats(self._run_block(iterator))
        except tf.errors.InvalidArgumentError:
            try:
                self.feed.check_records()
            except DataError as bad:
                raise bad from None
            raise

    def reset_metrics(self) -> None:
        for metric in self.model.metrics:
            metric.reset_state()

    def rows_to_batch(self, row):
        """(x, labels or None) of this replica's row of one step."""
        images, labels = self.feed.examples(row)
        return self._binarized(in_memory.to_float(images)), labels

    def _binarized(self, x):
        if not self.binarize:
            return x
        replica_id, num_replicas = sampling.replica_position()
        return in_memory.binarize_batch(x, self.config.seed, self.model.optimizer.iterations, replica_id, num_replicas,
                                        self.config.noise_scheme)

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


StreamingTrainingLoop = TrainingLoop  # tfvae 0.3.0's loop of streamed data: one loop serves both now
