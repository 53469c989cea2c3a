"""Builds a ``VAE`` (parts and objective) from a ``TrainConfig`` and the data shape.

This is where flags meet parts: each config field goes to the constructor
that owns it. The config is validated first (each value, then the rules
between fields, ``rules.py``); the constructors still check their own
arguments, and what depends on the data's shape.
"""

from __future__ import annotations

import keras

from tfvae.models import decoders, hierarchical, priors
from tfvae.models.encoders import GaussianEncoder, IAFEncoder
from tfvae.models.vae import VAE
from tfvae.objectives import losses, schedules
from tfvae.train.config import TrainConfig, validate
from tfvae.train.rules import latent_layers

__all__ = ["build_model", "build_objective", "check_config", "latent_layers"]

DEFAULT_PRIOR_COMPONENTS = {"mixture": 10, "vamp": 500}


def build_objective(config: TrainConfig) -> losses.Objective:
    """The training objective ``config`` names, with its KL weight schedule."""
    validate(config)
    kl_weight = schedules.make(config.kl_schedule, config.kl_warmup_steps, config.kl_cycle_steps)
    if config.objective == "iwae":
        return losses.IWAE(config.samples_per_example, beta=config.beta, kl_weight=kl_weight)
    return losses.ELBO(config.beta, kl_weight, config.free_bits, config.free_bits_group_size, config.kl_method)


def build_model(config: TrainConfig, data_shape, num_classes: int = 0) -> VAE:
    """The VAE described by ``config`` for data of shape ``data_shape`` (H, W, C), not yet built.

    ``num_classes`` > 0 (with ``config.conditional``) builds a conditional VAE. The config is validated first
    (``config.validate``: each value, then the rules between them).
    """
    validate(config)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)  # the networks' compute dtype; heads stay float32
    try:
        return _vae(config, tuple(data_shape), num_classes if config.conditional else 0)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def check_config(config: TrainConfig, data_shape=None, num_classes: int = 0) -> None:
    """Raises the one-line ValueError of the first bad setting, before any data is read or file written.

    Checks each value and the rules between them (``config.validate``:
    pure Python, no TensorFlow). With ``data_shape`` (and ``num_classes``
    for a conditional VAE) it also constructs the parts for that data
    (cheap: no weights are made), so that what depends on the data's shape is
    checked by the parts themselves; that starts TensorFlow, so a script does
    it after building its tf.distribute strategy (``train_and_evaluate``
    does, once the data is read).
    """
    validate(config)
    if data_shape is not None:
        build_model(config, data_shape, num_classes)


def _encoder(config: TrainConfig, network: dict):
    layers = latent_layers(config)
    if len(layers) > 1:  # rules.py: the posterior is diagonal and the VAE unconditional
        network = {k: v for k, v in network.items() if k != "condition_dim"}
        return hierarchical.TopDownEncoder(layers, ladder_units=config.ladder_units, **network)
    if config.posterior == "iaf":
        return IAFEncoder(config.latent_dim, num_flows=config.flow_steps,
                          flow_hidden_units=config.flow_hidden_units, **network)
    return GaussianEncoder(config.latent_dim, covariance=config.posterior, **network)


def _decoder(config: TrainConfig, data_shape, network: dict):
    kwargs = dict(network)
    if config.likelihood == "gaussian":
        kwargs["scale"] = config.gaussian_scale
    if config.likelihood == "discretized_logistic":
        kwargs["num_components"] = config.mixture_components
        kwargs["pixel_mixture"] = config.pixel_mixture
    return decoders.make_decoder(config.likelihood, data_shape, **kwargs)


def _prior(config: TrainConfig, data_shape):
    components = config.prior_components or DEFAULT_PRIOR_COMPONENTS.get(config.prior, 0)
    kwargs = {
        "standard_normal": {},
        "mixture": {"num_components": components},
        "vamp": {"num_pseudo_inputs": components},
        "flow": {"flow": config.flow, "num_steps": config.flow_steps, "hidden_units": config.flow_hidden_units},
    }[config.prior]
    layers = latent_layers(config)
    top = priors.make_prior(config.prior, layers[-1], data_shape, **kwargs)
    return hierarchical.HierarchicalPrior(top, layers) if len(layers) > 1 else top


def _vae(config: TrainConfig, data_shape, num_classes: int) -> VAE:
    network = dict(architecture=config.architecture, hidden_units=config.hidden_units,
                   activation=config.activation, condition_dim=num_classes,
                   blocks_per_level=config.blocks_per_level, normalization=config.normalization)
    return VAE(
        encoder=_encoder(config, network),
        decoder=_decoder(config, data_shape, network),
        prior=_prior(config, data_shape),
        objective=build_objective(config),
        num_classes=num_classes,
    )
