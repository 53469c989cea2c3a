"""SavedModel export: every signature equals the in-process model, loads without tfvae, rejects bad input."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from builders import binary_batch
from conftest import (
    LATENT_DIM,
    MAX_BATCH,
    MAX_SAMPLES,
    REPO,
    last_error_line,
    run_script,
    run_serving_probe,
    small_export,
    small_vae,
    write_idx_dataset,
)

import tfvae
from tfvae.serving import export

SEED = 11


@pytest.fixture(scope="module")
def model():
    return small_vae()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return small_export(model, tmp_path_factory)


def requests():
    x = binary_batch(4, seed=3)
    z = np.random.default_rng(1).normal(size=(5, LATENT_DIM)).astype(np.float32)
    return {
        "encode/images": x, "encode/seed": np.array([SEED], np.int64),
        "decode/z": z,
        "reconstruct/images": x,
        "sample/num_samples": np.array([3], np.int32), "sample/seed": np.array([SEED], np.int64),
        "log_likelihood/images": x, "log_likelihood/num_importance_samples": np.array([40], np.int32),
        "log_likelihood/seed": np.array([SEED], np.int64),
    }


def expected_outputs(model):
    """What each signature must return, computed with the in-process model."""
    inputs = requests()
    x, z, seed = inputs["encode/images"], inputs["decode/z"], tf.constant([SEED, 0], tf.int32)
    posterior = model.encoder(x)
    likelihood = model.decoder(z)
    return {
        "encode/loc": posterior.mean(), "encode/scale": posterior.stddev(), "encode/z": posterior.sample(seed=seed),
        "decode/probs": likelihood.mean(), "decode/logits": likelihood.distribution.logits,
        "reconstruct/reconstruction": model.reconstruct(x),
        "sample/images": model.sample(3, seed=SEED),
        "log_likelihood/elbo": model.elbo(x, seed=seed),
        "log_likelihood/iwae_bound": model.log_likelihood(x, 40, seed=SEED),
    }


def assert_outputs_match(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=1e-5, atol=1e-5, err_msg=key)


def test_every_signature_equals_the_in_process_model(model, exported):
    loaded = tf.saved_model.load(exported)
    assert sorted(loaded.signatures) == sorted([*export.SIGNATURES, "serving_default"])
    outputs = {}
    for key, value in requests().items():
        signature, name = key.split("/")
        outputs.setdefault(signature, {})[name] = tf.constant(value)
    actual = {f"{s}/{k}": v.numpy() for s, inputs in outputs.items() for k, v in loaded.signatures[s](**inputs).items()}
    assert_outputs_match(actual, expected_outputs(model))
    default = loaded.signatures["serving_default"](images=tf.constant(requests()["reconstruct/images"]))
    np.testing.assert_allclose(default["reconstruction"], actual["reconstruct/reconstruction"])


def test_sample_is_the_same_for_the_same_seed_on_every_call_and_reload(exported):
    def draw(seed):
        loaded = tf.saved_model.load(exported)
        return loaded.signatures["sample"](num_samples=tf.constant([4]), seed=tf.constant([seed], tf.int64))["images"]

    first, again = draw(5), draw(5)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, draw(6))


@pytest.mark.parametrize("mode", ["tf2", "tf1"])
def test_fresh_process_without_tfvae_or_tfp_runs_every_signature(model, exported, tmp_path, mode):
    assert_outputs_match(run_serving_probe(mode, exported, requests(), tmp_path), expected_outputs(model))


def test_saved_model_cli_lists_the_signatures_with_dtypes_and_shapes(exported):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "show", "--all", "--dir", exported], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    for signature in [*export.SIGNATURES, "serving_default"]:
        assert f"signature_def['{signature}']" in text
    assert "inputs['num_importance_samples'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1)" in text
    assert f"outputs['z'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, {LATENT_DIM})" in text
    assert "outputs['reconstruction'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 8, 8, 1)" in text
    assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 8, 8, 1)" in text
    assert f"inputs['z'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, {LATENT_DIM})" in text


def test_a_server_feeding_a_wrong_shape_past_the_declared_one_gets_the_in_graph_error(exported, tmp_path):
    # The C++ session (TF Serving's) does not compare fed shapes with the signature: the graph must.
    bad = {"reconstruct/images": np.zeros((2, 4, 16, 1), np.float32), "decode/z": np.zeros((2, LATENT_DIM + 2),
                                                                                           np.float32)}
    outputs = run_serving_probe("tf1", exported, bad, tmp_path)
    assert r"images: expected shape [batch, 8, 8, 1]; got] [2 4 16 1]" in str(outputs["reconstruct/error"])
    assert f"z: expected shape [batch, {LATENT_DIM}]; got] [2 {LATENT_DIM + 2}]" in str(outputs["decode/error"])


def test_the_request_cost_limits_are_in_the_model_card_and_the_servers_graph(exported, tmp_path):
    with open(os.path.join(exported, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["max_batch_size"] == MAX_BATCH and card["max_importance_samples"] == 500
    assert card["max_samples_per_request"] == MAX_SAMPLES and card["max_abs_latent"] == 1000.0
    costly = {"log_likelihood/images": np.zeros((4, 8, 8, 1), np.float32),
              "log_likelihood/num_importance_samples": np.array([300], np.int32),
              "log_likelihood/seed": np.array([1], np.int64),
              "decode/z": np.full((1, LATENT_DIM), 3e38, np.float32)}
    outputs = run_serving_probe("tf1", exported, costly, tmp_path)  # the C++ session a server runs
    assert (f"num_importance_samples: batch * num_importance_samples must be at most {MAX_SAMPLES}; got batch and "
            "num_importance_samples] [4] [300]") in str(outputs["log_likelihood/error"])
    assert "z: values must lie in [-1000, 1000]; got min and max] [3e+38] [3e+38]" in str(outputs["decode/error"])
    at_the_limit = {"log_likelihood/images": np.zeros((2, 8, 8, 1), np.float32),
                    "log_likelihood/num_importance_samples": np.array([500], np.int32),
                    "log_likelihood/seed": np.array([1], np.int64),
                    "decode/z": np.full((1, LATENT_DIM), -1000.0, np.float32)}
    outputs = run_serving_probe("tf2", exported, at_the_limit, tmp_path)
    assert np.isfinite(outputs["log_likelihood/iwae_bound"]).all() and np.isfinite(outputs["decode/probs"]).all()


def test_export_limits_must_be_positive():
    model = small_vae()
    for limits, message in ((dict(max_samples_per_request=0), "max_samples_per_request must be a positive int; got 0"),
                            (dict(max_batch_size=2.5), "max_batch_size must be a positive int; got 2.5"),
                            (dict(max_abs_latent=float("inf")), "max_abs_latent must be a positive finite number")):
        with pytest.raises(export.ExportError, match=message):
            export.ServingModule(model, **limits)


def test_decode_fails_naming_z_rather_than_return_a_non_finite_output(model):
    module = export.ServingModule(model, max_abs_latent=3.4e38)  # the input bound moved out of the way
    with pytest.raises(tf.errors.InvalidArgumentError, match="z: the decoder output (probs|logits) is not finite for "
                                                             "these latents"):
        module.decode(tf.constant(np.full((2, LATENT_DIM), 3e38, np.float32)))


def test_reference_metrics_send_requests_within_the_cost_limit(model):
    module = export.ServingModule(model, max_batch_size=MAX_BATCH, max_importance_samples=500,
                                  max_samples_per_request=100)
    images = binary_batch(5, seed=2)
    reference = export.reference_metrics(module, images, "five images", num_importance_samples=40)
    assert reference["requests_of"] == 2  # 100 // 40
    with pytest.raises(export.ExportError, match="num_importance_samples 400 is more than max_samples_per_request 100"):
        export.reference_metrics(module, images, "five images", num_importance_samples=400)


def test_warmup_records_hold_one_valid_request_per_signature_that_the_server_replays(exported, tmp_path):
    outputs = run_serving_probe("warmup", exported, {}, tmp_path)
    assert not [key for key in outputs if key.endswith("/error")]
    assert {key.split("/")[0] for key in outputs} == {*export.SIGNATURES, "serving_default"}
    assert outputs["sample/images"].shape == (1, 8, 8, 1)
    assert outputs["log_likelihood/iwae_bound"].shape == (1,) and np.isfinite(outputs["log_likelihood/iwae_bound"]).all()


def test_every_64_bit_seed_gives_its_own_stream_equal_to_the_in_process_model(model, exported):
    loaded = tf.saved_model.load(exported)

    def draw(seed):
        return loaded.signatures["sample"](num_samples=tf.constant([3]), seed=tf.constant([seed], tf.int64))["images"]

    seeds = [5, 5 + 2**31, 5 + 2**32, 5 + 2**62, -5]
    draws = [draw(seed).numpy() for seed in seeds]
    for i in range(len(seeds)):
        for j in range(i):
            assert not np.allclose(draws[i], draws[j]), (seeds[i], seeds[j])
    for seed, images in zip(seeds, draws, strict=True):
        np.testing.assert_allclose(images, model.sample(3, seed=seed), rtol=1e-5, atol=1e-6)


def _call(loaded, signature, **inputs):
    return loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})


BAD_REQUESTS = [
    ("reconstruct", dict(images=np.full((2, 8, 8, 1), np.nan, np.float32)), "images: values must be finite"),
    ("reconstruct", dict(images=np.full((2, 8, 8, 1), 2.0, np.float32)), r"images: values must lie in \[0, 1\]"),
    ("reconstruct", dict(images=np.zeros((2, 28, 28, 1), np.float32)), r"images: expected shape \[batch, 8, 8, 1\]"),
    ("reconstruct", dict(images=np.zeros((MAX_BATCH + 1, 8, 8, 1), np.float32)),
     f"images: batch larger than the maximum of {MAX_BATCH}"),
    ("decode", dict(z=np.zeros((2, LATENT_DIM + 1), np.float32)), rf"z: expected shape \[batch, {LATENT_DIM}\]"),
    ("decode", dict(z=np.full((2, LATENT_DIM), np.inf, np.float32)), "z: values must be finite"),
    ("sample", dict(num_samples=np.array([0], np.int32), seed=np.array([1])),
     rf"num_samples: expected a value in \[1, {MAX_BATCH}\]"),
    ("sample", dict(num_samples=np.array([2, 3], np.int32), seed=np.array([1])), "num_samples: all values must be equal"),
    ("sample", dict(num_samples=np.array([], np.int32), seed=np.array([1])), "num_samples: expected at least one value"),
    ("encode", dict(images=np.zeros((2, 8, 8, 1), np.float32), seed=np.array([1, 2])), "seed: all values must be equal"),
    ("log_likelihood", dict(images=np.zeros((2, 8, 8, 1), np.float32), num_importance_samples=np.array([501], np.int32),
                            seed=np.array([1])), r"num_importance_samples: expected a value in \[1, 500\]"),
    # per-request cost: batch * k decoder passes (6 * 500 = 3000 > MAX_SAMPLES)
    ("log_likelihood", dict(images=np.zeros((MAX_BATCH, 8, 8, 1), np.float32),
                            num_importance_samples=np.array([500], np.int32), seed=np.array([1])),
     rf"num_importance_samples: batch \* num_importance_samples must be at most {MAX_SAMPLES}; got batch and "
     r"num_importance_samples\] \[6\] \[500\]"),
    # a finite z can overflow the decoder: 3e38 gave all-NaN probabilities
    ("decode", dict(z=np.full((2, LATENT_DIM), 3e38, np.float32)), r"z: values must lie in \[-1000, 1000\]"),
    ("decode", dict(z=np.full((1, LATENT_DIM), -1000.5, np.float32)), r"z: values must lie in \[-1000, 1000\]"),
]


@pytest.mark.parametrize("signature, inputs, message", BAD_REQUESTS)
def test_bad_inputs_fail_with_invalid_argument_naming_the_input(exported, signature, inputs, message):
    loaded = tf.saved_model.load(exported)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _call(loaded, signature, **inputs)


def _tree_snapshot(path):
    snapshot = {}
    for folder, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(folder, name), "rb") as f:
                snapshot[os.path.relpath(os.path.join(folder, name), path)] = f.read()
    return snapshot


def test_versions_count_up_and_an_existing_version_is_never_touched(model, tmp_path):
    base = str(tmp_path / "vae")
    first = export.export_model(model, base)
    assert first == os.path.join(base, "1")
    before = _tree_snapshot(first)
    with pytest.raises(export.ExportError, match="version 1 already exists"):
        export.export_model(model, base, version=1)
    assert _tree_snapshot(first) == before
    assert export.export_model(model, base) == os.path.join(base, "2")
    assert export.export_model(model, base, version=7) == os.path.join(base, "7")
    assert sorted(os.listdir(base)) == ["1", "2", "7"]  # no temporary folder left behind
    with pytest.raises(export.ExportError, match="version must be a positive int; got 0"):
        export.export_model(model, base, version=0)


def test_export_script_writes_model_card_and_flags_and_reports_errors_in_one_line(tmp_path):
    data_dir = write_idx_dataset(str(tmp_path / "idx"), num_train=64, num_test=16)
    model_dir, base = str(tmp_path / "run"), str(tmp_path / "saved_models" / "tiny")
    config = tfvae.TrainConfig(dataset="idx", data_dir=data_dir, hidden_units=(16,), latent_dim=2, epochs=1,
                               batch_size=16, steps_per_execution=2)
    tfvae.train_and_evaluate(config, model_dir, verbose=0)
    with open(os.path.join(model_dir, "flags.txt"), "w") as f:
        f.write("--latent_dim=2\n")

    result = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={base}")
    assert result.returncode == 0, result.stderr[-2000:]
    version_dir = result.stdout.strip().splitlines()[-1]
    assert version_dir == os.path.join(base, "1")
    with open(os.path.join(version_dir, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["data_shape"] == [8, 8, 1] and card["latent_dim"] == 2 and card["likelihood"] == "bernoulli"
    assert card["checkpoint"] == "ckpt-4" and card["validation_metrics_at_export"]["step"] == 4
    assert card["serving_default"] == "reconstruct"
    with open(os.path.join(version_dir, "assets.extra", "flags.txt")) as f:
        assert f.read() == "--latent_dim=2\n"
    before = _tree_snapshot(version_dir)

    again = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={base}", "--version=1")
    assert again.returncode == 1
    assert last_error_line(again).startswith("export.py: error: flag --export_dir/--version:")
    assert "version 1 already exists" in last_error_line(again)
    assert _tree_snapshot(version_dir) == before

    empty = str(tmp_path / "empty_run")
    os.makedirs(empty)
    missing = run_script("export.py", f"--model_dir={empty}", f"--export_dir={base}")
    assert missing.returncode == 1 and last_error_line(missing).startswith("export.py: error: flag --model_dir:")
    assert sorted(os.listdir(base)) == ["1"]


def _family_model():
    """An IAF posterior, a MAF prior and a discretized logistic likelihood, with non-trivial flows."""
    from builders import randomise

    keras.utils.set_random_seed(0)
    model = tfvae.VAE(
        encoder=tfvae.IAFEncoder(LATENT_DIM, hidden_units=[16], num_flows=2, flow_hidden_units=[8]),
        decoder=tfvae.DiscretizedLogisticDecoder((8, 8, 1), hidden_units=[16], num_components=2),
        prior=tfvae.FlowPrior(LATENT_DIM, num_steps=2, hidden_units=[8]))
    model.build((None, 8, 8, 1))
    for i, network in enumerate([*model.encoder.made, *model.prior_layer.networks]):
        randomise(network, seed=i, scale=0.3)
    return model


@pytest.mark.parametrize("mode", ["tf2", "tf1"])
def test_flow_families_export_and_run_in_a_fresh_process_like_the_in_process_model(tmp_path, mode):
    model = _family_model()
    exported = export.export_model(model, str(tmp_path / "vae"), max_batch_size=MAX_BATCH, max_importance_samples=500)
    x = (np.random.default_rng(3).integers(0, 256, (4, 8, 8, 1)) / 255.0).astype(np.float32)
    z = np.random.default_rng(1).normal(size=(5, LATENT_DIM)).astype(np.float32)
    seed = tf.constant([SEED, 0], tf.int32)
    inputs = {"encode/images": x, "encode/seed": np.array([SEED], np.int64), "decode/z": z,
              "reconstruct/images": x, "sample/num_samples": np.array([3], np.int32),
              "sample/seed": np.array([SEED], np.int64), "log_likelihood/images": x,
              "log_likelihood/num_importance_samples": np.array([40], np.int32),
              "log_likelihood/seed": np.array([SEED], np.int64)}
    posterior = model.encoder(x)
    expected = {
        "encode/loc": tfvae.sampling.posterior_location(posterior), "encode/z": posterior.sample(seed=seed),
        "decode/mean": model.decoder(z).mean(),
        "reconstruct/reconstruction": model.reconstruct(x),
        "sample/images": model.sample(3, seed=SEED),
        "log_likelihood/elbo": model.elbo(x, seed=seed),
        "log_likelihood/iwae_bound": model.log_likelihood(x, 40, seed=SEED),
    }
    actual = run_serving_probe(mode, exported, inputs, tmp_path)
    assert sorted(actual) == sorted(expected)  # no "scale" where no closed form exists
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=1e-4, atol=1e-4, err_msg=key)


def test_a_mixed_bfloat16_model_exports_its_16_bit_graph_and_serves_like_the_in_process_model(tmp_path):
    from tfvae.train import factory

    keras.utils.set_random_seed(0)
    config = tfvae.TrainConfig(precision="mixed_bfloat16", architecture="conv", hidden_units=(4, 8),
                               latent_dim=LATENT_DIM)
    model = factory.build_model(config, (8, 8, 1))
    model.build((None, 8, 8, 1))
    exported = export.export_model(model, str(tmp_path / "vae"), max_batch_size=MAX_BATCH, max_importance_samples=500)
    loaded = tf.saved_model.load(exported)
    for signature, trunk_op in (("encode", "Conv2D"), ("decode", "Conv2DBackpropInput")):
        dtypes = {tf.dtypes.as_dtype(node.attr["T"].type) for function in
                  loaded.signatures[signature].graph.as_graph_def().library.function
                  for node in function.node_def if node.op == trunk_op}
        assert dtypes == {tf.bfloat16}, (signature, dtypes)  # the trunks' convolutions run in 16 bits when served
    actual = run_serving_probe("tf1", exported, requests(), tmp_path)
    expected = expected_outputs(model)
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=1e-4, atol=1e-4, err_msg=key)


def test_conditional_models_export_with_a_labels_input_on_every_signature(tmp_path):
    keras.utils.set_random_seed(0)
    model = tfvae.VAE(tfvae.GaussianEncoder(2, hidden_units=[8], condition_dim=3),
                      tfvae.BernoulliDecoder((8, 8, 1), hidden_units=[8], condition_dim=3),
                      tfvae.StandardNormalPrior(2), num_classes=3)
    model.build((None, 8, 8, 1))
    path = export.export_model(model, str(tmp_path / "cvae"), max_batch_size=MAX_BATCH)
    loaded = tf.saved_model.load(path)
    x, y = binary_batch(4, seed=3), np.array([0, 2, 1, 2], np.int32)
    seed = np.array([SEED], np.int64)
    for signature in [*export.SIGNATURES, "serving_default"]:
        assert "labels" in loaded.signatures[signature].structured_input_signature[1], signature
    encoded = _call(loaded, "encode", images=x, labels=y, seed=seed)
    np.testing.assert_allclose(encoded["loc"], model.posterior(x, y).mean(), rtol=1e-5, atol=1e-6)
    z = encoded["z"].numpy()
    np.testing.assert_allclose(_call(loaded, "decode", z=z, labels=y)["probs"], model.likelihood(z, y).mean(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_call(loaded, "reconstruct", images=x, labels=y)["reconstruction"],
                               model.reconstruct(x, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_call(loaded, "sample", num_samples=np.array([4], np.int32), seed=seed, labels=y)[
        "images"], model.sample(4, seed=SEED, labels=y), rtol=1e-5, atol=1e-6)
    scores = _call(loaded, "log_likelihood", images=x, labels=y, num_importance_samples=np.array([30], np.int32),
                   seed=seed)
    np.testing.assert_allclose(scores["iwae_bound"], model.log_likelihood(x, 30, seed=SEED, labels=y), rtol=1e-5)
    # the labels matter: another label gives another reconstruction
    assert not np.allclose(_call(loaded, "reconstruct", images=x, labels=(y + 1) % 3)["reconstruction"],
                           model.reconstruct(x, y))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels: expected ints in \[0, 3\)"):
        _call(loaded, "reconstruct", images=x, labels=np.array([0, 1, 2, 3], np.int32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels: expected one label per example"):
        _call(loaded, "encode", images=x, labels=y[:3], seed=seed)
    with open(os.path.join(path, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["num_classes"] == 3 and card["model_name"] == "cvae"
    assert card["signature_inputs"]["sample"]["labels"] == {"dtype": "int32", "shape": [-1]}


def test_full_covariance_posteriors_export_their_scale_tril(tmp_path):
    keras.utils.set_random_seed(0)
    model = tfvae.VAE(tfvae.GaussianEncoder(3, hidden_units=[8], covariance="full"),
                      tfvae.BernoulliDecoder((8, 8, 1), hidden_units=[8]), tfvae.StandardNormalPrior(3))
    model.build((None, 8, 8, 1))
    loaded = tf.saved_model.load(export.export_model(model, str(tmp_path / "full")))
    x = binary_batch(4, seed=3)
    encoded = _call(loaded, "encode", images=x, seed=np.array([SEED], np.int64))
    posterior = model.encoder(x)
    np.testing.assert_allclose(encoded["scale_tril"], posterior.scale.to_dense(), rtol=1e-5, atol=1e-6)
    assert np.abs(np.triu(encoded["scale_tril"].numpy(), k=1)).max() == 0.0
    assert np.abs(np.tril(encoded["scale_tril"].numpy(), k=-1)).max() > 0.0  # correlations are there to lose
    np.testing.assert_allclose(encoded["scale"], posterior.stddev(), rtol=1e-5, atol=1e-6)


def test_the_models_config_in_saved_models_readme_is_a_valid_model_server_config():
    import re

    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(REPO, "saved_models", "README.md")) as f:
        blocks = re.findall(r"```protobuf\n(.*?)```", f.read(), flags=re.S)
    config = text_format.Parse(blocks[0], model_server_config_pb2.ModelServerConfig())
    models = {model.name: model for model in config.model_config_list.config}
    assert sorted(models) == ["conv_fashion_mnist", "fashion_mnist_mlp"]
    assert list(models["fashion_mnist_mlp"].model_version_policy.specific.versions) == [1, 2]
    assert dict(models["fashion_mnist_mlp"].version_labels) == {"stable": 1, "canary": 2}
    assert models["conv_fashion_mnist"].model_version_policy.latest.num_versions == 2
    # the batching block names BatchingParameters' fields (tensorflow-serving-api does not ship that proto)
    assert set(re.findall(r"^(\w+) \{ value", blocks[1], flags=re.M)) == {
        "max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"}
