"""Replica-invariant reparameterised sampling from the posterior.

Training must give the same result on 1 or N replicas for the same global
batch. Two schemes draw the noise (``NOISE_SCHEMES``, the run's
``noise_scheme`` setting):

  global_batch  (the default; every tfvae release's stream) each replica draws the noise for the *whole*
                global batch, eps ~ N(0, I) of shape [num_samples, global_batch, latent_dim] from seed,
                and keeps its own rows [r * B_local, (r + 1) * B_local); R times the work needed, and the
                stream depends on whether XLA compiles the step (``rng_algorithm``).
  per_example   each replica draws only its own rows: eps of global example i, sample j, element e is
                Philox of (key, (e // 4, i, j, layer)) (``counter_noise``), the same on any number of
                replicas, with or without XLA, on any device. A training step asks for it with a
                ``PerExampleSeed`` (``training_seed``).

For a posterior that is a transformed standard normal (diagonal and
full-covariance Gaussians, flows), z = bijector.forward(eps) is the
reparameterised sample. Other posteriors fall back to ``q.sample`` with the
replica id folded into the seed, under either scheme: still deterministic,
but *not* replica-invariant (it depends on the number of replicas).

A hierarchical posterior (a ``tfd.JointDistributionCoroutine``, e.g.
``tfvae.TopDownEncoder``'s) is sampled layer by layer in its order: layer i
draws its noise like a single posterior, from fold_in(seed, i) (global_batch)
or with stream word i (per_example), so it is replica-invariant too
(``latents.walk``).

The k importance samples of an IWAE bound (``sample_importance``) are drawn
in blocks of IMPORTANCE_NOISE_BLOCK samples, block b from fold_in(seed, b),
so that sample j's noise is the same however the k samples are chunked and
however the batch is split (between replicas, or between calls that name
their rows).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import choices, counter_noise, latents, xla

tfd = tfp.distributions

__all__ = ["IMPORTANCE_NOISE_BLOCK", "NOISE_SCHEMES", "PerExampleSeed", "as_seed", "check_noise_scheme",
           "importance_noise", "is_joint", "posterior_location", "replica_position", "rng_algorithm",
           "sample_importance", "sample_posterior", "step_seed", "training_seed", "walk_joint"]

NOISE_SCHEMES = choices.register("noise_scheme", ("global_batch", "per_example"))  # see the module docstring

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
    return "threefry" if xla.in_xla_context() else "philox"


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


class PerExampleSeed(NamedTuple):
    """A step's [2] int32 key whose posterior noise each replica draws for its own examples only
    (``counter_noise``), the per_example scheme; a bare [2] seed means the global_batch scheme."""

    key: tf.Tensor


def check_noise_scheme(noise_scheme: str) -> str:
    """``noise_scheme`` if it is one of NOISE_SCHEMES, else a one-line ValueError naming it."""
    if noise_scheme not in NOISE_SCHEMES:
        raise ValueError(f"noise_scheme must be one of {NOISE_SCHEMES}; got {noise_scheme!r}")
    return noise_scheme


def training_seed(seed: int, step: tf.Tensor, noise_scheme: str = "global_batch", salt: int = 0):
    """The seed of a training step's posterior noise under ``noise_scheme``.

      global_batch  step_seed(seed, step, salt): a [2] int32 seed (tfvae 0.4 and earlier)
      per_example   PerExampleSeed(counter_noise.step_key(seed, step, salt))

    ``sample_posterior`` (and ``VAE.sample_terms``) take either.
    """
    if check_noise_scheme(noise_scheme) == "per_example":
        return PerExampleSeed(counter_noise.step_key(seed, step, salt))
    return step_seed(seed, step, salt)


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


def _global_batch_noise(seed: tf.Tensor):
    """eps(leading, local_batch, D) of the global_batch scheme: the global batch's noise, this replica's rows."""
    replica_id, num_replicas = replica_position()

    def noise(leading, local_batch, event_size):
        eps = tf.random.stateless_normal(
            tf.stack([*leading, local_batch * num_replicas, event_size]), seed=seed, alg=rng_algorithm())
        start = replica_id * local_batch
        return eps[..., start : start + local_batch, :]

    return noise


def _per_example_noise(key: tf.Tensor, stream: int):
    """eps(leading, local_batch, D) of the per_example scheme: only this replica's examples, by counter."""
    replica_id, _ = replica_position()

    def noise(leading, local_batch, event_size):
        return counter_noise.normal(key, tf.stack([*leading, local_batch, event_size]), replica_id * local_batch,
                                    batch_axis=len(leading), stream=stream)

    return noise


