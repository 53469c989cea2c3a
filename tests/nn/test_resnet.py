"""Residual conv networks: any image size, identity at initialisation, no batch dependence, the part contract."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from checkers import check_distribution_layer

import tfvae
from tfvae.nn import resnet


@pytest.mark.parametrize("shape, channels, coarsest", [
    ((28, 28, 1), (8, 16), (14, 14)),
    ((28, 28, 1), (8, 8, 16), (7, 7)),
    ((28, 28, 1), (4, 4, 4, 8), (4, 4)),   # 28 -> 14 -> 7 -> 4: the decoder crops 8 back to 7
    ((32, 32, 3), (8, 16, 16), (8, 8)),
    ((64, 64, 3), (4, 8, 8, 16), (8, 8)),
    ((20, 12, 4), (4, 8), (10, 6)),
])
def test_trunks_halve_per_level_and_the_decoder_retraces_any_size(shape, channels, coarsest):
    encoder = resnet.resnet_encoder_trunk(channels, "relu", "enc", blocks_per_level=1)
    features = encoder(tf.zeros([2, *shape]))
    assert features.shape == (2, coarsest[0] * coarsest[1] * channels[-1])
    decoder = resnet.resnet_decoder_trunk(shape, channels, "relu", "dec", blocks_per_level=1)
    assert decoder(tf.zeros([2, 5])).shape == (2, shape[0], shape[1], channels[0])
    assert resnet.level_sizes(shape[0], shape[1], len(channels))[-1] == coarsest


def test_a_residual_block_starts_as_the_identity_and_learns_away_from_it():
    block = resnet.ResidualBlock(6, normalization="group")
    x = tf.random.stateless_normal([3, 5, 5, 6], seed=[1, 2])
    np.testing.assert_array_equal(block(x), x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x) * tf.random.stateless_normal([3, 5, 5, 6], seed=[3, 4]))
    grads = tape.gradient(loss, block.trainable_variables)
    keras.optimizers.SGD(0.1).apply_gradients(zip(grads, block.trainable_variables, strict=True))
    assert np.abs(block(x).numpy() - x.numpy()).max() > 1e-3


@pytest.mark.parametrize("normalization", resnet.NORMALIZATIONS)
def test_an_example_gets_the_same_features_alone_or_in_any_batch(normalization):
    keras.utils.set_random_seed(0)
    encoder = resnet.resnet_encoder_trunk((8, 16), "relu", "enc", blocks_per_level=2, normalization=normalization)
    for layer in encoder.layers:  # away from the identity start, so the blocks and norms matter
        for weight in layer.weights:
            weight.assign(tf.random.stateless_normal(weight.shape, seed=[len(weight.name), 7]) * 0.2)
    x = tf.random.stateless_uniform([6, 12, 12, 1], seed=[5, 6])
    together = encoder(x).numpy()
    alone = np.concatenate([encoder(x[i:i + 1]).numpy() for i in range(6)])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)
    assert np.abs(together[0] - together[1]).max() > 1e-3


def test_bad_resnet_settings_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"normalization must be one of \('none', 'layer', 'group'\); got 'batch'"):
        tfvae.GaussianEncoder(4, architecture="resnet", hidden_units=[8], normalization="batch")
    with pytest.raises(ValueError, match="blocks_per_level must be an int >= 0; got -1"):
        tfvae.BernoulliDecoder((8, 8, 1), architecture="resnet", hidden_units=[8], blocks_per_level=-1)


def test_resnet_encoder_keeps_the_distribution_layer_contract():
    x = tf.random.stateless_uniform([5, 28, 28, 1], seed=[1, 1])
    check_distribution_layer(
        lambda: tfvae.GaussianEncoder(3, architecture="resnet", hidden_units=[4, 8], blocks_per_level=1,
                                      normalization="group"),
        lambda encoder: encoder(x), batch_shape=[5], event_shape=[3])


@pytest.mark.parametrize("make_decoder", [
    lambda: tfvae.BernoulliDecoder((28, 28, 1), architecture="resnet", hidden_units=[4, 8], blocks_per_level=1),
    lambda: tfvae.DiscretizedLogisticDecoder((32, 32, 3), architecture="resnet", hidden_units=[4, 8, 8],
                                             blocks_per_level=1, normalization="layer", num_components=2),
])
def test_resnet_decoders_keep_the_distribution_layer_contract(make_decoder):
    z = tf.random.stateless_normal([4, 3], seed=[2, 2])
    check_distribution_layer(make_decoder, lambda decoder: decoder(z), batch_shape=[4],
                             event_shape=make_decoder().data_shape)


def test_a_resnet_vae_with_a_vamp_prior_learns_fashion_mnist_through_train_and_evaluate(tmp_path, fashion_mnist_dir):
    config = tfvae.TrainConfig(architecture="resnet", hidden_units=(8, 16), blocks_per_level=1,
                               normalization="group", prior="vamp", prior_components=4, latent_dim=4, batch_size=32,
                               epochs=4, train_examples=256, validation_examples=128, steps_per_execution=4,
                               learning_rate=3e-3)
    first = tfvae.train_and_evaluate(tfvae.TrainConfig(**dict(vars(config), epochs=1)), str(tmp_path / "a"),
                                     verbose=0)
    last = tfvae.train_and_evaluate(config, str(tmp_path / "b"), verbose=0)
    assert last["elbo"] > first["elbo"] + 20, (first, last)
    model = tfvae.load_model(str(tmp_path / "b"))
    assert model.encoder.architecture == "resnet" and model.encoder.normalization == "group"
    images = tfvae.data.prepare_data(config).test_images[:128]
    # Evaluated as the trainer did (no XLA for convolutions on CPU), so with the same noise.
    reloaded = tfvae.evaluation.elbo_metrics(model, images, jit_compile=tfvae.training.xla_enabled(config))
    assert reloaded["elbo"] == pytest.approx(last["elbo"], abs=1e-3)
