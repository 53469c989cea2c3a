"""The discretized logistic mixture: a normalised distribution over the 256 levels with exact moments."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.models.pixel_distributions import DiscretizedLogisticMixture

LEVELS = np.arange(256) / 255.0


def mixture(seed=0, batch=6, components=3, scale_range=(0.002, 0.4)):
    rng = np.random.default_rng(seed)
    return DiscretizedLogisticMixture(
        mixture_logits=rng.normal(size=(batch, components)).astype(np.float32),
        loc=rng.uniform(-0.2, 1.2, (batch, components)).astype(np.float32),
        scale=rng.uniform(*scale_range, (batch, components)).astype(np.float32))


def reference_probabilities(distribution):
    """P(level) in float64 from the definition: sum_m pi_m [F_m(x + h) - F_m(x - h)], tails at the edges."""
    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    logits = distribution.mixture_logits.numpy().astype(np.float64)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    loc, scale = (t.numpy().astype(np.float64)[None] for t in (distribution.loc, distribution.scale))
    x = LEVELS[:, None, None]
    upper = np.where(x > 1 - 1e-9, 1.0, sigmoid((x + 0.5 / 255 - loc) / scale))
    lower = np.where(x < 1e-9, 0.0, sigmoid((x - 0.5 / 255 - loc) / scale))
    return ((upper - lower) * weights[None]).sum(-1)  # [256, batch]


def test_probabilities_sum_to_one_over_the_levels_and_match_the_definition():
    distribution = mixture()
    log_probs = distribution.log_prob(LEVELS[:, None].astype(np.float32)).numpy()
    np.testing.assert_allclose(np.exp(log_probs).sum(0), 1.0, atol=1e-5)
    reference = reference_probabilities(distribution)
    significant = reference > 1e-6
    np.testing.assert_allclose(np.exp(log_probs)[significant], reference[significant], rtol=2e-3)


def test_log_prob_stays_finite_and_accurate_far_in_the_tails():
    distribution = DiscretizedLogisticMixture([[0.0]], [[0.1]], [[0.002]])  # a level is ~2 scales wide
    far = np.array([[0.9]], np.float32)  # 400 scales from the mode
    log_prob = distribution.log_prob(far).numpy()
    expected = -0.8 / 0.002 + np.log(np.expm1(1 / (255 * 0.002)))  # log(F(u) - F(l)) ~ -(x - h - loc)/s + log(e^{2h/s} - 1)
    assert np.isfinite(log_prob).all()
    np.testing.assert_allclose(log_prob, expected + (0.5 / 255) / 0.002 - 1 / (255 * 0.002), rtol=1e-3)


def test_gradients_are_finite_at_every_level():
    distribution_args = [tf.Variable(v) for v in (np.zeros((1, 2), np.float32), np.array([[0.0, 1.0]], np.float32),
                                                  np.array([[0.01, 0.01]], np.float32))]
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(DiscretizedLogisticMixture(*distribution_args).log_prob(LEVELS[:, None].astype(np.float32)))
    for gradient in tape.gradient(total, distribution_args):
        assert np.isfinite(gradient.numpy()).all()


def test_mean_is_the_exact_mean_over_the_levels():
    distribution = mixture(seed=1)
    expected = (reference_probabilities(distribution) * LEVELS[:, None]).sum(0)
    np.testing.assert_allclose(distribution.mean().numpy(), expected, atol=1e-5)


def test_samples_lie_on_the_levels_with_the_right_frequencies():
    distribution = mixture(seed=2, batch=2)
    samples = distribution.sample(40_000, seed=[1, 2]).numpy()
    np.testing.assert_allclose(samples * 255, np.round(samples * 255), atol=1e-3)
    mean, std = samples.mean(0), samples.std(0)
    np.testing.assert_array_less(np.abs(mean - distribution.mean().numpy()), 4 * std / np.sqrt(len(samples)) + 1e-6)


def test_independent_wraps_it_as_an_image_likelihood():
    rng = np.random.default_rng(3)
    image = DiscretizedLogisticMixture(rng.normal(size=(2, 3, 2, 1, 4)).astype(np.float32),
                                       rng.uniform(size=(2, 3, 2, 1, 4)).astype(np.float32),
                                       np.full((2, 3, 2, 1, 4), 0.1, np.float32))
    likelihood = tfp.distributions.Independent(image, reinterpreted_batch_ndims=3)
    assert likelihood.batch_shape == [2] and likelihood.event_shape == [3, 2, 1]
    x = rng.integers(0, 256, (2, 3, 2, 1)) / 255.0
    np.testing.assert_allclose(likelihood.log_prob(x.astype(np.float32)).numpy(),
                               image.log_prob(x.astype(np.float32)).numpy().reshape(2, -1).sum(1), rtol=1e-6)


@pytest.mark.parametrize("level", [0, 255])
def test_edge_levels_take_the_whole_tail(level):
    distribution = DiscretizedLogisticMixture([[0.0]], [[0.5]], [[0.1]])
    h = 0.5 / 255
    tail = 1 / (1 + np.exp(-(h - 0.5) / 0.1)) if level == 0 else 1 - 1 / (1 + np.exp(-(1 - h - 0.5) / 0.1))
    np.testing.assert_allclose(np.exp(distribution.log_prob(np.float32(level / 255)).numpy()), tail, rtol=1e-5)
