"""Posterior noise under both schemes: global_batch as it always was, per_example by counter, a replica's share
equal to its rows of the one-replica draw (flat and hierarchical posteriors)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import counter_noise, sampling

tfd = tfp.distributions

KEY = tf.constant([11, -3], tf.int32)


def _flat(batch, first=0):
    """q(z|x_i) = N(loc_i, 0.5^2 I) with loc_i = (3 i, 3 i + 1, 3 i + 2) for global examples i = first, ..."""
    loc = tf.reshape(tf.range(first * 3, (first + batch) * 3, dtype=tf.float32), [batch, 3])
    return tfd.MultivariateNormalDiag(loc, tf.fill([batch, 3], 0.5))


def _joint(batch, first=0, coupling=2.0):
    """A two-layer posterior as latents.walk takes it: z_2 ~ N(loc_i, I), z_1 | z_2 ~ N(coupling z_2 + loc_i, I)."""
    loc = tf.reshape(tf.range(first * 2, (first + batch) * 2, dtype=tf.float32), [batch, 2])

    def model():
        top = yield tfd.JointDistributionCoroutine.Root(tfd.MultivariateNormalDiag(loc, tf.ones([batch, 2])))
        yield tfd.MultivariateNormalDiag(coupling * top + loc, tf.ones_like(top))

    return tfd.JointDistributionCoroutine(model)


def _as_replica(monkeypatch, replica_id, num_replicas):
    monkeypatch.setattr(sampling, "replica_position", lambda: (tf.constant(replica_id), num_replicas))


def _rows(draw, first, count):
    return [layer[:, first:first + count] for layer in draw] if isinstance(draw, list) else draw[:, first:first + count]


def test_global_batch_noise_is_the_global_draws_rows_as_in_every_release(monkeypatch):
    """The default scheme's formula: eps = stateless_normal([S, B R, D], seed, philox)[:, r B : (r + 1) B]."""
    seed = tf.constant([3, 4])
    _as_replica(monkeypatch, 1, 2)
    z = sampling.sample_posterior(_flat(4), seed, 2)
    eps = tf.random.stateless_normal([2, 8, 3], seed=seed, alg="philox")[:, 4:]
    np.testing.assert_array_equal(z, _flat(4).loc + 0.5 * eps)


def test_per_example_noise_is_the_counter_draw_of_the_examples_and_samples():
    z = sampling.sample_posterior(_flat(4), sampling.PerExampleSeed(KEY), 2)
    eps = counter_noise.normal(KEY, [2, 4, 3], first_example=0, batch_axis=1, stream=0)
    np.testing.assert_array_equal(z, _flat(4).loc + 0.5 * eps)


@pytest.mark.parametrize("posterior", [_flat, _joint], ids=["flat", "joint"])
def test_a_replicas_per_example_draw_is_its_rows_of_the_one_replica_draw(monkeypatch, posterior):
    whole = sampling.sample_posterior(posterior(8), sampling.PerExampleSeed(KEY), 3)
    for replicas in (2, 4):
        local = 8 // replicas
        for r in range(replicas):
            _as_replica(monkeypatch, r, replicas)
            share = sampling.sample_posterior(posterior(local, first=r * local), sampling.PerExampleSeed(KEY), 3)
            for mine, rows in zip(_as_list(share), _as_list(_rows(whole, r * local, local)), strict=True):
                np.testing.assert_array_equal(mine, rows)


def _as_list(z):
    return z if isinstance(z, list) else [z]


def test_per_example_draws_are_the_same_eagerly_and_under_xla():
    def draw():
        return sampling.sample_posterior(_joint(5), sampling.training_seed(7, tf.constant(12, tf.int64),
                                                                           "per_example"), 2)

    eager = draw()
    for mine, theirs in zip(eager, tf.function(draw, jit_compile=True)(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)  # the noise is equal; XLA may round loc + scale * eps
    np.testing.assert_array_equal(counter_noise.step_key(7, 12), sampling.training_seed(7, 12, "per_example").key)


def test_a_joints_layers_and_the_samples_get_their_own_noise():
    top, bottom = sampling.sample_posterior(_joint(4, coupling=0.0), sampling.PerExampleSeed(KEY), 2)
    loc = tf.reshape(tf.range(8, dtype=tf.float32), [4, 2])
    eps_top, eps_bottom = counter_noise.normal(KEY, [2, 4, 2], batch_axis=1, stream=0), bottom - loc
    np.testing.assert_array_equal(top, loc + eps_top)
    np.testing.assert_array_equal(bottom, loc + counter_noise.normal(KEY, [2, 4, 2], batch_axis=1, stream=1))
    assert np.abs(eps_top.numpy() - eps_bottom).min() > 1e-4  # stream word = layer: the layers share no noise
    assert np.abs(eps_top[0] - eps_top[1]).min() > 1e-4  # sample word: nor do the samples


def test_a_posterior_that_is_not_a_transformed_normal_falls_back_to_its_own_sampler_under_both_schemes():
    q = tfd.Independent(tfd.Logistic(tf.zeros([4, 3]), 1.0), 1)
    for seed in (tf.constant([3, 4]), sampling.PerExampleSeed(KEY)):
        z = sampling.sample_posterior(q, seed, 2)
        key = seed.key if isinstance(seed, sampling.PerExampleSeed) else seed
        np.testing.assert_array_equal(z, q.sample(2, seed=tf.random.experimental.stateless_fold_in(key, 0)))


def test_training_seed_of_each_scheme_and_an_unknown_one():
    step = tf.constant(5, tf.int64)
    np.testing.assert_array_equal(sampling.training_seed(3, step), sampling.step_seed(3, step))
    assert isinstance(sampling.training_seed(3, step, "per_example"), sampling.PerExampleSeed)
    with pytest.raises(ValueError, match=r"noise_scheme must be one of \('global_batch', 'per_example'\); "
                                         r"got 'per_replica'"):
        sampling.training_seed(3, step, "per_replica")
