"""Posteriors: full-covariance and IAF encoders, their samples, densities and KL estimates."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from builders import randomise
from checkers import check_distribution_layer

import tfvae
from tfvae import objectives
from tfvae.core import sampling

tfd = tfp.distributions
D = 3
DATA_SHAPE = (4, 4, 1)


def inputs(batch=5):
    return tf.constant(np.random.default_rng(0).random((batch, *DATA_SHAPE)), tf.float32)


def full_covariance_encoder():
    keras.utils.set_random_seed(0)
    enc = tfvae.GaussianEncoder(D, hidden_units=[8], covariance="full")
    enc.build((None, *DATA_SHAPE))
    randomise(enc.head, seed=1, scale=0.3)
    return enc


def iaf_encoder():
    keras.utils.set_random_seed(0)
    enc = tfvae.IAFEncoder(D, hidden_units=[8], num_flows=2, flow_hidden_units=[8], context_dim=4)
    enc.build((None, *DATA_SHAPE))
    for i, made in enumerate(enc.made):
        randomise(made, seed=i, scale=0.4)
    return enc


def test_full_covariance_posterior_has_correlations_and_a_floored_diagonal():
    q = full_covariance_encoder()(inputs())
    assert isinstance(q, tfd.MultivariateNormalTriL)
    assert q.batch_shape == [5] and q.event_shape == [D]
    covariance = q.covariance().numpy()
    off_diagonal = covariance[:, ~np.eye(D, dtype=bool)]
    assert np.abs(off_diagonal).max() > 1e-3
    assert np.all(np.diagonal(q.scale.to_dense().numpy(), axis1=1, axis2=2) >= 1e-4)


def test_full_covariance_analytic_kl_agrees_with_monte_carlo():
    q = full_covariance_encoder()(inputs())
    prior = tfvae.StandardNormalPrior(D).distribution()
    z = q.sample(20_000, seed=[1, 2])
    log_ratio = (q.log_prob(z) - prior.log_prob(z)).numpy()
    standard_error = log_ratio.std(0) / np.sqrt(len(log_ratio))
    analytic = objectives.rate(q, prior, method="analytic").numpy()
    assert np.all(np.abs(log_ratio.mean(0) - analytic) < 4 * standard_error)


def test_iaf_posterior_log_prob_of_its_samples_matches_a_fresh_inversion():
    """The cached log q(z|x) used in training equals the one from inverting the flow from scratch."""
    q = iaf_encoder()(inputs())
    z = sampling.sample_posterior(q, tf.constant([3, 4]), num_samples=6)
    cached = q.log_prob(z)
    fresh = q.log_prob(tf.identity(z) + 0.0)
    np.testing.assert_allclose(cached.numpy(), fresh.numpy(), rtol=1e-4, atol=1e-4)


def test_iaf_posterior_density_is_the_base_density_minus_the_log_determinant():
    q = iaf_encoder()(inputs())
    z = tf.identity(q.sample(4, seed=[5, 6]))
    z0 = q.bijector.inverse(z)
    expected = q.distribution.log_prob(z0) - q.bijector.forward_log_det_jacobian(z0, event_ndims=1)
    np.testing.assert_allclose(q.log_prob(z).numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    assert np.abs(q.bijector.forward_log_det_jacobian(z0, event_ndims=1).numpy()).max() > 1e-2


def test_iaf_rate_is_a_monte_carlo_kl_that_is_unbiased_for_the_gaussian_base():
    """With flow networks at their identity start, the IAF posterior is its Gaussian base, so the
    Monte Carlo rate must agree with the analytic KL of the base within standard errors."""
    keras.utils.set_random_seed(0)
    enc = tfvae.IAFEncoder(D, hidden_units=[8], num_flows=2, flow_hidden_units=[8])
    enc.build((None, *DATA_SHAPE))
    q = enc(inputs())
    prior = tfvae.StandardNormalPrior(D).distribution()
    assert not objectives.has_analytic_kl(q, prior)
    z = sampling.sample_posterior(q, tf.constant([7, 8]), num_samples=20_000)
    log_ratio = (q.log_prob(z) - prior.log_prob(z)).numpy()
    monte_carlo = objectives.rate(q, prior, z, method="auto").numpy()
    analytic = tfd.kl_divergence(q.distribution, prior).numpy()
    assert np.all(np.abs(monte_carlo - analytic) < 4 * log_ratio.std(0) / np.sqrt(len(log_ratio)))


def test_iaf_samples_are_reparameterised_through_the_flow():
    q = iaf_encoder()(inputs())
    seed = tf.constant([9, 10])
    eps = tf.random.stateless_normal([2, 5, D], seed=seed, alg=sampling.rng_algorithm())
    expected = q.bijector.forward(q.distribution.bijector.forward(eps))
    np.testing.assert_allclose(sampling.sample_posterior(q, seed, 2).numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_iaf_reconstruction_location_is_the_flow_of_the_base_mean():
    q = iaf_encoder()(inputs())
    expected = q.bijector.forward(q.distribution.mean())
    np.testing.assert_allclose(sampling.posterior_location(q).numpy(), expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: tfvae.GaussianEncoder(D, hidden_units=[8]),
    lambda: tfvae.GaussianEncoder(D, architecture="conv", hidden_units=[4, 8]),
    lambda: tfvae.GaussianEncoder(D, hidden_units=[8], covariance="full"),
    lambda: tfvae.IAFEncoder(D, hidden_units=[8], num_flows=2, flow_hidden_units=[8], context_dim=4),
], ids=["diagonal", "diagonal-conv", "full", "iaf"])
def test_every_posterior_keeps_the_distribution_layer_contract(make):
    check_distribution_layer(make, lambda enc: enc(inputs()), batch_shape=[5], event_shape=[D],
                             value=tf.constant(np.random.default_rng(2).normal(size=(5, D)), tf.float32))


def test_bad_encoder_arguments_raise_one_line_errors():
    with pytest.raises(ValueError, match="covariance must be one of"):
        tfvae.GaussianEncoder(D, covariance="banded")
    with pytest.raises(ValueError, match="num_flows must be a positive int; got 0"):
        tfvae.IAFEncoder(D, num_flows=0)
    with pytest.raises(ValueError, match="IAFEncoder's base is diagonal"):
        tfvae.IAFEncoder(D, covariance="full")
