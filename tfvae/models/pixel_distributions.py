"""A discretized logistic mixture over 8-bit pixel values in [0, 1].

TFP has no distribution over the grid {0, 1/255, ..., 1} with a logistic
mixture, so this module provides one as a ``tfd.Distribution``; it composes
with ``tfd.Independent`` like any TFP distribution. For a pixel x = k / (L-1)
(L = num_levels, 256 for 8-bit data) and components m with weights pi_m,

  P(x) = sum_m pi_m [F_m(x + h) - F_m(x - h)],   h = 1 / (2 (L-1)),
  F_m(v) = sigmoid((v - loc_m) / scale_m),

with the edges x = 0 and x = 1 taking the whole tails: F_m(-inf) = 0 and
F_m(+inf) = 1, so P sums to one over the L levels. The bin mass is computed
as a difference of log-sigmoids on the side of the bin away from the mode
(``tfp.math.log_sub_exp``), which stays accurate in the tails.

References:
  Salimans et al. (2017), PixelCNN++.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["DiscretizedLogisticMixture"]


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
            # Variables stay variables (read at each use, so gradients reach them), as in TFP's own distributions.
            self._mixture_logits, self._loc, self._scale = (
                value if isinstance(value, tf.Variable) else tf.convert_to_tensor(value, tf.float32)
                for value in (mixture_logits, loc, scale))
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
        inv_scale = 1.0 / scale
        upper = (x - loc + self._half_bin()) * inv_scale  # standardised bin edges
        lower = (x - loc - self._half_bin()) * inv_scale
        # log(F(upper) - F(lower)) on the side of the bin away from the mode: left of loc as
        # log(sigmoid(upper) - sigmoid(lower)), right of it as log(sigmoid(-lower) - sigmoid(-upper)).
        # One formula for both keeps every branch finite, so tf.where passes no NaN gradients.
        left = x - loc < 0
        high = tf.where(left, upper, -lower)
        low = tf.where(left, lower, -upper)
        interior = tfp.math.log_sub_exp(tf.math.log_sigmoid(high), tf.math.log_sigmoid(low))
        first_level = x < self._half_bin()
        last_level = x > 1.0 - self._half_bin()
        component = tf.where(first_level, tf.math.log_sigmoid(upper),
                             tf.where(last_level, tf.math.log_sigmoid(-lower), interior))
        return tf.reduce_logsumexp(tf.nn.log_softmax(mixture_logits) + component, axis=-1)

    def _level_cdf_tail_sum(self):
        """sum_{k=1}^{L-1} P(x >= k / (L-1)), evaluated level by level to keep memory flat."""
        mixture_logits, loc, scale = self._tensors()
        weights = tf.exp(tf.nn.log_softmax(mixture_logits))  # oneDNN's Softmax kernel refuses rank > 5
        step = 1.0 / (self._num_levels - 1)

        def body(k, total):
            edge = (tf.cast(k, tf.float32) - 0.5) * step
            survival = tf.reduce_sum(weights * tf.sigmoid(-(edge - loc) / scale), axis=-1)
            return k + 1, total + survival

        total = tf.zeros(tf.shape(loc)[:-1], tf.float32)
        _, total = tf.while_loop(lambda k, _: k < self._num_levels, body, (tf.constant(1), total))
        return total

    def _mean(self):
        """E[x] = (1 / (L-1)) sum_{k>=1} P(x >= k / (L-1)) (exact, over the L levels)."""
        return self._level_cdf_tail_sum() / (self._num_levels - 1)

    def _sample_n(self, n, seed=None):
        mixture_logits, loc, scale = self._tensors()
        component_seed, noise_seed = tfp.random.split_seed(seed, 2)
        component = tfd.Categorical(logits=mixture_logits).sample(n, seed=component_seed)
        one_hot = tf.one_hot(component, tf.shape(loc)[-1], dtype=tf.float32)
        loc = tf.reduce_sum(one_hot * loc, axis=-1)
        scale = tf.reduce_sum(one_hot * scale, axis=-1)
        u = tf.random.stateless_uniform(tf.shape(loc), seed=noise_seed, minval=1e-6, maxval=1.0 - 1e-6)
        value = loc + scale * (tf.math.log(u) - tf.math.log1p(-u))
        levels = self._num_levels - 1
        return tf.round(tf.clip_by_value(value, 0.0, 1.0) * levels) / levels
