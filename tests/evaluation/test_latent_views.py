"""Traversals and layer samples on flat and hierarchical latents; enlarged grids; vector tables with a header."""

import numpy as np
import pytest
import tensorflow as tf
from builders import DATA_SHAPE, binary_batch, make_model

import tfvae
from tfvae import data
from tfvae.evaluation import images, latent_views


def _hierarchy():
    tf.keras.utils.set_random_seed(0)
    model = tfvae.VAE(tfvae.TopDownEncoder([3, 2], hidden_units=[16], ladder_units=8),
                      tfvae.BernoulliDecoder(DATA_SHAPE, hidden_units=[16]),
                      tfvae.HierarchicalPrior(tfvae.StandardNormalPrior(2), [3, 2]))
    model.build((None, *DATA_SHAPE))
    return model


def _expected_hierarchy_row(model, centre, i, values):
    """Row i by hand: z_2 = centre with z_2[i] = v; z_1 = E[p(z_1 | z_2)] from the encoder's top-down layer."""
    top = np.tile(centre, (len(values), 1)).astype(np.float32)
    top[:, i] = values
    lower = model.encoder.conditionals(0, tf.constant(top))[0].mean()
    return model.decoder(tf.concat([top, lower], -1)).mean()


def test_a_hierarchys_traversal_sweeps_its_top_layer_with_the_lower_layers_following_the_prior():
    model, x = _hierarchy(), binary_batch(3)
    values = np.linspace(-3, 3, 5)
    no_data = latent_views.latent_traversal(model, steps=5)
    assert no_data.shape == (2 * 5, *DATA_SHAPE)  # a row per coordinate of the top layer (size 2)
    for i in range(2):
        np.testing.assert_allclose(no_data[5 * i: 5 * (i + 1)], _expected_hierarchy_row(model, np.zeros(2), i, values),
                                   atol=1e-5)
    centre = model.encoder.top_posterior(x[:1]).mean()[0].numpy()
    around_x = latent_views.latent_traversal(model, x, steps=5)
    np.testing.assert_allclose(around_x[5:], _expected_hierarchy_row(model, centre, 1, values), atol=1e-5)


def test_a_flat_traversal_sets_one_coordinate_of_the_posterior_mean_per_row():
    model, x = make_model(), binary_batch(2)
    model.build((None, *DATA_SHAPE))
    traversal = latent_views.latent_traversal(model, x, steps=4, num_dims=2)
    z = np.tile(model.encoder(x[:1]).mean().numpy(), (4, 1))
    z[:, 1] = np.linspace(-3, 3, 4)
    np.testing.assert_allclose(traversal[4:], model.decoder(z).mean(), atol=1e-5)


def test_layer_samples_share_the_top_layer_along_a_row_and_redraw_the_lower_ones():
    model = _hierarchy()
    decoded = []
    likelihood = model.likelihood
    model.likelihood = lambda z, labels=None: decoded.append([t.numpy() for t in z]) or likelihood(z, labels)
    grid = latent_views.layer_samples(model, rows=3, columns=4, seed=1)
    assert grid.shape == (12, *DATA_SHAPE)
    top, lower = (layer.reshape(3, 4, -1) for layer in decoded[0])
    np.testing.assert_array_equal(top, np.repeat(top[:, :1], 4, axis=1))  # one z_2 per row
    assert len(np.unique(top[:, 0, 0])) == 3 and len(np.unique(lower[0, :, 0])) == 4  # fresh z_1 per column


@pytest.mark.parametrize("size, factor", [(72, 4), (232, 2), (256, 1), (300, 1)])
def test_small_grids_are_enlarged_by_an_integer_factor_to_at_least_256_pixels(size, factor):
    grid = tf.constant(np.random.default_rng(0).integers(0, 256, (size, 10, 1)), tf.uint8)
    enlarged = images.upscale(grid).numpy()
    assert enlarged.shape == (size * factor, 10 * factor, 1)
    np.testing.assert_array_equal(enlarged[::factor, ::factor], grid.numpy())  # nearest neighbour: k x k blocks


def test_vector_tables_have_a_header_and_the_class_first_and_read_back_as_a_table(tmp_path):
    values = np.random.default_rng(0).random((4, 3)).astype(np.float32)
    paths = images.write_array(str(tmp_path / "samples"), values, labels=np.array([0, 1, 2, 0]), label_name="kind")
    with open(paths[1]) as f:
        assert f.readline().strip() == "kind,x_1,x_2,x_3"
    read, labels = data.read_csv(paths[1], label_column="kind")
    np.testing.assert_allclose(read, values, atol=1e-5)
    np.testing.assert_array_equal(labels, [0, 1, 2, 0])
    np.testing.assert_array_equal(np.load(paths[0]), values)
    unlabelled = images.write_array(str(tmp_path / "plain"), values, column_names=["a", "b", "c"])
    with open(unlabelled[1]) as f:
        assert f.readline().strip() == "a,b,c"
    np.testing.assert_allclose(data.read_csv(unlabelled[1])[0], values, atol=1e-5)
