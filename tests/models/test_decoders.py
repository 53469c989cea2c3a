"""Likelihoods p(x|z): each is a normalised distribution of the documented kind, on the data's support."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from checkers import check_distribution_layer

import tfvae
from tfvae.models import decoders
from tfvae.nn import networks

tfd = tfp.distributions
DATA_SHAPE = (4, 4, 1)
Z = tf.constant(np.random.default_rng(0).normal(size=(3, 2)), tf.float32)


def decoder(likelihood, architecture="mlp", **kwargs):
    keras.utils.set_random_seed(0)
    hidden = [8] if architecture == "mlp" else [4, 8]
    layer = decoders.make_decoder(likelihood, DATA_SHAPE, architecture=architecture, hidden_units=hidden, **kwargs)
    layer.build((None, 2))
    return layer


@pytest.mark.parametrize("likelihood, architecture", [
    *[(likelihood, "conv" if likelihood == "categorical" else "mlp") for likelihood in decoders.LIKELIHOODS],
    ("discretized_logistic", "conv")])  # its conv head writes planes (networks.PlanarHead)
def test_every_likelihood_keeps_the_distribution_layer_contract(likelihood, architecture):
    hidden = [8] if architecture == "mlp" else [4, 8]
    x = np.random.default_rng(1).integers(0, 256, (3, *DATA_SHAPE)) / 255.0
    check_distribution_layer(
        lambda: decoders.make_decoder(likelihood, DATA_SHAPE, architecture=architecture, hidden_units=hidden),
        lambda layer: layer(Z), batch_shape=[3], event_shape=DATA_SHAPE,
        value=tf.constant(np.round(x) if likelihood == "bernoulli" else x, tf.float32))


@pytest.mark.parametrize("likelihood", decoders.LIKELIHOODS)
def test_every_likelihood_has_image_events_and_accepts_sample_dimensions(likelihood):
    layer = decoder(likelihood, "conv" if likelihood == "categorical" else "mlp")
    p = layer(tf.stack([Z, Z + 1.0]))  # [2, 3, latent]
    assert p.batch_shape == [2, 3] and p.event_shape == list(DATA_SHAPE)
    x = np.random.default_rng(1).integers(0, 256, (3, *DATA_SHAPE)) / 255.0
    if likelihood == "bernoulli":
        x = np.round(x)
    log_prob = p.log_prob(x.astype(np.float32)).numpy()
    assert log_prob.shape == (2, 3) and np.isfinite(log_prob).all()
    # TensorFlow's CPU Softmax kernel takes rank <= 5, which FiniteDiscrete's mean needs: one batch dimension.
    mean = (p.mean() if likelihood != "categorical" else tf.stack([layer(Z).mean(), layer(Z + 1.0).mean()])).numpy()
    assert mean.shape == (2, 3, *DATA_SHAPE)
    if likelihood != "gaussian":
        assert mean.min() >= 0 and mean.max() <= 1


def test_continuous_bernoulli_density_integrates_to_one_on_the_unit_interval():
    pixels = decoder("continuous_bernoulli")(Z).distribution  # ContinuousBernoulli, batch [3, 4, 4, 1]
    grid = (np.arange(20_000) + 0.5) / 20_000  # midpoint rule
    density = np.exp(pixels.log_prob(grid.reshape(-1, 1, 1, 1, 1).astype(np.float32)).numpy())
    np.testing.assert_allclose(density.mean(0), 1.0, atol=1e-3)


def test_continuous_bernoulli_mean_is_not_the_bernoulli_probability():
    pixels = decoder("continuous_bernoulli")(Z).distribution
    lam = tf.sigmoid(pixels.logits).numpy().astype(np.float64)
    expected = lam / (2 * lam - 1) + 1 / (2 * np.arctanh(1 - 2 * lam))
    np.testing.assert_allclose(pixels.mean().numpy(), expected, rtol=1e-3)


def test_categorical_likelihood_is_a_softmax_over_the_256_levels():
    layer = decoder("categorical", "conv")
    p = layer(Z)
    logits = p.distribution.logits.numpy()
    assert logits.shape == (3, *DATA_SHAPE, 256)
    levels = np.random.default_rng(2).integers(0, 256, (3, *DATA_SHAPE))
    log_softmax = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = np.take_along_axis(log_softmax, levels[..., None], -1)[..., 0].reshape(3, -1).sum(1)
    np.testing.assert_allclose(p.log_prob((levels / 255.0).astype(np.float32)).numpy(), expected, rtol=1e-5)
    total = np.exp(p.distribution.log_prob(np.arange(256).reshape(-1, 1, 1, 1, 1) / 255.0)).sum(0)
    np.testing.assert_allclose(total, 1.0, atol=1e-5)


@pytest.mark.parametrize("pixel_mixture, loc_shape", [("joint", (3, 1, 3, 4, 4)), ("per_channel", (3, *DATA_SHAPE, 3))])
def test_discretized_logistic_decoder_gives_normalised_pixels(pixel_mixture, loc_shape):
    p = decoder("discretized_logistic", num_components=3, pixel_mixture=pixel_mixture)(Z)
    levels = (np.arange(256) / 255.0).reshape(-1, 1, 1, 1, 1).astype(np.float32)
    total = np.exp(p.distribution.log_prob(levels).numpy()).sum(0)
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    assert p.distribution.loc.shape == loc_shape


@pytest.mark.parametrize("architecture, hidden", [("mlp", [8]), ("conv", [4, 8]), ("resnet", [4, 8])])
def test_joint_pixel_mixture_reads_its_parameters_as_documented(architecture, hidden):
    """Per pixel: M logits, then per component C locations, C log-scales and C (C-1) / 2 couplings (10 M for RGB)."""
    keras.utils.set_random_seed(0)
    layer = tfvae.DiscretizedLogisticDecoder((4, 4, 3), num_components=2, architecture=architecture,
                                             hidden_units=hidden, blocks_per_level=1)
    layer.build((None, 2))
    pixels = layer(tf.stack([Z, Z]))  # [2, 3] latents
    assert pixels.batch_shape == [2, 3] and pixels.event_shape == [4, 4, 3]
    planes = layer.head(layer.trunk(tf.reshape(tf.stack([Z, Z]), [-1, 2]))).numpy()
    if architecture == "mlp":  # each example's outputs read as [P, H, W]
        planes = planes.reshape(6, 20, 4, 4).transpose(1, 0, 2, 3)
    planes = planes.reshape(20, 2, 3, 4, 4)
    mixture = pixels.distribution
    np.testing.assert_allclose(mixture.mixture_logits.numpy(), planes[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixture.loc.numpy(), planes[2:8].reshape(2, 3, 2, 3, 4, 4), rtol=1e-5, atol=1e-6)
    initial = np.log(tfvae.DiscretizedLogisticDecoder.INITIAL_SCALE)
    np.testing.assert_allclose(mixture.log_scale.numpy(), planes[8:14].reshape(2, 3, 2, 3, 4, 4) + initial, rtol=1e-5)
    np.testing.assert_allclose(mixture.coupling.numpy(), np.tanh(planes[14:].reshape(2, 3, 2, 3, 4, 4)), rtol=1e-5,
                               atol=1e-6)


def test_joint_pixel_mixture_starts_below_the_data_with_scales_near_the_initial_scale():
    """Locations start near 0 (black): every initial error is >= 0, which is what lets short runs learn colours."""
    keras.utils.set_random_seed(0)
    layer = tfvae.DiscretizedLogisticDecoder((8, 8, 3), architecture="conv", hidden_units=[8, 16])
    layer.build((None, 2))
    mixture = layer(Z).distribution
    assert np.abs(mixture.loc.numpy()).mean() < 0.1
    scales = np.exp(mixture.log_scale.numpy())
    assert 0.05 < np.median(scales) < 0.2 and scales.min() >= layer.scale_floor * (1 - 1e-6)


def test_a_saved_decoder_without_pixel_mixture_is_tfvae_0_3_0s_per_channel_likelihood():
    layer = tfvae.DiscretizedLogisticDecoder((4, 4, 3), num_components=2, hidden_units=[8])
    config = layer.get_config()
    assert config["pixel_mixture"] == "joint"
    assert type(layer).from_config(config).pixel_mixture == "joint"
    del config["pixel_mixture"]
    assert type(layer).from_config(config).pixel_mixture == "per_channel"
    with pytest.raises(ValueError, match="pixel_mixture must be one of"):
        tfvae.DiscretizedLogisticDecoder((4, 4, 3), pixel_mixture="shared")


def test_conditional_decoder_depends_on_the_condition_and_broadcasts_it_over_samples():
    keras.utils.set_random_seed(0)
    layer = tfvae.BernoulliDecoder(DATA_SHAPE, hidden_units=[8], condition_dim=4)
    layer.build((None, 2))
    one_hot = tf.one_hot([0, 1, 2], 4)
    p = layer(tf.stack([Z, Z]), condition=one_hot)
    np.testing.assert_allclose(p.mean()[0].numpy(), p.mean()[1].numpy())
    other = layer(Z, condition=tf.one_hot([3, 3, 3], 4))
    assert np.abs(other.mean().numpy() - p.mean()[0].numpy()).max() > 1e-4
    with pytest.raises(ValueError, match=r"^BernoulliDecoder is conditional \(condition_dim=4\): pass condition="):
        layer(Z)


def test_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="likelihood must be one of"):
        decoders.make_decoder("poisson", DATA_SHAPE)


@pytest.mark.parametrize("padding,kernel_size,channels,activation,use_bias", [
    ("same", 3, 32, None, True), ("valid", 3, 32, None, True), ("same", 5, 1, "sigmoid", True),
    ("same", 3, 8, None, False)])
def test_the_one_channel_head_computes_the_convolution_and_gradients_of_conv2d(padding, kernel_size, channels,
                                                                              activation, use_bias):
    """OneChannelConv2D's depthwise form: the same sums as Conv2D, forward and backward."""
    x = tf.Variable(np.random.default_rng(2).normal(size=(3, 12, 10, channels)).astype("float32"))
    args = dict(filters=1, kernel_size=kernel_size, padding=padding, activation=activation, use_bias=use_bias)
    plain, head = keras.layers.Conv2D(**args), networks.OneChannelConv2D(**args)
    plain.build(x.shape), head.build(x.shape)
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    plain.set_weights(weights), head.set_weights(weights)
    upstream = tf.constant(rng.normal(size=plain(x).shape).astype("float32"))

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]

    expected, got = outputs_and_gradients(plain), outputs_and_gradients(head)
    assert [t.shape for t in got] == [t.shape for t in expected]
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5 * float(tf.reduce_max(tf.abs(e))))


