"""Decoders: Keras layers that map z to the likelihood p(x|z).

Each decoder returns a distribution whose batch shape is [B] and whose event
shape is the data shape (height, width, channels):

  * ``BernoulliDecoder``: p(x|z) = prod_i Bernoulli(x_i; sigmoid(logits_i)),
    parameterised by logits (never probabilities) for numerical stability.
  * ``ContinuousBernoulliDecoder``: p(x|z) = prod_i CB(x_i; sigmoid(logits_i)),
    the normalised Bernoulli-like density on [0, 1] (Loaiza-Ganem &
    Cunningham 2019), for intensities that are not binary.
  * ``GaussianDecoder``: p(x|z) = prod_i N(x_i; loc_i, scale^2), with a fixed
    scale, one learned global scale, or a learned scale per pixel;
    learned scales are softplus(raw) + scale_floor.
  * ``DiscretizedLogisticDecoder``: p(x|z) = prod_pixels DLM(x_pixel), a
    mixture of discretized logistics over the 256 levels of 8-bit images,
    joint over a pixel's channels (PixelCNN++).
  * ``CategoricalDecoder``: p(x|z) = prod_i Categorical(255 x_i; softmax(logits_i)),
    a 256-way softmax per pixel (a conv head is advised: an MLP head has
    256 * dim(x) outputs).

The 8-bit likelihoods take x in [0, 1] on the grid k / 255, as the data
pipeline gives it. Distribution parameters are float32 whatever the compute
policy of the trunk. A conditional VAE passes one-hot labels as
``condition``; they join z at the decoder's input: p(x|z, y).

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
  Loaiza-Ganem & Cunningham (2019), The continuous Bernoulli.
  Salimans et al. (2017), PixelCNN++.
  van den Oord, Kalchbrenner & Kavukcuoglu (2016), Pixel Recurrent Neural Networks.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import choices, latents
from tfvae.models.conditioning import RefusesMissingCondition
from tfvae.models.pixel_distributions import DiscretizedLogisticMixture
from tfvae.models.pixel_mixture import DiscretizedLogisticPixelMixture, coupling_size
from tfvae.nn import networks

tfd = tfp.distributions

__all__ = [
    "LIKELIHOODS",
    "PIXEL_MIXTURES",
    "BernoulliDecoder",
    "CategoricalDecoder",
    "ContinuousBernoulliDecoder",
    "DiscretizedLogisticDecoder",
    "GaussianDecoder",
    "make_decoder",
]

LIKELIHOODS = choices.register(
    "likelihood", ("bernoulli", "continuous_bernoulli", "gaussian", "discretized_logistic", "categorical"))
PIXEL_LEVELS = 256
GAUSSIAN_SCALES = choices.register("gaussian_scale", ("fixed", "learned", "per_pixel"))
PIXEL_MIXTURES = choices.register("pixel_mixture", ("joint", "per_channel"))  # DiscretizedLogisticDecoder: see its docstring


class _Decoder(RefusesMissingCondition, keras.layers.Layer):
    """Shared trunk: z -> float32 tensor of shape [B, *data_shape] * num_params."""

    accepts_sample_dimensions = True  # z [..., N, D] -> batch [..., N] (see tfvae/models/vae.py)
    # p(x|z) is a density on [0, 1]^D (its log can be > 0), not a probability of discrete values.
    is_density = False

    num_params = 1
    takes_vectors = True  # data_shape (D,) works with an mlp trunk; pixel likelihoods set False

    def __init__(self, data_shape, architecture="mlp", hidden_units=(400,), activation="relu", condition_dim=0,
                 blocks_per_level=2, normalization="none", **kwargs):
        super().__init__(**kwargs)
        if int(condition_dim) < 0:
            raise ValueError(f"condition_dim must be >= 0; got {condition_dim}")
        self.condition_dim = int(condition_dim)
        if len(data_shape) not in (1, 3) or any(int(d) <= 0 for d in data_shape):
            raise ValueError(
                f"data_shape must be (height, width, channels) or (dimensions,) of positive ints; got "
                f"{list(data_shape)}"
            )
        if len(data_shape) == 1 and (architecture != "mlp" or not self.takes_vectors):
            raise ValueError(
                f"data_shape (dimensions,) (vector data) needs architecture mlp and a bernoulli, "
                f"continuous_bernoulli or gaussian likelihood; got {architecture} with {type(self).__name__}"
            )
        networks.validate_architecture(architecture, hidden_units, blocks_per_level, normalization)
        self.blocks_per_level, self.normalization = int(blocks_per_level), normalization
        self.data_shape = [int(d) for d in data_shape]
        self.architecture = architecture
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.trunk = networks.decoder_trunk(architecture, self.data_shape, self.hidden_units, activation,
                                            "decoder_trunk", self.blocks_per_level, normalization,
                                            dtype=self.dtype_policy)
        self.head = self._make_head()

    def _make_head(self) -> keras.layers.Layer:
        """Trunk features -> likelihood parameters: Dense for an mlp trunk, a 3x3 convolution for a conv one."""
        if self.architecture not in networks.CONVOLUTIONAL:
            return keras.layers.Dense(
                math.prod(self.data_shape[:-1]) * self._outputs_per_pixel(), dtype="float32", name="likelihood_params"
            )
        return networks.OneChannelConv2D(
            self._outputs_per_pixel(), 3, padding="same", dtype="float32", name="likelihood_params",
        )

    def _outputs_per_pixel(self) -> int:
        """Likelihood parameters the head gives per pixel (``num_params`` per channel unless a decoder says otherwise)."""
        return self.data_shape[-1] * self.num_params

    def build(self, input_shape):
        flat_shape = (None, input_shape[-1] + self.condition_dim)
        self.trunk.build(flat_shape)
        self.head.build(self.trunk.compute_output_shape(flat_shape))

    def _params(self, z, condition=None):
        """Returns ``num_params`` float32 tensors of shape [*batch, *data_shape] for z of shape [*batch, D]."""
        out = self._pixel_params(z, condition)
        return tf.split(out, self.num_params, axis=-1) if self.num_params > 1 else [out]

    def _pixel_params(self, z, condition=None):
        """The head's float32 output for z of shape [*batch, D]: [*batch, *data_shape[:-1], outputs per pixel]."""
        out, z = self._head_output(z, condition)
        params_shape = [*self.data_shape[:-1], self._outputs_per_pixel()]
        if z.shape[:-1].is_fully_defined():
            return tf.reshape(out, [*z.shape[:-1], *params_shape])
        return tf.reshape(out, tf.concat([tf.shape(z)[:-1], params_shape], 0))

    def _head_output(self, z, condition=None):
        """(the head's float32 output for z flattened to [N, D], z as a tensor).

        Any number of leading batch dimensions is accepted (e.g. [k, B, D]
        from ``q.sample(k)``): they are flattened for the network (callers
        restore them). A hierarchical VAE's list of latents is concatenated
        first. A condition [B, C] broadcasts against z's leading dimensions.
        """
        z = tf.convert_to_tensor(latents.as_vector(z))
        inputs = tf.reshape(z, [-1, z.shape[-1]])
        if self.condition_dim:
            if condition is None:
                raise ValueError(f"this decoder is conditional (condition_dim={self.condition_dim}); pass condition")
            condition = tf.broadcast_to(tf.cast(condition, z.dtype), tf.concat([tf.shape(z)[:-1], [self.condition_dim]], 0))
            inputs = tf.concat([inputs, tf.reshape(condition, [-1, self.condition_dim])], axis=-1)
        return tf.cast(self.head(self.trunk(inputs)), tf.float32), z

    def get_config(self):
        config = super().get_config()
        config.update(
            data_shape=self.data_shape,
            architecture=self.architecture,
            hidden_units=self.hidden_units,
            activation=self.activation,
            condition_dim=self.condition_dim,
            blocks_per_level=self.blocks_per_level,
            normalization=self.normalization,
        )
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class BernoulliDecoder(_Decoder):
    """z -> p(x|z) = Independent(Bernoulli(logits=f(z)), 3) for binary data.

    log p(x|z) = sum_i [x_i * logits_i - softplus(logits_i)].
    The mean of the distribution is sigmoid(logits), the pixel probabilities.

    Args:
      data_shape: (height, width, channels) of x.
      architecture, hidden_units, activation: the trunk ("mlp", "conv" or
        "resnet"); hidden_units is listed encoder-side first, so the same list
        builds mirrored networks.
      blocks_per_level, normalization: resnet only (see GaussianEncoder).
    """

    def call(self, z, condition=None):
        (logits,) = self._params(z, condition)
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=len(self.data_shape)
        )


