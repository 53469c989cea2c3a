"""The acceptance check of the accelerator path (``scripts/gpu_check.py``): one table of what this machine does.

Each check returns rows ``(check, result)``; ``run_checks`` runs them all on
the GPUs when TensorFlow sees any, else on the CPU with tiny settings (every
row then says "CPU"). The rows:

  devices             physical GPUs, and the devices the default strategy and MirroredStrategy use
  step time           ms per optimizer step, MLP and conv configs, XLA on/off, steps_per_execution 1 vs K;
                      the first compiled call's time (tracing + compilation)
  peak memory         the GPU's peak allocation (CPU: the process's peak resident memory)
  float32 log-probs   log p(x|z), the rate and the ELBO come out float32 under mixed_float16 and mixed_bfloat16
  overflow on one     a non-finite gradient on one of two replicas: both skip the step (weights unchanged,
  of two replicas     finite), the step still counts (``core.optimizer_step``)
  deterministic       a run stopped after one epoch and resumed ends bitwise equal to an uninterrupted one,
  resume              with ``deterministic=True``
  IWAE evaluation     time and peak memory of the k-sample IWAE bound of the conv config (k=5000 on a GPU), its
                      chunk sized by activation memory (``evaluation.IwaeEvaluator``)
"""

from __future__ import annotations

import dataclasses
import os
import resource
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import data, evaluation
from tfvae.core import distribute, optimizer_step, sampling
from tfvae.train import factory, loops, training
from tfvae.train.config import TrainConfig

