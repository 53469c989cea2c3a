"""The training loop: ``train_and_evaluate(config, model_dir)``.

It runs ``model.train_step`` inside ``tf.function`` (XLA by default), with a
Keras progress bar, TensorBoard scalars and image grids, and checkpoints that
hold model, optimizer, step and input position.

Exact resume: the batches of epoch e are a function of (seed, e) and the
sampling noise of step t a function of (seed, t); a rerun restores the latest
checkpoint, skips the batches its epoch already consumed and repeats exactly
the computation an uninterrupted run would do, so the final weights are equal.

A non-finite loss stops training with ``NonFiniteLossError`` naming the step;
no checkpoint is written after it, so the last good one stays.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfvae import checkpoints, data, distribute, evaluation, files, images, objectives, pipeline, sampling
from tfvae.config import TrainConfig, uses_xla, validate
from tfvae.factory import build_model

__all__ = ["NonFiniteLossError", "check_run_directory", "prepare_data", "train_and_evaluate"]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"  # validation elbo/rate/distortion at the end of training
MODEL_FILE = "model.json"
# Fields that may change when a run is continued in the same model_dir.
# Settings a run may change when resumed: none alters the model or the maths (results do not depend on the
# strategy or the number of replicas for the same global batch).
_RESUMABLE_CHANGES = {"epochs", "checkpoint_every_steps", "summary_every_steps", "eval_every_epochs",
                      "max_checkpoints", "validation_examples", "steps_per_execution", "strategy", "devices",
                      "logical_cpu_devices"}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """Training images (uint8 or float) and fixed evaluation images (float32 in [0, 1]).

    Labels (int32) are kept for a conditional run only; num_classes is then
    max(label) + 1 over both splits.
    """

    train_images: np.ndarray
    test_images: np.ndarray
    binarize: bool
    source: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    num_classes: int = 0

    @property
    def data_shape(self):
        return tuple(self.train_images.shape[1:])


def prepare_data(config: TrainConfig, data_dir: str | None = None) -> PreparedData:
    """Loads and validates the data; binarizes the test set once for Bernoulli likelihoods."""
    loaded = data.load_dataset(config.dataset, data_dir or config.data_dir)
    train_images, train_labels, test_labels, num_classes = loaded.train_images, None, None, 0
    if config.conditional:
        if loaded.train_labels is None or loaded.test_labels is None:
            raise ValueError(f"conditional: the data at {loaded.source} has no labels for both splits; a conditional "
                             "VAE needs them (IDX *-labels-idx1-ubyte files, or y_train/y_test in an .npz)")
        train_labels, test_labels = (np.asarray(y, np.int32).reshape(-1) for y in (loaded.train_labels, loaded.test_labels))
        if min(train_labels.min(), test_labels.min()) < 0:
            raise ValueError(f"conditional: labels must be ints >= 0; {loaded.source} has negative ones")
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    if config.train_examples:
        train_images = train_images[: config.train_examples]
        train_labels = None if train_labels is None else train_labels[: config.train_examples]
    binarize = config.likelihood == "bernoulli"
    test_images = (
        data.binarize(loaded.test_images, config.test_binarization_seed)
        if binarize
        else data.to_unit_interval(loaded.test_images)
    )
    return PreparedData(train_images, test_images, binarize, loaded.source, train_labels, test_labels, num_classes)


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    learning_rate = config.learning_rate
    if config.learning_rate_decay == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(1, total_steps), alpha=0.01)
    optimizer = keras.optimizers.Adam(learning_rate)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def check_run_directory(model_dir: str, config: TrainConfig) -> None:
    """Raises ValueError if ``model_dir`` holds a run that ``config`` cannot continue."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.exists(path):
        with open(path) as f:
            previous = TrainConfig.from_json(f.read())
        for field in dataclasses.fields(TrainConfig):
            old, new = getattr(previous, field.name), getattr(config, field.name)
            if old != new and field.name not in _RESUMABLE_CHANGES:
                raise ValueError(
                    f"model_dir {model_dir} holds a run with {field.name}={old!r}, not {new!r}; "
                    "use a new model_dir or the same settings"
                )