@keras.saving.register_keras_serializable(package="tfvae")
class ContinuousBernoulliDecoder(_Decoder):
    """z -> p(x|z) = Independent(ContinuousBernoulli(logits=f(z)), 3) for x in [0, 1].

    log p(x|z) = sum_i [x_i log lambda_i + (1 - x_i) log(1 - lambda_i) + log C(lambda_i)],
    lambda = sigmoid(logits), C the normaliser that makes it a density on [0, 1].
    Its mean is not lambda: E[x] = lambda / (2 lambda - 1) + 1 / (2 atanh(1 - 2 lambda)).

    Args: as BernoulliDecoder.
    """

    is_density = True

    def call(self, z, condition=None):
        (logits,) = self._params(z, condition)
        return tfd.Independent(tfd.ContinuousBernoulli(logits=logits), reinterpreted_batch_ndims=len(self.data_shape))


@keras.saving.register_keras_serializable(package="tfvae")
class DiscretizedLogisticDecoder(_Decoder):
    """z -> p(x|z): a discretized logistic mixture over the 256 levels of 8-bit pixels.

    pixel_mixture="joint" (the default): p(x|z) = Independent(DiscretizedLogisticPixelMixture, 2),
    one mixture of M components per pixel shared by its C channels, each
    channel's location linear in the channels before it (PixelCNN++). Per
    pixel the head gives M mixture logits and, per component, C locations,
    C log-scales and C (C - 1) / 2 coupling coefficients (10 M numbers for
    RGB), in the [0, 1] units of x:

      loc = raw,  log_scale = clip(raw + log(INITIAL_SCALE), log(scale_floor), 40),  coupling = tanh(raw).

    The locations start at 0, below every pixel value: a head that starts
    above the data (as at 0.5, mid-grey, in tfvae 0.3.0) learns nothing
    visible in short runs (docs/models.md, "Colour images"). A conv trunk's
    head is a 1x1 convolution writing the parameters as planes
    (``networks.PlanarHead``), as in PixelCNN++ and VDVAE.

    pixel_mixture="per_channel": tfvae 0.3.0's likelihood, kept so that its
    runs and .keras files load (a saved config without ``pixel_mixture`` is
    one): Independent(DiscretizedLogisticMixture, 3), an independent mixture
    per channel value, loc = 0.5 + raw, scale = softplus(raw) + scale_floor,
    and a 3x3 head.

    Args:
      data_shape, architecture, hidden_units, activation, condition_dim: as BernoulliDecoder.
      num_components: M (default 5; 1 is a single discretized logistic).
      scale_floor: lower bound of the scales (default 1e-3, a quarter of a level).
      pixel_mixture: "joint" or "per_channel" (see above).
    """

    takes_vectors = False
    INITIAL_SCALE = 0.1  # scales start near 0.1 (logistic std 0.18), about the spread of natural images' values

    def __init__(self, data_shape, num_components=5, scale_floor=1e-3, pixel_mixture="joint", **kwargs):
        if int(num_components) <= 0:
            raise ValueError(f"num_components must be a positive int; got {num_components}")
        if not scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0; got {scale_floor}")
        if pixel_mixture not in PIXEL_MIXTURES:
            raise ValueError(f"pixel_mixture must be one of {PIXEL_MIXTURES}; got {pixel_mixture!r}")
        self.num_components = int(num_components)
        self.pixel_mixture = pixel_mixture
        self.num_params = 3 * self.num_components  # per channel value (per_channel)
        super().__init__(data_shape, **kwargs)
        self.scale_floor = float(scale_floor)

    def _make_head(self):
        if self.pixel_mixture == "joint" and self.architecture in networks.CONVOLUTIONAL:
            return networks.PlanarHead(self._outputs_per_pixel(), dtype="float32", name="likelihood_params")
        return super()._make_head()

    def _outputs_per_pixel(self) -> int:
        if self.pixel_mixture == "per_channel":
            return super()._outputs_per_pixel()
        channels = self.data_shape[-1]
        return self.num_components * (1 + 2 * channels + coupling_size(channels))

    def _planes(self, z, condition):
        """The head's output as planes: [outputs per pixel, *batch, height, width] for z [*batch, D]."""
        out, z = self._head_output(z, condition)
        per_pixel, (height, width) = self._outputs_per_pixel(), self.data_shape[:2]
        if self.architecture not in networks.CONVOLUTIONAL:  # Dense: each example's outputs read as [P, H, W]
            out = tf.transpose(tf.reshape(out, [-1, per_pixel, height, width]), [1, 0, 2, 3])
        batch = z.shape[:-1] if z.shape[:-1].is_fully_defined() else tf.shape(z)[:-1]
        return tf.reshape(out, tf.concat([[per_pixel], batch, [height, width]], 0))

    def call(self, z, condition=None):
        if self.pixel_mixture == "per_channel":
            return self._per_channel(z, condition)
        planes = self._planes(z, condition)
        m, c = self.num_components, self.data_shape[-1]
        k = coupling_size(c)
        logits, loc, raw_scale, raw_coupling = tf.split(planes, [m, m * c, m * c, m * k], axis=0)
        loc, raw_scale, raw_coupling = (_split_components(t, m, size) for t, size in
                                        ((loc, c), (raw_scale, c), (raw_coupling, k)))
        log_scale = tf.clip_by_value(raw_scale + math.log(self.INITIAL_SCALE), math.log(self.scale_floor), 40.0)
        pixels = DiscretizedLogisticPixelMixture(mixture_logits=logits, loc=loc, log_scale=log_scale,
                                                 coupling=tf.tanh(raw_coupling), num_levels=PIXEL_LEVELS)
        return tfd.Independent(pixels, reinterpreted_batch_ndims=len(self.data_shape) - 1)

    def _per_channel(self, z, condition):
        params = self._params(z, condition)
        m = self.num_components
        logits, loc, raw_scale = (tf.stack(params[i * m : (i + 1) * m], axis=-1) for i in range(3))
        pixels = DiscretizedLogisticMixture(
            mixture_logits=logits, loc=0.5 + loc, scale=tf.nn.softplus(raw_scale) + self.scale_floor,
            num_levels=PIXEL_LEVELS)
        return tfd.Independent(pixels, reinterpreted_batch_ndims=len(self.data_shape))

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, scale_floor=self.scale_floor,
                      pixel_mixture=self.pixel_mixture)
        return config

    @classmethod
    def from_config(cls, config):
        # A config without pixel_mixture was saved by tfvae 0.3.0, whose likelihood is per_channel.
        return cls(**{"pixel_mixture": "per_channel", **config})


