"""core/latents.py: a flat latent and a joint list of layers answer the same questions."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import latents

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root


def _normal(loc, scale=1.0):
    return tfd.MultivariateNormalDiag(loc, tf.fill(tf.shape(loc), scale))


def _joint(shift):
    """z_2 ~ N(shift, 1) [B, 2]; z_1 | z_2 ~ N(2 z_2 + shift, 0.5) [B, 2]."""
    def model():
        top = yield Root(_normal(tf.fill([3, 2], shift)))
        yield _normal(2.0 * top + shift, 0.5)
    return tfd.JointDistributionCoroutine(model)


def test_a_flat_latent_is_one_layer_whose_latent_is_the_tensor_itself():
    q, p = _normal(tf.ones([3, 2])), _normal(tf.zeros([3, 2]))
    z = tf.zeros([1, 3, 2])
    (layer,) = latents.layers(q, p, z)
    assert layer[0] is q and layer[1] is p and layer[2] is z
    assert latents.as_vector(z) is z and latents.as_list(z) == [z]
    assert latents.names([5]) == ["z"]


def test_a_joint_latents_layers_are_its_conditionals_at_the_given_latents():
    q, p = _joint(1.0), _joint(0.0)
    z = [tf.fill([3, 2], 3.0), tf.fill([3, 2], -1.0)]
    (q2, p2, z2), (q1, p1, z1) = latents.layers(q, p, z)
    assert z2 is z[0] and z1 is z[1]
    np.testing.assert_allclose(q2.mean(), 1.0)
    np.testing.assert_allclose(p2.mean(), 0.0)
    np.testing.assert_allclose(q1.mean(), 2 * 3.0 + 1.0)  # conditioned on the given z_2, not on a draw
    np.testing.assert_allclose(p1.mean(), 2 * 3.0)
    # Each layer's log density sums to the joint's, so KL terms per layer add up to the joint's log ratio.
    total = sum(q_l.log_prob(z_l) for q_l, _, z_l in latents.layers(q, p, z))
    np.testing.assert_allclose(total, q.log_prob(z), rtol=1e-6)
    assert latents.as_vector(z).shape == [3, 4]
    assert latents.names([4, 2, 2]) == ["z_3", "z_2", "z_1"]


def test_walk_chooses_each_layers_value_in_order_and_keeps_the_structures_form():
    seen = []

    def choose(i, distribution, is_root):
        seen.append((i, is_root))
        return distribution.mean()

    layers, value = latents.walk(_joint(1.0), choose)
    assert seen == [(0, True), (1, False)] and len(layers) == 2 and isinstance(value, list)
    np.testing.assert_allclose(value[1], 3.0)  # z_1's mean at z_2 = its mean 1: 2 * 1 + 1
    seen.clear()
    layers, value = latents.walk(_normal(tf.ones([3, 2])), choose)
    assert seen == [(0, True)] and len(layers) == 1 and isinstance(value, tf.Tensor)


def test_a_flat_latent_draws_from_the_seed_and_each_joint_layer_from_its_own_fold():
    seed = tf.constant([7, 9], tf.int32)
    assert latents.layer_seed(_normal(tf.ones([3, 2])), seed, 0) is seed
    joint = _joint(0.0)
    first, second = (latents.layer_seed(joint, seed, i).numpy() for i in (0, 1))
    assert first.tolist() != second.tolist() and first.tolist() != seed.numpy().tolist()
    np.testing.assert_array_equal(first, tf.random.experimental.stateless_fold_in(seed, 0).numpy())
