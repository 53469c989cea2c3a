"""Hierarchical VAEs (tfvae.hierarchical): the joint distributions' maths, bounds against a closed form, training."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from linear_gaussian import FixedLinearDecoder

import tfvae
from tfvae import evaluation, objectives
from tfvae.core import sampling
from tfvae.models import hierarchical
from tfvae.train import factory
from tfvae.train.config import TrainConfig

tfd = tfp.distributions


def _softplus(v):
    return np.log1p(np.exp(v))


def _dense(layer, inputs, activation=lambda v: v):
    return activation(inputs @ layer.kernel.numpy().astype(np.float64) + layer.bias.numpy().astype(np.float64))


def _normal_log_prob(z, loc, scale):
    return np.sum(-0.5 * ((z - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), axis=-1)


def _relu(v):
    return np.maximum(v, 0.0)


def _three_layer_encoder():
    keras.utils.set_random_seed(1)
    encoder = hierarchical.TopDownEncoder([5, 4, 3], hidden_units=[16], ladder_units=8, activation="relu")
    encoder.build((None, 6, 6, 1))
    for layer in [*encoder.prior_heads, *encoder.posterior_heads]:  # non-zero biases, so every term matters
        layer.bias.assign(np.random.default_rng(2).normal(size=layer.bias.shape).astype(np.float32) * 0.5)
    return encoder


def _hand_log_probs(encoder, x, z, prior_top):
    """(log q(z|x), log p(z)) by hand in NumPy for a 3-layer encoder: z = (z_3, z_2, z_1)."""
    floor = encoder.scale_floor
    d1 = _dense(encoder.bottom_up[0], encoder.trunk(x).numpy().astype(np.float64), _relu)
    d2 = _dense(encoder.bottom_up[1], d1, _relu)
    d3 = _dense(encoder.bottom_up[2], d2, _relu)
    z3, z2, z1 = (np.asarray(t, np.float64) for t in z)

    def gaussian(params):
        loc, raw = np.split(params, 2, axis=-1)
        return loc, _softplus(raw) + floor

    loc3, scale3 = gaussian(_dense(encoder.posterior_heads[2], d3))
    log_q = _normal_log_prob(z3, loc3, scale3)
    log_p = _normal_log_prob(z3, 0.0, 1.0) if prior_top == "standard_normal" else None
    t2 = _dense(encoder.top_down[1], z3, _relu)  # t_2 = g_2(z_3)
    t1 = _dense(encoder.top_down[0], np.concatenate([z2, t2], -1), _relu)  # t_1 = g_1([z_2, t_2])
    for t, d, z_l, level in ((t2, d2, z2, 1), (t1, d1, z1, 0)):
        prior_params = _dense(encoder.prior_heads[level], t)
        delta = _dense(encoder.posterior_heads[level], np.concatenate([t, d], -1))
        log_p = log_p + _normal_log_prob(z_l, *gaussian(prior_params))
        log_q = log_q + _normal_log_prob(z_l, *gaussian(prior_params + delta))
    return log_q, log_p


def test_joint_log_probs_equal_the_sum_of_each_layers_conditional_computed_by_hand():
    encoder = _three_layer_encoder()
    prior = hierarchical.HierarchicalPrior(tfvae.StandardNormalPrior(3), [5, 4, 3])
    x = tf.random.stateless_uniform([4, 6, 6, 1], seed=[3, 4])
    q = encoder(x)
    p = prior.distribution(encoder=encoder)
    for z in (q.sample(seed=[5, 6]), p.sample(4, seed=[7, 8])):
        assert [t.shape[-1] for t in z] == [3, 4, 5] and z._fields == ("z_3", "z_2", "z_1")
        hand_q, hand_p = _hand_log_probs(encoder, x, z, "standard_normal")
        np.testing.assert_allclose(q.log_prob(z).numpy(), hand_q, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(p.log_prob(z).numpy(), hand_p, rtol=1e-5, atol=1e-4)


def test_joint_posterior_sampled_with_sample_dimensions_keeps_each_layer_conditional_on_its_own_draw():
    encoder = _three_layer_encoder()
    x = tf.random.stateless_uniform([2, 6, 6, 1], seed=[1, 1])
    q = encoder(x)
    z = sampling.sample_posterior(q, tf.constant([4, 5]), num_samples=3)
    assert [t.shape for t in z] == [[3, 2, 3], [3, 2, 4], [3, 2, 5]]
    hand_q, _ = _hand_log_probs(encoder, x[None].numpy().repeat(3, 0).reshape(6, 6, 6, 1),
                                [t.numpy().reshape(6, -1) for t in z], "standard_normal")
    np.testing.assert_allclose(q.log_prob(z).numpy().reshape(6), hand_q, rtol=1e-5, atol=1e-4)


class _LinearGaussianHierarchy:
    """z_2 ~ N(0, I_2), z_1 | z_2 ~ N(z_2 A + c, diag(S^2)), x | z ~ N(W [z_2, z_1] + b, sigma^2 I_5).

    The top-down layers are linear and the prior head's scale part has a zero
    kernel, so TopDownEncoder's prior is exactly this model; then
    p(x) = N(b + W_1 c, (W_2 + W_1 A^T)(W_2 + W_1 A^T)^T + W_1 S^2 W_1^T + sigma^2 I).
    """

    dims, data_dim, sigma = (3, 2), 5, 0.4

    def __init__(self):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        d1, d2 = self.dims
        self.encoder = hierarchical.TopDownEncoder(list(self.dims), hidden_units=[8], ladder_units=4,
                                                   activation="linear")
        self.encoder.build((None, self.data_dim))
        head = self.encoder.prior_heads[0]
        kernel = head.kernel.numpy()
        kernel[:, d1:] = 0.0
        head.kernel.assign(kernel)
        head.bias.assign(rng.normal(size=2 * d1).astype(np.float32) * 0.5)
        top_down = self.encoder.top_down[0]
        w_td, b_td = top_down.kernel.numpy().astype(np.float64), top_down.bias.numpy().astype(np.float64)
        w_p, b_p = kernel.astype(np.float64), head.bias.numpy().astype(np.float64)
        self.A = w_td @ w_p[:, :d1]  # [d2, d1]
        self.c = b_td @ w_p[:, :d1] + b_p[:d1]
        self.S = _softplus(b_p[d1:]) + self.encoder.scale_floor
        self.W = rng.normal(size=(self.data_dim, d2 + d1))  # decoder input is [z_2, z_1]
        self.b = rng.normal(size=self.data_dim)
        self.model = tfvae.VAE(self.encoder, FixedLinearDecoder(self.W, self.b, self.sigma),
                               hierarchical.HierarchicalPrior(tfvae.StandardNormalPrior(d2), list(self.dims)))
        self.model.build((None, self.data_dim))
        z2 = rng.normal(size=(6, d2))
        z1 = z2 @ self.A + self.c + self.S * rng.normal(size=(6, d1))
        self.x = (np.concatenate([z2, z1], 1) @ self.W.T + self.b + self.sigma * rng.normal(size=(6, 5)))

    def log_evidence(self):
        w2, w1 = self.W[:, : self.dims[1]], self.W[:, self.dims[1]:]
        mixing = w2 + w1 @ self.A.T
        cov = mixing @ mixing.T + w1 @ np.diag(self.S**2) @ w1.T + self.sigma**2 * np.eye(self.data_dim)
        return tfd.MultivariateNormalFullCovariance(self.b + w1 @ self.c, cov).log_prob(self.x).numpy()


@pytest.fixture(scope="module")
def linear_hierarchy():
    return _LinearGaussianHierarchy()


def test_elbo_bounds_the_closed_form_evidence_and_iwae_rises_toward_it_with_k(linear_hierarchy):
    model, x = linear_hierarchy.model, tf.constant(linear_hierarchy.x, tf.float32)
    log_px = linear_hierarchy.log_evidence()
    copies = lambda n: tf.tile(x, [n, 1])  # noqa: E731 - each copy of an example gets its own noise
    elbos = model.elbo(copies(400), seed=1).numpy().reshape(400, -1)
    elbo, elbo_se = elbos.mean(0), elbos.std(0) / np.sqrt(len(elbos))
    assert np.all(elbo + 4 * elbo_se < log_px), (elbo, log_px)
    bounds = {k: model.log_likelihood(copies(8), num_samples=k, seed=2).numpy().reshape(8, -1)
              for k in (1, 10, 100, 2000)}
    means = {k: v.mean() for k, v in bounds.items()}
    ses = {k: v.mean(1).std() / np.sqrt(len(v)) + 1e-3 for k, v in bounds.items()}
    assert means[1] < means[10] < means[100] <= means[2000] + 4 * ses[2000], means
    assert means[10] - means[1] > 4 * (ses[1] + ses[10])
    assert means[2000] <= log_px.mean() + 4 * ses[2000]
    assert log_px.mean() - means[2000] < 0.1 * (log_px.mean() - means[1]), (means, log_px.mean())


def test_joint_prior_samples_match_its_closed_form_moments(linear_hierarchy):
    h = linear_hierarchy
    z2, z1 = (t.numpy().astype(np.float64) for t in h.model.prior.sample(40_000, seed=[1, 2]))
    n = len(z1)
    np.testing.assert_allclose(z2.mean(0), 0.0, atol=4 / np.sqrt(n))
    assert np.all(np.abs(z1.mean(0) - h.c) < 4 * np.sqrt(np.diag(h.A.T @ h.A) + h.S**2) / np.sqrt(n))
    np.testing.assert_allclose(np.cov(z1.T), h.A.T @ h.A + np.diag(h.S**2), atol=0.05 * (1 + np.abs(h.A).max()**2))
    np.testing.assert_allclose((z2.T @ (z1 - z1.mean(0))) / n, h.A, atol=0.05 * (1 + np.abs(h.A).max()))


def test_rate_is_the_sum_of_analytic_per_layer_kls_at_the_sampled_upper_layers(linear_hierarchy):
    model, x = linear_hierarchy.model, tf.constant(linear_hierarchy.x, tf.float32)
    sample = model.sample_terms(x, seed=3)
    q, p = sample.approx_posterior, sample.prior
    z2, z1 = sample.z
    q2, q1 = sampling.walk_joint(q, lambda i, d, r: sample.z[i])[0]
    p2, p1 = sampling.walk_joint(p, lambda i, d, r: sample.z[i])[0]

    def closed_form(qd, pd):
        mq, sq, mp, sp = (np.asarray(v, np.float64) for v in (qd.mean(), qd.stddev(), pd.mean(), pd.stddev()))
        return np.sum(np.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5, -1).reshape(-1)

    expected = [closed_form(q2, p2), closed_form(q1, p1)]
    for got, want in zip(sample.layer_rates, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sample.rate.numpy(), sum(expected), rtol=1e-4, atol=1e-4)
    terms = model.elbo_terms(x, seed=3)
    np.testing.assert_allclose(terms["rate_z_2"] + terms["rate_z_1"], terms["rate"], rtol=1e-6)
    # the rate is unbiased for KL(q || p) of the joints: E_q[log q(z|x) - log p(z)]
    z = q.sample(20_000, seed=[9, 9])
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).numpy()
    rates = model.rate(tf.tile(x, [400, 1]), seed=5).numpy().reshape(400, -1)
    se = monte_carlo.std(0) / np.sqrt(len(monte_carlo)) + rates.std(0) / np.sqrt(len(rates))
    assert np.all(np.abs(rates.mean(0) - monte_carlo.mean(0)) < 4 * se + 1e-3)


def test_free_bits_apply_within_each_layer(linear_hierarchy):
    model, x = linear_hierarchy.model, tf.constant(linear_hierarchy.x, tf.float32)
    sample = model.sample_terms(x, seed=4)
    floor = 50.0  # above every layer's KL: each layer costs the floor
    per_layer = objectives.free_bits_rate(sample.approx_posterior, sample.prior, sample.layer_rates, floor, 100,
                                          z=sample.z)
    np.testing.assert_allclose(per_layer.numpy(), 2 * floor)
    per_dim = objectives.per_dimension_kl(sample.approx_posterior, sample.prior, sample.z).numpy()  # [B, 2 + 3]
    assert per_dim.shape == (6, 5)
    np.testing.assert_allclose(per_dim.sum(1), sample.rate.numpy(), rtol=1e-4, atol=1e-4)
    floor = 0.3
    grouped = objectives.free_bits_rate(sample.approx_posterior, sample.prior, sample.layer_rates, floor, 1,
                                        z=sample.z)
    np.testing.assert_allclose(grouped.numpy(), np.maximum(per_dim, floor).sum(1), rtol=1e-5)


def test_mixed_precision_keeps_joint_log_probs_and_rates_float32():
    config = TrainConfig(latent_dims=(6, 3), hidden_units=(16,), ladder_units=8, precision="mixed_bfloat16")
    model = factory.build_model(config, (8, 8, 1))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model.build((None, 8, 8, 1))
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.encoder.top_down[0].compute_dtype == "bfloat16"
    x = tf.cast(tf.random.stateless_uniform([3, 8, 8, 1], seed=[1, 2]) > 0.5, tf.float32)
    q, p = model.posterior(x), model.prior
    z = q.sample(seed=[3, 4])
    assert all(t.dtype == tf.float32 for t in z)
    assert q.log_prob(z).dtype == tf.float32 and p.log_prob(z).dtype == tf.float32
    terms = model.elbo_terms(x, seed=1)
    assert all(v.dtype == tf.float32 for v in terms.values()) and set(terms) >= {"rate_z_2", "rate_z_1"}


@pytest.mark.parametrize("prior", ["standard_normal", "mixture", "vamp", "flow"])
def test_every_prior_serves_as_the_top_layer_and_the_joint_density_normalises_its_draws(prior):
    config = TrainConfig(latent_dims=(4, 2), hidden_units=(16,), ladder_units=8, prior=prior, prior_components=3,
                         flow_steps=1, flow_hidden_units=(8,))
    model = factory.build_model(config, (6, 6, 1))
    model.build((None, 6, 6, 1))
    x = tf.cast(tf.random.stateless_uniform([5, 6, 6, 1], seed=[1, 2]) > 0.5, tf.float32)
    p = model.prior
    z = p.sample(3, seed=[5, 6])
    top = model.prior_layer.top
    top_density = (top.distribution(encoder=model.encoder.top_posterior) if prior == "vamp"
                   else top.distribution()).log_prob(z[0])
    conditional = sampling.walk_joint(p, lambda i, d, r: z[i])[0][1].log_prob(z[1])
    np.testing.assert_allclose(p.log_prob(z).numpy(), (top_density + conditional).numpy(), rtol=1e-5, atol=1e-5)
    iwae = model.log_likelihood(x, num_samples=200, seed=3).numpy()
    elbo = np.mean([model.elbo(x, seed=s).numpy() for s in range(50)], axis=0)
    assert np.all(np.isfinite(iwae)) and iwae.mean() > elbo.mean()


@pytest.mark.parametrize("overrides, message", [
    ({"posterior": "iaf"}, "posterior must be diagonal with several --latent_dims"),
    ({"conditional": True}, "conditional must be off with several --latent_dims"),
    ({"latent_dims": (8, 0)}, r"latent_dims must be positive ints; got \[8, 0\]"),
    ({"ladder_units": 0}, "ladder_units must be > 0; got 0"),
    ({"free_bits": 0.1, "free_bits_group_size": 3}, r"free_bits_group_size must divide latent_dim \(8\)"),
    ({"gradient_spike_factor": 0.5}, "gradient_spike_factor must be 0 .off. or > 1; got 0.5"),
])
def test_bad_hierarchy_settings_give_one_line_errors(overrides, message):
    config = TrainConfig(**{"latent_dims": (8, 4), **overrides})
    with pytest.raises(ValueError, match=message) as error:
        factory.check_config(config)
    assert "\n" not in str(error.value)


def test_latent_dims_set_the_total_latent_dim_and_one_entry_is_the_single_layer_model():
    assert TrainConfig(latent_dims=(32, 16)).latent_dim == 48
    single = factory.build_model(TrainConfig(latent_dims=(7,)), (8, 8, 1))
    assert isinstance(single.encoder, tfvae.GaussianEncoder) and single.latent_dim == 7
    assert single.latent_dims == [7] and single.latent_names == ["z"]


def test_hierarchical_run_trains_evaluates_reloads_and_exports_each_layer(tmp_path, fashion_mnist_dir):
    config = TrainConfig(dataset="idx", data_dir=fashion_mnist_dir, train_examples=512, latent_dims=(8, 4),
                         hidden_units=(64,), ladder_units=32, epochs=4, batch_size=64, steps_per_execution=4,
                         validation_examples=128, eval_every_epochs=2, gradient_spike_factor=5.0, seed=0)
    model_dir = str(tmp_path / "run")
    history = keras.callbacks.History()
    tfvae.train_and_evaluate(config, model_dir, callbacks=[history], verbose=0)
    logs = history.history
    assert logs["elbo"][-1] > logs["elbo"][0] + 20 and logs["val_elbo"][-1] > logs["val_elbo"][0]
    assert {"val_rate_z_2", "val_rate_z_1", "val_active_units_z_1", "gradient_spikes"} <= set(logs)
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    reloaded = tfvae.load_model(model_dir)
    x = tfvae.data.prepare_data(config).test_images[:128]
    mine = evaluation.elbo_metrics(reloaded, x)
    np.testing.assert_allclose(mine["elbo"], metrics["elbo"], atol=1e-3)
    np.testing.assert_allclose(mine["rate_z_2"] + mine["rate_z_1"], mine["rate"], rtol=1e-5)
    units = evaluation.active_units(reloaded, x, per_layer=True)
    assert set(units) == {"z_2", "z_1"} and 0 < sum(units.values()) <= 12
    export_dir = str(tmp_path / "export")
    tfvae.export.export_model(reloaded, export_dir, version=1)
    served = tf.saved_model.load(os.path.join(export_dir, "1")).signatures["encode"]
    outputs = served(images=tf.constant(x[:4], tf.float32), seed=tf.constant([1], tf.int64))
    locations = sampling.posterior_location(reloaded.posterior(tf.constant(x[:4], tf.float32)))
    np.testing.assert_allclose(outputs["loc_z_2"], locations[0], atol=1e-5)
    np.testing.assert_allclose(outputs["loc_z_1"], locations[1], atol=1e-5)
    np.testing.assert_allclose(outputs["loc"], tf.concat(locations, -1), atol=1e-5)
    assert outputs["z"].shape == (4, 12) and outputs["scale_z_1"].shape == (4, 8)


def test_layerwise_replica_invariant_sampler_draws_from_the_joint_posterior(linear_hierarchy):
    model, x = linear_hierarchy.model, tf.constant(linear_hierarchy.x[:1], tf.float32)
    q = model.posterior(x)
    ours = hierarchical.concat_latents(sampling.sample_posterior(q, tf.constant([3, 4]), 40_000)).numpy()[:, 0]
    reference = hierarchical.concat_latents(q.sample(40_000, seed=[5, 6])).numpy()[:, 0]
    n = len(ours)
    spread = reference.std(0)
    assert np.all(np.abs(ours.mean(0) - reference.mean(0)) < 5 * spread * np.sqrt(2 / n))
    np.testing.assert_allclose(np.corrcoef(ours.T), np.corrcoef(reference.T), atol=0.03)
    np.testing.assert_allclose(ours.std(0), spread, rtol=0.03)


@pytest.mark.parametrize("architecture, hidden_units", [("conv", (8, 16)), ("resnet", (8, 16))])
def test_convolutional_trunks_feed_the_ladder_and_the_conv_decoder_takes_the_latent_list(architecture, hidden_units):
    config = TrainConfig(latent_dims=(6, 3), architecture=architecture, hidden_units=hidden_units, ladder_units=8,
                         blocks_per_level=1, likelihood="discretized_logistic", mixture_components=2)
    model = factory.build_model(config, (12, 12, 3))
    model.build((None, 12, 12, 3))
    x = tf.round(tf.random.stateless_uniform([2, 12, 12, 3], seed=[1, 2]) * 255.0) / 255.0
    z = model.posterior(x).sample(seed=[3, 4])
    direct = model.decoder(z).log_prob(x)  # the decoder concatenates the list itself
    np.testing.assert_allclose(direct.numpy(), model.data_log_prob(x, z).numpy(), rtol=1e-6)
    np.testing.assert_allclose(direct.numpy(), model.decoder(hierarchical.concat_latents(z)).log_prob(x).numpy(),
                               rtol=1e-6)
    assert np.all(np.isfinite(model.log_likelihood(x, num_samples=20, seed=5).numpy()))


def test_iwae_objective_on_a_hierarchy_is_the_negative_bound_of_the_joint_log_weights(linear_hierarchy):
    h = linear_hierarchy
    model = tfvae.VAE(h.encoder, h.model.decoder, h.model.prior_layer, objective=tfvae.IWAE(num_samples=7))
    x, seed = tf.constant(h.x, tf.float32), tf.constant([5, 6])
    _, loss = model.objective.loss(model, x, seed, step=0)
    sample = model.sample_terms(x, seed, 7)
    log_w = (sample.log_likelihood + sample.prior.log_prob(sample.z) - sample.approx_posterior.log_prob(sample.z))
    by_hand = np.log(np.mean(np.exp(log_w.numpy().astype(np.float64)), axis=0))
    np.testing.assert_allclose(-loss.numpy(), by_hand, rtol=1e-5, atol=1e-4)
