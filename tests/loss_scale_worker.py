"""One loss-scaled step with a non-finite gradient on one replica or worker only, in a fresh process.

  python tests/loss_scale_worker.py mirrored <out.json>   # 2 logical CPU devices, one process
  python tests/loss_scale_worker.py multi_worker <out.json>  # one of 2 workers (TF_CONFIG set by the test)
  python tests/loss_scale_worker.py mirrored_spike <out.json>  # 2 devices: a gradient spike from one replica
  python tests/loss_scale_worker.py one_reduce <out.json>  # 1 and 2 devices: clean clipped, loss-scaled steps

The encoder multiplies q's location by 1e30 for an example whose pixel (0, 0)
is 2: its KL (and gradient) overflows. Global batch 4, 2 replicas: example 3,
on replica (or worker) 1 only, is marked in the first batch; the second batch
is clean. Writes what each replica saw to out.json.

``one_reduce`` trains three clean steps (clipping, loss scale doubling
every 2 steps) on one device and on two, counting the all-reduces each
replica's step makes.

``mirrored_spike`` multiplies the marked location by 100 instead (a finite
spike), under loss scaling and the spike guard (factor 2, one warm-up step):
the clean batch first, then the marked one.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
from tfvae.core import distribute

tfd = tfp.distributions
MARK = 2.0


@keras.saving.register_keras_serializable(package="tfvae_tests")
class OverflowingEncoder(keras.layers.Layer):
    """A diagonal Gaussian q(z|x) whose location overflows on marked examples."""

    def __init__(self, latent_dim=2, overflow=1e30, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim, self.overflow = latent_dim, overflow
        self.params = keras.layers.Dense(2 * latent_dim)

    def call(self, x):
        loc, raw_scale = tf.split(self.params(tf.reshape(x, [-1, 64])), 2, axis=-1)
        marked = tf.cast(x[:, 0, 0, 0] > 1.5, tf.float32)[:, None]
        return tfd.MultivariateNormalDiag(loc * (1.0 + marked * self.overflow), tf.nn.softplus(raw_scale) + 1e-3)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim, "overflow": self.overflow}


def batches():
    rng = np.random.default_rng(0)
    first = (rng.random((4, 8, 8, 1)) < 0.5).astype(np.float32)
    first[3, 0, 0, 0] = MARK
    second = (rng.random((4, 8, 8, 1)) < 0.5).astype(np.float32)
    return first, second


def replica_step(strategy, model):
    """step(batch of 4): one training step on every replica, replica r taking examples 2r and 2r + 1."""
    train_step = tf.function(lambda x: strategy.run(model.train_step, args=(x,)))

    def step(batch):
        return train_step(strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(batch[2 * ctx.replica_id_in_sync_group: 2 * ctx.replica_id_in_sync_group + 2])))

    return step


def main(mode, out_path):
    if mode == "mirrored_spike":
        return spike(out_path)
    if mode == "one_reduce":
        return one_reduce(out_path)
    if mode == "mirrored":
        distribute.split_cpu(2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=60)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tfvae.VAE(OverflowingEncoder(2),
                          tfvae.BernoulliDecoder((8, 8, 1), hidden_units=[8]),
                          tfvae.StandardNormalPrior(2))
        model.build((None, 8, 8, 1))
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01)), seed=0)
        model.optimizer.build(model.trainable_variables)

    step = replica_step(strategy, model)

    def weights():  # every local replica's copy of every weight
        return [[np.asarray(r).tolist() for r in strategy.experimental_local_results(v.value)]
                for v in model.trainable_variables]

    report = {"before": weights(), "scale_before": float(model.optimizer.dynamic_scale.numpy())}
    first, second = batches()
    logs = step(first)
    report.update(after_marked=weights(), iterations_after_marked=int(model.optimizer.iterations.numpy()),
                  scale_after_marked=float(model.optimizer.dynamic_scale.numpy()),
                  skipped=[float(v) for v in strategy.experimental_local_results(logs["skipped_steps"])])
    step(second)
    report.update(after_clean=weights(), iterations_after_clean=int(model.optimizer.iterations.numpy()))
    with open(out_path, "w") as f:
        json.dump(report, f)


def spike(out_path):
    """Step 1 clean, step 2 a finite spike on replica 1 only; what each replica saw and did."""
    distribute.split_cpu(2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tfvae.VAE(OverflowingEncoder(2, overflow=100.0), tfvae.BernoulliDecoder((8, 8, 1), hidden_units=[8]),
                          tfvae.StandardNormalPrior(2))
        model.build((None, 8, 8, 1))
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)), seed=0,
                      gradient_spike_factor=2.0)
        model.optimizer.build(model.trainable_variables)
    model.optimizer_step.guard.warmup_steps = 1

    step = replica_step(strategy, model)

    def copies(variable):  # every local replica's copy
        return [np.asarray(r) for r in strategy.experimental_local_results(variable)]

    marked, clean = batches()
    step(clean)
    guard = model.optimizer_step.guard
    level = float(copies(guard.norm_mean)[0] / (1.0 - guard.decay))  # debiased mean of one norm: that norm
    before = [copies(v.value) for v in model.trainable_variables]
    logs = step(marked)
    after = [copies(v.value) for v in model.trainable_variables]
    report = {
        "level": level,
        "change_norms": [float(np.sqrt(sum(np.sum((a[r] - b[r]) ** 2) for a, b in zip(after, before, strict=True))))
                         for r in range(2)],
        "copies_equal": all(np.array_equal(a[0], a[1]) for a in after),
        "spikes": [float(v) for v in strategy.experimental_local_results(logs["gradient_spikes"])],
        "skipped": [float(v) for v in strategy.experimental_local_results(logs["skipped_steps"])],
        "guard_updates": [float(v) for v in copies(guard.updates)],
        "guard_means": [float(v) for v in copies(guard.norm_mean)],
    }
    with open(out_path, "w") as f:
        json.dump(report, f)


def one_reduce(out_path):
    """Three clean steps of one global batch of 4, clipped and loss-scaled, on 1 and on 2 replicas."""
    distribute.split_cpu(2)
    report = {str(len(devices)): clipped_steps(devices) for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"])}
    with open(out_path, "w") as f:
        json.dump(report, f)


def clipped_steps(devices):
    """What three clean, clipped, loss-scaled steps on ``devices`` did, and how many all-reduces they made."""
    from unittest import mock

    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = tfvae.VAE(OverflowingEncoder(2), tfvae.BernoulliDecoder((8, 8, 1), hidden_units=[8]),
                          tfvae.StandardNormalPrior(2))
        model.build((None, 8, 8, 1))
        model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01),
                                                                     dynamic_growth_steps=2),
                      seed=0, clip_global_norm=0.5)
        model.optimizer.build(model.trainable_variables)
    train_step = tf.function(lambda x: strategy.run(model.train_step, args=(x,)))
    per_replica = 4 // len(devices)
    reduce, calls = tf.distribute.ReplicaContext.all_reduce, []

    def counted(context, *args, **kwargs):
        calls.append(1)
        return reduce(context, *args, **kwargs)

    _, clean = batches()
    with mock.patch.object(tf.distribute.ReplicaContext, "all_reduce", counted):
        for _ in range(3):
            train_step(strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(clean[per_replica * ctx.replica_id_in_sync_group:][:per_replica])))
    return {
        "all_reduces_per_replica": len(calls) / len(devices),
        "weights": [[np.asarray(r).tolist() for r in strategy.experimental_local_results(v.value)]
                    for v in model.trainable_variables],
        "scale": float(model.optimizer.dynamic_scale.numpy()),
        "step_counter": int(model.optimizer.step_counter.numpy()),
        "iterations": int(model.optimizer.iterations.numpy()),
    }

if __name__ == "__main__":
    main(*sys.argv[1:])
