"""Replica-invariant reparameterised sampling from the posterior.

Training must give the same result on 1 or N replicas for the same global
batch. Each replica therefore draws the noise for the *whole* global batch,

  eps ~ N(0, I), shape [num_samples, global_batch, latent_dim], from seed,

and keeps its own rows [r * B_local, (r + 1) * B_local). For a posterior that
is a transformed standard normal (diagonal and full-covariance Gaussians,
flows), z = bijector.forward(eps) is the reparameterised sample. Other
posteriors fall back to ``q.sample`` with the replica id folded into the seed,
which is still deterministic but depends on the number of replicas.

A hierarchical posterior (a ``tfd.JointDistributionCoroutine``, e.g.
``tfvae.TopDownEncoder``'s) is sampled layer by layer in its order: layer i
draws its noise like a single posterior from fold_in(seed, i), so it is
replica-invariant too (``latents.walk``).

The k importance samples of an IWAE bound (``sample_importance``) are drawn
in blocks of IMPORTANCE_NOISE_BLOCK samples, block b from fold_in(seed, b),
so that sample j's noise is the same however the k samples are chunked and
however the batch is split (between replicas, or between calls that name
their rows).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import latents

tfd = tfp.distributions

__all__ = ["IMPORTANCE_NOISE_BLOCK", "as_seed", "importance_noise", "is_joint", "posterior_location",
           "replica_position", "rng_algorithm", "sample_importance", "sample_posterior", "step_seed", "walk_joint"]

# Their home is core/latents.py; named here too, as in tfvae 0.3.
is_joint = latents.is_joint
walk_joint = latents.walk_joint


def rng_algorithm() -> str:
    """The stateless RNG algorithm for the current context.

    Inside XLA, "threefry": the automatic choice was ~10x slower in a compiled
    training loop on CPU. Outside XLA, "philox": TensorFlow's CPU kernels do
    not run threefry. A run uses one context throughout (its jit_compile
    setting), so its noise is reproducible.
    """
    try:
        from tensorflow.python.ops import control_flow_util

        in_xla = control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
    except (ImportError, AttributeError):
        in_xla = False
    return "threefry" if in_xla else "philox"


def as_seed(seed) -> tf.Tensor:
    """The [2] int32 stateless seed of ``seed``, tfvae's one seed convention.

    None -> fresh randomness (``tfp.random.sanitize_seed``); an int or an
    integer scalar tensor s (any 64-bit value) -> [low 32 bits of s, high 32
    bits of s], each read as a signed int32, so distinct 64-bit seeds give
    distinct streams and s in [0, 2**31) gives [s, 0]; a [2] integer tensor ->
    itself as int32.
    """
    if seed is None:
        return tfp.random.sanitize_seed(None)
    if isinstance(seed, int):
        if not -(2**63) <= seed < 2**64:
            raise ValueError(f"seed must fit in 64 bits; got {seed}")
        halves = [(seed >> shift) & 0xFFFFFFFF for shift in (0, 32)]
        return tf.constant([h - 2**32 if h >= 2**31 else h for h in halves], tf.int32)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.cast(seed, tf.int64)
        mask = tf.constant(0xFFFFFFFF, tf.int64)
        halves = [tf.bitwise.bitwise_and(seed, mask), tf.bitwise.bitwise_and(tf.bitwise.right_shift(seed, 32), mask)]
        # [0, 2**32) -> the int32 with the same bits
        return tf.stack([tf.cast(h - tf.cast(h >= 2**31, tf.int64) * 2**32, tf.int32) for h in halves])
    return tf.cast(seed, tf.int32)


def step_seed(seed: int, step: tf.Tensor, salt: int = 0) -> tf.Tensor:
    """A stateless seed (shape [2], int32) derived from (seed, step, salt): fold_in([seed, salt], step)."""
    base = tf.constant([int(seed) & 0x7FFFFFFF, int(salt)], tf.int32)
    folded = tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64))
    return tf.cast(folded, tf.int32)


def replica_position() -> tuple[tf.Tensor, int]:
    """(this replica's id in the sync group, number of replicas); (0, 1) outside."""
    context = tf.distribute.get_replica_context()
    if context is None:
        return tf.constant(0, tf.int32), 1
    return tf.cast(context.replica_id_in_sync_group, tf.int32), context.num_replicas_in_sync


def _is_transformed(distribution: tfd.Distribution) -> bool:
    """Whether distribution = bijector(base): tfd.TransformedDistribution, including TFP's non-composite
    variant (made when a bijector holds Python callables such as flow networks), which is not its subclass."""
    return isinstance(getattr(distribution, "bijector", None), tfp.bijectors.Bijector) and isinstance(
        getattr(distribution, "distribution", None), tfd.Distribution)


def standard_normal_bijectors(approx_posterior: tfd.Distribution) -> list | None:
    """Bijectors [b_1, ..., b_n] with approx_posterior = b_n(...b_1(eps)), eps ~ N(0, I); None if it is not one.

    Covers diagonal and full-covariance Gaussians (whose base is N(0, I) by
    construction) and flows on top of them (IAF posteriors), decided the same
    way eagerly and in graphs.
    """
    if isinstance(approx_posterior, tfd.MultivariateNormalLinearOperator):
        return [approx_posterior.bijector]
    if not _is_transformed(approx_posterior):
        return None
    if _is_standard_normal_base(approx_posterior.distribution):
        return [approx_posterior.bijector]
    inner = standard_normal_bijectors(approx_posterior.distribution)
    return None if inner is None else [*inner, approx_posterior.bijector]


def _is_standard_normal_base(distribution: tfd.Distribution) -> bool:
    if isinstance(distribution, (tfd.Sample, tfd.Independent)):
        distribution = distribution.distribution
    if not isinstance(distribution, tfd.Normal):
        return False
    loc = tf.get_static_value(tf.convert_to_tensor(distribution.loc))
    scale = tf.get_static_value(tf.convert_to_tensor(distribution.scale))
    return loc is not None and scale is not None and (loc == 0).all() and (scale == 1).all()


def _draw(distribution: tfd.Distribution, seed: tf.Tensor, sample_shape: list, first_sample=None,
          rows=None) -> tf.Tensor:
    """z ~ distribution with shape [*sample_shape, *batch_shape, D], replica-invariant where it can be.

    The last batch dimension is this replica's share of the global batch;
    the noise is drawn for the global batch and this replica's rows kept.
    ``rows = (first_row, num_rows)`` names the share explicitly (rows
    first_row .. of a batch of num_rows) instead of the replica's position.
    With ``first_sample`` the leading dimension holds importance samples
    first_sample, first_sample + 1, ... drawn block by block
    (``importance_noise``), so a sample's noise does not depend on how many
    are drawn at a time.
    """
    replica_id, num_replicas = replica_position()
    bijectors = standard_normal_bijectors(distribution)
    if bijectors is None:
        replica_seed = tf.random.experimental.stateless_fold_in(seed, replica_id if rows is None else rows[0])
        if first_sample is not None:
            replica_seed = tf.random.experimental.stateless_fold_in(replica_seed, first_sample)
        return distribution.sample(sample_shape, seed=tf.cast(replica_seed, tf.int32))
    event_size = distribution.event_shape[-1]
    batch_shape = distribution.batch_shape
    if batch_shape.is_fully_defined():
        outer, local_batch = list(batch_shape[:-1]), batch_shape[-1]
    else:
        batch_shape = distribution.batch_shape_tensor()
        outer, local_batch = tf.unstack(batch_shape[:-1], num=len(distribution.batch_shape) - 1), batch_shape[-1]
    start, num_rows = (replica_id * local_batch, local_batch * num_replicas) if rows is None else rows
    shape = [*sample_shape, *outer, num_rows, event_size]
    if first_sample is None:
        eps = tf.random.stateless_normal(tf.stack(shape), seed=seed, alg=rng_algorithm())
    else:
        eps = importance_noise(seed, first_sample, shape)
    z = eps[..., start : start + local_batch, :]
    if isinstance(local_batch, int):
        z.set_shape(eps.shape[:-2].concatenate([local_batch, event_size]))
    for bijector in bijectors:  # each bijector caches z -> forward(z), so log_prob needs no inverse
        z = bijector.forward(z)
    return z


IMPORTANCE_NOISE_BLOCK = 16


def importance_noise(seed: tf.Tensor, first_sample, shape: list) -> tf.Tensor:
    """N(0, I) noise of importance samples first_sample .. first_sample + n - 1, shape = [n, *rest].

    Sample j is row j mod G of the block j // G (G = IMPORTANCE_NOISE_BLOCK),

      block_b = stateless_normal([G, *rest], fold_in(seed, b)),

    so sample j's noise depends on (seed, j, rest) only, not on ``first_sample``
    or n: drawing k samples in chunks of any size gives the same k draws. A
    chunk draws the blocks it overlaps (at most 2 (G - 1) rows unused).
    ``first_sample`` and n may be ints or int32 scalar tensors.
    """
    count, rest = shape[0], shape[1:]
    first_block = first_sample // IMPORTANCE_NOISE_BLOCK
    num_blocks = (first_sample + count - 1) // IMPORTANCE_NOISE_BLOCK - first_block + 1
    algorithm = rng_algorithm()  # the context of the caller, not of map_fn's loop body

    def block(index):
        block_seed = tf.cast(tf.random.experimental.stateless_fold_in(seed, index), tf.int32)
        return tf.random.stateless_normal(tf.stack([IMPORTANCE_NOISE_BLOCK, *rest]), seed=block_seed, alg=algorithm)

    blocks = tf.map_fn(block, tf.range(first_block, first_block + num_blocks), fn_output_signature=tf.float32)
    noise = tf.reshape(blocks, tf.stack([num_blocks * IMPORTANCE_NOISE_BLOCK, *rest]))
    offset = first_sample - first_block * IMPORTANCE_NOISE_BLOCK
    return tf.reshape(noise[offset : offset + count], tf.stack([count, *rest]))


def sample_posterior(
    approx_posterior: tfd.Distribution, seed: tf.Tensor, num_samples: int = 1
) -> tf.Tensor | list:
    """Draws z ~ q(z|x) with shape [num_samples, B_local, latent_dim] (a list of them for a joint posterior).

    The draw for global example i depends only on (seed, i), not on how the
    global batch is split across replicas. A joint posterior draws its root
    layer with ``num_samples`` and each later layer once per sample of the
    layers above it, layer i from fold_in(seed, i).
    """
    def choose(i, distribution, is_root):
        return _draw(distribution, latents.layer_seed(approx_posterior, seed, i), [num_samples] if is_root else [])

    return latents.walk(approx_posterior, choose)[1]


def sample_importance(approx_posterior: tfd.Distribution, seed: tf.Tensor, first_sample, num_samples,
                      rows=None) -> tf.Tensor | list:
    """Importance samples first_sample .. first_sample + n - 1 of z ~ q(z|x): [n, B_local, D] (a list for a joint).

    The noise of sample j of row r of a batch of B rows is

      eps_jr = block_{j // G}[j mod G, r],  block_b = stateless_normal([G, B, D], fold_in(seed_l, b))

    (``importance_noise``; seed_l the layer's seed, ``latents.layer_seed``),
    so the k draws of an IWAE bound are the same however they are chunked,
    and however the batch is split: between replicas (the default: this
    replica's share, as in ``sample_posterior``) or between calls, each
    naming its rows as ``rows = (first_row, B)``. A joint posterior's later
    layers are drawn once per sample of the layers above, from the same blocks.
    ``first_sample``, ``num_samples`` and ``rows`` may be ints or int32 scalar tensors.
    """
    def choose(i, distribution, is_root):
        return _draw(distribution, latents.layer_seed(approx_posterior, seed, i), [num_samples] if is_root else [],
                     first_sample=first_sample, rows=rows)

    return latents.walk(approx_posterior, choose)[1]


def posterior_location(approx_posterior: tfd.Distribution) -> tf.Tensor:
    """A representative latent of q: its mean where TFP has it in closed form,
    else the base mean pushed through the flow, b_n(...b_1(E[base])). For a
    joint (hierarchical) posterior, the list of each layer's location given
    the locations above it."""
    return latents.walk(approx_posterior, lambda i, distribution, is_root: _location(distribution))[1]


def _location(distribution: tfd.Distribution) -> tf.Tensor:
    try:
        return distribution.mean()
    except NotImplementedError:
        if not _is_transformed(distribution):
            raise
        return distribution.bijector.forward(_location(distribution.distribution))
