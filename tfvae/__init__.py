"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability."""

from tfvae import data, distribute, evaluation, export, hierarchical, losses, schedules
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
from tfvae.hierarchical import HierarchicalPrior, TopDownEncoder
from tfvae.loading import load_model
from tfvae.losses import ELBO, IWAE
from tfvae.model import VAE
from tfvae.pixel_distributions import DiscretizedLogisticMixture
from tfvae.priors import FlowPrior, MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from tfvae.training import train_and_evaluate
from tfvae.version import __version__

__all__ = [
    "MADE",
    "BernoulliDecoder",
    "CategoricalDecoder",
    "ContinuousBernoulliDecoder",
    "CouplingNetwork",
    "DiscretizedLogisticDecoder",
    "DiscretizedLogisticMixture",
    "ELBO",
    "FlowPrior",
    "GaussianDecoder",
    "GaussianEncoder",
    "HierarchicalPrior",
    "IAFEncoder",
    "IWAE",
    "MixtureOfGaussiansPrior",
    "StandardNormalPrior",
    "TopDownEncoder",
    "TrainConfig",
    "VAE",
    "VampPrior",
    "data",
    "distribute",
    "evaluation",
    "export",
    "hierarchical",
    "__version__",
    "load_model",
    "losses",
    "schedules",
    "train_and_evaluate",
]
