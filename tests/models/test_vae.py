"""The VAE's public contract: distribution shapes, round trips, training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from builders import DATA_SHAPE, binary_batch, make_model

import tfvae
from tfvae.core import sampling

tfd = tfp.distributions






@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_parts_return_distributions_with_the_documented_shapes(architecture, likelihood):
    model = make_model(architecture, likelihood)
    x = binary_batch()
    q = model.encoder(x)
    assert isinstance(q, tfd.Distribution)
    assert q.batch_shape == [5] and q.event_shape == [3]
    likelihood_dist = model.decoder(q.sample(seed=[1, 2]))
    assert likelihood_dist.batch_shape == [5] and likelihood_dist.event_shape == list(DATA_SHAPE)
    assert model.prior.batch_shape == [] and model.prior.event_shape == [3]
    for name in ("elbo", "rate", "distortion"):
        assert getattr(model, name)(x, seed=0).shape == [5]
    assert model.log_likelihood(x, num_samples=4, seed=0).shape == [5]
    assert model.sample(7, seed=1).shape == [7, *DATA_SHAPE]
    assert model.reconstruct(x).shape == [5, *DATA_SHAPE]


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_decoder_keeps_leading_sample_dimensions_and_matches_per_sample_calls(architecture):
    model = make_model(architecture)
    x = binary_batch()
    z = model.encoder(x).sample(4, seed=[3, 4])  # [4, 5, 3]
    likelihood = model.decoder(z)
    assert likelihood.batch_shape == [4, 5] and likelihood.event_shape == list(DATA_SHAPE)
    log_px = likelihood.log_prob(x)  # x broadcasts against the sample dimension
    per_sample = tf.stack([model.decoder(z[j]).log_prob(x) for j in range(4)])
    np.testing.assert_allclose(log_px, per_sample, rtol=1e-5)


def test_posterior_scale_never_falls_below_its_floor():
    encoder = tfvae.GaussianEncoder(2, hidden_units=[4], scale_floor=0.05)
    encoder(np.zeros((1, *DATA_SHAPE), np.float32))
    encoder.head.bias.assign(np.array([0, 0, -1e4, -1e4], np.float32))
    scale = encoder(np.zeros((1, *DATA_SHAPE), np.float32)).stddev()
    np.testing.assert_allclose(scale, 0.05, rtol=1e-6)


def test_elbo_terms_equal_a_hand_computed_elbo_with_the_same_noise():
    """distortion, rate and elbo against plain NumPy: z = loc + scale * eps, Bernoulli log-likelihood from the
    decoder's logits, and the closed-form KL(N(loc, scale^2) || N(0, 1)) summed over dimensions."""
    model = make_model()
    x = binary_batch()
    terms = model.elbo_terms(x, seed=3)
    q = model.encoder(x)
    loc, scale = q.mean().numpy().astype(np.float64), q.stddev().numpy().astype(np.float64)
    eps = tf.random.stateless_normal([1, 5, 3], seed=tfvae.sampling.as_seed(3), alg="philox").numpy()[0]
    z = loc + scale * eps
    logits = model.decoder(z.astype(np.float32)).distribution.logits.numpy().astype(np.float64)
    log_likelihood = np.sum(x * logits - np.logaddexp(0.0, logits), axis=(1, 2, 3))
    rate = np.sum(0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale), axis=1)
    np.testing.assert_allclose(terms["distortion"], -log_likelihood, rtol=1e-5)
    np.testing.assert_allclose(terms["rate"], rate, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["elbo"], log_likelihood - rate, rtol=1e-5)


def test_bernoulli_decoder_log_prob_uses_logits_stably():
    decoder = tfvae.BernoulliDecoder(DATA_SHAPE, hidden_units=[4])
    decoder(np.zeros((1, 2), np.float32))
    decoder.head.bias.assign(np.full(decoder.head.bias.shape, 200.0, np.float32))
    dist = decoder(np.zeros((1, 2), np.float32))
    ones, zeros = np.ones((1, *DATA_SHAPE), np.float32), np.zeros((1, *DATA_SHAPE), np.float32)
    assert float(dist.log_prob(ones)[0]) == pytest.approx(0.0, abs=1e-3)
    assert np.isfinite(dist.log_prob(zeros)).all() and float(dist.log_prob(zeros)[0]) < -1e4


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_config_round_trip_rebuilds_the_same_architecture_and_objective(architecture):
    objective = tfvae.ELBO(beta=0.5, kl_weight=tfvae.schedules.Cyclical(20, 7), free_bits=0.1)
    model = make_model(architecture, objective=objective)
    model.build((None, *DATA_SHAPE))
    clone = tfvae.VAE.from_config(model.get_config())
    clone.build((None, *DATA_SHAPE))
    assert clone.get_config() == model.get_config()
    assert clone.objective == objective and clone.objective.kl_weight == tfvae.schedules.Cyclical(20, 7)
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]


