"""Maths of the objectives: closed forms, bounds, KL estimators."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from linear_gaussian import LinearGaussianProblem

import tfvae
from tfvae import objectives
from tfvae.objectives import schedules

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
    model = problem1.make_vae(A, c, np.sqrt(np.diag(cov)))
    for seed in range(3):
        # log p(x|z) + log p(z) - log q(z|x) = log p(x) for every z under the exact posterior.
        elbo = model.elbo_terms(problem1.x, seed=seed, kl_method="monte_carlo")["elbo"]
        np.testing.assert_allclose(elbo, problem1.log_evidence(problem1.x), atol=2e-3)


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
    np.testing.assert_allclose(kl, tf.reduce_mean(q.log_prob(z) - p.log_prob(z), 0), rtol=1e-5)
    # An independent reference: the same KL from 400k fresh samples (its own standard error is tiny).
    reference_z = q.sample(400_000, seed=[9, 9])
    reference_ratio = (q.log_prob(reference_z) - p.log_prob(reference_z)).numpy()[:, 0]
    standard_error = reference_ratio.std() / np.sqrt(5000)
    assert kl.shape == [1] and abs(float(kl[0]) - reference_ratio.mean()) < 4 * standard_error
    with pytest.raises(ValueError, match="no analytic KL registered"):
        objectives.rate(q, p, z=z, method="analytic")


def test_linear_schedule_warms_up_to_its_value_and_the_objective_multiplies_by_beta():
    schedule = schedules.Linear(10)
    assert [float(schedule(step)) for step in (0, 5, 10, 50)] == pytest.approx([0.0, 0.5, 1.0, 1.0])
    objective = tfvae.ELBO(beta=2.0, kl_weight=schedule)
    assert [float(objective.rate_weight(step)) for step in (0, 5, 10, 50)] == pytest.approx([0.0, 1.0, 2.0, 2.0])
    assert float(tfvae.ELBO(beta=0.5).rate_weight(123)) == 0.5
    assert float(tfvae.ELBO(kl_weight=lambda step: 0.25).rate_weight(3)) == 0.25  # any callable of the step


def test_cyclical_schedule_rises_at_the_start_of_every_cycle():
    schedule = schedules.Cyclical(cycle_steps=20, warmup_steps=10)
    steps = (0, 5, 10, 19, 20, 25, 30, 45)
    assert [float(schedule(s)) for s in steps] == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 0.5])


@pytest.mark.parametrize("schedule", [schedules.Constant(0.3), schedules.Linear(7, value=2.0),
                                      schedules.Cyclical(9, 4)])
def test_schedules_survive_keras_serialisation(schedule):
    import keras

    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(clone) is type(schedule) and clone.get_config() == schedule.get_config()
    assert [float(clone(s)) for s in range(12)] == [float(schedule(s)) for s in range(12)]


@pytest.mark.parametrize("make, message", [
    (lambda: schedules.Cyclical(cycle_steps=5, warmup_steps=10), "kl_cycle_steps must be >= kl_warmup_steps > 0"),
    (lambda: schedules.make("cosine"), "kl_schedule must be one of"),
])
def test_bad_kl_schedules_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


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
    model = problem.make_vae(A, c, scale)
    _, iwae_loss = tfvae.IWAE(num_samples=1).loss(model, problem.x, seed, step=0)
    _, elbo_loss = tfvae.ELBO(kl_method="monte_carlo").loss(model, problem.x, seed, step=0)
    np.testing.assert_allclose(iwae_loss.numpy(), elbo_loss.numpy(), rtol=1e-5)


def test_iwae_training_loss_falls_with_k_towards_minus_the_log_evidence(problem):
    A, c, scale = _suboptimal_posterior(problem)
    exact = problem.log_evidence(problem.x)
    model = problem.make_vae(A, c, scale)
    means = []
    for k in (1, 5, 50):
        x = np.tile(problem.x, [100, 1])  # 100 independent estimates per example in one call
        losses = tfvae.IWAE(num_samples=k).loss(model, x, tf.constant([k, 7]), step=0)[1].numpy().reshape(100, -1)
        means.append(losses.mean(0))
        assert np.all(losses.mean(0) > -exact - 3 * losses.std(0) / np.sqrt(100))  # -IWAE_k >= -log p(x) on average
    assert np.all(means[0] > means[1]) and np.all(means[1] > means[2])


def _poor_posterior(problem):
    """The exact posterior's mean with three times its standard deviations: IWAE_k gains a lot with k."""
    A, c, cov = problem.exact_posterior()
    return A, c, 3.0 * np.sqrt(np.diag(cov))


def test_chunked_iwae_bound_keeps_tightening_with_k_across_chunk_boundaries(problem):
    """With chunks of 10 samples, k = 10, 100, 1000 must still give clearly rising bounds: chunks that
    reused one draw would make every k an IWAE_10 bound."""
    model = problem.make_vae(*_poor_posterior(problem))
    x = np.tile(problem.x, [1000, 1])  # 1000 independent estimates per example in one call
    means, errors = [], []
    for k in (10, 100, 1000):
        draws = model.log_likelihood(x, k, seed=k, chunk_size=10).numpy().reshape(1000, -1)
        means.append(draws.mean(0))
        errors.append(draws.std(0) / np.sqrt(len(draws)))
    def separation(i, j):
        return (means[j] - means[i]) / np.sqrt(errors[i] ** 2 + errors[j] ** 2)

    assert np.all(separation(0, 1) > 4) and np.all(separation(0, 2) > 4), means  # beyond the first chunk
    assert np.all(separation(1, 2) > -3), means  # and never falling back


def test_chunked_and_unchunked_iwae_bounds_agree_tightly(problem):
    model = problem.make_vae(*_poor_posterior(problem))
    x = np.tile(problem.x, [200, 1])  # 200 independent estimates per example in one call
    whole = model.log_likelihood(x, 500, seed=1, chunk_size=500).numpy().reshape(200, -1)
    chunked = model.log_likelihood(x, 500, seed=2, chunk_size=25).numpy().reshape(200, -1)
    standard_error = np.sqrt(whole.var(0) / 200 + chunked.var(0) / 200)
    assert np.all(standard_error < 0.03)  # tight: the comparison can see a difference of a few hundredths
    np.testing.assert_array_less(np.abs(whole.mean(0) - chunked.mean(0)), 4 * standard_error + 1e-4)