def test_the_one_channel_head_is_plain_conv2d_elsewhere_with_its_weights_and_config():
    """More output channels or strides take Conv2D's own kernel; weights and config are Conv2D's, so checkpoints load."""
    x = tf.constant(np.random.default_rng(4).normal(size=(2, 8, 8, 4)).astype("float32"))
    for args in (dict(filters=3, kernel_size=3, padding="same"), dict(filters=1, kernel_size=3, strides=2)):
        plain, head = keras.layers.Conv2D(**args, name="likelihood_params"), networks.OneChannelConv2D(
            **args, name="likelihood_params")
        plain.build(x.shape), head.build(x.shape)
        head.set_weights(plain.get_weights())
        np.testing.assert_array_equal(head(x).numpy(), plain(x).numpy())
        assert [(w.path, w.shape) for w in head.weights] == [(w.path, w.shape) for w in plain.weights]
        assert head.get_config() == plain.get_config()


def test_a_grey_conv_decoder_computes_its_logits_with_the_one_channel_head():
    layer = decoder("bernoulli", "conv")
    assert isinstance(layer.head, networks.OneChannelConv2D) and layer.head.filters == 1


def test_the_planar_head_is_a_1x1_convolution_with_channels_first_output_and_reloads():
    """PlanarHead(x)[p] = Conv2D 1x1 (x)[..., p], forward and backward; config and weights round-trip as Dense's."""
    x = tf.Variable(np.random.default_rng(5).normal(size=(3, 6, 5, 4)).astype("float32"))
    plain, head = keras.layers.Conv2D(7, 1), networks.PlanarHead(7)
    plain.build(x.shape), head.build(x.shape)
    rng = np.random.default_rng(6)
    kernel, bias = rng.normal(size=(4, 7)).astype("float32"), rng.normal(size=(7,)).astype("float32")
    plain.set_weights([kernel[None, None], bias]), head.set_weights([kernel, bias])
    upstream = tf.constant(rng.normal(size=(3, 6, 5, 7)).astype("float32"))

    def outputs_and_gradients(layer, channels_first):
        with tf.GradientTape() as tape:
            y = layer(x)
            y = tf.transpose(y, [1, 2, 3, 0]) if channels_first else y
            loss = tf.reduce_sum(y * upstream)
        return [y, *tape.gradient(loss, [x, *layer.trainable_variables])]

    expected, got = outputs_and_gradients(plain, False), outputs_and_gradients(head, True)
    got[2] = got[2][None, None]  # Dense kernel [4, 7] against Conv2D's [1, 1, 4, 7]
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5)
    assert head.compute_output_shape((3, 6, 5, 4)) == (7, 3, 6, 5)
    again = keras.layers.deserialize(keras.layers.serialize(head))
    assert isinstance(again, networks.PlanarHead) and again.get_config() == head.get_config()
