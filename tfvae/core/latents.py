"""Latent structure in one place: one latent vector z, or a joint (hierarchical) list of layers.

A VAE's posterior q(z|x) and prior p(z) have one of two structures:

  flat   one distribution over z in R^D (event shape [D]); z is a tensor [..., B, D];
  joint  a ``tfd.JointDistributionCoroutine`` over layers z_L, ..., z_1 (top first, sampling order), each
         conditional on the layers before it: q(z|x) = prod_l q(z_l | z_>l, x), p(z) = prod_l p(z_l | z_>l);
         z is the list of layers [..., B, D_l] in that order.

Both are answered as a list of layers, a flat latent being the one-layer case, so the rest of the package never
asks which structure it has:

  layers(q, p, z)      [(q_l, p_l, z_l)]: each layer's conditionals at the given latents above it;
  walk(q, choose)      each layer's conditional, with values of the caller's choosing (draws, locations);
  layer_seed(q, s, l)  the seed of layer l's noise;
  as_vector(z)         the latents as one vector [..., B, sum D_l] (the decoder's input);
  names(latent_dims)   ["z"], or ["z_L", ..., "z_1"].

So KL(q||p) = sum_l E_q[KL(q_l || p_l)] is computed the same way for both (``objectives.bounds.layer_rates``).
A third structure would be answered here and in its own parts only.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["Layer", "as_list", "as_vector", "concat_latents", "is_joint", "layer_names", "layer_seed", "layers", "names",
           "walk", "walk_joint"]

Layer = tuple  # (q_l, p_l, z_l)


def is_joint(distribution) -> bool:
    """Whether ``distribution`` is a joint distribution over a list of latent layers (a hierarchical VAE's)."""
    return isinstance(distribution, tfd.JointDistributionCoroutine)


def walk_joint(joint: tfd.JointDistributionCoroutine, choose: Callable) -> tuple[list, list]:
    """Runs ``joint``'s model with values of our choosing: ([distribution_l], [value_l]) in its order.

    ``choose(l, distribution_l, is_root)`` returns the value of layer l;
    distribution_l is its conditional given the values chosen before it. This
    evaluates conditionals at given latents (``choose`` returns them) or draws
    them with our own noise, which ``joint.sample`` cannot.
    """
    distributions, values = [], []
    generator = joint.model()
    try:
        node = next(generator)
        while True:
            is_root = isinstance(node, tfd.JointDistributionCoroutine.Root)
            distribution = node.distribution if is_root else node
            value = choose(len(values), distribution, is_root)
            distributions.append(distribution)
            values.append(value)
            node = generator.send(value)
    except StopIteration:
        pass
    return distributions, values


def walk(distribution: tfd.Distribution, choose: Callable) -> tuple[list, tf.Tensor | list]:
    """([conditional_l], latent) with each layer's value from ``choose(l, conditional_l, is_root)``.

    The latent has the structure's form: a tensor for a flat distribution
    (its one layer is the root), the list of layers for a joint one.
    """
    if is_joint(distribution):
        return walk_joint(distribution, choose)
    return [distribution], choose(0, distribution, True)


def layer_seed(distribution: tfd.Distribution, seed: tf.Tensor, layer: int) -> tf.Tensor:
    """The [2] stateless seed of a layer's noise: ``seed`` itself for a flat latent, fold_in(seed, l) for layer l
    of a joint one (so the layers' draws are independent and each is replica-invariant)."""
    if not is_joint(distribution):
        return seed
    return tf.cast(tf.random.experimental.stateless_fold_in(seed, layer), tf.int32)


def as_list(z) -> list:
    """The layers of a latent: [z] for a tensor, the list itself for a joint latent."""
    return list(z) if isinstance(z, (list, tuple)) else [z]


def layers(approx_posterior: tfd.Distribution, prior: tfd.Distribution, z) -> list[Layer]:
    """[(q_l, p_l, z_l)]: the posterior's and prior's conditionals of each layer at the same latents z_>l.

    A flat q and p give one layer (q, p, z); z may be None for it.
    """
    if not is_joint(approx_posterior):
        return [(approx_posterior, prior, z)]
    z = as_list(z)
    posteriors, _ = walk_joint(approx_posterior, lambda i, distribution, is_root: z[i])
    priors, _ = walk_joint(prior, lambda i, distribution, is_root: z[i])
    return list(zip(posteriors, priors, z, strict=True))


def as_vector(z):
    """The latents as one vector: z itself for a tensor, a list of layers [..., D_l] concatenated on the last axis."""
    if isinstance(z, (list, tuple)):
        return tf.concat([tf.convert_to_tensor(t, tf.float32) for t in z], axis=-1)
    return z


def layer_names(latent_dims) -> list[str]:
    """Layer names in sampling order, top first: ["z_L", ..., "z_1"] for sizes [D_1, ..., D_L]."""
    return [f"z_{level}" for level in range(len(latent_dims), 0, -1)]


def names(latent_dims) -> list[str]:
    """The latents' names in sampling order: ["z"] for one layer, else ``layer_names``."""
    return ["z"] if len(latent_dims) == 1 else layer_names(latent_dims)


concat_latents = as_vector  # its name in tfvae.models.hierarchical (public since 0.3)
