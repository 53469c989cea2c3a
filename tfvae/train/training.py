"""The training loop: ``train_and_evaluate(config, model_dir)``.

It reads as its steps: prepare the run directory, build or restore the
state, then per epoch run the compiled training blocks and evaluate and log,
calling the standard ``keras.callbacks.Callback`` hooks throughout.

Exact resume: the batches of epoch e are a function of (seed, e) and the
sampling noise of step t a function of (seed, t); a rerun restores the latest
checkpoint, skips the batches its epoch already consumed and repeats exactly
the computation an uninterrupted run would do, so the final weights are equal.

A non-finite loss stops training with ``NonFiniteLossError`` naming the step;
no checkpoint is written after it, so the last good one stays. The chief
holds the run directory's lock (``runlock``) while it trains; SIGTERM or
SIGINT ends training with a checkpoint at the current step (``preemption``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import signal
import sys
import time
from collections.abc import Collection

import keras
import tensorflow as tf
from absl import logging

from tfvae import data, evaluation
from tfvae.core import distribute
from tfvae.core.errors import DataError
from tfvae.train import (
    checkpoints,
    data_defaults,
    factory,
    hardware,
    loops,
    optimizers,
    preemption,
    run_summary,
    runlock,
    warm_start,
)
from tfvae.train.config import TrainConfig
from tfvae.train.loops import TrainingLoop, xla_enabled
from tfvae.train.rundir import RunDirectory
from tfvae.train.summaries import Writers

__all__ = [
    "CheckpointTriggers",
    "NonFiniteLossError",
    "TrainingLoop",
    "progress_verbosity",
    "build_model_and_optimizer",
    "log_summary",
    "make_callbacks",
    "train_and_evaluate",
    "xla_enabled",
]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# ================================================================ the recipe
def train_and_evaluate(
    config: TrainConfig,
    model_dir: str,
    model=None,
    strategy: tf.distribute.Strategy | None = None,
    callbacks: list | None = None,
    verbose: int | str = "auto",
    flags_text: str | None = None,
    train_data=None,
    validation_data=None,
    settings_given: Collection[str] | None = None,
) -> dict:
    """Trains (or resumes) the run in ``model_dir`` and returns validation metrics.

    Args:
      config: the run's settings.
      model_dir: run directory (layout in ``tfvae.rundir``). Rerunning resumes exactly.
      model: a VAE to train instead of the one ``config`` describes (its Keras
        config is saved to model.json, so ``tfvae.load_model`` rebuilds it).
      strategy: a ``tf.distribute.Strategy``; if None, the one
        ``config.strategy`` names (``distribute.make_strategy``).
      callbacks: ``keras.callbacks.Callback`` objects, called like ``fit``
        calls them: train/epoch begin and end (epoch logs hold the training
        metrics and, after a validation, ``val_loss``, ``val_elbo``, ...),
        and batch end once per compiled block. ``model.stop_training = True``
        ends the run after the epoch.
      verbose: 0 silent, 1 progress bar, 2 one line per epoch, "auto" (1 on
        a terminal, 2 when stdout is a file or pipe, where Keras advises 2).
      flags_text: the command line's resolved flags, written to flags.txt
        with config.json (scripts/train.py passes them; a setting fitted to
        the data is written as it was fitted, so the file replays the run).
      train_data: data from Python instead of ``config.dataset``: a NumPy
        array of images, an (images, labels) tuple or a ``tf.data.Dataset``
        of unbatched images or (image, label) pairs (``data.from_python``);
        the run's config then records dataset "python".
      validation_data: the validation examples, of the same kinds (None: hold
        out ``config.validation_split`` of an array's examples).
      settings_given: the names of the config fields the user chose; the
        others may be fitted to the data (``data_defaults``: a batch no
        larger than the training split, a gaussian likelihood for a
        real-valued table). None: the fields that differ from
        ``TrainConfig()``'s defaults. The run logs a summary of its data and
        settings at the start (absl INFO) and warns of a run too short to
        learn much, or of a rate that collapsed (absl WARNING).

    Example:
      images = np.random.default_rng(0).integers(0, 256, (1000, 28, 28, 1), np.uint8)
      tfvae.train_and_evaluate(tfvae.TrainConfig(epochs=2), "runs/mine", train_data=images)

    Returns:
      {"elbo", "rate", "distortion"} on the validation images (nats per
      example), plus "step", "epoch" and "stopped_early".

    Raises:
      runlock.RunLockError: another training process holds ``model_dir``.
      preemption.TrainingPreempted: SIGTERM or SIGINT stopped training after
        a checkpoint at the current step (rerun to resume).
      checkpoints.CheckpointWriteError: a checkpoint could not be written
        (the previous ones are kept).
      NonFiniteLossError: the loss diverged (the last good checkpoint is kept).
    """
    if train_data is not None:
        config = dataclasses.replace(config, dataset=data.PYTHON_DATASET, data_dir=None)
    elif validation_data is not None:
        raise ValueError("validation_data is given without train_data; pass both, or neither to read config.dataset")
    distribute.set_determinism(config.deterministic)
    strategy = strategy or distribute.make_strategy(config.strategy, config.devices, config.logical_cpu_devices)
    logging.info("%s", distribute.describe(strategy))
    factory.check_config(config)  # after the strategy: a multi-worker one must exist before TensorFlow starts
    hardware.warn_if_emulated(config.precision, distribute.replica_devices(strategy))
    given = (data_defaults.settings_changed_from_defaults(config) if settings_given is None
             else frozenset(settings_given))
    if model is not None:  # its likelihood is its decoder's, not the config's to fit
        given |= {"likelihood", "gaussian_scale"}
    if "batch_size" in given:
        distribute.check_batch_size(config.batch_size, strategy.num_replicas_in_sync)
    is_chief, task_id = distribute.worker_role(strategy)
    run = RunDirectory(model_dir)
    with contextlib.ExitStack() as held:
        if is_chief:  # one training process per run directory
            held.enter_context(runlock.RunLock(run.lock_path))
        signals = held.enter_context(preemption.SignalWatch())
        loaded = (data.load_run_data(config) if train_data is None
                  else data.load_python_data(config, train_data, validation_data))
        description = data.describe(loaded)
        config, fitted = data_defaults.fit_to_data(config, description, given, strategy.num_replicas_in_sync)
        factory.check_config(config, description.data_shape, description.num_classes)  # the parts, on this data
        distribute.check_batch_size(config.batch_size, strategy.num_replicas_in_sync)
        dataset = data.make_ready(config, loaded)
        flags_text = None if flags_text is None else _with_fitted_settings(flags_text, config, fitted)
        report = _RunReport(description, fitted, given, model is not None)
        results = _train(config, run, strategy, model, callbacks, verbose, flags_text, is_chief, task_id, signals,
                         dataset, report)
    if not is_chief:
        shutil.rmtree(run.scratch_dir(task_id), ignore_errors=True)
    return results


@dataclasses.dataclass(frozen=True)
class _RunReport:
    """What the start-of-run summary says besides the config: the data as read, the fitted defaults and why."""

    description: data.DataDescription
    fitted: dict
    settings_given: frozenset
    model_given: bool


def _train(config, run, strategy, model, callbacks, verbose, flags_text, is_chief, task_id, signals, dataset,
           report: _RunReport) -> dict:
    run.check_can_continue(config)  # before anything is built or written
    model, state = build_or_restore_state(config, run, strategy, dataset, model, is_chief, task_id)
    if state.latest:  # a resumed run's weights are its checkpoint's, wherever --init_from points now
        config, flags_text = _with_recorded_init_from(config, run, flags_text)
    # config.json is written once the model is built: a refused --init_from leaves none, so the corrected command
    # starts the run.
    prepare_run_directory(config, run, is_chief, flags_text)
    loop = loops.make_training_loop(model, strategy, dataset, config)
    if is_chief:
        log_summary(config, dataset, loop.steps_per_epoch, report, model if report.model_given else None)
    writers = _summary_writers(run, is_chief, config)
    callback_list = make_callbacks(callbacks, model, config, loop.steps_per_epoch,
                                   progress_verbosity(verbose) if is_chief else 0)
    triggers = CheckpointTriggers(config, strategy, signals)

    validate = evaluation.ElboMetrics(model, jit_compile=loop.xla)  # traced once for the run's validations

    callback_list.on_train_begin()
    validation = {}
    model.stop_training = False
    while int(state.epoch.numpy()) < config.epochs and not model.stop_training:
        triggers.stop_if_signalled(state)
        epoch = int(state.epoch.numpy())
        callback_list.on_epoch_begin(epoch)
        logs = run_epoch(loop, state, config, callback_list, writers, triggers)
        if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.epochs:
            validation = evaluate_and_log(model, dataset, config, writers, state.global_step, validate)
            logs.update({f"val_{name}": value for name, value in validation.items()})
        callback_list.on_epoch_end(epoch, logs)
    results = finish(model, dataset, config, run, state, writers, validation, is_chief, validate)
    callback_list.on_train_end(results)
    return results


# ================================================================ the steps
def log_summary(config: TrainConfig, dataset, steps_per_epoch: int, report: _RunReport, model=None) -> None:
    """Logs the run's summary (absl INFO) and the warnings about its settings (absl WARNING), once at its start.

    ``model``: the VAE, when it was given rather than built from ``config`` (the summary names its parts).
    """
    validation_examples = len(_validation_split(dataset, config)[0])
    lines = run_summary.summary_lines(config, report.description, steps_per_epoch, validation_examples,
                                      report.fitted, report.settings_given, model)
    logging.info("run summary\n  %s", "\n  ".join(lines))
    for warning in run_summary.start_warnings(config, report.description, steps_per_epoch, report.settings_given):
        logging.warning("%s", warning)


def progress_verbosity(verbose: int | str) -> int:
    """0, 1 or 2; "auto" is 1 (a progress bar) on a terminal and 2 (one line per epoch, no control characters)
    when stdout is a file or a pipe, as Keras' ``fit`` documentation advises."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto'; got {verbose!r}")
    return int(verbose)


def _with_fitted_settings(flags_text: str, config: TrainConfig, fitted: dict) -> str:
    """``flags_text`` with each fitted setting's line (``--name=value``) holding its fitted value."""
    lines = flags_text.splitlines()
    for name in fitted:
        line = f"--{name}={getattr(config, name)}"
        matching = [i for i, text in enumerate(lines) if text.startswith(f"--{name}=")]
        for i in matching:
            lines[i] = line
        if not matching:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _with_recorded_init_from(config: TrainConfig, run: RunDirectory, flags_text: str | None):
    """(config, flags_text) naming the --init_from the run started from, as its config.json records it.

    A run that resumes from its checkpoint does not read ``--init_from``, so a
    changed or moved source is allowed; config.json and flags.txt keep the
    source its first weights came from.
    """
    if not run.has_run():
        return config, flags_text
    started_from = run.read_config().init_from
    if started_from == config.init_from:
        return config, flags_text
    logging.warning("--init_from=%s not read: the run resumes from its checkpoint; its config.json keeps "
                    "init_from=%r", config.init_from, started_from)
    config = config.replace(init_from=started_from)
    if flags_text is not None:
        flags_text = "".join(line for line in flags_text.splitlines(keepends=True)
                             if not line.startswith("--init_from="))
        if started_from:
            flags_text = _with_fitted_settings(flags_text, config, ("init_from",))
    return config, flags_text


def prepare_run_directory(config: TrainConfig, run: RunDirectory, is_chief: bool,
                          flags_text: str | None = None) -> RunDirectory:
    """The chief (re)writes config.json (and flags.txt); ``run.check_can_continue(config)`` has passed (``_train``
    checks before the model is built, and the run's lock keeps other trainers out since)."""
    if is_chief:
        run.write_config(config)
        if flags_text is not None:
            run.write_flags(flags_text)
    return run


def build_model_and_optimizer(config: TrainConfig, dataset: data.TrainingData, strategy, model=None):
    """(built and compiled model, built optimizer) under ``strategy``'s scope, weights seeded by config.seed.

    ``dataset`` is the run's data (``data.TrainingData``: in memory or streamed).
    """
    keras.utils.set_random_seed(config.seed)  # weight initialization
    steps = dataset.steps_per_epoch(config.batch_size, distribute.num_workers(strategy)) * config.epochs
    with strategy.scope():
        model = model or factory.build_model(config, dataset.data_shape, dataset.num_classes)
        model.build((None, *dataset.data_shape))
        optimizer = optimizers.make_optimizer(config.learning_rate, config.learning_rate_decay, steps,
                                              config.precision)
        model.compile(optimizer=optimizer, seed=config.seed, clip_global_norm=config.clip_global_norm or None,
                      gradient_spike_factor=config.gradient_spike_factor or None, noise_scheme=config.noise_scheme,
                      jit_compile=False)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def build_or_restore_state(config, run: RunDirectory, strategy, dataset, model, is_chief: bool, task_id: int):
    """(model, TrainingState) restored from the latest checkpoint if there is one, else with the weights of
    ``config.init_from`` if set (``warm_start``); the chief writes model.json."""
    model, optimizer = build_model_and_optimizer(config, dataset, strategy, model)
    # Every worker takes part in saving; only the chief's copy is the run's.
    save_dir = None if is_chief else run.scratch_dir(task_id)
    with strategy.scope():
        state = checkpoints.TrainingState(model, optimizer, run.checkpoint_dir, config.max_checkpoints, save_dir)
    restored = state.restore_latest(move_aside_damaged=is_chief)
    if restored:
        logging.info("Resuming from %s (step %d)", restored, state.global_step)
    elif config.init_from:
        warm_start.initialize_from(model, config.init_from, run.path)
    if is_chief:
        run.write_model(model)
    return model, state


def run_epoch(loop: TrainingLoop, state, config: TrainConfig, callback_list, writers,
              triggers: CheckpointTriggers | None = None) -> dict:
    """Runs the rest of the current epoch block by block; checkpoints, summaries and callbacks between blocks.

    After a block, a checkpoint is written at the step interval, at the end
    of the epoch, when ``checkpoint_every_seconds`` have passed, and before
    stopping on a signal (``TrainingPreempted``).
    """
    triggers = triggers or CheckpointTriggers(config, loop.strategy)
    epoch, done = int(state.epoch.numpy()), int(state.step_in_epoch.numpy())
    plan = block_plan(state.global_step, loop.steps_per_epoch - done, config.steps_per_execution,
                      config.checkpoint_every_steps)
    iterator = iter(loop.epoch_input(epoch, plan, skip_steps=done))
    loop.reset_metrics()
    start_time, start_step, logs = time.perf_counter(), done, {}
    for num_steps in plan:
        callback_list.on_train_batch_begin(done)
        try:
            logs = loop.run_block(iterator, num_steps)
        except DataError as e:  # a streamed record that does not decode
            raise DataError(f"{e}; training stopped and the last good checkpoint {state.latest} is kept") from None
        step = state.global_step
        callback_list.on_train_batch_end(done + num_steps - 1, logs)
        if not math.isfinite(logs["loss"]):
            first = step if num_steps == 1 else f"{step - num_steps + 1}-{step}"
            kept = (f"the last good checkpoint {state.latest} is kept" if state.latest else
                    "no checkpoint had been written yet")
            raise NonFiniteLossError(f"non-finite loss ({logs['loss']}) at step {first}; training stopped and {kept}")
        done += num_steps
        end_of_epoch = done == loop.steps_per_epoch
        state.step_in_epoch.assign(0 if end_of_epoch else done)
        if end_of_epoch:
            state.epoch.assign(epoch + 1)
        if step % config.summary_every_steps < num_steps or end_of_epoch:
            writers.training(step, logs, float(loop.model.objective.rate_weight(step)),
                             float(tf.convert_to_tensor(loop.model.optimizer.learning_rate)))
        save, stop = triggers.after_block(step % config.checkpoint_every_steps == 0 or end_of_epoch)
        if save:
            triggers.save(state)
        if stop:
            triggers.stop(state)
    examples_per_second = (done - start_step) * config.batch_size / max(time.perf_counter() - start_time, 1e-9)
    writers.throughput(state.global_step, examples_per_second)
    logging.debug("epoch %d: %s, %.0f examples/s", epoch + 1, logs, examples_per_second)  # the progress bar says it
    return logs


class CheckpointTriggers:
    """When to write a checkpoint beyond the step interval (elapsed time) and when to stop (a signal).

    With several workers the time and signal conditions are agreed across
    workers after every block (``distribute.any_worker``), so every worker
    saves and stops at the same step.

    Args:
      config: the run's settings (``checkpoint_every_seconds``).
      strategy: the run's strategy.
      signals: a ``preemption.SignalWatch`` (None: no signal handling).
    """

    def __init__(self, config: TrainConfig, strategy, signals: preemption.SignalWatch | None = None):
        self.every_seconds = config.checkpoint_every_seconds
        self.strategy = strategy
        self.signals = signals
        self.last_save = time.monotonic()

    def after_block(self, at_interval: bool) -> tuple[bool, bool]:
        """(save, stop) after a block; ``at_interval``: the step interval or the epoch end asks for a save."""
        timed = bool(self.every_seconds) and time.monotonic() - self.last_save >= self.every_seconds
        timed, signalled = distribute.any_worker(self.strategy, [timed, self._signalled_here()])
        return at_interval or timed or signalled, signalled

    def _signalled_here(self) -> bool:
        return self.signals is not None and self.signals.requested

    def save(self, state) -> None:
        state.save()
        self.last_save = time.monotonic()

    def stop_if_signalled(self, state) -> None:
        """Between epochs: stops (after saving this step, if not saved yet) when a signal came."""
        if distribute.any_worker(self.strategy, [self._signalled_here()])[0]:
            if state.latest is None or not state.latest.endswith(f"-{state.global_step}"):
                self.save(state)
            self.stop(state)

    def stop(self, state) -> None:
        number = (self.signals.signal_number if self.signals else None) or int(signal.SIGTERM)
        name = signal.Signals(number).name
        raise preemption.TrainingPreempted(
            f"training stopped by {name} at step {state.global_step} (epoch {int(state.epoch.numpy()) + 1}, "
            f"{int(state.step_in_epoch.numpy())} steps into it); checkpoint {state.latest} written; rerun the same "
            "command to resume", number)


def evaluate_and_log(model, dataset: data.TrainingData, config: TrainConfig, writers, step: int,
                     validate: evaluation.ElboMetrics) -> dict:
    """Validation ELBO terms (``validate``, the run's ``evaluation.ElboMetrics`` of ``model``) and loss (-elbo),
    active units and KL per dimension, written to TensorBoard.

    A hierarchical VAE's rate and active units are also given per layer (rate_z_l, active_units_z_l).
    """
    images, labels = _validation_split(dataset, config)
    metrics = validate(images, labels)
    metrics["loss"] = -metrics["elbo"]
    units = evaluation.active_units(model, images, labels=labels, per_layer=True)
    metrics["active_units"] = sum(units.values())
    if len(units) > 1:
        metrics.update({f"active_units_{name}": count for name, count in units.items()})
    writers.validation_metrics(step, metrics, evaluation.kl_per_dimension(model, images, labels=labels))
    writers.validation_images(step, model, images, labels, config.seed)
    return metrics


def finish(model, dataset, config, run: RunDirectory, state, writers, validation: dict, is_chief: bool,
           validate: evaluation.ElboMetrics) -> dict:
    """The run's final validation metrics (evaluated now with ``validate`` if the last epoch had none); the chief
    writes metrics.json."""
    writers.flush()
    if not validation:
        validation = validate(*_validation_split(dataset, config))
    results = {name: validation[name] for name in ("elbo", "rate", "distortion")}
    results.update(step=state.global_step, epoch=int(state.epoch.numpy()),
                   stopped_early=bool(model.stop_training and int(state.epoch.numpy()) < config.epochs))
    if config.skip_bad_records:
        results["skipped_records"] = len(dataset.bad_records)
    if is_chief:
        run.write_metrics(results)
        warning = run_summary.collapse_warning(results["rate"])
        if warning:
            logging.warning("%s", warning)
    return results


def make_callbacks(callbacks, model, config: TrainConfig, steps_per_epoch: int, verbose: int):
    """A keras.callbacks.CallbackList of ``callbacks``, a History, a progress bar (verbose 1 or 2) and,
    with ``config.early_stopping_patience``, an EarlyStopping on the validation loss."""
    callbacks = list(callbacks or [])
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience,
                                                       verbose=int(verbose > 0)))
    return keras.callbacks.CallbackList(callbacks, add_history=True, add_progbar=verbose > 0, model=model,
                                        verbose=verbose, epochs=config.epochs, steps=steps_per_epoch)


def block_plan(first_step: int, remaining: int, steps_per_execution: int, checkpoint_every: int) -> list[int]:
    """Steps per compiled call for the rest of an epoch; calls end on checkpoint boundaries."""
    plan, step = [], first_step
    while remaining:
        count = min(steps_per_execution, remaining, checkpoint_every - step % checkpoint_every)
        plan.append(count)
        step += count
        remaining -= count
    return plan


def _validation_split(dataset: data.TrainingData, config: TrainConfig):
    images = dataset.test_images[: config.validation_examples or None]
    labels = None if dataset.test_labels is None else dataset.test_labels[: len(images)]
    return images, labels


def _summary_writers(run: RunDirectory, is_chief: bool, config: TrainConfig) -> Writers:
    writers = Writers(run.train_log_dir, run.validation_log_dir, enabled=is_chief)
    writers.hparams(config.to_dict())
    return writers
