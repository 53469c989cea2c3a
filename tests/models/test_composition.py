"""Users' TFP code on tfvae's objects: the recipes of docs/composing_with_tfp.md."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from builders import binary_batch
from conftest import LATENT_DIM, small_vae
from linear_gaussian import LinearGaussianProblem

tfd, tfb = tfp.distributions, tfp.bijectors


@pytest.fixture(scope="module")
def model():
    return small_vae()


@pytest.fixture
def problem():
    return LinearGaussianProblem(data_dim=5, latent_dim=2, sigma=0.5, seed=0)


def _suboptimal_vae(problem):
    A, c, cov = problem.exact_posterior()
    return problem.make_vae(0.8 * A, c + 0.2, np.sqrt(np.diag(cov)) * 1.4)


def test_kl_from_the_posterior_to_a_users_distribution_is_the_closed_form(model):
    x = binary_batch(4)
    q = model.encoder(x)
    other = tfd.MultivariateNormalDiag(loc=tf.fill([LATENT_DIM], 1.0), scale_diag=tf.fill([LATENT_DIM], 2.0))
    kl = tfd.kl_divergence(q, other).numpy()
    loc, scale = q.mean().numpy(), q.stddev().numpy()
    expected = np.sum(np.log(2.0 / scale) + (scale**2 + (loc - 1.0) ** 2) / 8.0 - 0.5, axis=-1)
    np.testing.assert_allclose(kl, expected, rtol=1e-5)


def test_posterior_pushed_through_a_users_bijector_has_the_change_of_variables_density(model):
    q = model.encoder(binary_batch(4))
    positive = tfd.TransformedDistribution(q, tfb.Exp())  # a log-normal posterior over exp(z)
    y = positive.sample(3, seed=[1, 2])
    assert np.all(y.numpy() > 0)
    expected = q.log_prob(tf.math.log(y)) - tf.reduce_sum(tf.math.log(y), -1)
    np.testing.assert_allclose(positive.log_prob(y).numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_a_users_importance_sampler_with_the_posterior_as_proposal_matches_log_likelihood(problem):
    vae = _suboptimal_vae(problem)
    x, k = tf.constant(problem.x), 20_000
    q = vae.encoder(x)
    z = q.sample(k, seed=[3, 4])
    log_weights = vae.decoder(z).log_prob(x) + vae.prior.log_prob(z) - q.log_prob(z)
    estimate = tf.reduce_logsumexp(log_weights, axis=0) - np.log(k)
    exact = problem.log_evidence(problem.x)
    # Both are consistent estimators of log p(x); with k = 20000 they are within 0.02 nats of it here.
    np.testing.assert_allclose(estimate.numpy(), exact, atol=0.02)
    np.testing.assert_allclose(vae.log_likelihood(x, num_samples=k, seed=5).numpy(), estimate.numpy(), atol=0.03)


def test_hmc_on_the_models_joint_started_at_the_encoder_mean_finds_the_exact_posterior(problem):
    vae = _suboptimal_vae(problem)
    x = tf.constant(problem.x)

    def joint_log_prob(z):  # log p(x, z) = log p(x|z) + log p(z)
        return vae.decoder(z).log_prob(x) + vae.prior.log_prob(z)

    kernel = tfp.mcmc.HamiltonianMonteCarlo(joint_log_prob, step_size=0.15, num_leapfrog_steps=5)

    @tf.function(jit_compile=True)
    def run_chain():
        return tfp.mcmc.sample_chain(3000, current_state=vae.encoder(x).mean(), kernel=kernel, num_burnin_steps=300,
                                     trace_fn=lambda _, results: results.is_accepted, seed=[6, 7])

    samples, accepted = run_chain()
    assert 0.5 < float(tf.reduce_mean(tf.cast(accepted, tf.float32))) <= 1.0
    A, c, cov = problem.exact_posterior()
    exact_mean = problem.x.astype(np.float64) @ A + c
    ess = tfp.mcmc.effective_sample_size(samples).numpy()
    standard_error = np.sqrt(np.diag(cov))[None] / np.sqrt(ess)
    assert np.all(np.abs(samples.numpy().mean(0) - exact_mean) < 5 * standard_error)
    encoder_error = np.abs(vae.encoder(x).mean().numpy() - exact_mean).max()
    assert encoder_error > 10 * standard_error.max()  # HMC corrected the amortisation gap


def test_joint_distribution_from_prior_and_decoder_gives_log_p_x_z_and_ancestral_samples(model):
    joint = tfd.JointDistributionSequential([model.prior, lambda z: model.decoder(z)])
    z, x = joint.sample(5, seed=[8, 9])
    assert z.shape == [5, LATENT_DIM] and x.shape == [5, 8, 8, 1]
    assert set(np.unique(x.numpy())) <= {0.0, 1.0}
    expected = model.prior.log_prob(z) + model.decoder(z).log_prob(x)
    np.testing.assert_allclose(joint.log_prob([z, x]).numpy(), expected.numpy(), rtol=1e-6)