def xla_enabled(config: TrainConfig) -> bool:
    """Whether this machine runs ``config``'s steps under XLA (see config.uses_xla)."""
    return uses_xla(config, gpu_available=bool(tf.config.list_physical_devices("GPU")))


def _make_train_function(model, strategy, images, labels, binarize: bool, seed: int, jit_compile: bool):
    """A tf.function that consumes one index block [K, B/R] (+ count): K training steps.

    One replica: gather, binarization and K whole train steps run fused in
    one (XLA) while loop. Several replicas: a loop of ``strategy.run`` calls
    whose replica-local part (gather, binarization, loss and gradients) is
    compiled, while the gradient all-reduce and the update run outside XLA
    (tf.distribute cannot synchronise inside a nested compiled function).
    Both paths draw the same noise for the same global example and step.
    """

    def local_batch(indices_row):
        """(x, labels or None) of this replica's rows."""
        replica_id, num_replicas = sampling.replica_position()
        x = pipeline.to_float(tf.gather(images, indices_row))
        if binarize:
            x = pipeline.binarize_batch(x, seed, model.optimizer.iterations, replica_id, num_replicas)
        return x, None if labels is None else tf.gather(labels, indices_row)

    if strategy.num_replicas_in_sync == 1:

        def train_block(indices, count):
            def one_step(i):
                x, y = local_batch(indices[i])
                logs = model.train_step(x if y is None else (x, y))
                with tf.control_dependencies([logs["loss"]]):
                    return i + 1

            tf.while_loop(lambda i: i < count, one_step, [tf.constant(0)], parallel_iterations=1)

        compiled_block = tf.function(train_block, jit_compile=jit_compile)

        @tf.function
        def run_block(iterator):
            indices, count = next(iterator)
            strategy.run(compiled_block, args=(indices, count))
            return {m.name: m.result() for m in model.metrics}

        return run_block

    compiled_gradients = tf.function(
        lambda indices_row: model.compute_loss_and_gradients(*local_batch(indices_row)), jit_compile=jit_compile
    )

    def replica_step(indices, i):
        model.apply_gradients_across_replicas(*compiled_gradients(indices[i]))

    def local_metric_sums():
        return {m.name: tf.stack([tf.identity(m.total), tf.identity(m.count)]) for m in model.metrics}

    @tf.function
    def run_block(iterator):
        indices, count = next(iterator)
        for i in tf.range(strategy.experimental_local_results(count)[0]):
            strategy.run(replica_step, args=(indices, i))
        # Reduce the metrics' (total, count) explicitly: Keras metric variables are not reliably
        # aggregated across workers (keras-team/keras#20585), and a ratio of sums is exact either way.
        sums = strategy.run(local_metric_sums)
        reduced = {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for name, value in sums.items()}
        return {name: value[0] / value[1] for name, value in reduced.items()}

    return run_block


def _block_plan(first_step: int, remaining: int, steps_per_execution: int, checkpoint_every: int) -> list[int]:
    """Steps per call for the rest of an epoch; calls end on checkpoint boundaries."""
    plan, step = [], first_step
    while remaining:
        count = min(steps_per_execution, remaining, checkpoint_every - step % checkpoint_every)
        plan.append(count)
        step += count
        remaining -= count
    return plan


def _distribute(strategy, dataset_fn):
    """Calls dataset_fn(num_replicas=..., replica_ids=...) per input pipeline."""
    if strategy.num_replicas_in_sync == 1:
        return dataset_fn(num_replicas=1, replica_ids=(0,))
    return strategy.distribute_datasets_from_function(
        lambda ctx: dataset_fn(num_replicas=ctx.num_replicas_in_sync, replica_ids=_local_replica_ids(ctx))
    )


