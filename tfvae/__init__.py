"""tfvae: variational autoencoders for Keras 3 and TensorFlow Probability.

The package is in folders by concept (``tfvae/layout.py`` has the table of which may import which):

  core/        seeds and replica position, strategies, files, errors, serialisation base, latent structure
  nn/          trunks and flow networks
  objectives/  the bounds, the ELBO/IWAE parts, KL schedules
  data/        data sets and formats, in-memory and streamed input
  models/      the VAE, encoders, decoders, priors, hierarchical parts, pixel distributions
  evaluation/  metrics, the IWAE evaluation, bounds files, image grids
  serving/     SavedModel export, warm-up records, request helpers
  train/       config, factory, trainer and loops, checkpoints, run directory, scripts' flags

The names below are the public surface; the module paths of tfvae 0.3.0 (``tfvae.rundir``, ...) still import
(``tfvae/moved_modules.py``).
"""

from tfvae import data, evaluation, moved_modules
from tfvae.core import distribute
from tfvae.models import hierarchical
from tfvae.models.decoders import (
    BernoulliDecoder,
    CategoricalDecoder,
    ContinuousBernoulliDecoder,
    DiscretizedLogisticDecoder,
    GaussianDecoder,
)
from tfvae.models.encoders import GaussianEncoder, IAFEncoder
from tfvae.models.hierarchical import HierarchicalPrior, TopDownEncoder
from tfvae.models.pixel_distributions import DiscretizedLogisticMixture
from tfvae.models.pixel_mixture import DiscretizedLogisticPixelMixture
from tfvae.models.priors import FlowPrior, MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from tfvae.models.vae import VAE
from tfvae.nn.flows import MADE, CouplingNetwork
from tfvae.objectives import losses, schedules
from tfvae.objectives.losses import ELBO, IWAE
from tfvae.serving import export
from tfvae.train.config import TrainConfig
from tfvae.train.loading import load_config, load_model
from tfvae.train.training import train_and_evaluate
from tfvae.version import __version__

moved_modules.install()


def __getattr__(name):
    """``tfvae.<old module>`` (tfvae 0.3.0's flat layout) resolves to its new home."""
    if name in moved_modules.MOVED:
        return moved_modules.resolve(name)
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")


__all__ = [
    "MADE",
    "BernoulliDecoder",
    "CategoricalDecoder",
    "ContinuousBernoulliDecoder",
    "CouplingNetwork",
    "DiscretizedLogisticDecoder",
    "DiscretizedLogisticMixture",
    "DiscretizedLogisticPixelMixture",
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
    "load_config",
    "load_model",
    "losses",
    "schedules",
    "train_and_evaluate",
]