@pytest.mark.parametrize("objective", [tfvae.ELBO(kl_weight=tfvae.schedules.Linear(30), kl_method="monte_carlo"),
                                       tfvae.IWAE(num_samples=3, kl_weight=tfvae.schedules.Cyclical(10, 4))])
def test_keras_file_reload_gives_the_same_log_prob_objective_and_training_settings(tmp_path, objective):
    model = make_model("conv", "gaussian", objective=objective)
    x = binary_batch()
    model(x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), seed=5, clip_global_norm=2.0)
    path = str(tmp_path / "vae.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.objective == objective and reloaded.data_shape == DATA_SHAPE
    assert (reloaded.seed, reloaded.clip_global_norm) == (5, 2.0)
    for step in (0, 3, 12):
        assert float(reloaded.objective.rate_weight(step)) == float(objective.rate_weight(step))
    z = model.encoder(x).mean()
    np.testing.assert_allclose(reloaded.decoder(z).log_prob(x), model.decoder(z).log_prob(x), rtol=1e-6)
    np.testing.assert_allclose(reloaded.elbo(x, seed=4), model.elbo(x, seed=4), rtol=1e-6)


def test_noise_scheme_is_a_training_setting_that_round_trips_and_draws_the_steps_noise(tmp_path):
    model = make_model(objective=tfvae.ELBO(kl_weight=tfvae.schedules.Linear(100)))
    x = tf.constant(binary_batch())
    model(x)
    assert model.noise_scheme == "global_batch"  # before compile, and by default
    model.compile(optimizer=keras.optimizers.SGD(0.0), seed=5, noise_scheme="per_example")
    path = str(tmp_path / "vae.keras")
    model.save(path)
    assert keras.saving.load_model(path).noise_scheme == "per_example"
    terms, _, _ = model.compute_loss_and_gradients(x)
    step = model.optimizer.iterations
    by_scheme = {scheme: model.elbo_terms(x, sampling.training_seed(5, step, scheme))["distortion"]
                 for scheme in sampling.NOISE_SCHEMES}
    np.testing.assert_array_equal(terms["distortion"], by_scheme["per_example"])
    assert not np.array_equal(by_scheme["per_example"], by_scheme["global_batch"])
    model.compile(optimizer=keras.optimizers.SGD(0.0), seed=5)  # a compile config without it: the default
    np.testing.assert_array_equal(model.compute_loss_and_gradients(x)[0]["distortion"], by_scheme["global_batch"])
    with pytest.raises(ValueError, match=r"noise_scheme must be one of \('global_batch', 'per_example'\); got 'r'"):
        model.compile(noise_scheme="r")


def test_train_step_with_warmup_starts_at_pure_distortion():
    model = make_model(objective=tfvae.ELBO(kl_weight=tfvae.schedules.Linear(100)))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = model.train_step(tf.constant(binary_batch()))
    assert float(logs["loss"]) == pytest.approx(float(logs["distortion"]), rel=1e-6)
    assert float(logs["rate"]) > 0


def test_fit_decreases_the_loss_on_structured_data():
    model = make_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(0)
    prototypes = (rng.random((2, *DATA_SHAPE)) < 0.5).astype(np.float32)
    flips = rng.random((32, *DATA_SHAPE)) < 0.03
    x = np.abs(prototypes[np.arange(32) % 2] - flips).astype(np.float32)
    before = model.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    model.fit(tf.data.Dataset.from_tensor_slices(x).batch(32).repeat(), steps_per_epoch=30, epochs=2, verbose=0)
    after = model.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    # 64 pixels of p=0.5 cost 44 nats untrained; two prototypes with 3% flips need ~10.
    assert before["elbo"] < -40
    assert after["elbo"] > -20


def test_same_seed_gives_the_same_samples_and_elbo():
    model = make_model()
    x = binary_batch()
    np.testing.assert_array_equal(model.sample(4, seed=9), model.sample(4, seed=9))
    np.testing.assert_array_equal(model.elbo(x, seed=9), model.elbo(x, seed=9))
    assert not np.array_equal(model.elbo(x, seed=9), model.elbo(x, seed=10))


@pytest.mark.parametrize("build, message", [
    (lambda: tfvae.ELBO(beta=-1.0), "beta must be >= 0; got -1.0"),
    (lambda: tfvae.ELBO(kl_method="exact"), "kl_method must be one of"),
    (lambda: tfvae.ELBO(free_bits=-0.5), "free_bits must be >= 0"),
    (lambda: tfvae.IWAE(num_samples=0), "num_samples must be a positive int; got 0"),
    (lambda: tfvae.schedules.Cyclical(cycle_steps=5, warmup_steps=10), "kl_cycle_steps must be >= kl_warmup_steps"),
    (lambda: tfvae.schedules.Linear(-3), "kl_warmup_steps must be an int >= 0; got -3"),
    (lambda: make_model(objective=tfvae.ELBO(free_bits=1.0, free_bits_group_size=2)),
     r"free_bits_group_size must divide latent_dim \(3\) or be at least it; got 2"),
    (lambda: make_model(objective="kl"), "objective must be one of"),
    (lambda: make_model().compile(clip_global_norm=0.0), "clip_global_norm must be > 0"),
])
def test_bad_model_arguments_raise_one_line_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_arguments_that_moved_out_of_vae_name_their_new_home():
    with pytest.raises(TypeError, match=r"VAE no longer takes beta; use objective=tfvae.ELBO\(beta=...\)"):
        make_model(beta=0.5)
    with pytest.raises(TypeError, match=r"VAE no longer takes seed; use model.compile\(seed=...\)"):
        make_model(seed=1)


def test_bad_part_arguments_raise_one_line_errors():
    with pytest.raises(ValueError, match="latent_dim must be a positive int; got 0"):
        tfvae.GaussianEncoder(0)
    with pytest.raises(ValueError, match="architecture must be one of"):
        tfvae.GaussianEncoder(2, architecture="rnn")
    with pytest.raises(ValueError, match="divisible by 4"):
        tfvae.BernoulliDecoder((30, 30, 1), architecture="conv", hidden_units=[4, 8])


def test_fit_feeds_labels_to_a_conditional_vae_and_an_unconditional_one_ignores_them():
    x, y = binary_batch(32), np.arange(32) % 4
    keras.utils.set_random_seed(0)
    conditional = tfvae.VAE(tfvae.GaussianEncoder(3, hidden_units=[16], condition_dim=4),
                            tfvae.BernoulliDecoder(DATA_SHAPE, hidden_units=[16], condition_dim=4),
                            tfvae.StandardNormalPrior(3), num_classes=4)
    conditional.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = conditional.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]
    unconditional = make_model()
    unconditional.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert np.isfinite(unconditional.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"][-1])
    with pytest.raises(ValueError, match="labels were given to an unconditional VAE"):
        unconditional.elbo(x, labels=y)


def _conditional_vae(num_classes=10):
    vae = tfvae.VAE(tfvae.GaussianEncoder(3, hidden_units=[16], condition_dim=num_classes),
                    tfvae.BernoulliDecoder(DATA_SHAPE, hidden_units=[16], condition_dim=num_classes),
                    tfvae.StandardNormalPrior(3), num_classes=num_classes)
    vae.build((None, *DATA_SHAPE))
    return vae


@pytest.mark.parametrize("labels", [[3, 11], [3, 10], [-1, 2]])
def test_labels_outside_the_classes_are_refused_eagerly_and_in_graphs(labels):
    vae, x = _conditional_vae(), binary_batch(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be ints in \[0, 10\) \(num_classes\)"):
        vae.posterior(x, labels=np.array(labels))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels must be ints in \[0, 10\)"):
        tf.function(lambda x, y: vae.elbo(x, seed=0, labels=y))(x, tf.constant(labels))
    assert vae.posterior(x, labels=np.array([0, 9])).batch_shape == (2,)  # the edges of the range are fine


def test_a_conditional_part_called_without_its_condition_says_so_in_its_first_line():
    vae, x = _conditional_vae(), binary_batch(2)
    for call, name in ((lambda: vae.encoder(x), "GaussianEncoder"), (lambda: vae.decoder(tf.zeros([2, 3])),
                                                                      "BernoulliDecoder")):
        with pytest.raises(ValueError) as raised:
            call()
        first_line = str(raised.value).splitlines()[0]
        assert first_line.startswith(f"{name} is conditional (condition_dim=10): pass condition=tf.one_hot(labels, 10)")


def test_log_likelihood_of_rows_of_a_batch_gives_those_rows_bounds_and_refuses_rows_outside_it():
    model, x = make_model(), binary_batch(5)
    whole = model.log_likelihood(x, 30, seed=4, chunk_size=8).numpy()
    pieces = [model.log_likelihood(x[lo:hi], 30, seed=4, chunk_size=chunk, rows=(lo, 5)).numpy()
              for lo, hi, chunk in ((0, 2, 3), (2, 5, 30))]
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=1e-6)
    for rows in ((4, 5), (-1, 5), (0, 2.0), (0,)):
        with pytest.raises(ValueError, match=r"^rows must be \(first_row, num_rows\) ints"):
            model.log_likelihood(x[:2], 30, seed=4, rows=rows)