def _local_replica_ids(ctx):
    per_worker = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    first = ctx.input_pipeline_id * per_worker
    return tuple(range(first, first + per_worker))


def _write_images(model, writer, step, validation_images, validation_labels, seed):
    x = tf.convert_to_tensor(validation_images[:32])
    labels = None if validation_labels is None else validation_labels[:32]
    sample_labels = np.arange(64) % model.num_classes if model.num_classes else None  # row by row
    with writer.as_default(step=step):
        reconstructions = model.reconstruct(x, labels=labels)
        tf.summary.image("reconstructions", images.image_grid(images.side_by_side(x, reconstructions), 8)[tf.newaxis])
        samples = model.sample(64, seed=seed, labels=sample_labels)
        tf.summary.image("prior_samples", images.image_grid(samples)[tf.newaxis])


def train_and_evaluate(
    config: TrainConfig,
    model_dir: str,
    model=None,
    strategy: tf.distribute.Strategy | None = None,
    verbose: int = 1,
) -> dict:
    """Trains (or resumes) the run in ``model_dir`` and returns validation metrics.

    Args:
      config: the run's settings.
      model_dir: run directory; holds config.json, model.json, checkpoints/,
        train/ and validation/ TensorBoard logs. Rerunning resumes exactly.
      model: a VAE to train instead of the one ``config`` describes (its Keras
        config is saved to model.json, so ``tfvae.load_model`` rebuilds it).
      strategy: a ``tf.distribute.Strategy``; if None, the one
        ``config.strategy`` names (``distribute.make_strategy``).
      verbose: 0 silent, 1 progress bar, 2 one line per epoch.

    Returns:
      {"elbo", "rate", "distortion"} on the validation images (nats per
      example), plus "step" and "epoch".
    """
    validate(config)
    strategy = strategy or distribute.make_strategy(config.strategy, config.devices, config.logical_cpu_devices)
    is_chief, task_id = distribute.worker_role(strategy)
    verbose = verbose if is_chief else 0
    prepared = prepare_data(config)
    num_replicas = strategy.num_replicas_in_sync
    if config.batch_size % num_replicas:
        raise ValueError(f"batch_size ({config.batch_size}) must be divisible by the number of replicas ({num_replicas})")
    steps_per_epoch = pipeline.steps_per_epoch(len(prepared.train_images), config.batch_size)
    os.makedirs(model_dir, exist_ok=True)
    check_run_directory(model_dir, config)
    if is_chief:
        files.write_atomic(os.path.join(model_dir, CONFIG_FILE), config.to_json())
    # Every worker takes part in saving; only the chief's copy is the run's.
    scratch_dir = None if is_chief else os.path.join(model_dir, f".worker-{task_id}")

    keras.utils.set_random_seed(config.seed)  # weight initialization
    with strategy.scope():
        model = model or build_model(config, prepared.data_shape, prepared.num_classes)
        model.build((None, *prepared.data_shape))
        optimizer = make_optimizer(config, steps_per_epoch * config.epochs)
        model.compile(optimizer=optimizer, jit_compile=False)
        optimizer.build(model.trainable_variables)
        state = checkpoints.TrainingState(model, optimizer, model_dir, config.max_checkpoints,
                                          save_dir=scratch_dir and checkpoints.checkpoint_dir(scratch_dir))
    restored = state.restore_latest()
    if restored:
        logging.info("Resuming from %s (step %d)", restored, state.global_step)
    if is_chief:
        files.write_atomic(
            os.path.join(model_dir, MODEL_FILE), json.dumps(keras.saving.serialize_keras_object(model), indent=1)
        )

    # Each worker loads the data itself: multi-worker strategies would broadcast a variable made in their scope
    # from the chief (and cannot broadcast uint8); one machine's replicas get a copy each.
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with contextlib.nullcontext() if multi_worker else strategy.scope():
        device_images = tf.Variable(prepared.train_images, trainable=False, name="train_images")
        device_labels = None if prepared.train_labels is None else tf.Variable(
            prepared.train_labels, trainable=False, name="train_labels")
    xla = xla_enabled(config)
    run_block = _make_train_function(model, strategy, device_images, device_labels, prepared.binarize, config.seed,
                                     xla)
    if is_chief:
        train_writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
        validation_writer = tf.summary.create_file_writer(os.path.join(model_dir, "validation"))
    else:
        train_writer = validation_writer = tf.summary.create_noop_writer()
    validation_images = prepared.test_images[: config.validation_examples or None]
    validation_labels = None if prepared.test_labels is None else prepared.test_labels[: len(validation_images)]
    results = {}

    while int(state.epoch.numpy()) < config.epochs:
        epoch = int(state.epoch.numpy())
        done = int(state.step_in_epoch.numpy())
        plan = _block_plan(state.global_step, steps_per_epoch - done, config.steps_per_execution,
                           config.checkpoint_every_steps)
        dataset = _distribute(
            strategy,
            functools.partial(
                pipeline.train_index_blocks, len(prepared.train_images), config.batch_size, config.seed, epoch, plan,
                skip_steps=done,
            ),
        )
        iterator = iter(dataset)
        for metric in model.metrics:
            metric.reset_state()
        progbar = keras.utils.Progbar(steps_per_epoch, verbose=verbose, stateful_metrics=[m.name for m in model.metrics],
                                      unit_name="step")
        if verbose == 1:
            print(f"Epoch {epoch + 1}/{config.epochs}")
        start_time, start_step = time.perf_counter(), done
        for num_steps in plan:
            step = state.global_step
            logs = {k: float(v) for k, v in run_block(iterator).items()}
            if not math.isfinite(logs["loss"]):
                first = step + 1 if num_steps == 1 else f"{step + 1}-{step + num_steps}"
                raise NonFiniteLossError(
                    f"non-finite loss ({logs['loss']}) at step {first}; training stopped and the last good "
                    f"checkpoint {state.latest} is kept"
                )
            done += num_steps
            state.step_in_epoch.assign(done)
            step += num_steps
            if done == steps_per_epoch:
                state.epoch.assign(epoch + 1)
                state.step_in_epoch.assign(0)
            if step % config.summary_every_steps < num_steps or done == steps_per_epoch:
                with train_writer.as_default(step=step):
                    for name, value in logs.items():
                        tf.summary.scalar(name, value)
                    tf.summary.scalar("kl_weight", objectives.kl_weight(
                        step, model.beta, model.kl_warmup_steps, model.kl_schedule, model.kl_cycle_steps))
            if step % config.checkpoint_every_steps == 0 or done == steps_per_epoch:
                state.save()
            progbar.update(done, list(logs.items()))
        seconds = time.perf_counter() - start_time
        examples_per_second = (done - start_step) * config.batch_size / max(seconds, 1e-9)
        with train_writer.as_default(step=step):
            tf.summary.scalar("examples_per_second", examples_per_second)
        logging.info("epoch %d: %s, %.0f examples/s", epoch + 1, logs, examples_per_second)
        if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.epochs:
            results = evaluation.elbo_metrics(model, validation_images, validation_labels, jit_compile=xla)
            with validation_writer.as_default(step=step):
                for name, value in results.items():
                    tf.summary.scalar(name, value)
            _write_images(model, validation_writer, step, validation_images, validation_labels, config.seed)
            if verbose:
                print("validation: " + ", ".join(f"{k}={v:.3f}" for k, v in results.items()))
    train_writer.flush()
    validation_writer.flush()
    if not results:
        results = evaluation.elbo_metrics(model, validation_images, validation_labels, jit_compile=xla)
    results.update(step=state.global_step, epoch=int(state.epoch.numpy()))
    if is_chief:
        files.write_atomic(os.path.join(model_dir, METRICS_FILE), json.dumps(results, indent=1))
    else:
        shutil.rmtree(scratch_dir, ignore_errors=True)
    return results
