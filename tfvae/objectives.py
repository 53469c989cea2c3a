"""The variational objectives as pure functions of distributions and samples.

Vocabulary (nats per example, shape [B]):

  distortion = -log p(x|z)
  rate       = KL(q(z|x) || p(z))
  elbo       = E_q[log p(x|z)] - KL(q(z|x) || p(z)) = -(distortion + rate)

The ELBO bounds the evidence from below because

  log p(x) = ELBO + KL(q(z|x) || p(z|x)) >= ELBO,

and it equals E_q[log p(x, z)] + H(q), the entropy form. The importance
weighted bound with k samples z_1..z_k ~ q(z|x),

  IWAE_k = log (1/k) sum_j p(x, z_j) / q(z_j|x),

satisfies ELBO = E[IWAE_1] <= E[IWAE_k] <= E[IWAE_{k+1}] -> log p(x).

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
  Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders.
"""

from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = [
    "KL_METHODS",
    "distortion",
    "has_analytic_kl",
    "iwae_bound",
    "kl_weight",
    "log_importance_weights",
    "rate",
]

KL_METHODS = ("auto", "analytic", "monte_carlo")


def has_analytic_kl(approx_posterior: tfd.Distribution, prior: tfd.Distribution) -> bool:
    """True when TFP has a registered closed form KL(approx_posterior || prior)."""
    try:
        tfd.kl_divergence(approx_posterior, prior)
    except NotImplementedError:
        return False
    return True


def distortion(likelihood: tfd.Distribution, x: tf.Tensor) -> tf.Tensor:
    """-log p(x|z), in nats, shape = likelihood.batch_shape."""
    return -likelihood.log_prob(x)


def rate(
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
    z: tf.Tensor | None = None,
    method: str = "auto",
) -> tf.Tensor:
    """KL(q(z|x) || p(z)) per example.

    Args:
      approx_posterior: q(z|x), batch shape [B].
      prior: p(z), empty batch shape.
      z: samples from q with shape [..., B, latent_dim]; needed for Monte Carlo.
      method: "analytic" (closed form, fails if TFP has none), "monte_carlo"
        (mean over z of log q(z|x) - log p(z), unbiased) or "auto" (analytic
        where TFP has it, Monte Carlo otherwise).
    """
    if method not in KL_METHODS:
        raise ValueError(f"kl method must be one of {KL_METHODS}; got {method!r}")
    if method != "monte_carlo":
        try:
            return tfd.kl_divergence(approx_posterior, prior)
        except NotImplementedError:
            if method == "analytic":
                raise ValueError(
                    f"no analytic KL registered for {type(approx_posterior).__name__} || "
                    f"{type(prior).__name__}; use kl method 'monte_carlo' or 'auto'"
                ) from None
    if z is None:
        raise ValueError("rate with a Monte Carlo KL needs samples z from the posterior")
    log_ratio = approx_posterior.log_prob(z) - prior.log_prob(z)
    return tf.reduce_mean(tf.reshape(log_ratio, [-1, tf.shape(log_ratio)[-1]]), axis=0)


def log_importance_weights(
    x: tf.Tensor,
    z: tf.Tensor,
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
    decoder,
) -> tf.Tensor:
    """log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x) for z of shape [k, B, D].

    Returns a [k, B] tensor. The decoder maps the k*B latents at once and x
    broadcasts against the sample dimension.
    """
    return decoder(z).log_prob(x) + prior.log_prob(z) - approx_posterior.log_prob(z)


def iwae_bound(log_weights: tf.Tensor) -> tf.Tensor:
    """log (1/k) sum_j exp(log_weights[j]) over axis 0, computed stably."""
    k = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(k)


def kl_weight(step: tf.Tensor, beta: float = 1.0, warmup_steps: int = 0) -> tf.Tensor:
    """beta * min(1, step / warmup_steps): the weight of the rate in the loss."""
    if warmup_steps <= 0:
        return tf.constant(beta, tf.float32)
    fraction = tf.cast(step, tf.float32) / float(warmup_steps)
    return beta * tf.minimum(1.0, fraction)


LOG_2 = math.log(2.0)
