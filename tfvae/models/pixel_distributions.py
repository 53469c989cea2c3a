"""Discretized logistics over 8-bit pixel values in [0, 1]: the bin mass, and a mixture per channel value.

TFP has no distribution over the grid {0, 1/255, ..., 1} with a logistic
mixture, so tfvae provides two ``tfd.Distribution``s; they compose with
``tfd.Independent`` like any TFP distribution. For a value x = k / (L-1)
(L = num_levels, 256 for 8-bit data) the bin of a logistic with location mu
and scale s is [x - h, x + h], h = 1 / (2 (L-1)), with the edges x = 0 and
x = 1 taking the whole tails (F(-inf) = 0, F(+inf) = 1), so the L bins sum
to one:

  P(x; mu, s) = F((x + h - mu) / s) - F((x - h - mu) / s),   F = sigmoid.

  * ``DiscretizedLogisticPixelMixture`` (``pixel_mixture.py``): a whole pixel (event [C]), as in
    PixelCNN++, NVAE and VDVAE: one mixture per pixel, shared by its
    channels, and within a component the location of channel c moves
    linearly with the values of the channels before it (G with R, B with R
    and G):

      P(x) = sum_m pi_m prod_c P(x_c; mu_mc, s_mc),
      mu_mc = loc_mc + sum_{j<c} coupling_m,cj x_j.

  * ``DiscretizedLogisticMixture`` (here): one channel value (scalar events), a
    mixture per value: P(x) = sum_m pi_m P(x; loc_m, s_m) (tfvae 0.3.0's
    pixel likelihood, which models the channels of a pixel independently).

The bin mass is computed without cancellation or branches: with
u = (x + h - mu) / s and l = (x - h - mu) / s,

  F(u) - F(l) = F(u) (1 - F(l)) (1 - exp(l - u)),
  log P = -softplus(-u) - softplus(l) + log(-expm1(-2 h / s)),

and at the edges log P = -softplus(-u) (x = 0) or -softplus(l) (x = 1).
Every term is finite and accurate in the far tails, so gradients are too
(``logistic_bin_log_prob``).

References:
  Salimans, Karpathy, Chen & Kingma (2017), PixelCNN++.
  Vahdat & Kautz (2020), NVAE. Child (2021), Very Deep VAEs.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "DiscretizedLogisticMixture",
    "as_parameter",
    "bin_edges",
    "discretized_logistic_mean",
    "logistic_bin_log_prob",
    "logistic_bin_log_prob_between",
    "to_level",
]


_OUTSIDE = 1e30  # an edge level's outer bin edge: far enough to take the whole tail, finite for the gradients


def bin_edges(x, half_bin):
    """(upper, lower) edges of the bins of x: x +- half_bin, with +-1e30 at the top and bottom levels (whole tails)."""
    upper = tf.where(x < 1.0 - half_bin, x + half_bin, _OUTSIDE)
    lower = tf.where(x > half_bin, x - half_bin, -_OUTSIDE)
    return upper, lower


def logistic_bin_log_prob_between(upper, lower, loc, inv_scale):
    """log [F(u) - F(l)], u = (upper - loc) inv_scale, l = (lower - loc) inv_scale, F = sigmoid.

    As log F(u) + log(1 - F(l)) + log(1 - exp(l - u)): no cancellation,
    finite with finite gradients even 100s of scales into a tail. An edge at
    +-1e30 (``bin_edges``) makes its terms exactly 0 (for inv_scale > 1e-20,
    i.e. scales below 1e20).
    """
    u = (upper - loc) * inv_scale
    lower_in = (lower - loc) * inv_scale
    return tf.math.log(-tf.math.expm1(lower_in - u)) - tf.nn.softplus(-u) - tf.nn.softplus(lower_in)


def logistic_bin_log_prob(x, loc, inv_scale, half_bin):
    """log P(x) of a logistic(loc, 1 / inv_scale) discretized to [x - half_bin, x + half_bin] on [0, 1].

    x broadcasts against loc and inv_scale (give it a size-1 axis for the
    mixture components); the levels within half_bin of 0 and 1 take the
    whole lower and upper tails.
    """
    return logistic_bin_log_prob_between(*bin_edges(x, half_bin), loc, inv_scale)


def discretized_logistic_mean(loc, scale, num_levels: int):
    """E[x] = (1 / (L-1)) sum_{k=1}^{L-1} P(x >= k / (L-1)), exact over the L levels, one level at a time."""
    step = 1.0 / (num_levels - 1)

    def body(k, total):
        edge = (tf.cast(k, tf.float32) - 0.5) * step
        return k + 1, total + tf.sigmoid((loc - edge) / scale)

    _, total = tf.while_loop(lambda k, _: k < num_levels, body, (tf.constant(1), tf.zeros_like(loc)))
    return total * step


def as_parameter(value):
    # Variables stay variables (read at each use, so gradients reach them), as in TFP's own distributions.
    return value if isinstance(value, tf.Variable) else tf.convert_to_tensor(value, tf.float32)


class DiscretizedLogisticMixture(tfd.Distribution):
    """Mixture of M logistics discretized to L levels in [0, 1]; scalar events.

    Args:
      mixture_logits: [..., M] unnormalised log mixture weights.
      loc: [..., M] component locations (in the data's [0, 1] units).
      scale: [..., M] positive component scales.
      num_levels: L (default 256).
    """

    def __init__(self, mixture_logits, loc, scale, num_levels=256, validate_args=False, allow_nan_stats=True,
                 name="DiscretizedLogisticMixture"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self._mixture_logits, self._loc, self._scale = (as_parameter(v) for v in (mixture_logits, loc, scale))
            self._num_levels = int(num_levels)
            super().__init__(dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            mixture_logits=tfp.util.ParameterProperties(event_ndims=1),
            loc=tfp.util.ParameterProperties(event_ndims=1),
            scale=tfp.util.ParameterProperties(event_ndims=1),
            num_levels=tfp.util.ParameterProperties(event_ndims=None, specifies_shape=True),
        )

    @property
    def loc(self):
        return self._loc

    @property
    def scale(self):
        return self._scale

    @property
    def mixture_logits(self):
        return self._mixture_logits

    @property
    def num_levels(self):
        return self._num_levels

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _half_bin(self):
        return 0.5 / (self._num_levels - 1)

    def _tensors(self):
        return tuple(tf.convert_to_tensor(v) for v in (self._mixture_logits, self._loc, self._scale))

    def _log_prob(self, x):
        mixture_logits, loc, scale = self._tensors()
        x = tf.convert_to_tensor(x, tf.float32)[..., tf.newaxis]
        component = logistic_bin_log_prob(x, loc, 1.0 / scale, self._half_bin())
        return tf.reduce_logsumexp(tf.nn.log_softmax(mixture_logits) + component, axis=-1)

    def _mean(self):
        """E[x] = sum_m pi_m E_m[x], each exact over the L levels."""
        mixture_logits, loc, scale = self._tensors()
        weights = tf.exp(tf.nn.log_softmax(mixture_logits))  # oneDNN's Softmax kernel refuses rank > 5
        return tf.reduce_sum(weights * discretized_logistic_mean(loc, scale, self._num_levels), axis=-1)

    def _sample_n(self, n, seed=None):
        mixture_logits, loc, scale = self._tensors()
        component_seed, noise_seed = tfp.random.split_seed(seed, 2)
        component = tfd.Categorical(logits=mixture_logits).sample(n, seed=component_seed)
        one_hot = tf.one_hot(component, tf.shape(loc)[-1], dtype=tf.float32)
        loc = tf.reduce_sum(one_hot * loc, axis=-1)
        scale = tf.reduce_sum(one_hot * scale, axis=-1)
        u = tf.random.stateless_uniform(tf.shape(loc), seed=noise_seed, minval=1e-6, maxval=1.0 - 1e-6)
        return to_level(loc + scale * (tf.math.log(u) - tf.math.log1p(-u)), self._num_levels)


def to_level(value, num_levels: int):
    """A continuous draw -> its bin's level (the edge levels take the tails)."""
    levels = num_levels - 1
    return tf.round(tf.clip_by_value(value, 0.0, 1.0) * levels) / levels
