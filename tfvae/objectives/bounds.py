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

from tfvae.core import choices, latents, sampling

tfd = tfp.distributions

__all__ = [
    "KL_METHODS",
    "distortion",
    "has_analytic_kl",
    "chunked_iwae_bound",
    "default_chunk_size",
    "iwae_bound",
    "importance_log_weights",
    "free_bits_rate",
    "layer_rates",
    "check_group_size",
    "joint_layers",
    "log_importance_weights",
    "per_dimension_kl",
    "rate",
]

KL_METHODS = choices.register("kl_method", ("auto", "analytic", "monte_carlo"))


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


def _per_example(values: tf.Tensor) -> tf.Tensor:
    """[..., B] -> [B]: the mean over any leading (sample) dimensions."""
    return tf.reduce_mean(tf.reshape(values, [-1, tf.shape(values)[-1]]), axis=0)


def _single_rate(approx_posterior, prior, z, method):
    if method != "monte_carlo":
        try:
            return _per_example(tfd.kl_divergence(approx_posterior, prior))
        except NotImplementedError:
            if method == "analytic":
                raise ValueError(
                    f"no analytic KL registered for {type(approx_posterior).__name__} || "
                    f"{type(prior).__name__}; use kl method 'monte_carlo' or 'auto'"
                ) from None
    if z is None:
        raise ValueError("rate with a Monte Carlo KL needs samples z from the posterior")
    return _per_example(approx_posterior.log_prob(z) - prior.log_prob(z))


def joint_layers(approx_posterior, prior, z) -> list:
    """[(q_i, p_i, z_i)]: the posterior's and prior's conditionals of each layer at the same latents z_<i
    (``core.latents.layers``; one layer for a flat latent)."""
    return latents.layers(approx_posterior, prior, z)


