"""Priors p(z) as Keras layers, so that learnable priors hold trainable weights.

A prior layer's ``distribution(encoder=None)`` returns a ``tfd.Distribution``
with empty batch shape and event shape [latent_dim]; ``VAE.prior`` calls it
with the model's encoder (which only the VampPrior uses). It is built anew on
each call, so a learnable prior always reflects its current weights, and the
weights are plain Keras variables (TFP's ``TransformedVariable`` is not
tracked by Keras 3 layers).

  * ``StandardNormalPrior``:  p(z) = N(z; 0, I).
  * ``MixtureOfGaussiansPrior``: p(z) = sum_k pi_k N(z; loc_k, diag(scale_k^2)).
  * ``VampPrior``: p(z) = (1/K) sum_k q(z | u_k), u_k learned pseudo-inputs.
  * ``FlowPrior``: p(z) = N(f^-1(z); 0, I) |det d f^-1 / dz|, f a MAF or
    RealNVP chain.

None but the standard normal has a closed-form KL with a Gaussian posterior,
so ``kl_method="auto"`` estimates the rate by Monte Carlo for them.

References:
  Tomczak & Welling (2018), VAE with a VampPrior.
  Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow.
  Dinh, Sohl-Dickstein & Bengio (2017), Density estimation using Real NVP.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import choices
from tfvae.nn import flows, networks

tfd = tfp.distributions

__all__ = ["PRIORS", "PRIOR_FLOWS", "FlowPrior", "MixtureOfGaussiansPrior", "StandardNormalPrior", "VampPrior", "make_prior"]

PRIORS = choices.register("prior", ("standard_normal", "mixture", "vamp", "flow"))
PRIOR_FLOWS = choices.register("flow", ("maf", "real_nvp"))  # the flows a FlowPrior can use

# softplus(0.5413) = 1.0: learned scales start at one.
_UNIT_SOFTPLUS = 0.5413


class _Prior(keras.layers.Layer):
    """Base: holds latent_dim; ``call`` returns the distribution."""

    def __init__(self, latent_dim, **kwargs):
        kwargs.setdefault("dtype", "float32")  # prior parameters stay float32 under mixed precision
        super().__init__(**kwargs)
        if int(latent_dim) <= 0:
            raise ValueError(f"latent_dim must be a positive int; got {latent_dim}")
        self.latent_dim = int(latent_dim)

    def distribution(self, encoder=None) -> tfd.Distribution:
        raise NotImplementedError

    def call(self, inputs=None):
        return self.distribution()

    def get_config(self):
        config = super().get_config()
        config.update(latent_dim=self.latent_dim)
        return config


def _standard_normal(latent_dim: int) -> tfd.Distribution:
    return tfd.MultivariateNormalDiag(loc=tf.zeros([latent_dim], tf.float32), scale_diag=tf.ones([latent_dim], tf.float32))


@keras.saving.register_keras_serializable(package="tfvae")
class StandardNormalPrior(_Prior):
    """p(z) = N(z; 0, I) over R^latent_dim.

    Args:
      latent_dim: size of z (positive int).

    Example:
      prior = StandardNormalPrior(20).distribution()
      prior.log_prob(tf.zeros([20]))   # -10 * log(2 * pi)
    """

    def distribution(self, encoder=None) -> tfd.Distribution:
        return _standard_normal(self.latent_dim)


@keras.saving.register_keras_serializable(package="tfvae")
class MixtureOfGaussiansPrior(_Prior):
    """p(z) = sum_k softmax(logits)_k N(z; loc_k, diag(scale_k^2)), all learned.

    scale_k = softplus(raw_k) + scale_floor. Locations start at N(0, 1) draws
    (so the components differ), scales at one, weights uniform.

    Args:
      latent_dim: size of z.
      num_components: K (default 10).
      scale_floor: lower bound of the component scales (default 1e-3).

    Example:
      prior = MixtureOfGaussiansPrior(20, num_components=10)
      prior.distribution()     # tfd.MixtureSameFamily, event shape [20]
    """

    def __init__(self, latent_dim, num_components=10, scale_floor=1e-3, **kwargs):
        super().__init__(latent_dim, **kwargs)
        if int(num_components) <= 0:
            raise ValueError(f"num_components must be a positive int; got {num_components}")
        if not scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0; got {scale_floor}")
        self.num_components = int(num_components)
        self.scale_floor = float(scale_floor)

    def build(self, input_shape=None):
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(name="logits", shape=(k,), initializer="zeros")
        self.loc = self.add_weight(name="loc", shape=(k, d), initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.raw_scale = self.add_weight(name="raw_scale", shape=(k, d),
                                         initializer=keras.initializers.Constant(_UNIT_SOFTPLUS))

    def distribution(self, encoder=None) -> tfd.Distribution:
        if not self.built:
            self.build()
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.convert_to_tensor(self.logits)),
            components_distribution=tfd.MultivariateNormalDiag(
                loc=tf.convert_to_tensor(self.loc),
                scale_diag=tf.nn.softplus(tf.convert_to_tensor(self.raw_scale)) + self.scale_floor),
        )

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, scale_floor=self.scale_floor)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class VampPrior(_Prior):
    """p(z) = (1/K) sum_k q(z | u_k): the encoder's posteriors at K learned pseudo-inputs.

    u_k = sigmoid(raw_k) keeps the pseudo-inputs in the data range [0, 1]; raw_k
    starts at N(0, 1) draws. The encoder is the model's own (``VAE.prior``
    passes it), so the prior moves with the encoder. Each evaluation runs the
    encoder on the K pseudo-inputs.

    Args:
      latent_dim: size of z (the encoder's).
      data_shape: (height, width, channels) of x.
      num_pseudo_inputs: K (default 500, as in Tomczak & Welling 2018).
    """

    uses_encoder = True

    def __init__(self, latent_dim, data_shape, num_pseudo_inputs=500, **kwargs):
        super().__init__(latent_dim, **kwargs)
        if int(num_pseudo_inputs) <= 0:
            raise ValueError(f"num_pseudo_inputs must be a positive int; got {num_pseudo_inputs}")
        self.data_shape = [int(d) for d in data_shape]
        self.num_pseudo_inputs = int(num_pseudo_inputs)

    def build(self, input_shape=None):
        self.raw_pseudo_inputs = self.add_weight(
            name="raw_pseudo_inputs", shape=(self.num_pseudo_inputs, *self.data_shape),
            initializer=keras.initializers.RandomNormal(0.0, 1.0))

    @property
    def pseudo_inputs(self) -> tf.Tensor:
        """u_k in [0, 1], shape [K, *data_shape]."""
        return tf.sigmoid(tf.convert_to_tensor(self.raw_pseudo_inputs))

    def distribution(self, encoder=None) -> tfd.Distribution:
        if encoder is None:
            raise ValueError("VampPrior.distribution needs the encoder whose posteriors it mixes; use VAE.prior")
        if not self.built:
            self.build()
        components = encoder(self.pseudo_inputs)
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=tf.zeros([self.num_pseudo_inputs], tf.float32)),
            components_distribution=components,
        )

    def get_config(self):
        config = super().get_config()
        config.update(data_shape=self.data_shape, num_pseudo_inputs=self.num_pseudo_inputs)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class FlowPrior(_Prior):
    """p(z) = TransformedDistribution(N(0, I), f): a learned normalising flow.

    log p(z) = log N(f^-1(z); 0, I) + log |det d f^-1(z) / dz|.
    With flow="maf", log p(z) takes one network pass per step and sampling D
    passes; with "real_nvp" both take one. Every step starts as the identity,
    so training starts from the standard normal.

    Args:
      latent_dim: size of z (>= 2 for real_nvp).
      flow: "maf" (default) or "real_nvp".
      num_steps: flow steps, with the coordinates reversed between them (default 4).
      hidden_units: widths of each step's network (default (256, 256)).
    """

    def __init__(self, latent_dim, flow="maf", num_steps=4, hidden_units=(256, 256), **kwargs):
        super().__init__(latent_dim, **kwargs)
        if flow not in PRIOR_FLOWS:
            raise ValueError(f"flow must be one of {PRIOR_FLOWS}; got {flow!r}")
        if flow == "real_nvp" and self.latent_dim < 2:
            raise ValueError(f"a real_nvp flow needs latent_dim >= 2; got {self.latent_dim}")
        if int(num_steps) <= 0:
            raise ValueError(f"num_steps must be a positive int; got {num_steps}")
        self.flow = flow
        self.num_steps = int(num_steps)
        self.hidden_units = [int(u) for u in hidden_units]
        d = self.latent_dim
        if flow == "maf":
            self.networks = [flows.MADE(d, self.hidden_units, name=f"made_{i}") for i in range(self.num_steps)]
        else:
            self.networks = [flows.CouplingNetwork(d - d // 2, self.hidden_units, name=f"coupling_{i}")
                             for i in range(self.num_steps)]
        networks.track_for_checkpoint(self, "network", self.networks)

    def build(self, input_shape=None):
        d = self.latent_dim
        for network in self.networks:
            network.build((None, d) if self.flow == "maf" else (None, d // 2))

    def distribution(self, encoder=None) -> tfd.Distribution:
        if not self.built:
            self.build()
        return tfd.TransformedDistribution(
            _standard_normal(self.latent_dim), flows.flow_chain(self.flow, self.networks, self.latent_dim))

    def get_config(self):
        config = super().get_config()
        config.update(flow=self.flow, num_steps=self.num_steps, hidden_units=self.hidden_units)
        return config


def make_prior(name: str, latent_dim: int, data_shape=None, **kwargs) -> _Prior:
    """The prior layer for a name in PRIORS; kwargs go to its constructor."""
    if name == "standard_normal":
        return StandardNormalPrior(latent_dim)
    if name == "mixture":
        return MixtureOfGaussiansPrior(latent_dim, **kwargs)
    if name == "vamp":
        return VampPrior(latent_dim, data_shape, **kwargs)
    if name == "flow":
        return FlowPrior(latent_dim, **kwargs)
    raise ValueError(f"prior must be one of {PRIORS}; got {name!r}")
