"""Mixed precision: networks in 16 bits, every log-prob, KL and the loss in float32; same ELBO as float32."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae.train import factory


def tiny_config(data_dir, precision):
    return tfvae.TrainConfig(dataset="idx", data_dir=data_dir, hidden_units=(32,), latent_dim=4, epochs=6,
                             batch_size=32, steps_per_execution=4, validation_examples=0, precision=precision)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_policy_networks_run_in_16_bits_and_objectives_stay_float32(precision):
    model = factory.build_model(tfvae.TrainConfig(precision=precision, hidden_units=(8,), latent_dim=2), (8, 8, 1))
    x = np.ones((3, 8, 8, 1), np.float32)
    model.build((None, 8, 8, 1))
    assert model.encoder.trunk.compute_dtype == precision.removeprefix("mixed_")
    q = model.encoder(x)
    assert q.dtype == tf.float32 and model.decoder(q.sample(seed=(1, 2))).dtype == tf.float32
    terms = model.elbo_terms(x, seed=(1, 2))
    assert all(v.dtype == tf.float32 for v in terms.values())
    assert keras.config.dtype_policy().name == "float32"  # build_model leaves the global policy as it was


def test_mixed_precision_training_reaches_the_float32_elbo(tmp_path, tiny_idx_dir):
    results, history = {}, keras.callbacks.History()
    for precision in ("float32", "mixed_bfloat16", "mixed_float16"):
        callbacks = [history] if precision == "float32" else []
        results[precision] = tfvae.train_and_evaluate(tiny_config(tiny_idx_dir, precision), str(tmp_path / precision),
                                                      verbose=0, callbacks=callbacks)["elbo"]
    first_epoch = history.history["elbo"][0]  # the training ELBO averaged over the first epoch
    gain = results["float32"] - first_epoch
    assert gain > 0.5, (first_epoch, results)
    for precision in ("mixed_bfloat16", "mixed_float16"):
        assert abs(results[precision] - results["float32"]) < 0.1 * gain, results


@pytest.mark.parametrize("family", [
    {"posterior": "iaf", "prior": "flow", "flow_hidden_units": (8,), "likelihood": "discretized_logistic"},
    {"posterior": "full", "prior": "vamp", "prior_components": 3, "likelihood": "continuous_bernoulli"},
    {"prior": "mixture", "likelihood": "categorical", "architecture": "conv", "hidden_units": (4, 8)},
], ids=["iaf-flow-logistic", "full-vamp-cb", "mixture-categorical"])
def test_every_family_keeps_its_distributions_and_objective_in_float32_under_bfloat16(family):
    config = tfvae.TrainConfig(**{"precision": "mixed_bfloat16", "hidden_units": (8,), "latent_dim": 2, **family})
    model = factory.build_model(config, (8, 8, 1))
    model.build((None, 8, 8, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = (np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)) / 255.0).astype(np.float32)
    q, prior = model.encoder(x), model.prior
    assert q.dtype == prior.dtype == model.decoder(q.sample(seed=(1, 2))).dtype == tf.float32
    logs = model.train_step(tf.constant(x))
    assert all(v.dtype == tf.float32 and np.isfinite(v.numpy()) for v in logs.values())


@pytest.mark.parametrize("family", [
    {"architecture": "mlp"},
    {"architecture": "conv", "hidden_units": (4, 8)},
    {"architecture": "resnet", "hidden_units": (4, 8), "blocks_per_level": 1, "normalization": "group"},
    {"architecture": "conv", "hidden_units": (4, 8), "latent_dims": (3, 2)},
], ids=["mlp", "conv", "resnet", "hierarchical-conv"])
def test_a_reloaded_mixed_precision_model_computes_in_its_own_precision(family):
    """model.json rebuilds every trunk layer in the run's policy, whatever the global policy is at load time."""
    config = tfvae.TrainConfig(**{"precision": "mixed_bfloat16", "hidden_units": (8,), "latent_dim": 2, **family})
    model = factory.build_model(config, (8, 8, 1))
    model.build((None, 8, 8, 1))
    assert keras.config.dtype_policy().name == "float32"
    reloaded = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    reloaded.build((None, 8, 8, 1))
    reloaded.set_weights(model.get_weights())
    trunk_layers = reloaded.encoder.trunk.layers + reloaded.decoder.trunk.layers
    assert {layer.compute_dtype for layer in trunk_layers} == {"bfloat16"}
    x = (np.random.default_rng(0).integers(0, 2, (3, 8, 8, 1))).astype(np.float32)
    expected, got = model.elbo_terms(x, seed=(1, 2)), reloaded.elbo_terms(x, seed=(1, 2))
    for name in ("elbo", "rate", "distortion"):
        np.testing.assert_array_equal(got[name].numpy(), expected[name].numpy(), err_msg=name)