def layer_rates(approx_posterior, prior, z, method: str = "auto") -> list:
    """[KL_i] per latent layer, each [B] nats (one for a flat latent).

    KL_i = KL(q(z_i | z_<i, x) || p(z_i | z_<i)) at the sampled z_<i (the
    layers before i in sampling order), closed form within the layer where
    TFP has it, averaged over the samples in z; their sum estimates
    KL(q(z|x) || p(z)) = E_q[sum_i KL_i] without bias.
    """
    if method not in KL_METHODS:
        raise ValueError(f"kl method must be one of {KL_METHODS}; got {method!r}")
    return [_single_rate(q_i, p_i, z_i, method) for q_i, p_i, z_i in latents.layers(approx_posterior, prior, z)]


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

    For joint (hierarchical) q and p, the sum of ``layer_rates`` at the
    latents z (a list).
    """
    return tf.add_n(layer_rates(approx_posterior, prior, z, method))


def log_importance_weights(
    log_likelihood: tf.Tensor,
    z: tf.Tensor,
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
) -> tf.Tensor:
    """log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x) for z of shape [k, B, D].

    ``log_likelihood`` is log p(x|z_j), [k, B] (``VAE.data_log_prob``).
    Returns a [k, B] tensor.
    """
    return log_likelihood + prior.log_prob(z) - approx_posterior.log_prob(z)


def iwae_bound(log_weights: tf.Tensor) -> tf.Tensor:
    """log (1/k) sum_j exp(log_weights[j]) over axis 0, computed stably."""
    k = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
    return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(k)


def _diagonal_gaussian_params(distribution: tfd.Distribution):
    """(loc, scale) [..., D] of a diagonal Gaussian, or None."""
    if isinstance(distribution, tfd.MultivariateNormalDiag):
        return distribution.loc, distribution.stddev()
    if isinstance(distribution, tfd.Independent) and isinstance(distribution.distribution, tfd.Normal):
        return distribution.distribution.loc, distribution.distribution.scale
    return None


def per_dimension_kl(approx_posterior: tfd.Distribution, prior: tfd.Distribution, z=None) -> tf.Tensor:
    """KL(q(z_d|x) || p(z_d)) for each latent dimension d, shape [B, D].

    Defined when q and p both factorise over dimensions (diagonal Gaussians):
      KL_d = log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2.
    Their sum over d is the rate. Any leading sample dimensions are averaged.
    For joint (hierarchical) q and p, each layer's conditionals at the latents
    z (default: the posterior's location), concatenated in the joint's order.
    """
    z = sampling.posterior_location(approx_posterior) if z is None else z
    layers = latents.layers(approx_posterior, prior, z)
    return tf.concat([_per_dimension_kl_of_layer(q_i, p_i) for q_i, p_i, _ in layers], -1)


def _per_dimension_kl_of_layer(approx_posterior: tfd.Distribution, prior: tfd.Distribution) -> tf.Tensor:
    q_params, p_params = _diagonal_gaussian_params(approx_posterior), _diagonal_gaussian_params(prior)
    if q_params is None or p_params is None:
        raise ValueError(
            "free bits per latent dimension need a diagonal Gaussian posterior and prior; got "
            f"{type(approx_posterior).__name__} and {type(prior).__name__} (use free_bits_group_size = latent_dim)")
    (q_loc, q_scale), (p_loc, p_scale) = q_params, p_params
    kl = tfd.kl_divergence(tfd.Normal(q_loc, q_scale), tfd.Normal(p_loc, p_scale))
    kl = tf.broadcast_to(kl, tf.shape(q_loc + p_loc))
    shape = tf.shape(kl)
    return tf.reduce_mean(tf.reshape(kl, tf.concat([[-1], shape[-2:]], 0)), axis=0)


def free_bits_rate(
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
    rate_per_example,
    free_bits: float,
    group_size: int,
    z=None,
) -> tf.Tensor:
    """The rate term of the loss with a KL floor per group of latent dimensions, [B] nats.

    free_bits_rate_i = sum_g max(free_bits, KL_{i,g}),

    where KL_{i,g} sums per_dimension_kl over the g-th group of
    min(group_size, latent_dim) consecutive dimensions of example i (one
    group of all dimensions uses ``rate_per_example`` and needs no
    factorisation). A group whose KL is below the floor costs the constant
    floor and gets no gradient pushing it lower (Kingma et al. 2016). The
    floor is applied per example, so the loss is a sum over examples and does
    not depend on how the batch is split across replicas.

    For joint (hierarchical) q and p, ``rate_per_example`` is the list of
    layer rates and ``z`` the latents: the floor applies within each layer,
    so a group_size of at least the largest layer gives free bits per layer.
    """
    layers = latents.layers(approx_posterior, prior, z)
    rates = latents.as_list(rate_per_example)
    return tf.add_n([_free_bits_rate_of_layer(q_i, p_i, rate_i, free_bits, group_size)
                     for (q_i, p_i, _), rate_i in zip(layers, rates, strict=True)])


def _free_bits_rate_of_layer(approx_posterior, prior, rate_per_example, free_bits: float, group_size: int):
    latent_dim = int(prior.event_shape[-1])
    check_group_size(group_size, latent_dim)
    if group_size >= latent_dim:
        return tf.maximum(rate_per_example, free_bits)
    kl = _per_dimension_kl_of_layer(approx_posterior, prior)
    groups = tf.reduce_sum(tf.reshape(kl, [-1, latent_dim // group_size, group_size]), axis=-1)
    return tf.reduce_sum(tf.maximum(groups, free_bits), axis=-1)


def check_group_size(group_size: int, latent_dim: int) -> None:
    """Raises ValueError unless a free-bits group of ``group_size`` fits ``latent_dim`` latents.

    A group size at least latent_dim means one group (the whole KL); a smaller
    one must divide latent_dim.
    """
    if group_size <= 0 or (group_size < latent_dim and latent_dim % group_size):
        raise ValueError(f"free_bits_group_size must divide latent_dim ({latent_dim}) or be at least it; "
                         f"got {group_size}")


LOG_2 = math.log(2.0)


DEFAULT_CHUNK_ELEMENTS = 2**24


def default_chunk_size(x: tf.Tensor, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS) -> tf.Tensor:
    """Samples per chunk so that chunk * B * dim(x) <= chunk_elements (at least 1), int32 scalar."""
    return tf.maximum(chunk_elements // tf.maximum(tf.size(x), 1), 1)


def importance_log_weights(
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
    data_log_prob,
    seed: tf.Tensor,
    first_sample,
    num_samples,
    rows=None,
) -> tf.Tensor:
    """log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x) for samples j = first_sample .. + num_samples - 1, [n, B].

    What one chunk of ``chunked_iwae_bound`` computes: z_j ~ q(z|x) drawn by
    ``sampling.sample_importance`` (sample j's noise depends on (seed, j, row)
    only), ``data_log_prob(z)`` maps z [n, B, D] to log p(x|z) [n, B].
    ``rows = (first_row, num_rows)``: these are rows first_row .. of a batch
    of num_rows (default: this replica's share of the global batch).
    """
    z = sampling.sample_importance(approx_posterior, seed, first_sample, num_samples, rows)
    return log_importance_weights(data_log_prob(z), z, approx_posterior, prior)


def chunked_iwae_bound(
    x: tf.Tensor,
    approx_posterior: tfd.Distribution,
    prior: tfd.Distribution,
    data_log_prob,
    num_samples,
    seed: tf.Tensor,
    chunk_size=None,
    rows=None,
) -> tf.Tensor:
    """IWAE_k(x) for k = num_samples, drawing the samples chunk by chunk, [B] nats.

    IWAE_k = logsumexp_j(log w_j) - log k, with the logsumexp accumulated over
    chunks, so memory grows with the chunk, not with k. Chunk i computes the
    log weights of samples i * chunk_size .. min((i + 1) * chunk_size, k) - 1
    (``importance_log_weights``); by default chunk_size is
    ``default_chunk_size(x)``. Sample j's noise depends on (seed, j, row)
    only, so the bound is the same for any chunk_size, and for any split of
    the batch (``rows``, see ``importance_log_weights``), up to float rounding
    of the logsumexp. ``data_log_prob(z)`` maps z [k, B, D] to log p(x|z) [k, B].
    ``num_samples`` and ``chunk_size`` may be Python ints or int32 scalar
    tensors (e.g. a serving signature's input).
    """
    num_samples = tf.convert_to_tensor(num_samples, tf.int32)
    if chunk_size is None:
        chunk_size = default_chunk_size(x)
    chunk_size = tf.minimum(tf.convert_to_tensor(chunk_size, tf.int32), num_samples)
    num_chunks = (num_samples + chunk_size - 1) // chunk_size

    def accumulate(i, total):
        first = i * chunk_size
        size = tf.minimum(chunk_size, num_samples - first)
        log_weights = importance_log_weights(approx_posterior, prior, data_log_prob, seed, first, size, rows)
        chunk = tf.reduce_logsumexp(log_weights, axis=0)
        return i + 1, tf.reduce_logsumexp(tf.stack([total, chunk]), axis=0)

    total = tf.fill(tf.shape(x)[:1], tf.constant(-float("inf"), tf.float32))
    _, total = tf.while_loop(lambda i, _: i < num_chunks, accumulate, (tf.constant(0), total))
    return total - tf.math.log(tf.cast(num_samples, tf.float32))