def _importance_noise(seed: tf.Tensor, first_sample, rows):
    """eps(leading, local_batch, D) of importance samples first_sample, ...: ``importance_noise`` of the batch's
    rows, this replica's share kept (or the rows ``rows = (first_row, num_rows)`` names)."""
    replica_id, num_replicas = replica_position()

    def noise(leading, local_batch, event_size):
        start, num_rows = (replica_id * local_batch, local_batch * num_replicas) if rows is None else rows
        eps = importance_noise(seed, first_sample, [*leading, num_rows, event_size])
        z = eps[..., start : start + local_batch, :]
        if isinstance(local_batch, int):
            z.set_shape(eps.shape[:-2].concatenate([local_batch, event_size]))
        return z

    return noise


def _fallback_seed(seed: tf.Tensor, position, first_sample=None) -> tf.Tensor:
    """The seed of ``q.sample`` for a posterior that is not a transformed standard normal: fold_in(seed,
    position) (the replica id, or the first row a call names), then fold_in(., first_sample) for importance
    samples."""
    seed = tf.random.experimental.stateless_fold_in(seed, position)
    if first_sample is not None:
        seed = tf.random.experimental.stateless_fold_in(seed, first_sample)
    return tf.cast(seed, tf.int32)


def _draw(distribution: tfd.Distribution, sample_shape: list, noise, fallback_seed: tf.Tensor) -> tf.Tensor:
    """z ~ distribution with shape [*sample_shape, *batch_shape, D], replica-invariant where it can be.

    The last batch dimension is this replica's share of the global batch;
    ``noise(leading, local_batch, D)`` gives its standard normal noise
    [*leading, local_batch, D]. A posterior that is not a transformed standard
    normal is drawn by ``q.sample`` from ``fallback_seed`` (``_fallback_seed``).
    """
    bijectors = standard_normal_bijectors(distribution)
    if bijectors is None:
        return distribution.sample(sample_shape, seed=fallback_seed)
    event_size = distribution.event_shape[-1]
    batch_shape = distribution.batch_shape
    if batch_shape.is_fully_defined():
        outer, local_batch = list(batch_shape[:-1]), batch_shape[-1]
    else:
        batch_shape = distribution.batch_shape_tensor()
        outer, local_batch = tf.unstack(batch_shape[:-1], num=len(distribution.batch_shape) - 1), batch_shape[-1]
    z = noise([*sample_shape, *outer], local_batch, event_size)
    for bijector in bijectors:  # each bijector caches z -> forward(z), so log_prob needs no inverse
        z = bijector.forward(z)
    return z


def sample_posterior(
    approx_posterior: tfd.Distribution, seed, num_samples: int = 1
) -> tf.Tensor | list:
    """Draws z ~ q(z|x) with shape [num_samples, B_local, latent_dim] (a list of them for a joint posterior).

    The draw for global example i depends only on (seed, i), not on how the
    global batch is split across replicas. ``seed`` is anything ``as_seed``
    takes (the global_batch scheme) or a ``PerExampleSeed`` (the per_example
    scheme; see the module docstring). A joint posterior draws its root
    layer with ``num_samples`` and each later layer once per sample of the
    layers above it, layer i from fold_in(seed, i) (global_batch) or with
    stream word i (per_example).
    """
    per_example = isinstance(seed, PerExampleSeed)
    seed = as_seed(seed.key if per_example else seed)

    def choose(i, distribution, is_root):
        layer_seed = latents.layer_seed(approx_posterior, seed, i)
        noise = _per_example_noise(seed, i) if per_example else _global_batch_noise(layer_seed)
        return _draw(distribution, [num_samples] if is_root else [], noise,
                     _fallback_seed(layer_seed, replica_position()[0]))

    return latents.walk(approx_posterior, choose)[1]


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
    seed = as_seed(seed)

    def choose(i, distribution, is_root):
        layer_seed = latents.layer_seed(approx_posterior, seed, i)
        position = replica_position()[0] if rows is None else rows[0]
        return _draw(distribution, [num_samples] if is_root else [], _importance_noise(layer_seed, first_sample, rows),
                     _fallback_seed(layer_seed, position, first_sample))

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
