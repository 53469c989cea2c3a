"""Builds a ``VAE`` from a ``TrainConfig`` and the data shape."""

from __future__ import annotations

import keras

from tfvae import decoders
from tfvae.config import TrainConfig
from tfvae.encoders import GaussianEncoder
from tfvae.model import VAE
from tfvae.priors import StandardNormalPrior

__all__ = ["build_model"]


def build_model(config: TrainConfig, data_shape) -> VAE:
    """The VAE described by ``config`` for images of shape ``data_shape`` (H, W, C)."""
    network = dict(
        architecture=config.architecture,
        hidden_units=config.hidden_units,
        activation=config.activation,
    )
    decoder_kwargs = dict(network)
    if config.likelihood == "gaussian":
        decoder_kwargs["scale"] = config.gaussian_scale
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(config.precision)  # the networks' compute dtype; heads stay float32
    try:
        return _vae(config, data_shape, network, decoder_kwargs)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _vae(config, data_shape, network, decoder_kwargs) -> VAE:
    return VAE(
        encoder=GaussianEncoder(config.latent_dim, **network),
        decoder=decoders.make_decoder(config.likelihood, data_shape, **decoder_kwargs),
        prior=StandardNormalPrior(config.latent_dim),
        beta=config.beta,
        kl_warmup_steps=config.kl_warmup_steps,
        kl_method=config.kl_method,
        clip_global_norm=config.clip_global_norm or None,
        seed=config.seed,
    )
