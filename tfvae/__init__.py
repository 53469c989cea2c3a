"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability."""

from tfvae import distribute, export
from tfvae.config import TrainConfig
from tfvae.decoders import (
    BernoulliDecoder,
    CategoricalDecoder,
    ContinuousBernoulliDecoder,
    DiscretizedLogisticDecoder,
    GaussianDecoder,
)
from tfvae.encoders import GaussianEncoder, IAFEncoder
from tfvae.flows import MADE, CouplingNetwork
from tfvae.loading import load_model
from tfvae.model import VAE
from tfvae.pixel_distributions import DiscretizedLogisticMixture
from tfvae.priors import FlowPrior, MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from tfvae.training import train_and_evaluate

__all__ = [
    "MADE",
    "BernoulliDecoder",
    "CategoricalDecoder",
    "ContinuousBernoulliDecoder",
    "CouplingNetwork",
    "DiscretizedLogisticDecoder",
    "DiscretizedLogisticMixture",
    "FlowPrior",
    "GaussianDecoder",
    "GaussianEncoder",
    "IAFEncoder",
    "MixtureOfGaussiansPrior",
    "StandardNormalPrior",
    "TrainConfig",
    "VAE",
    "VampPrior",
    "distribute",
    "export",
    "load_model",
    "train_and_evaluate",
]

__version__ = "0.2.0"
