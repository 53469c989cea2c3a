"""Encoders: Keras layers that map data x to the approximate posterior q(z|x).

``GaussianEncoder`` returns a Gaussian with batch shape [B] and event shape
[latent_dim]:

  covariance="diagonal":  q(z|x) = N(z; loc(x), diag(scale(x)^2)),
                          scale = softplus(raw) + scale_floor
                          (``tfd.MultivariateNormalDiag``);
  covariance="full":      q(z|x) = N(z; loc(x), L(x) L(x)^T), L lower
                          triangular with diagonal softplus(raw) + scale_floor
                          (``tfd.MultivariateNormalTriL``).

``IAFEncoder`` follows the diagonal Gaussian with inverse autoregressive flow
steps conditioned on features h(x):

  z_0 ~ N(loc(x), diag(scale(x)^2)),  z_t = z_{t-1} * exp(s_t) + m_t,
  (m_t, s_t) = MADE_t(z_{t-1}, h(x)) autoregressive in z_{t-1},
  log q(z_T|x) = log N(z_0) - sum_t sum_i s_t,i,

a ``tfd.TransformedDistribution``. Its KL to any prior is estimated by Monte
Carlo. All parameters are float32 even when the trunk runs in a mixed
precision policy, so log_prob and KL stay in float32.

A conditional VAE passes one-hot labels as ``condition``; they join the trunk
features before the head: q(z|x, y).

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
  Kingma et al. (2016), Improved Variational Inference with Inverse
  Autoregressive Flow.
  Sohn, Lee & Yan (2015), Learning Structured Output Representation using
  Deep Conditional Generative Models.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import choices
from tfvae.models.conditioning import RefusesMissingCondition
from tfvae.nn import flows, networks

tfd = tfp.distributions
tfb = tfp.bijectors

__all__ = ["COVARIANCES", "POSTERIORS", "GaussianEncoder", "IAFEncoder"]

COVARIANCES = ("diagonal", "full")
POSTERIORS = choices.register("posterior", (*COVARIANCES, "iaf"))  # GaussianEncoder(covariance=...) or IAFEncoder


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianEncoder(RefusesMissingCondition, keras.layers.Layer):
    """x -> q(z|x) = MultivariateNormalDiag(loc, softplus(raw_scale) + scale_floor).

    Args:
      latent_dim: size of z (positive int).
      architecture: "mlp" (Dense trunk), "conv" (strided convolutions) or
        "resnet" (residual blocks per resolution, ``tfvae.resnet``).
      hidden_units: layer widths (mlp) or channels per level (conv, resnet), input side first.
      activation: Keras activation name for the trunk.
      scale_floor: lower bound added to the softplus scale (default 1e-4), which
        keeps log q(z|x) finite.
      covariance: "diagonal" (default) or "full".
      condition_dim: size of the one-hot condition of a conditional VAE (0: none).
      blocks_per_level, normalization: resnet only: residual blocks per
        resolution (default 2) and "none", "layer" or "group" normalisation.

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
        covariance="diagonal",
        condition_dim=0,
        blocks_per_level=2,
        normalization="none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive int; got {latent_dim}")
        if not scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0; got {scale_floor}")
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}; got {covariance!r}")
        if int(condition_dim) < 0:
            raise ValueError(f"condition_dim must be >= 0; got {condition_dim}")
        networks.validate_architecture(architecture, hidden_units, blocks_per_level, normalization)
        self.blocks_per_level, self.normalization = int(blocks_per_level), normalization
        self.covariance = covariance
        self.condition_dim = int(condition_dim)
        self.latent_dim = int(latent_dim)
        self.architecture = architecture
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = activation
        self.scale_floor = float(scale_floor)
        self.trunk = networks.encoder_trunk(architecture, self.hidden_units, activation, "encoder_trunk",
                                            self.blocks_per_level, normalization, dtype=self.dtype_policy)
        d = self.latent_dim
        num_scale_params = d if covariance == "diagonal" else d * (d + 1) // 2
        self.head = keras.layers.Dense(d + num_scale_params, dtype="float32", name="posterior_params")

    def build(self, input_shape):
        self.trunk.build(input_shape)
        features_shape = self.trunk.compute_output_shape(input_shape)
        self.head.build((*features_shape[:-1], features_shape[-1] + self.condition_dim))

    def features(self, x, condition=None):
        """h(x), or [h(x), y] for a conditional encoder: the input of the head."""
        features = self.trunk(x)
        if self.condition_dim:
            if condition is None:
                raise ValueError(f"this encoder is conditional (condition_dim={self.condition_dim}); pass condition")
            features = tf.concat([features, tf.cast(condition, features.dtype)], axis=-1)
        return features

    def gaussian(self, features) -> tfd.Distribution:
        """The Gaussian q(z|x) whose parameters the head computes from ``features``."""
        params = tf.cast(self.head(features), tf.float32)
        loc, raw_scale = params[..., : self.latent_dim], params[..., self.latent_dim :]
        if self.covariance == "full":
            return tfd.MultivariateNormalTriL(
                loc=loc, scale_tril=tfb.FillScaleTriL(diag_shift=self.scale_floor)(raw_scale))
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw_scale) + self.scale_floor)

    def call(self, x, condition=None):
        return self.gaussian(self.features(x, condition))

    def get_config(self):
        config = super().get_config()
        config.update(
            latent_dim=self.latent_dim,
            architecture=self.architecture,
            hidden_units=self.hidden_units,
            activation=self.activation,
            scale_floor=self.scale_floor,
            covariance=self.covariance,
            condition_dim=self.condition_dim,
            blocks_per_level=self.blocks_per_level,
            normalization=self.normalization,
        )
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class IAFEncoder(GaussianEncoder):
    """x -> q(z|x): a diagonal Gaussian followed by ``num_flows`` IAF steps.

    Args:
      latent_dim, architecture, hidden_units, activation, scale_floor,
        condition_dim: as GaussianEncoder (the base is diagonal).
      num_flows: IAF steps (default 2).
      flow_hidden_units: widths of each step's MADE (default (256, 256)).
      context_dim: size of the features h(x) the MADEs are conditioned on
        (default 64).

    Example:
      encoder = IAFEncoder(latent_dim=20, num_flows=2)
      q = encoder(x)               # tfd.TransformedDistribution
      z = q.sample(seed=[1, 2]); q.log_prob(z)
    """

    def __init__(self, latent_dim, num_flows=2, flow_hidden_units=(256, 256), context_dim=64, **kwargs):
        if kwargs.get("covariance", "diagonal") != "diagonal":
            raise ValueError(f"IAFEncoder's base is diagonal; got covariance={kwargs['covariance']!r}")
        kwargs.pop("covariance", None)
        super().__init__(latent_dim, **kwargs)
        if int(num_flows) <= 0:
            raise ValueError(f"num_flows must be a positive int; got {num_flows}")
        if int(context_dim) <= 0:
            raise ValueError(f"context_dim must be a positive int; got {context_dim}")
        self.num_flows = int(num_flows)
        self.flow_hidden_units = [int(u) for u in flow_hidden_units]
        self.context_dim = int(context_dim)
        self.context_head = keras.layers.Dense(self.context_dim, activation=self.activation, dtype="float32",
                                               name="flow_context")
        self.made = [flows.MADE(self.latent_dim, self.flow_hidden_units, name=f"iaf_made_{i}")
                     for i in range(self.num_flows)]
        networks.track_for_checkpoint(self, "made", self.made)

    def build(self, input_shape):
        super().build(input_shape)
        features_shape = self.trunk.compute_output_shape(input_shape)
        self.context_head.build((*features_shape[:-1], features_shape[-1] + self.condition_dim))
        for made in self.made:
            made.build((None, self.latent_dim), (None, self.context_dim))

    def call(self, x, condition=None):
        features = self.features(x, condition)
        context = self.context_head(tf.cast(features, tf.float32))
        return tfd.TransformedDistribution(
            self.gaussian(features), flows.flow_chain("iaf", self.made, self.latent_dim, context=context))

    def get_config(self):
        config = super().get_config()
        config.pop("covariance")
        config.update(num_flows=self.num_flows, flow_hidden_units=self.flow_hidden_units,
                      context_dim=self.context_dim)
        return config
