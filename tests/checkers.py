"""Reusable checks for the suite: a part's test is its setup plus one call.

``check_distribution_layer`` is the contract every encoder, decoder and prior
layer keeps: it returns a ``tfd.Distribution`` of the documented batch and
event shapes whose log-probabilities are float32 (also when the layer computes
in bfloat16 under mixed precision), and it survives Keras serialisation with
the same ``log_prob``.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def check_distribution_layer(make_layer, to_distribution, batch_shape, event_shape, value=None):
    """Checks a layer that returns a distribution.

    Args:
      make_layer: () -> a new layer (called once as is, once under the mixed_bfloat16 policy).
      to_distribution: layer -> its distribution for fixed inputs (builds the layer).
      batch_shape, event_shape: what the distribution must have.
      value: a point of the support to evaluate log_prob at (default: a sample of the distribution).
    """
    layer = make_layer()
    distribution = to_distribution(layer)
    assert isinstance(distribution, tfd.Distribution), type(distribution)
    assert list(distribution.batch_shape) == list(batch_shape), distribution.batch_shape
    assert list(distribution.event_shape) == list(event_shape), distribution.event_shape
    if value is None:
        value = distribution.sample(seed=(1, 2))
    log_prob = distribution.log_prob(value)
    assert log_prob.dtype == tf.float32 and list(log_prob.shape) == list(batch_shape)
    assert np.isfinite(log_prob.numpy()).all()

    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    to_distribution(clone)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(to_distribution(clone).log_prob(value).numpy(), log_prob.numpy(), rtol=1e-5,
                               atol=1e-5)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = make_layer()
        mixed_distribution = to_distribution(mixed)
    finally:
        keras.config.set_dtype_policy(previous)
    mixed_log_prob = mixed_distribution.log_prob(value)
    assert mixed_log_prob.dtype == tf.float32, mixed_log_prob.dtype
    assert np.isfinite(mixed_log_prob.numpy()).all()
