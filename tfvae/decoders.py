"""Decoders: Keras layers that map z to the likelihood p(x|z).

Each decoder returns a distribution whose batch shape is [B] and whose event
shape is the data shape (height, width, channels):

  * ``BernoulliDecoder``: p(x|z) = prod_i Bernoulli(x_i; sigmoid(logits_i)),
    parameterised by logits (never probabilities) for numerical stability.
  * ``GaussianDecoder``: p(x|z) = prod_i N(x_i; loc_i, scale^2), with a fixed
    scale, one learned global scale, or a learned scale per pixel;
    learned scales are softplus(raw) + scale_floor.

Distribution parameters are float32 whatever the compute policy of the trunk.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import networks

tfd = tfp.distributions

__all__ = ["BernoulliDecoder", "GaussianDecoder", "LIKELIHOODS", "make_decoder"]

LIKELIHOODS = ("bernoulli", "gaussian")
GAUSSIAN_SCALES = ("fixed", "learned", "per_pixel")


class _Decoder(keras.layers.Layer):
    """Shared trunk: z -> float32 tensor of shape [B, *data_shape] * num_params."""

    num_params = 1

    def __init__(self, data_shape, architecture="mlp", hidden_units=(400,), activation="relu", **kwargs):
        super().__init__(**kwargs)
        if len(data_shape) != 3 or any(int(d) <= 0 for d in data_shape):
            raise ValueError(
                f"data_shape must be (height, width, channels) of positive ints; got {list(data_shape)}"
            )
        networks.validate_architecture(architecture, hidden_units)
        self.data_shape = [int(d) for d in data_shape]
        self.architecture = architecture
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        if architecture == "mlp":
            self.trunk = networks.mlp_trunk(
                list(reversed(self.hidden_units)), activation, name="decoder_trunk"
            )
            self.head = keras.layers.Dense(
                math.prod(self.data_shape) * self.num_params, dtype="float32", name="likelihood_params"
            )
        else:
            self.trunk = networks.conv_decoder_trunk(
                self.data_shape, self.hidden_units, activation, name="decoder_trunk"
            )
            self.head = keras.layers.Conv2D(
                self.data_shape[-1] * self.num_params, 3, padding="same", dtype="float32",
                name="likelihood_params",
            )

    def build(self, input_shape):
        flat_shape = (None, input_shape[-1])
        self.trunk.build(flat_shape)
        self.head.build(self.trunk.compute_output_shape(flat_shape))

    def _params(self, z):
        """Returns ``num_params`` float32 tensors of shape [*batch, *data_shape] for z of shape [*batch, D].

        Any number of leading batch dimensions is accepted (e.g. [k, B, D]
        from ``q.sample(k)``): they are flattened for the network and restored.
        """
        z = tf.convert_to_tensor(z)
        out = tf.cast(self.head(self.trunk(tf.reshape(z, [-1, z.shape[-1]]))), tf.float32)
        params_shape = [*self.data_shape[:-1], self.data_shape[-1] * self.num_params]
        if z.shape[:-1].is_fully_defined():
            out = tf.reshape(out, [*z.shape[:-1], *params_shape])
        else:
            out = tf.reshape(out, tf.concat([tf.shape(z)[:-1], params_shape], 0))
        return tf.split(out, self.num_params, axis=-1) if self.num_params > 1 else [out]

    def get_config(self):
        config = super().get_config()
        config.update(
            data_shape=self.data_shape,
            architecture=self.architecture,
            hidden_units=self.hidden_units,
            activation=self.activation,
        )
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class BernoulliDecoder(_Decoder):
    """z -> p(x|z) = Independent(Bernoulli(logits=f(z)), 3) for binary data.

    log p(x|z) = sum_i [x_i * logits_i - softplus(logits_i)].
    The mean of the distribution is sigmoid(logits), the pixel probabilities.

    Args:
      data_shape: (height, width, channels) of x.
      architecture, hidden_units, activation: the trunk; hidden_units is listed
        encoder-side first, so the same list builds mirrored networks.
    """

    def call(self, z):
        (logits,) = self._params(z)
        return tfd.Independent(
            tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=3
        )


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

    def call(self, z):
        params = self._params(z)
        loc = params[0]
        if self.scale == "fixed":
            scale = tf.fill(tf.shape(loc), tf.constant(self.fixed_scale, tf.float32))
        elif self.scale == "learned":
            scale = tf.fill(tf.shape(loc), tf.nn.softplus(tf.cast(self.raw_scale, tf.float32)) + self.scale_floor)
        else:
            scale = tf.nn.softplus(params[1]) + self.scale_floor
        return tfd.Independent(tfd.Normal(loc=loc, scale=scale), reinterpreted_batch_ndims=3)

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, fixed_scale=self.fixed_scale, scale_floor=self.scale_floor)
        return config


def make_decoder(likelihood: str, data_shape, **kwargs) -> _Decoder:
    """Builds the decoder for a likelihood name ("bernoulli" or "gaussian")."""
    if likelihood == "bernoulli":
        return BernoulliDecoder(data_shape, **kwargs)
    if likelihood == "gaussian":
        return GaussianDecoder(data_shape, **kwargs)
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {likelihood!r}")