__all__ = ["Settings", "run_checks"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """How big each check is: ``full()`` on a GPU, ``tiny()`` on a CPU (what the suite runs)."""

    image_shape: tuple = (28, 28, 1)
    train_examples: int = 2048
    batch_size: int = 128
    timed_steps: int = 100
    fused_steps: int = 50
    iwae_samples: int = 5000
    iwae_examples: int = 100

    @classmethod
    def full(cls) -> Settings:
        return cls()

    @classmethod
    def tiny(cls) -> Settings:
        return cls(image_shape=(8, 8, 1), train_examples=64, batch_size=16, timed_steps=4, fused_steps=2,
                   iwae_samples=20, iwae_examples=8)


def _images(settings: Settings, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (settings.train_examples, *settings.image_shape)).astype(np.uint8)


def _config(settings: Settings, architecture: str, **overrides) -> TrainConfig:
    hidden = (64, 32) if architecture == "mlp" else (8, 16)
    if settings.image_shape[0] >= 28:
        hidden = (512, 256) if architecture == "mlp" else (32, 64)
    return TrainConfig(**{**dict(dataset="python", architecture=architecture, hidden_units=hidden, latent_dim=8,
                                 batch_size=settings.batch_size, epochs=1, validation_examples=0, seed=0),
                          **overrides})


def _peak_memory() -> str:
    if tf.config.list_physical_devices("GPU"):
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        return f"GPU:0 peak {peak / 2**20:.0f} MiB"
    return f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"


def check_devices() -> list[tuple[str, str]]:
    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    names = ", ".join(f"{d.get('device_name', '?')} (capability {d.get('compute_capability', '?')})"
                      for d in details) or "none"
    return [("devices: physical GPUs", names),
            ("devices: in use", distribute.describe(tf.distribute.get_strategy()))]


def check_step_times(settings: Settings) -> list[tuple[str, str]]:
    """ms per step of the compiled training blocks, and the first call's time, per config and setting."""
    rows = []
    images = _images(settings)
    for architecture in ("mlp", "conv"):
        for xla in ("off", "on"):
            for spe in (1, settings.fused_steps):
                config = _config(settings, architecture, jit_compile=xla, steps_per_execution=spe)
                prepared = data.from_python(config, images)
                model, _ = training.build_model_and_optimizer(config, prepared, tf.distribute.get_strategy())
                loop = loops.make_training_loop(model, tf.distribute.get_strategy(), prepared, config)
                plan = [spe] * (loop.steps_per_epoch // spe)
                iterator = iter(loop.epoch_input(0, plan, skip_steps=loop.steps_per_epoch - sum(plan), repeat=True))
                start = time.perf_counter()
                loop.run_block(iterator, spe)
                first = time.perf_counter() - start
                blocks = max(1, settings.timed_steps // spe)
                start = time.perf_counter()
                for _ in range(blocks):
                    loop.run_block(iterator, spe)
                per_step = (time.perf_counter() - start) / (blocks * spe)
                rows.append((f"step time: {architecture}, XLA {xla}, steps_per_execution {spe}",
                             f"{per_step * 1000:.2f} ms/step; first call {first:.2f} s"))
    rows.append(("peak memory after the step timings", _peak_memory()))
    return rows


def check_float32_log_probs(settings: Settings) -> list[tuple[str, str]]:
    rows = []
    x = (_images(settings)[: settings.batch_size] > 127).astype(np.float32)
    for precision in ("mixed_float16", "mixed_bfloat16"):
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            keras.utils.set_random_seed(0)
            model = factory.build_model(_config(settings, "conv", precision=precision), settings.image_shape)
            model.build((None, *settings.image_shape))
            terms = model.elbo_terms(x, seed=0)
            log_prob = model.data_log_prob(x, model.posterior(x).mean())
        finally:
            keras.config.set_dtype_policy(previous)
        dtypes = {t.dtype.name for t in (*terms.values(), log_prob)}
        ok = dtypes == {"float32"} and all(np.isfinite(t.numpy()).all() for t in terms.values())
        rows.append((f"float32 log-probs under {precision}",
                     f"{'ok' if ok else 'FAILED'}: log p(x|z), rate, elbo are {', '.join(sorted(dtypes))}"))
    return rows


def check_overflow_on_one_replica() -> list[tuple[str, str]]:
    """A non-finite gradient on replica 1 only, under loss scaling: both replicas skip, the step counts."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus if len(gpus) >= 2 else tf.config.list_logical_devices("CPU"))][:2]
    if len(devices) < 2:
        return [("overflow on one of two replicas", "not run: fewer than two devices")]
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        weights = tf.Variable([1.0, 2.0])
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.1))
        optimizer.build([weights])

    @tf.function
    def step():
        def replica_step():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            grad = tf.where(replica == 1, float("inf"), 1.0) * tf.ones([2])
            optimizer_step.apply_step(optimizer, [grad], [weights])
        strategy.run(replica_step)

    step()
    copies = [v.numpy() for v in strategy.experimental_local_results(weights)]
    ok = all(np.array_equal(c, [1.0, 2.0]) for c in copies) and int(optimizer.iterations.numpy()) == 1
    return [("overflow on one of two replicas",
             f"{'ok' if ok else 'FAILED'}: on {', '.join(devices)} both skipped (weights {copies[0].tolist()} on "
             f"each), step count {int(optimizer.iterations.numpy())}, loss scale halved to "
             f"{float(optimizer.dynamic_scale.numpy()):g}")]


def check_deterministic_resume(settings: Settings) -> list[tuple[str, str]]:
    """Two epochs in one go against one epoch, then a resumed second: bitwise the same weights?"""
    images = _images(settings)[: max(4 * settings.batch_size, settings.batch_size)]
    config = _config(settings, "mlp", epochs=2, deterministic=True, steps_per_execution=2,
                     checkpoint_every_steps=2)
    with tempfile.TemporaryDirectory() as root:
        whole, resumed = os.path.join(root, "whole"), os.path.join(root, "resumed")
        keras.utils.set_random_seed(0)
        training.train_and_evaluate(config, whole, train_data=images, verbose=0)
        expected = _checkpoint_values(whole)
        keras.utils.set_random_seed(0)
        training.train_and_evaluate(dataclasses.replace(config, epochs=1), resumed, train_data=images, verbose=0)
        training.train_and_evaluate(config, resumed, train_data=images, verbose=0)
        got = _checkpoint_values(resumed)
    same = expected.keys() == got.keys() and all(np.array_equal(expected[k], got[k]) for k in expected)
    return [("deterministic resume",
             f"{'bitwise equal' if same else 'DIFFERENT'}: {len(expected)} checkpointed tensors after 2 epochs, "
             "uninterrupted vs stopped after epoch 1 and resumed")]


def _checkpoint_values(model_dir: str) -> dict:
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints"))
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/"))]
    return {n: reader.get_tensor(n) for n in names}


def check_iwae_evaluation(settings: Settings) -> list[tuple[str, str]]:
    keras.utils.set_random_seed(0)
    model = factory.build_model(_config(settings, "conv"), settings.image_shape)
    model.build((None, *settings.image_shape))
    x = (_images(settings)[: settings.iwae_examples] > 127).astype(np.float32)
    evaluate = evaluation.IwaeEvaluator(model, settings.iwae_samples)  # chunks sized by activation memory
    start = time.perf_counter()
    bound = evaluate(x, None, sampling.step_seed(0, 0, salt=3))
    seconds = time.perf_counter() - start
    finite = bool(np.isfinite(bound).all())
    return [(f"IWAE evaluation, conv, k={settings.iwae_samples}",
             f"{seconds:.2f} s for {settings.iwae_examples} examples, {evaluate.chunk} samples per chunk "
             f"({'finite' if finite else 'NOT FINITE'}); {_peak_memory()}")]


def run_checks(settings: Settings | None = None) -> list[tuple[str, str, str]]:
    """Every check's rows as (check, result, where): "GPU" when TensorFlow sees one, else "CPU (tiny)"."""
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    settings = settings or (Settings.full() if on_gpu else Settings.tiny())
    where = "GPU" if on_gpu else f"CPU ({'tiny' if settings == Settings.tiny() else 'full'} settings)"
    rows = []
    for check in (check_devices, lambda: check_step_times(settings), lambda: check_float32_log_probs(settings),
                  check_overflow_on_one_replica, lambda: check_deterministic_resume(settings),
                  lambda: check_iwae_evaluation(settings)):
        rows += [(name, result, where) for name, result in check()]
    return rows
