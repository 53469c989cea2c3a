"""The pixel mixture: normalised over a pixel's joint values, equal to a NumPy reference, with finite gradients."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.models.pixel_mixture import DiscretizedLogisticPixelMixture, coupling_size

tfd = tfp.distributions


def mixture(seed=0, batch=(2,), components=3, channels=3, log_scale_range=(-6.0, -1.0), coupling=True):
    """Random parameters [M, C, *batch] (locations partly outside [0, 1], scales from ~0.002 to ~0.4)."""
    rng = np.random.default_rng(seed)
    shape = (components, channels, *batch)
    k = coupling_size(channels)
    return DiscretizedLogisticPixelMixture(
        mixture_logits=rng.normal(size=(components, *batch)).astype(np.float32),
        loc=rng.uniform(-0.2, 1.2, shape).astype(np.float32),
        log_scale=rng.uniform(*log_scale_range, shape).astype(np.float32),
        coupling=rng.uniform(-1, 1, (components, k, *batch)).astype(np.float32) if coupling else None,
        num_levels=256)


def reference_probability(distribution, x):
    """P(x) in float64 from the definition, for x [N, *batch, C] on the levels.

    P(x) = sum_m pi_m prod_c [F(x_c + h) - F(x_c - h)], F the logistic CDF at
    mu_mc = loc_mc + sum_{j<c} coupling_m,k(c,j) x_j, the edge levels taking the tails.
    """
    def cdf(v):
        return 1.0 / (1.0 + np.exp(-v))

    logits = distribution.mixture_logits.numpy().astype(np.float64)
    weights = np.exp(logits - logits.max(0))
    weights /= weights.sum(0)
    loc, scale = distribution.loc.numpy().astype(np.float64), np.exp(distribution.log_scale.numpy().astype(np.float64))
    coupling = distribution.coupling.numpy().astype(np.float64)
    h = 0.5 / (distribution.num_levels - 1)
    x = np.asarray(x, np.float64)
    total = 0.0
    for m in range(loc.shape[0]):
        p = weights[m]
        k = 0
        for c in range(loc.shape[1]):
            mu = loc[m, c] + sum(coupling[m, k + j] * x[..., j] for j in range(c))
            k += c
            upper = np.where(x[..., c] > 1 - 1e-9, 1.0, cdf((x[..., c] + h - mu) / scale[m, c]))
            lower = np.where(x[..., c] < 1e-9, 0.0, cdf((x[..., c] - h - mu) / scale[m, c]))
            p = p * (upper - lower)
        total = total + p
    return total


def random_pixels(rng, shape, levels=256):
    """Pixels on the levels, a fifth of the values at each edge level."""
    x = rng.integers(0, levels, shape) / (levels - 1)
    x[rng.random(shape) < 0.2] = 0.0
    x[rng.random(shape) < 0.2] = 1.0
    return x.astype(np.float32)


def test_probabilities_equal_the_definition_in_float64():
    distribution = mixture(batch=(3,), log_scale_range=(-4.0, -1.0))
    x = random_pixels(np.random.default_rng(1), (1000, 3, 3))
    reference = reference_probability(distribution, x)
    significant = reference > 1e-9  # where float64's differences of CDFs near 1 are still accurate
    assert significant.mean() > 0.3
    np.testing.assert_allclose(distribution.log_prob(x).numpy()[significant], np.log(reference[significant]),
                               atol=2e-4, rtol=1e-5)


def test_probabilities_sum_to_one_over_every_value_of_a_pixel():
    """Sum over all 256^3 RGB values of P(x) = 1 for broad, narrow and edge-heavy components alike."""
    rng = np.random.default_rng(2)
    distribution = DiscretizedLogisticPixelMixture(
        mixture_logits=rng.normal(size=(3, 1)).astype(np.float32),
        loc=np.array([[[0.0], [0.5], [1.1]], [[0.3], [-0.1], [0.7]], [[0.9], [0.2], [0.5]]], np.float32),
        log_scale=np.log([[[0.3], [0.002], [0.05]], [[0.01], [0.2], [0.004]], [[0.1], [0.1], [0.001]]]).astype(
            np.float32),
        coupling=rng.uniform(-1, 1, (3, 3, 1)).astype(np.float32))
    levels = np.arange(256, dtype=np.float32) / 255
    g, b = np.meshgrid(levels, levels, indexing="ij")
    total = 0.0
    for red in levels:  # one red value at a time: [256 * 256] pixels
        x = np.stack([np.full(g.size, red, np.float32), g.ravel(), b.ravel()], -1)[:, None, :]
        total += np.exp(distribution.log_prob(x).numpy().astype(np.float64)).sum()
    np.testing.assert_allclose(total, 1.0, atol=2e-4)


def test_each_channel_given_the_ones_before_sums_to_one_over_its_256_values():
    """With one component, P(x) = prod_c P(x_c | x_<c): summing out the last channel leaves the others."""
    rng = np.random.default_rng(3)
    one = DiscretizedLogisticPixelMixture(np.zeros((1, 5), np.float32), rng.uniform(0, 1, (1, 3, 5)).astype(np.float32),
                                          rng.uniform(-6, -1, (1, 3, 5)).astype(np.float32),
                                          rng.uniform(-1, 1, (1, 3, 5)).astype(np.float32))
    fixed = random_pixels(rng, (5, 3))
    levels = np.arange(256, dtype=np.float32) / 255
    x = np.broadcast_to(fixed, (256, 5, 3)).copy()
    x[..., 2] = levels[:, None]
    summed_out = tf.reduce_logsumexp(tf.cast(one.log_prob(x), tf.float64), axis=0).numpy()
    two_channels = DiscretizedLogisticPixelMixture(np.zeros((1, 5), np.float32), one.loc[:, :2], one.log_scale[:, :2],
                                                   one.coupling[:, :1])
    np.testing.assert_allclose(summed_out, two_channels.log_prob(fixed[:, :2]).numpy(), atol=1e-4, rtol=1e-5)


def test_log_prob_is_finite_with_finite_gradients_far_in_the_tails_and_at_the_edges():
    loc = tf.Variable(np.array([[[0.05], [0.95]], [[0.5], [0.5]]], np.float32))  # [M=2, C=2, 1]
    log_scale = tf.Variable(np.log(np.full((2, 2, 1), 0.001, np.float32)))  # a level is ~4 scales wide
    logits, coupling = tf.Variable(np.zeros((2, 1), np.float32)), tf.Variable(np.full((2, 1, 1), 0.5, np.float32))
    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.9, 0.1], [0.0, 1.0], [0.5, 0.5]], np.float32)[:, None, :]
    with tf.GradientTape() as tape:
        log_prob = DiscretizedLogisticPixelMixture(logits, loc, log_scale, coupling).log_prob(x)
        total = tf.reduce_sum(log_prob)
    assert np.isfinite(log_prob.numpy()).all() and log_prob.numpy().min() < -400  # ~900 scales out: still finite
    for gradient in tape.gradient(total, [logits, loc, log_scale, coupling]):
        assert np.isfinite(gradient.numpy()).all()


def test_far_tail_matches_the_logistic_tail_in_closed_form():
    """One component, one channel, x 400 scales above mu: log P = log(F(u) - F(l)) ~ -l + log(1 - e^{-2h/s})."""
    s, mu, x = 0.002, 0.1, 0.9
    distribution = DiscretizedLogisticPixelMixture([[0.0]], [[[mu]]], [[[np.log(s)]]])
    h = 0.5 / 255
    expected = -(x - h - mu) / s + np.log1p(-np.exp(-2 * h / s))
    np.testing.assert_allclose(distribution.log_prob(np.array([[x]], np.float32)).numpy(), [expected], rtol=1e-4)


def test_zero_coupling_gives_the_exact_mean_over_the_levels():
    distribution = mixture(seed=4, coupling=False)
    levels = np.arange(256) / 255
    means = []
    for c in range(3):  # channels are independent given the component: E[x_c] = sum_m pi_m E_m[x_c]
        x = np.zeros((256, 2, 3), np.float32)
        x[..., c] = levels[:, None]
        one_channel = DiscretizedLogisticPixelMixture(distribution.mixture_logits, distribution.loc[:, c:c + 1],
                                                      distribution.log_scale[:, c:c + 1])
        p = np.exp(one_channel.log_prob(x[..., c:c + 1]).numpy().astype(np.float64))
        means.append((p * levels[:, None]).sum(0))
    np.testing.assert_allclose(distribution.mean().numpy(), np.stack(means, -1), atol=2e-5)


def test_plug_in_mean_is_within_a_level_of_the_sampled_mean_for_narrow_components():
    """The documented approximation: off by a fraction of a level when components are narrow and inside (0, 1)."""
    distribution = mixture(seed=5, batch=(4,), log_scale_range=(-5.0, -3.5))
    samples = distribution.sample(20_000, seed=[3, 4]).numpy()
    standard_error = samples.std(0) / np.sqrt(len(samples))
    np.testing.assert_array_less(np.abs(samples.mean(0) - distribution.mean().numpy()), 4 * standard_error + 1 / 255)


def test_samples_are_levels_drawn_with_the_joint_probabilities():
    """4 levels, 3 channels: the 64 values' sample frequencies against P, within 4.5 standard errors."""
    rng = np.random.default_rng(6)
    distribution = DiscretizedLogisticPixelMixture(
        rng.normal(size=(2,)).astype(np.float32), rng.uniform(0, 1, (2, 3)).astype(np.float32),
        rng.uniform(-2.5, -1.0, (2, 3)).astype(np.float32), rng.uniform(-1, 1, (2, 3)).astype(np.float32),
        num_levels=4)
    n = 40_000
    samples = distribution.sample(n, seed=[5, 6]).numpy()
    codes = np.round(samples * 3).astype(int)
    np.testing.assert_allclose(samples * 3, codes, atol=1e-5)
    counts = np.bincount(codes @ np.array([16, 4, 1]), minlength=64)
    grid = np.stack(np.meshgrid(*[np.arange(4)] * 3, indexing="ij"), -1).reshape(-1, 3) / 3
    p = reference_probability(distribution, grid)
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-6)
    np.testing.assert_array_less(np.abs(counts / n - p), 4.5 * np.sqrt(p * (1 - p) / n) + 1e-4)


