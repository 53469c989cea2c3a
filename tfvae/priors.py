"""Priors p(z) as Keras layers, so that learnable priors can hold weights.

A prior layer's ``distribution()`` returns a ``tfd.Distribution`` with empty
batch shape and event shape [latent_dim]; ``VAE.prior`` calls it. It is built
anew on each call, so a learnable prior always reflects its current weights.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["StandardNormalPrior"]


@keras.saving.register_keras_serializable(package="tfvae")
class StandardNormalPrior(keras.layers.Layer):
    """p(z) = N(z; 0, I) over R^latent_dim.

    Args:
      latent_dim: size of z (positive int).

    Example:
      prior = StandardNormalPrior(20).distribution()
      prior.log_prob(tf.zeros([20]))   # -10 * log(2 * pi)
    """

    def __init__(self, latent_dim, **kwargs):
        super().__init__(**kwargs)
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive int; got {latent_dim}")
        self.latent_dim = int(latent_dim)

    def distribution(self) -> tfd.Distribution:
        return tfd.MultivariateNormalDiag(
            loc=tf.zeros([self.latent_dim], tf.float32),
            scale_diag=tf.ones([self.latent_dim], tf.float32),
        )

    def call(self, inputs=None):
        return self.distribution()

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config