def _split_components(planes, num_components: int, per_component: int):
    """[M * K, *batch] -> [M, K, *batch] (component-major, as the head lays them out)."""
    return tf.reshape(planes, tf.concat([[num_components, per_component], tf.shape(planes)[1:]], 0))


@keras.saving.register_keras_serializable(package="tfvae")
class CategoricalDecoder(_Decoder):
    """z -> p(x|z) = Independent(FiniteDiscrete(levels k / 255, logits=f(z)), 3): a 256-way softmax per pixel.

    log p(x|z) = sum_i log_softmax(logits_i)[255 x_i]. On CPU, ``mean()`` takes
    z with one batch dimension (TensorFlow's Softmax kernel is limited to rank
    5); ``log_prob`` takes any.

    Args: as BernoulliDecoder.
    """

    num_params = PIXEL_LEVELS
    takes_vectors = False

    def call(self, z, condition=None):
        logits = tf.stack(self._params(z, condition), axis=-1)
        levels = tf.linspace(0.0, 1.0, PIXEL_LEVELS)
        pixels = tfd.FiniteDiscrete(levels, logits=logits, atol=0.25 / (PIXEL_LEVELS - 1))
        return tfd.Independent(pixels, reinterpreted_batch_ndims=len(self.data_shape))


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianDecoder(_Decoder):
    """z -> p(x|z) = Independent(Normal(loc=f(z), scale), 3) for continuous data.

    Args:
      data_shape, architecture, hidden_units, activation: as BernoulliDecoder.
      scale: "fixed" (``fixed_scale`` for every pixel), "learned" (one global
        scale, softplus(raw) + scale_floor) or "per_pixel" (a scale output per
        pixel by the network).
      fixed_scale: the scale used when scale="fixed" (default 0.1).
      scale_floor: lower bound of learned scales (default 1e-3).
    """

    is_density = True

    def __init__(self, data_shape, scale="learned", fixed_scale=0.1, scale_floor=1e-3, **kwargs):
        if scale not in GAUSSIAN_SCALES:
            raise ValueError(f"scale must be one of {GAUSSIAN_SCALES}; got {scale!r}")
        if not fixed_scale > 0 or not scale_floor > 0:
            raise ValueError(
                f"fixed_scale and scale_floor must be > 0; got {fixed_scale} and {scale_floor}"
            )
        self.scale = scale
        self.num_params = 2 if scale == "per_pixel" else 1
        super().__init__(data_shape, **kwargs)
        self.fixed_scale = float(fixed_scale)
        self.scale_floor = float(scale_floor)

    def build(self, input_shape):
        super().build(input_shape)
        if self.scale == "learned":
            # softplus(0.5413) + floor ~= 1.0 at initialisation.
            self.raw_scale = self.add_weight(
                name="raw_scale", shape=(), initializer=keras.initializers.Constant(0.5413), dtype="float32"
            )

    def call(self, z, condition=None):
        params = self._params(z, condition)
        loc = params[0]
        if self.scale == "fixed":
            scale = tf.fill(tf.shape(loc), tf.constant(self.fixed_scale, tf.float32))
        elif self.scale == "learned":
            scale = tf.fill(tf.shape(loc), tf.nn.softplus(tf.cast(self.raw_scale, tf.float32)) + self.scale_floor)
        else:
            scale = tf.nn.softplus(params[1]) + self.scale_floor
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=len(self.data_shape))

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, fixed_scale=self.fixed_scale, scale_floor=self.scale_floor)
        return config


_DECODERS = {
    "bernoulli": BernoulliDecoder,
    "continuous_bernoulli": ContinuousBernoulliDecoder,
    "gaussian": GaussianDecoder,
    "discretized_logistic": DiscretizedLogisticDecoder,
    "categorical": CategoricalDecoder,
}


def make_decoder(likelihood: str, data_shape, **kwargs) -> _Decoder:
    """Builds the decoder for a likelihood name in LIKELIHOODS; kwargs go to its constructor."""
    if likelihood in _DECODERS:
        return _DECODERS[likelihood](data_shape, **kwargs)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {likelihood!r}")
