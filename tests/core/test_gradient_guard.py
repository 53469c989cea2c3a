"""The gradient spike guard: spikes far above the running level are clipped to it, counted, and checkpointed."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae.core.gradient_guard import GradientSpikeGuard


def test_the_running_mean_takes_a_norm_below_the_limit_as_it_is_and_a_spike_only_at_the_limit():
    guard = GradientSpikeGuard(factor=4.0, warmup_steps=10)
    for _ in range(9):
        assert float(guard.limit()) == float("inf")  # warming up: no limit
        guard.record(tf.constant(2.0), guard.limit())
    guard.record(tf.constant(2.0), guard.limit())
    np.testing.assert_allclose(float(guard.limit()), 4.0 * 2.0, rtol=1e-5)  # the debiased mean of ten 2s is 2
    mean_before, limit = float(guard.norm_mean.numpy()), guard.limit()
    guard.record(tf.constant(7.9), limit)  # below the limit: enters the running mean as it is
    np.testing.assert_allclose(float(guard.norm_mean.numpy()), 0.99 * mean_before + 0.01 * 7.9, rtol=1e-4)
    mean_before, limit = float(guard.norm_mean.numpy()), guard.limit()
    guard.record(tf.constant(100.0), limit)
    applied = float(limit)  # the spike enters the running mean at the limit, not at 100
    np.testing.assert_allclose(float(guard.norm_mean.numpy()), 0.99 * mean_before + 0.01 * applied, rtol=1e-4)
    before = float(guard.norm_mean.numpy()), float(guard.updates.numpy())
    guard.record(tf.constant(float("nan")), guard.limit())
    assert (float(guard.norm_mean.numpy()), float(guard.updates.numpy())) == before


def _model(**compile_kwargs):
    keras.utils.set_random_seed(0)
    model = tfvae.VAE(tfvae.GaussianEncoder(2, hidden_units=[4]),
                      tfvae.BernoulliDecoder((2, 2, 1), hidden_units=[4]), tfvae.StandardNormalPrior(2))
    model.build((None, 2, 2, 1))
    model.compile(optimizer=keras.optimizers.SGD(0.1), **compile_kwargs)
    model.optimizer.build(model.trainable_variables)
    return model


def _step(model, scale):
    """Applies the gradient scale * (1, 1, ...) / sqrt(n): its global norm is ``scale``; returns the weight change."""
    before = [v.numpy().copy() for v in model.trainable_variables]
    count = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    grads = [tf.fill(v.shape, np.float32(scale / np.sqrt(count))) for v in model.trainable_variables]
    terms = {name: tf.zeros([1]) for name in ("elbo", "rate", "distortion")}
    model.apply_gradients_across_replicas(terms, tf.constant(0.0), grads)
    after = [v.numpy() for v in model.trainable_variables]
    return np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(after, before, strict=True)))


@pytest.mark.parametrize("clip", [None, 3.0])
def test_the_model_clips_a_spike_to_the_guard_limit_and_counts_it(clip):
    model = _model(gradient_spike_factor=5.0, clip_global_norm=clip)
    for _ in range(100):
        np.testing.assert_allclose(_step(model, 1.0), 0.1, rtol=1e-4)  # lr * norm: below both limits
    assert float(model.optimizer_step.spike_tracker.result()) == 0.0
    change = _step(model, 50.0)
    np.testing.assert_allclose(change, 0.1 * (clip or 5.0), rtol=1e-3)  # clipped to factor * running mean 1
    np.testing.assert_allclose(float(model.optimizer_step.spike_tracker.result()), 1 / 101, rtol=1e-5)
    assert "gradient_spikes" in [m.name for m in model.metrics]


def test_without_the_guard_the_same_spike_is_applied_in_full():
    model = _model()
    for _ in range(100):
        _step(model, 1.0)
    np.testing.assert_allclose(_step(model, 50.0), 0.1 * 50.0, rtol=1e-4)
    assert "gradient_spikes" not in [m.name for m in model.metrics]


def test_guard_state_is_saved_and_restored_with_the_model(tmp_path):
    model = _model(gradient_spike_factor=5.0)
    for _ in range(7):
        _step(model, 2.0)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = _model(gradient_spike_factor=5.0)
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    assert float(fresh.gradient_guard.updates.numpy()) == 7.0
    np.testing.assert_allclose(fresh.gradient_guard.norm_mean.numpy(), model.gradient_guard.norm_mean.numpy())
