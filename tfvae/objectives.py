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
    "chunked_iwae_bound",
    "default_chunk_size",
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


DEFAULT_CHUNK_ELEMENTS = 2**24


def default_chunk_size(x: tf.Tensor, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> tf.Tensor:
    """Samples per chunk so that chunk * B * dim(x) <= chunk_elements (at least 1), int32 scalar."""
    return tf.maximum(chunk_elements // tf.maximum(tf.size(x), 1), 1)


def chunked_iwae_bound(
    x: tf.Tensor,
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
    decoder,
    num_samples,
    seed: tf.Tensor,
    chunk_size=None,
) -> tf.Tensor:
    """IWAE_k(x) for k = num_samples, drawing the samples chunk by chunk, [B] nats.

    IWAE_k = logsumexp_j(log w_j) - log k, with the logsumexp accumulated over
    chunks, so memory grows with the chunk, not with k. Chunk i draws
    min(chunk_size, k - i * chunk_size) samples with the seed
    fold_in(seed, i); by default ``default_chunk_size(x)``.
    ``num_samples`` and ``chunk_size`` may be Python ints or int32 scalar
    tensors (e.g. a serving signature's input).
    """
    num_samples = tf.convert_to_tensor(num_samples, tf.int32)
    if chunk_size is None:
        chunk_size = default_chunk_size(x)
    chunk_size = tf.minimum(tf.convert_to_tensor(chunk_size, tf.int32), num_samples)
    num_chunks = (num_samples + chunk_size - 1) // chunk_size

    def accumulate(i, total):
        size = tf.minimum(chunk_size, num_samples - i * chunk_size)
        chunk_seed = tf.cast(tf.random.experimental.stateless_fold_in(seed, i), tf.int32)
        z = approx_posterior.sample(size, seed=chunk_seed)
        chunk = tf.reduce_logsumexp(log_importance_weights(x, z, approx_posterior, prior, decoder), axis=0)
        return i + 1, tf.reduce_logsumexp(tf.stack([total, chunk]), axis=0)

    total = tf.fill(tf.shape(x)[:1], tf.constant(-float("inf"), tf.float32))
    _, total = tf.while_loop(lambda i, _: i < num_chunks, accumulate, (tf.constant(0), total))
    return total - tf.math.log(tf.cast(num_samples, tf.float32))