def test_independent_wraps_it_as_an_image_likelihood_and_broadcasts_sample_dimensions():
    rng = np.random.default_rng(7)
    pixels = mixture(seed=7, batch=(2, 3, 4))  # batch [B=2, H=3, W=4]
    image = tfd.Independent(pixels, reinterpreted_batch_ndims=2)
    assert image.batch_shape == [2] and image.event_shape == [3, 4, 3]
    x = random_pixels(rng, (5, 2, 3, 4, 3))  # 5 images per batch element
    per_pixel = pixels.log_prob(x).numpy()
    assert per_pixel.shape == (5, 2, 3, 4)
    np.testing.assert_allclose(image.log_prob(x).numpy(), per_pixel.sum((2, 3)), rtol=1e-5)
    np.testing.assert_allclose(per_pixel[1], pixels.log_prob(x[1]).numpy(), rtol=1e-6)
    assert image.mean().shape == (2, 3, 4, 3) and image.sample(6, seed=[1, 2]).shape == (6, 2, 3, 4, 3)


def test_one_channel_is_the_per_value_mixture():
    """C = 1 (grey): no coupling, and P is the scalar DiscretizedLogisticMixture's."""
    from tfvae.models.pixel_distributions import DiscretizedLogisticMixture

    rng = np.random.default_rng(8)
    logits, loc, log_scale = (rng.normal(size=(3, 6)).astype(np.float32), rng.uniform(0, 1, (3, 1, 6)).astype(np.float32),
                              rng.uniform(-5, -1, (3, 1, 6)).astype(np.float32))
    grey = DiscretizedLogisticPixelMixture(logits, loc, log_scale)
    scalar = DiscretizedLogisticMixture(logits.T, loc[:, 0].T, np.exp(log_scale[:, 0].T))
    x = random_pixels(rng, (6,))
    np.testing.assert_allclose(grey.log_prob(x[:, None]).numpy(), scalar.log_prob(x).numpy(), rtol=1e-5)
    assert grey.coupling.shape == (3, 0, 6)


@pytest.mark.parametrize("loc, coupling, message", [
    (np.zeros((2,), np.float32), None, "loc must be [M, C, *batch]"),
    (np.zeros((2, 3, 4), np.float32), np.zeros((2, 2, 4), np.float32), "coupling must be [M, C (C - 1) / 2 = 3"),
])
def test_bad_shapes_are_named(loc, coupling, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DiscretizedLogisticPixelMixture(np.zeros(loc.shape[:1] + loc.shape[2:], np.float32), loc, loc, coupling)
