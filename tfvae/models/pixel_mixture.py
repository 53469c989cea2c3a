"""A discretized logistic mixture over whole pixels, as PixelCNN++, NVAE and VDVAE model colour images.

For a pixel x = (x_0, ..., x_{C-1}) on the levels k / (L-1) of [0, 1],

  P(x) = sum_m pi_m prod_c P(x_c; mu_mc, s_mc),     pi = softmax(mixture_logits),
  mu_mc = loc_mc + sum_{j<c} coupling_m,k(c,j) x_j,  s_mc = exp(log_scale_mc),

with P(x_c; mu, s) the mass of a logistic(mu, s) on the bin of x_c
(``pixel_distributions``: bins of half-width h = 1 / (2 (L-1)), the edge
levels taking the whole tails). One component is shared by the channels of a
pixel, and within it each channel's location moves linearly with the values
before it (for RGB: G with R, B with R and G), so a pixel's colours are
modelled jointly. Since channel c depends only on the channels before it,
P is normalised over the L^C values of a pixel.

Cost. The log-probability is a sum of same-shape operations on planes, one
(component, channel) at a time, each a contiguous [*batch] tensor: the
parameters put components and channels first ([M, C, *batch]), and
``decoders.DiscretizedLogisticDecoder``'s head writes them that way
(``nn.networks.PlanarHead``). On a CPU this is much faster than the usual
[..., M, C] layout, whose operations broadcast the pixel values against the
components; the cost still grows as M C (``scripts/benchmark.py`` prints a
training step's time against a Gaussian likelihood's; docs/performance.md).

References:
  Salimans, Karpathy, Chen & Kingma (2017), PixelCNN++.
  Vahdat & Kautz (2020), NVAE. Child (2021), Very Deep VAEs.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.models.pixel_distributions import (
    as_parameter,
    bin_edges,
    discretized_logistic_mean,
    logistic_bin_log_prob_between,
    to_level,
)

tfd = tfp.distributions

__all__ = ["DiscretizedLogisticPixelMixture", "coupling_size", "pixel_mixture_log_prob"]


def coupling_size(channels: int) -> int:
    """Coupling coefficients per component for ``channels`` channels: C (C - 1) / 2, ordered (1,0), (2,0), (2,1), ..."""
    return channels * (channels - 1) // 2


def _coupled(loc, coupling, values, c):
    """loc_c + sum_{j<c} coupling_k(c,j) values_j for one component (lists of planes)."""
    mu, first = loc[c], coupling_size(c)
    for j in range(c):
        mu = mu + coupling[first + j] * values[j]
    return mu


def pixel_mixture_log_prob(x, mixture_logits, loc, log_scale, coupling, num_levels: int = 256):
    """log P(x) of ``DiscretizedLogisticPixelMixture``, one (component, channel) plane at a time.

    Args:
      x: [..., C] pixels on the levels.
      mixture_logits: [M, *batch]; loc, log_scale: [M, C, *batch]; coupling: [M, C (C-1) / 2, *batch].
      num_levels: L.

    Returns:
      [broadcast of x's leading dimensions and *batch] log-probabilities.
    """
    values = tf.unstack(tf.convert_to_tensor(x, tf.float32), axis=-1)
    edges = [bin_edges(value, 0.5 / (num_levels - 1)) for value in values]  # +-1e30 at the edge levels
    locs, log_scales, couplings = ([tf.unstack(per_component) for per_component in tf.unstack(p)]
                                   for p in (loc, log_scale, coupling))
    per_component = []
    for m, total in enumerate(tf.unstack(mixture_logits)):
        for c, (upper, lower) in enumerate(edges):
            mu = _coupled(locs[m], couplings[m], values, c)
            total = total + logistic_bin_log_prob_between(upper, lower, mu, tf.exp(-log_scales[m][c]))
        per_component.append(total)
    return tf.reduce_logsumexp(tf.stack(per_component), axis=0) - tf.reduce_logsumexp(mixture_logits, axis=0)


class DiscretizedLogisticPixelMixture(tfd.Distribution):
    """Mixture of M discretized logistics over whole pixels (event [C]), channels coupled within a component.

    Component m draws channel 0 from its logistic, then channel c from a
    logistic whose location is loc[m, c] + sum_{j<c} coupling[m, k(c, j)] x_j,
    the coefficients in the order k = (1,0), (2,0), (2,1), (3,0), ... (for
    RGB: G|R, B|R, B|G, as in PixelCNN++). With zero coupling the channels
    are independent within a component, still sharing it.

    The parameters put the components and channels first, ahead of the batch
    dimensions, so that each (component, channel) is one contiguous plane
    (module docstring: the cost).

    ``mean()`` is exact over the levels for channel 0; for a later channel it
    is the exact mean of its discretized logistic with the earlier channels
    at their component means (the plug-in mean): exact when the coupling is
    zero, otherwise off by the bend of the edge levels over the spread of the
    earlier channels (a fraction of a level unless a component is broad and
    near 0 or 1).

    Args:
      mixture_logits: [M, *batch] unnormalised log mixture weights.
      loc: [M, C, *batch] locations (in the data's [0, 1] units).
      log_scale: [M, C, *batch] log scales, below log(1e20) (scales below 1e20).
      coupling: [M, C (C - 1) / 2, *batch] coupling coefficients (None: zero).
      num_levels: L (default 256).

    Example:
      pixels = DiscretizedLogisticPixelMixture(logits, loc, log_scale, coupling)  # batch [B, H, W], event [3]
      image = tfd.Independent(pixels, reinterpreted_batch_ndims=2)               # batch [B], event [H, W, 3]
      image.log_prob(x)                                                           # x [B, H, W, 3] -> [B]
    """

    def __init__(self, mixture_logits, loc, log_scale, coupling=None, num_levels=256, validate_args=False,
                 allow_nan_stats=True, name="DiscretizedLogisticPixelMixture"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            self._mixture_logits, self._loc, self._log_scale = (
                as_parameter(v) for v in (mixture_logits, loc, log_scale))
            if self._loc.shape.rank is None or self._loc.shape.rank < 2 or self._loc.shape[1] is None:
                raise ValueError(f"loc must be [M, C, *batch] with a known C; got shape {self._loc.shape}")
            self._channels = int(self._loc.shape[1])
            if coupling is None:
                coupling = tf.zeros(tf.concat([tf.shape(self._loc)[:1], [coupling_size(self._channels)],
                                               tf.shape(self._loc)[2:]], 0))
            self._coupling = as_parameter(coupling)
            if self._coupling.shape.rank is None or self._coupling.shape[1] != coupling_size(self._channels):
                raise ValueError(f"coupling must be [M, C (C - 1) / 2 = {coupling_size(self._channels)}, *batch] for "
                                 f"C = {self._channels} channels; got shape {self._coupling.shape}")
            self._num_levels = int(num_levels)
            super().__init__(dtype=tf.float32, reparameterization_type=tfd.NOT_REPARAMETERIZED,
                             validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                             parameters=parameters, name=name)

    @property
    def mixture_logits(self):
        return self._mixture_logits

    @property
    def loc(self):
        return self._loc

    @property
    def log_scale(self):
        return self._log_scale

    @property
    def coupling(self):
        return self._coupling

    @property
    def num_levels(self):
        return self._num_levels

    def _batch_shape(self):
        return self._loc.shape[2:]

    def _batch_shape_tensor(self):
        return tf.shape(self._loc)[2:]

    def _event_shape(self):
        return tf.TensorShape([self._channels])

    def _event_shape_tensor(self):
        return tf.constant([self._channels], tf.int32)

    def _tensors(self):
        return tuple(tf.convert_to_tensor(v) for v in (self._mixture_logits, self._loc, self._log_scale,
                                                         self._coupling))

    def _log_prob(self, x):
        return pixel_mixture_log_prob(x, *self._tensors(), num_levels=self._num_levels)

    def _planes(self):
        """(logits [M planes], loc [M][C planes], scale [M][C planes], coupling [M][K planes])."""
        mixture_logits, loc, log_scale, coupling = self._tensors()
        return (tf.unstack(mixture_logits), *([tf.unstack(per_component) for per_component in tf.unstack(p)]
                                              for p in (loc, tf.exp(log_scale), coupling)))

    def _mean(self):
        """sum_m pi_m (E_m[x_0], E_m[x_1 | x_0 = E_m[x_0]], ...): the plug-in mean (see the class docstring)."""
        logits, loc, scale, coupling = self._planes()
        weights = tf.exp(tf.nn.log_softmax(tf.stack(logits), axis=0))  # [M, *batch]
        channel_means = []
        for m in range(len(logits)):
            means = []
            for c in range(self._channels):
                means.append(discretized_logistic_mean(_coupled(loc[m], coupling[m], means, c), scale[m][c],
                                                       self._num_levels))
            channel_means.append(tf.stack(means, axis=-1))  # [*batch, C]
        return tf.reduce_sum(weights[..., tf.newaxis] * tf.stack(channel_means), axis=0)

    def _sample_n(self, n, seed=None):
        logits, loc, scale, coupling = self._planes()
        component_seed, noise_seed = tfp.random.split_seed(seed, 2)
        component = tfd.Categorical(logits=tf.stack(logits, axis=-1)).sample(n, seed=component_seed)  # [n, *batch]
        chosen = [tf.cast(tf.equal(component, m), tf.float32) for m in range(len(logits))]
        u = tf.random.stateless_uniform(tf.concat([[n], self.batch_shape_tensor(), [self._channels]], 0),
                                        seed=noise_seed, minval=1e-6, maxval=1.0 - 1e-6)
        noise = tf.unstack(tf.math.log(u) - tf.math.log1p(-u), axis=-1)
        values = []
        for c in range(self._channels):  # each channel given the levels drawn for the ones before it
            mu = tf.add_n([w * _coupled(loc[m], coupling[m], values, c) for m, w in enumerate(chosen)])
            s = tf.add_n([w * scale[m][c] for m, w in enumerate(chosen)])
            values.append(to_level(mu + s * noise[c], self._num_levels))
        return tf.stack(values, axis=-1)
