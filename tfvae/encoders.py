"""Encoders: Keras layers that map data x to the approximate posterior q(z|x).

``GaussianEncoder`` returns a diagonal Gaussian

  q(z|x) = N(z; loc(x), diag(scale(x)^2)),  scale = softplus(raw) + scale_floor,

as a ``tfd.MultivariateNormalDiag`` with batch shape [B] and event shape
[latent_dim]. Its parameters are computed in float32 even when the trunk runs
in a mixed precision policy, so that log_prob and KL stay in float32.

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import networks

tfd = tfp.distributions

__all__ = ["GaussianEncoder"]


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianEncoder(keras.layers.Layer):
    """x -> q(z|x) = MultivariateNormalDiag(loc, softplus(raw_scale) + scale_floor).

    Args:
      latent_dim: size of z (positive int).
      architecture: "mlp" (Dense trunk) or "conv" (strided convolutions).
      hidden_units: layer widths (mlp) or filter counts (conv), input side first.
      activation: Keras activation name for the trunk.
      scale_floor: lower bound added to the softplus scale (default 1e-4), which
        keeps log q(z|x) finite.

    Example:
      encoder = GaussianEncoder(latent_dim=20, hidden_units=[400])
      q = encoder(x)                      # tfd.Distribution, batch [B], event [20]
      z = q.sample(seed=[1, 2])
      tfd.kl_divergence(q, prior)         # analytic
    """

    def __init__(
        self,
        latent_dim,
        architecture="mlp",
        hidden_units=(400,),
        activation="relu",
        scale_floor=1e-4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive int; got {latent_dim}")
        if not scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0; got {scale_floor}")
        networks.validate_architecture(architecture, hidden_units)
        self.latent_dim = int(latent_dim)
        self.architecture = architecture
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.scale_floor = float(scale_floor)
        build_trunk = (
            networks.mlp_trunk if architecture == "mlp" else networks.conv_encoder_trunk
        )
        self.trunk = build_trunk(self.hidden_units, activation, name="encoder_trunk")
        self.head = keras.layers.Dense(2 * self.latent_dim, dtype="float32", name="posterior_params")

    def build(self, input_shape):
        self.trunk.build(input_shape)
        self.head.build(self.trunk.compute_output_shape(input_shape))

    def call(self, x):
        params = tf.cast(self.head(self.trunk(x)), tf.float32)
        loc, raw_scale = tf.split(params, 2, axis=-1)
        return tfd.MultivariateNormalDiag(
            loc=loc, scale_diag=tf.nn.softplus(raw_scale) + self.scale_floor
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            architecture=self.architecture,
            hidden_units=self.hidden_units,
            activation=self.activation,
            scale_floor=self.scale_floor,
        )
        return config
