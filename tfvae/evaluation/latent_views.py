"""What the latents control, as decoded examples: traversals of the (top) latent layer, and layer samples.

Both work on every model family: a flat latent z [D], or a hierarchy
(z_L, ..., z_1) whose p(z) and q(z|x) are joint distributions
(``latents.is_joint``). For a hierarchy the top layer z_L is the one swept
or held, and the layers below follow from it through the prior's
conditionals p(z_l | z_>l):

  traversal:      z_L = centre with coordinate i set to v, v in [-span, span];
                  z_l = location of p(z_l | z_>l) for l < L   (what z_L[i] controls)
  layer samples:  row r: z_L ~ p(z_L) once; column c: z_l ~ p(z_l | z_>l) afresh
                  for l < L                                    (what the lower layers add)

The centre is the location of q(z|x) of one example (E_q[z]; for a flow
posterior its base mean through the flow) or, without data, of p(z).
"""

from __future__ import annotations

import tensorflow as tf

from tfvae.core import latents, sampling

__all__ = ["latent_traversal", "layer_samples"]


def latent_traversal(model, x=None, labels=None, num_dims: int = 10, steps: int = 9, span: float = 3.0) -> tf.Tensor:
    """Decoder means as one coordinate of the (top) latent layer sweeps [-span, span]: a row per coordinate.

    Args:
      model: a ``tfvae.VAE``.
      x: examples whose first one's q(z|x) location is the centre; None: the location of p(z).
      labels: a conditional VAE's labels of ``x`` (the first one's is used); without x, class 0.
      num_dims: the first coordinates to sweep (at most the top layer's size).
      steps: values per row, evenly spaced in [-span, span].

    Returns:
      [rows * steps, *data_shape]: the decoded means, row by row.
    """
    label = _first_label(model, labels)
    if x is None:
        location = sampling.posterior_location(model.prior)
    else:
        location = sampling.posterior_location(model.posterior(x[:1], label))
    centre = tf.reshape(_top(location), [-1])
    values = tf.linspace(-span, span, steps)
    rows = []
    for i in range(min(num_dims, int(centre.shape[0]))):
        top = tf.tile(centre[tf.newaxis], [steps, 1])
        top = tf.tensor_scatter_nd_update(top, [[j, i] for j in range(steps)], values)
        z = _below(model, top, lambda index, distribution: sampling.posterior_location(distribution))
        rows.append(model.likelihood(z, _repeat(label, steps)).mean())
    return tf.concat(rows, axis=0)


def layer_samples(model, rows: int = 8, columns: int = 8, seed: int = 0, labels=None) -> tf.Tensor:
    """Decoder means of [rows * columns] prior draws: a row shares its top layer z_L, the layers below are
    drawn afresh in every column (for a flat latent, every draw is independent).

    ``labels``: a conditional VAE's label per row (default: class r % num_classes for row r).
    Returns [rows * columns, *data_shape].
    """
    seed = sampling.as_seed(seed)

    def draw(index, distribution):
        return distribution.sample(seed=tf.random.experimental.stateless_fold_in(seed, index))

    z = _below(model, tf.repeat(_draw_top(model, rows, seed), columns, axis=0), draw)
    row_labels = None
    if model.num_classes:
        row_labels = tf.range(rows) % model.num_classes if labels is None else tf.reshape(labels, [-1])[:rows]
        row_labels = tf.repeat(row_labels, columns)
    return model.likelihood(z, row_labels).mean()


def _draw_top(model, count: int, seed):
    """``count`` draws of the top layer from p(z_L) (of z from p(z) for a flat latent), [count, D_L]."""
    prior = model.prior
    if not latents.is_joint(prior):
        return prior.sample(count, seed=seed)
    return latents.walk_joint(prior, lambda index, distribution, is_root: distribution.sample(count, seed=seed)
                               if index == 0 else sampling.posterior_location(distribution))[1][0]


def _top(location):
    """The top layer of a hierarchy's list of latents (top first); a flat latent itself."""
    return location[0] if isinstance(location, (list, tuple)) else location


def _below(model, top, choose_lower):
    """The latents with the top layer ``top`` [N, D_L] and each lower layer chosen by
    ``choose_lower(index, p(z_l | z_>l))``; a flat model's z is ``top`` itself."""
    prior = model.prior
    if not latents.is_joint(prior):
        return top
    return latents.walk_joint(
        prior, lambda index, distribution, is_root: top if index == 0 else choose_lower(index, distribution))[1]


def _first_label(model, labels):
    if not model.num_classes:
        return None
    return tf.zeros([1], tf.int32) if labels is None else tf.reshape(labels, [-1])[:1]


def _repeat(label, count: int):
    return None if label is None else tf.repeat(label, count)
