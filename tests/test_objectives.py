"""Maths of the objectives: closed forms, bounds, KL estimators."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from linear_gaussian import LinearGaussianProblem

from tfvae import objectives

tfd = tfp.distributions


@pytest.fixture
def problem():
    return LinearGaussianProblem(data_dim=5, latent_dim=2, sigma=0.5, seed=0)


def _suboptimal_posterior(problem):
    A, c, cov = problem.exact_posterior()
    return 0.7 * A, c + 0.3, np.sqrt(np.diag(cov)) * 1.6


def test_elbo_estimate_matches_closed_form_and_bounds_log_evidence(problem):
    A, c, scale = _suboptimal_posterior(problem)
    model = problem.make_vae(A, c, scale)
    draws = np.stack([model.elbo(problem.x, seed=s).numpy() for s in range(400)])
    expected = problem.closed_form_elbo(problem.x, A, c, scale)
    standard_error = draws.std(0) / np.sqrt(len(draws))
    np.testing.assert_array_less(np.abs(draws.mean(0) - expected), 5 * standard_error + 1e-4)
    gap = problem.log_evidence(problem.x) - expected
    assert (gap > 0.1).all(), gap


def test_elbo_equals_log_evidence_for_the_exact_posterior(problem):
    A, c, cov = problem.exact_posterior()
    # The exact posterior has a full covariance; with a diagonal one the
    # bound stays strict, so use a latent of size 1 where they coincide.
    problem1 = LinearGaussianProblem(data_dim=4, latent_dim=1, sigma=0.3, seed=3)
    A, c, cov = problem1.exact_posterior()
    model = problem1.make_vae(A, c, np.sqrt(np.diag(cov)), kl_method="monte_carlo")
    for seed in range(3):
        # log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z under the exact posterior.
        np.testing.assert_allclose(model.elbo(problem1.x, seed=seed), problem1.log_evidence(problem1.x), atol=2e-3)


def test_iwae_bound_tightens_with_k_and_approaches_log_evidence(problem):
    A, c, scale = _suboptimal_posterior(problem)
    model = problem.make_vae(A, c, scale)
    log_evidence = problem.log_evidence(problem.x)
    means, errors = [], []
    for k in (1, 10, 100, 2000):
        draws = np.stack([model.log_likelihood(problem.x, num_samples=k, seed=s).numpy() for s in range(40)])
        means.append(draws.mean(0))
        errors.append(draws.std(0) / np.sqrt(len(draws)))
    for lower, higher, e1, e2 in zip(means, means[1:], errors, errors[1:], strict=False):
        assert (higher > lower - 3 * np.sqrt(e1**2 + e2**2)).all()
    assert (means[-1] > means[0] + 0.1).all()
    gap_first, gap_last = log_evidence - means[0], log_evidence - means[-1]
    assert (gap_last < 0.2 * gap_first).all(), (gap_first, gap_last)
    assert (means[-1] < log_evidence + 3 * errors[-1] + 1e-3).all()


def test_iwae_with_one_sample_is_the_elbo_estimator(problem):
    A, c, scale = _suboptimal_posterior(problem)
    model = problem.make_vae(A, c, scale)
    draws = np.stack([model.log_likelihood(problem.x, num_samples=1, seed=s).numpy() for s in range(400)])
    expected = problem.closed_form_elbo(problem.x, A, c, scale)
    np.testing.assert_array_less(np.abs(draws.mean(0) - expected), 5 * draws.std(0) / np.sqrt(400) + 1e-4)


def test_chunking_does_not_change_the_iwae_bound_distribution(problem):
    A, c, scale = _suboptimal_posterior(problem)
    model = problem.make_vae(A, c, scale)
    whole = np.stack([model.log_likelihood(problem.x, 60, seed=s).numpy() for s in range(60)])
    chunked = np.stack([model.log_likelihood(problem.x, 60, seed=s, chunk_size=7).numpy() for s in range(60)])
    tolerance = 5 * np.sqrt(whole.var(0) / 60 + chunked.var(0) / 60)
    np.testing.assert_array_less(np.abs(whole.mean(0) - chunked.mean(0)), tolerance + 1e-4)


def test_analytic_kl_agrees_with_monte_carlo_within_standard_error():
    q = tfd.MultivariateNormalDiag(loc=[[0.5, -1.0, 2.0]], scale_diag=[[0.3, 1.5, 0.8]])
    p = tfd.MultivariateNormalDiag(loc=tf.zeros(3), scale_diag=tf.ones(3))
    z = q.sample(20000, seed=[4, 2])
    log_ratio = (q.log_prob(z) - p.log_prob(z)).numpy()[:, 0]
    analytic = objectives.rate(q, p, method="analytic").numpy()[0]
    monte_carlo = objectives.rate(q, p, z=z, method="monte_carlo").numpy()[0]
    standard_error = log_ratio.std() / np.sqrt(len(log_ratio))
    assert abs(analytic - monte_carlo) < 4 * standard_error
    closed_form = 0.5 * np.sum(np.array([0.5, -1, 2]) ** 2 + np.array([0.3, 1.5, 0.8]) ** 2 - 1
                               - 2 * np.log([0.3, 1.5, 0.8]))
    assert analytic == pytest.approx(closed_form, rel=1e-5)


def test_auto_kl_falls_back_to_monte_carlo_without_a_registered_closed_form():
    q = tfd.MultivariateNormalDiag(loc=[[0.0, 0.0]], scale_diag=[[1.0, 1.0]])
    p = tfd.MixtureSameFamily(tfd.Categorical(logits=[0.0, 0.0]),
                              tfd.MultivariateNormalDiag(loc=[[-1.0, 0.0], [1.0, 0.0]], scale_diag=tf.ones([2, 2])))
    assert not objectives.has_analytic_kl(q, p)
    z = q.sample(5000, seed=[1, 1])
    kl = objectives.rate(q, p, z=z, method="auto")
    assert kl.shape == [1] and float(kl[0]) > 0
    with pytest.raises(ValueError, match="no analytic KL registered"):
        objectives.rate(q, p, z=z, method="analytic")


def test_kl_weight_warms_up_linearly_to_beta():
    values = [float(objectives.kl_weight(step, beta=2.0, warmup_steps=10)) for step in (0, 5, 10, 50)]
    assert values == pytest.approx([0.0, 1.0, 2.0, 2.0])
    assert float(objectives.kl_weight(0, beta=0.5, warmup_steps=0)) == 0.5


def test_cyclical_kl_weight_rises_at_the_start_of_every_cycle():
    steps = (0, 5, 10, 19, 20, 25, 30, 45)
    values = [float(objectives.kl_weight(s, beta=1.0, warmup_steps=10, schedule="cyclical", cycle_steps=20))
              for s in steps]
    assert values == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 0.5])


@pytest.mark.parametrize("kwargs, message", [
    ({"schedule": "cyclical", "warmup_steps": 10, "cycle_steps": 5}, "needs 0 < warmup_steps <= cycle_steps"),
    ({"schedule": "cosine"}, "kl schedule must be one of"),
])
def test_bad_kl_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        objectives.kl_weight(0, **kwargs)


def _random_diagonal_posterior(batch=6, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 0.6, (batch, dim)).astype(np.float32)
    scale = rng.uniform(0.3, 1.2, (batch, dim)).astype(np.float32)
    return tfd.MultivariateNormalDiag(loc, scale)


def test_per_dimension_kl_sums_to_the_analytic_rate():
    q, p = _random_diagonal_posterior(), tfd.MultivariateNormalDiag(tf.zeros(4), tf.ones(4))
    per_dimension = objectives.per_dimension_kl(q, p)
    assert per_dimension.shape == [6, 4]
    np.testing.assert_allclose(tf.reduce_sum(per_dimension, -1), tfd.kl_divergence(q, p), rtol=1e-5)


@pytest.mark.parametrize("group_size", [1, 2, 4])
def test_free_bits_never_let_a_group_term_fall_below_its_floor(group_size):
    q, p = _random_diagonal_posterior(), tfd.MultivariateNormalDiag(tf.zeros(4), tf.ones(4))
    floor = {1: 0.3, 2: 0.6, 4: 1.0}[group_size]
    kl = objectives.per_dimension_kl(q, p).numpy()
    groups = kl.reshape(6, 4 // group_size, group_size).sum(-1)
    assert (groups < floor).any() and (groups > floor).any()  # the case is not trivial
    rate = objectives.free_bits_rate(q, p, tfd.kl_divergence(q, p), floor, group_size).numpy()
    np.testing.assert_allclose(rate, np.maximum(groups, floor).sum(-1), rtol=1e-5)
    assert np.all(rate >= floor * (4 // group_size) - 1e-6)


def test_free_bits_give_no_gradient_to_dimensions_below_the_floor():
    loc = tf.Variable(np.array([[0.05, 2.0]], np.float32))  # KL_1 ~ 0.001 < floor, KL_2 = 2 > floor
    p = tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2))
    with tf.GradientTape() as tape:
        q = tfd.MultivariateNormalDiag(loc, tf.ones([1, 2]))
        rate = objectives.free_bits_rate(q, p, tfd.kl_divergence(q, p), free_bits=0.5, group_size=1)
    gradient = tape.gradient(rate, loc).numpy()
    assert gradient[0, 0] == 0.0 and gradient[0, 1] == pytest.approx(2.0)


def test_free_bits_per_dimension_need_factorised_distributions():
    q = tfd.MultivariateNormalTriL(tf.zeros([1, 2]), tf.eye(2)[None])
    p = tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2))
    with pytest.raises(ValueError, match="need a diagonal Gaussian posterior and prior"):
        objectives.free_bits_rate(q, p, tfd.kl_divergence(q, p), 0.1, 1)
    whole = objectives.free_bits_rate(q, p, tf.constant([0.05]), 0.1, 2)  # one group: no factorisation needed
    np.testing.assert_allclose(whole, [0.1])


def test_iwae_training_loss_with_one_sample_is_the_monte_carlo_elbo_loss(problem):
    A, c, scale = _suboptimal_posterior(problem)
    seed = tf.constant([4, 2])
    iwae = problem.make_vae(A, c, scale, objective="iwae", num_samples=1)
    elbo = problem.make_vae(A, c, scale, kl_method="monte_carlo")
    _, iwae_loss = iwae.training_terms(problem.x, seed, kl_weight=1.0)
    _, elbo_loss = elbo.training_terms(problem.x, seed, kl_weight=1.0)
    np.testing.assert_allclose(iwae_loss.numpy(), elbo_loss.numpy(), rtol=1e-5)


def test_iwae_training_loss_falls_with_k_towards_minus_the_log_evidence(problem):
    A, c, scale = _suboptimal_posterior(problem)
    exact = problem.log_evidence(problem.x)
    means = []
    for k in (1, 5, 50):
        model = problem.make_vae(A, c, scale, objective="iwae", num_samples=k)
        x = np.tile(problem.x, [100, 1])  # 100 independent estimates per example in one call
        losses = model.training_terms(x, tf.constant([k, 7]), 1.0)[1].numpy().reshape(100, -1)
        means.append(losses.mean(0))
        assert np.all(losses.mean(0) > -exact - 3 * losses.std(0) / np.sqrt(100))  # -IWAE_k >= -log p(x) on average
    assert np.all(means[0] > means[1]) and np.all(means[1] > means[2])
