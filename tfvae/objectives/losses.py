"""Training objectives as parts: ``ELBO`` and ``IWAE``, passed to ``VAE(objective=...)``.

An objective turns a batch into a per-example training loss [B] through the
model's probabilistic parts (``VAE.sample_terms``); it holds no weights. Like a
Keras loss it is Keras-serialisable (``get_config``/``from_config``, registered
under "tfvae"), so it travels with the model through ``.keras`` files and
``model.json``. Each argument is checked once, here.

  ELBO(beta, kl_weight, free_bits, free_bits_group_size, kl_method):
    loss_i = distortion_i + w_t * rate_i,      w_t = beta * kl_weight(t)
    (rate_i replaced by sum_g max(free_bits, KL_{i,g}) when free_bits > 0;
    within each layer of a hierarchical VAE)
  IWAE(num_samples, beta, kl_weight):
    loss_i = -log (1/k) sum_j exp(log p(x_i|z_j) - w_t (log q(z_j|x_i) - log p(z_j))),
    the negative importance weighted bound for w_t = 1.

Every objective also reports the model's ELBO terms (distortion, rate, elbo)
on the same samples, in nats per example.

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
  Higgins et al. (2017), beta-VAE.
  Kingma et al. (2016), Improved Variational Inference with Inverse Autoregressive Flow (free bits).
  Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae.core import choices
from tfvae.core.serialisable import Serialisable
from tfvae.objectives import bounds, schedules

__all__ = ["ELBO", "IWAE", "OBJECTIVES", "Objective", "get"]

OBJECTIVES = choices.register("objective", ("elbo", "iwae"))  # the names train.py's --objective takes


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return int(value)


def _non_negative(name: str, value) -> float:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return float(value)


class Objective(Serialisable):
    """Base of the training objectives.

    Subclasses define ``loss(model, x, seed, step, labels)`` and
    ``rate_weight(step)`` (w_t, logged to TensorBoard as ``kl_weight``).
    """

    num_samples = 1

    def __init__(self, beta: float = 1.0, kl_weight=None):
        self.beta = _non_negative("beta", beta)
        self.kl_weight = schedules.get(kl_weight)

    def rate_weight(self, step) -> tf.Tensor:
        """w_t = beta * kl_weight(t), float32 scalar."""
        return self.beta * tf.cast(self.kl_weight(step), tf.float32)

    def check_latent_dim(self, latent_dim: int) -> None:
        """Raises ValueError when this objective cannot train a model with ``latent_dim`` latents."""

    def loss(self, model, x, seed, step, labels=None) -> tuple[dict, tf.Tensor]:
        """(ELBO terms {distortion, rate, elbo} [B], per-example training loss [B]).

        ``seed`` is the step's seed, for ``model.sample_terms`` as it is: a
        [2] stateless seed or a ``sampling.PerExampleSeed`` (the per_example
        noise scheme).
        """
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"beta": self.beta, "kl_weight": keras.saving.serialize_keras_object(self.kl_weight)}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["kl_weight"] = schedules.get(config.get("kl_weight"))
        return cls(**config)



def _elbo_terms(sample) -> dict:
    distortion = -tf.reduce_mean(sample.log_likelihood, axis=0)
    return {"distortion": distortion, "rate": sample.rate, "elbo": -(distortion + sample.rate)}


@keras.saving.register_keras_serializable(package="tfvae")
class ELBO(Objective):
    """The (beta-weighted) evidence lower bound with optional KL warm-up and free bits.

    loss_i = distortion_i + w_t * rate_i,  w_t = beta * kl_weight(t); with
    free_bits > 0 the rate term is sum_g max(free_bits, KL_{i,g}) over groups
    of ``free_bits_group_size`` latent dimensions (one group of all
    dimensions needs no factorisation; smaller groups need a diagonal
    Gaussian posterior and prior).

    Args:
      beta: weight of the rate (default 1: the ELBO).
      kl_weight: a schedule of the step (``tfvae.schedules``; default
        ``Constant()``), any callable of the step, or a number.
      free_bits: KL floor in nats per group and example (0: none).
      free_bits_group_size: latent dimensions per free-bits group (default 1;
        at least latent_dim: one group). A hierarchical VAE applies the floor
        within each layer, so a size of at least its largest layer gives free
        bits per layer.
      kl_method: "auto" (analytic where TFP registers it, else Monte Carlo),
        "analytic" or "monte_carlo".

    Example:
      objective = tfvae.ELBO(beta=1.0, kl_weight=tfvae.schedules.Linear(10_000), free_bits=0.1)
      model = tfvae.VAE(encoder, decoder, prior, objective=objective)
    """

    def __init__(self, beta: float = 1.0, kl_weight=None, free_bits: float = 0.0, free_bits_group_size: int = 1,
                 kl_method: str = "auto"):
        super().__init__(beta, kl_weight)
        self.free_bits = _non_negative("free_bits", free_bits)
        self.free_bits_group_size = _positive_int("free_bits_group_size", free_bits_group_size)
        if kl_method not in bounds.KL_METHODS:
            raise ValueError(f"kl_method must be one of {bounds.KL_METHODS}; got {kl_method!r}")
        self.kl_method = kl_method

    def check_latent_dim(self, latent_dim: int) -> None:
        if self.free_bits:
            bounds.check_group_size(self.free_bits_group_size, latent_dim)

    def loss(self, model, x, seed, step, labels=None):
        sample = model.sample_terms(x, seed, 1, labels, kl_method=self.kl_method)
        terms = _elbo_terms(sample)
        rate = sample.rate
        if self.free_bits:
            rate = bounds.free_bits_rate(sample.approx_posterior, sample.prior, sample.layer_rates,
                                             self.free_bits, self.free_bits_group_size, z=sample.z)
        return terms, terms["distortion"] + self.rate_weight(step) * rate

    def get_config(self) -> dict:
        return {**super().get_config(), "free_bits": self.free_bits,
                "free_bits_group_size": self.free_bits_group_size, "kl_method": self.kl_method}


@keras.saving.register_keras_serializable(package="tfvae")
class IWAE(Objective):
    """The importance weighted bound with k samples per example (Burda et al. 2015).

    loss_i = -logmeanexp_j(log p(x_i|z_j) - w_t (log q(z_j|x_i) - log p(z_j))),
    z_j ~ q(z|x_i) reparameterised, w_t = beta * kl_weight(t); for w_t = 1 it
    is -IWAE_k(x_i), and k = 1 gives the Monte Carlo ELBO.

    Args:
      num_samples: k, posterior samples per example (default 5).
      beta, kl_weight: as for ``ELBO``.

    Example:
      model = tfvae.VAE(encoder, decoder, prior, objective=tfvae.IWAE(num_samples=5))
    """

    def __init__(self, num_samples: int = 5, beta: float = 1.0, kl_weight=None):
        super().__init__(beta, kl_weight)
        self.num_samples = _positive_int("num_samples", num_samples)

    def loss(self, model, x, seed, step, labels=None):
        sample = model.sample_terms(x, seed, self.num_samples, labels)
        log_ratio = sample.approx_posterior.log_prob(sample.z) - sample.prior.log_prob(sample.z)
        bound = bounds.iwae_bound(sample.log_likelihood - self.rate_weight(step) * log_ratio)
        return _elbo_terms(sample), -bound

    def get_config(self) -> dict:
        return {**super().get_config(), "num_samples": self.num_samples}


def get(identifier) -> Objective:
    """An objective from None (``ELBO()``), an ``Objective``, a name in OBJECTIVES or a serialised config."""
    if identifier is None:
        return ELBO()
    if isinstance(identifier, Objective):
        return identifier
    if isinstance(identifier, str):
        if identifier not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES} or a tfvae.losses.Objective; got {identifier!r}")
        return {"elbo": ELBO, "iwae": IWAE}[identifier]()
    if isinstance(identifier, dict):
        return get(keras.saving.deserialize_keras_object(identifier))
    raise ValueError(f"objective must be one of {OBJECTIVES} or a tfvae.losses.Objective; got {identifier!r}")
