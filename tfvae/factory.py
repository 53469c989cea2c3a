"""Builds a ``VAE`` from a ``TrainConfig`` and the data shape."""

from __future__ import annotations

import keras

from tfvae import decoders, priors
from tfvae.config import TrainConfig
from tfvae.encoders import GaussianEncoder, IAFEncoder
from tfvae.model import VAE

__all__ = ["build_model"]

DEFAULT_PRIOR_COMPONENTS = {"mixture": 10, "vamp": 500}


def build_model(config: TrainConfig, data_shape, num_classes: int = 0) -> VAE:
    """The VAE described by ``config`` for images of shape ``data_shape`` (H, W, C).

    ``num_classes`` > 0 (with ``config.conditional``) builds a conditional VAE.
    """
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)  # the networks' compute dtype; heads stay float32
    try:
        return _vae(config, tuple(data_shape), num_classes if config.conditional else 0)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _encoder(config: TrainConfig, network: dict):
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
    return decoders.make_decoder(config.likelihood, data_shape, **kwargs)


def _prior(config: TrainConfig, data_shape):
    components = config.prior_components or DEFAULT_PRIOR_COMPONENTS.get(config.prior, 0)
    kwargs = {
        "standard_normal": {},
        "mixture": {"num_components": components},
        "vamp": {"num_pseudo_inputs": components},
        "flow": {"flow": config.flow, "num_steps": config.flow_steps, "hidden_units": config.flow_hidden_units},
    }[config.prior]
    return priors.make_prior(config.prior, config.latent_dim, data_shape, **kwargs)


def _vae(config: TrainConfig, data_shape, num_classes: int) -> VAE:
    network = dict(architecture=config.architecture, hidden_units=config.hidden_units,
                   activation=config.activation, condition_dim=num_classes)
    return VAE(
        encoder=_encoder(config, network),
        decoder=_decoder(config, data_shape, network),
        prior=_prior(config, data_shape),
        beta=config.beta,
        kl_warmup_steps=config.kl_warmup_steps,
        kl_schedule=config.kl_schedule,
        kl_cycle_steps=config.kl_cycle_steps,
        kl_method=config.kl_method,
        free_bits=config.free_bits,
        free_bits_group_size=config.free_bits_group_size,
        objective=config.objective,
        num_samples=config.samples_per_example,
        num_classes=num_classes,
        clip_global_norm=config.clip_global_norm or None,
        seed=config.seed,
    )
