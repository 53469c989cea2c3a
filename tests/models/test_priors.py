"""Priors: normalised densities, consistent sampling, and learnable parameters that train."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from builders import randomise
from checkers import check_distribution_layer

import tfvae
from tfvae.models import priors

tfd = tfp.distributions
D = 2
DATA_SHAPE = (4, 4, 1)


def encoder():
    keras.utils.set_random_seed(0)
    enc = tfvae.GaussianEncoder(D, hidden_units=[8])
    enc.build((None, *DATA_SHAPE))
    return enc


def make(name):
    keras.utils.set_random_seed(1)
    layer = {
        "mixture": lambda: tfvae.MixtureOfGaussiansPrior(D, num_components=3),
        "vamp": lambda: tfvae.VampPrior(D, DATA_SHAPE, num_pseudo_inputs=5),
        "maf": lambda: tfvae.FlowPrior(D, flow="maf", num_steps=2, hidden_units=[8]),
        "real_nvp": lambda: tfvae.FlowPrior(D, flow="real_nvp", num_steps=2, hidden_units=[8]),
    }[name]()
    layer.build()
    if name in ("maf", "real_nvp"):
        for i, network in enumerate(layer.networks):
            randomise(network, seed=i, scale=0.3)  # a non-trivial flow
    return layer


def distribution(layer, enc):
    return layer.distribution(encoder=enc) if getattr(layer, "uses_encoder", False) else layer.distribution()


FAMILIES = ["mixture", "vamp", "maf", "real_nvp"]


@pytest.mark.parametrize("name", ["standard_normal", *FAMILIES])
def test_every_prior_keeps_the_distribution_layer_contract(name):
    enc = encoder()
    make_layer = {
        "standard_normal": lambda: tfvae.StandardNormalPrior(D),
        "mixture": lambda: tfvae.MixtureOfGaussiansPrior(D, num_components=3),
        "vamp": lambda: tfvae.VampPrior(D, DATA_SHAPE, num_pseudo_inputs=5),
        "maf": lambda: tfvae.FlowPrior(D, flow="maf", num_steps=2, hidden_units=[8]),
        "real_nvp": lambda: tfvae.FlowPrior(D, flow="real_nvp", num_steps=2, hidden_units=[8]),
    }[name]

    def to_distribution(layer):
        if not layer.built:
            layer.build(None)
        return distribution(layer, enc)

    check_distribution_layer(make_layer, to_distribution, batch_shape=[], event_shape=[D],
                             value=tf.constant([0.3, -0.7], tf.float32))


@pytest.mark.parametrize("name", FAMILIES)
def test_prior_density_integrates_to_one(name):
    """int p(z) dz = E_g[p(z) / g(z)] for a broad proposal g = N(0, 3^2 I): 1 within 4 standard errors."""
    prior = distribution(make(name), encoder())
    proposal = tfd.MultivariateNormalDiag(tf.zeros(D), 3.0 * tf.ones(D))
    z = proposal.sample(200_000, seed=[1, 2])
    ratio = tf.exp(prior.log_prob(z) - proposal.log_prob(z)).numpy().astype(np.float64)
    standard_error = ratio.std() / np.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < 4 * standard_error + 1e-3, (ratio.mean(), standard_error)


@pytest.mark.parametrize("name", FAMILIES)
def test_prior_samples_have_the_density_mean(name):
    """The sample mean of z ~ p equals int z p(z) dz computed by importance sampling, within standard errors."""
    prior = distribution(make(name), encoder())
    samples = prior.sample(50_000, seed=[3, 4]).numpy().astype(np.float64)
    proposal = tfd.MultivariateNormalDiag(tf.zeros(D), 3.0 * tf.ones(D))
    z = proposal.sample(200_000, seed=[5, 6])
    weights = tf.exp(prior.log_prob(z) - proposal.log_prob(z)).numpy().astype(np.float64)
    weighted = weights[:, None] * z.numpy()
    integral = weighted.mean(0)
    tolerance = 4 * np.sqrt(samples.var(0) / len(samples) + weighted.var(0) / len(weighted)) + 1e-3
    assert np.all(np.abs(samples.mean(0) - integral) < tolerance), (samples.mean(0), integral, tolerance)


def test_vamp_prior_is_the_mixture_of_the_encoders_posteriors_at_the_pseudo_inputs():
    enc, layer = encoder(), make("vamp")
    z = tf.random.normal([7, D], seed=1)
    components = enc(layer.pseudo_inputs)
    expected = tf.reduce_logsumexp(components.log_prob(z[:, None, :]), axis=1) - np.log(5.0)
    np.testing.assert_allclose(layer.distribution(encoder=enc).log_prob(z).numpy(), expected.numpy(), rtol=1e-5)
    assert np.all((layer.pseudo_inputs.numpy() > 0) & (layer.pseudo_inputs.numpy() < 1))


def test_vamp_prior_of_iaf_posteriors_has_the_mixture_density_in_a_graph():
    # Each component's IAF is inverted at z broadcast against the K pseudo-inputs' contexts: in a tf.function
    # (training's graph) that once failed to build, since the inversion's loop changed shape.
    keras.utils.set_random_seed(0)
    enc = tfvae.IAFEncoder(latent_dim=3, hidden_units=[8], num_flows=2, flow_hidden_units=[8])
    enc.build((None, *DATA_SHAPE))
    randomise(enc, seed=2)
    layer = tfvae.VampPrior(3, DATA_SHAPE, num_pseudo_inputs=4)
    layer.build()
    z = tf.random.normal([6, 3], seed=3)
    in_graph = tf.function(lambda z: layer.distribution(encoder=enc).log_prob(z))(z)
    each = tf.stack([enc(layer.pseudo_inputs[k:k + 1]).log_prob(z[:, None, :])[:, 0] for k in range(4)], axis=1)
    np.testing.assert_allclose(in_graph.numpy(), (tf.reduce_logsumexp(each, axis=1) - np.log(4.0)).numpy(),
                               rtol=1e-4, atol=1e-4)


def test_vamp_prior_without_an_encoder_says_what_it_needs():
    with pytest.raises(ValueError, match="needs the encoder"):
        make("vamp").distribution()


@pytest.mark.parametrize("name", FAMILIES)
def test_learnable_prior_parameters_receive_gradients_and_train(name):
    keras.utils.set_random_seed(0)
    prior_layer = make(name)
    model = tfvae.VAE(encoder(), tfvae.BernoulliDecoder(DATA_SHAPE, hidden_units=[8]), prior_layer)
    model.build((None, *DATA_SHAPE))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    prior_ids = {id(v) for v in prior_layer.trainable_variables}
    assert prior_ids and prior_ids <= {id(v) for v in model.trainable_variables}
    before = [v.numpy().copy() for v in prior_layer.trainable_variables]
    x = (np.random.default_rng(0).random((16, *DATA_SHAPE)) > 0.5).astype(np.float32)
    for _ in range(3):
        model.train_step(tf.constant(x))
    changed = [not np.allclose(b, v.numpy()) for b, v in zip(before, prior_layer.trainable_variables, strict=True)]
    assert all(changed), [v.name for v, c in zip(prior_layer.trainable_variables, changed, strict=True) if not c]


@pytest.mark.parametrize("name", FAMILIES)
def test_prior_config_round_trip_gives_the_same_density(name):
    layer, enc = make(name), encoder()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    if not clone.built:
        clone.build()
    clone.set_weights(layer.get_weights())
    z = tf.random.normal([4, D], seed=2)
    np.testing.assert_allclose(distribution(clone, enc).log_prob(z).numpy(), distribution(layer, enc).log_prob(z).numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("name, kwargs, message", [
    ("mixture", {"num_components": 0}, "num_components must be a positive int; got 0"),
    ("vamp", {"data_shape": DATA_SHAPE, "num_pseudo_inputs": 0}, "num_pseudo_inputs must be a positive int; got 0"),
    ("flow", {"flow": "glow"}, "flow must be one of"),
    ("flow", {"num_steps": 0}, "num_steps must be a positive int; got 0"),
    ("prism", {}, "prior must be one of"),
])
def test_bad_prior_arguments_raise_one_line_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        priors.make_prior(name, D, **kwargs)
