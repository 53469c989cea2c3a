"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability."""

from tfvae import distribute, export
from tfvae.config import TrainConfig
from tfvae.decoders import BernoulliDecoder, GaussianDecoder
from tfvae.encoders import GaussianEncoder
from tfvae.loading import load_model
from tfvae.model import VAE
from tfvae.priors import StandardNormalPrior
from tfvae.training import train_and_evaluate

__all__ = [
    "BernoulliDecoder",
    "GaussianDecoder",
    "GaussianEncoder",
    "StandardNormalPrior",
    "TrainConfig",
    "VAE",
    "distribute",
    "export",
    "load_model",
    "train_and_evaluate",
]

__version__ = "0.1.0"
