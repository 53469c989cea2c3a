"""The pretrained models in saved_models/, and what one ships with: a SavedModel for TF Serving, a .keras file for
Python, and a model card with its figures and the commands that made them.

Each shipped model reproduces its card's figures on the first 500 test images from the export alone (a process
without tfvae or TFP, as the server runs it) and from its .keras file; ``scripts/export.py --keras_file=...
--test_metrics=... --reproduce=...`` on a tiny run; ``tfvae.load_model`` on .keras files it did not write.
"""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, last_error_line, read_idx_images, run_script, run_serving_probe, write_idx_dataset

import tfvae
from tfvae import evaluation
from tfvae.train import loading
from tfvae.train.rundir import RunDirectoryError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    data_dir = write_idx_dataset(str(root / "idx"), num_train=64, num_test=16)
    model_dir = str(root / "run")
    config = tfvae.TrainConfig(dataset="idx", data_dir=data_dir, hidden_units=(16,), latent_dim=2, epochs=1,
                               batch_size=16, steps_per_execution=2)
    tfvae.train_and_evaluate(config, model_dir, verbose=0)
    return root, model_dir


def _posterior_means(model, images):
    return np.asarray(model.posterior(images).mean())


def test_export_saves_a_keras_file_and_a_card_that_says_how_the_model_was_made(tiny_run):
    root, model_dir = tiny_run
    evaluated = run_script("evaluate.py", f"--model_dir={model_dir}", "--num_importance_samples=10")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics_path = root / "test_metrics.json"
    metrics_path.write_text(evaluated.stdout)
    keras_path = str(root / "shipped" / "model.keras")

    result = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={root / 'shipped'}",
                        f"--keras_file={keras_path}", f"--test_metrics={metrics_path}",
                        "--reproduce=python scripts/train.py --flagfile=a.flags", "--reproduce=python scripts/evaluate.py")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(root / "shipped" / "1", "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["test_metrics"] == json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert card["reproduce"] == ["python scripts/train.py --flagfile=a.flags", "python scripts/evaluate.py"]
    assert sorted(os.listdir(root / "shipped")) == ["1", "model.keras"]  # no staging folder left behind

    from_run, from_file = tfvae.load_model(model_dir), tfvae.load_model(keras_path)
    images = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(_posterior_means(from_file, images), _posterior_means(from_run, images))
    assert from_file.get_config() == from_run.get_config()

    before = open(keras_path, "rb").read()
    again = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={root / 'other'}",
                       f"--keras_file={keras_path}")
    assert again.returncode == 1
    assert "flag --keras_file:" in last_error_line(again) and "not overwritten" in last_error_line(again)
    assert open(keras_path, "rb").read() == before


def test_export_refuses_a_test_metrics_file_that_is_not_evaluate_output(tiny_run):
    root, model_dir = tiny_run
    bad = root / "not_metrics.json"
    bad.write_text('["a list"]\n')
    result = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={root / 'refused'}",
                        f"--test_metrics={bad}")
    assert result.returncode == 1
    assert last_error_line(result).startswith("export.py: error: flag --test_metrics:")
    assert not os.path.exists(root / "refused")


def _rezip(source, target, replace):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    new.writestr(info.filename, replace[info.filename])
            else:
                new.writestr(info, old.read(info.filename))


def test_load_model_refuses_keras_files_it_cannot_trust_in_one_line(tiny_run, tmp_path):
    _, model_dir = tiny_run
    good = str(tmp_path / "good.keras")
    tfvae.load_model(model_dir).save(good)
    with zipfile.ZipFile(good) as f:
        config = json.loads(f.read("config.json"))

    huge = json.loads(json.dumps(config))
    huge["config"]["encoder"]["config"]["latent_dim"] = 10**7  # ~10^8 weights claimed; the file holds ~10^3
    _rezip(good, tmp_path / "huge.keras", {"config.json": json.dumps(huge)})
    with pytest.raises(RunDirectoryError, match=r"huge.keras: describes a model of \d+ weights, more than"):
        tfvae.load_model(str(tmp_path / "huge.keras"))

    _rezip(good, tmp_path / "no_weights.keras", {"model.weights.h5": None})
    with pytest.raises(RunDirectoryError, match="no_weights.keras: not a Keras model file"):
        tfvae.load_model(str(tmp_path / "no_weights.keras"))

    (tmp_path / "text.keras").write_text("not a zip")
    with pytest.raises(RunDirectoryError, match="text.keras: not a readable .keras file"):
        tfvae.load_model(str(tmp_path / "text.keras"))

    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dense.save(tmp_path / "dense.keras")
    with pytest.raises(RunDirectoryError, match="dense.keras: .*not a tfvae VAE"):
        tfvae.load_model(str(tmp_path / "dense.keras"))

    with pytest.raises(ValueError, match="checkpoint must be None"):
        tfvae.load_model(good, checkpoint="ckpt-1")
    assert isinstance(loading.load_keras_file(good), tfvae.VAE)


# name -> (the export's size limit in MiB, whether it also ships a .keras file with its test figures)
SHIPPED = {"fashion_mnist_mlp": (5, False), "fashion_mnist_mlp_hierarchical": (12, True),
           "fashion_mnist_conv_hierarchical": (12, True)}


def test_every_model_in_saved_models_is_tested_here():
    folders = {name for name in os.listdir(os.path.join(REPO, "saved_models"))
               if os.path.isdir(os.path.join(REPO, "saved_models", name, "1"))}
    assert folders == set(SHIPPED)


def _binarized_test_images(fashion_mnist_dir, count):
    """The first ``count`` test images binarized as every model card says (numpy alone, seed 0 over all 10k)."""
    pixels = read_idx_images(os.path.join(fashion_mnist_dir, "t10k-images-idx3-ubyte.gz"))
    binarized = (np.random.default_rng(0).random(pixels.shape, dtype=np.float32)
                 < pixels.astype(np.float32) / 255.0).astype(np.float32)
    return binarized[:count]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_a_shipped_model_reproduces_its_card_from_the_export_alone_and_from_its_keras_file(
        name, tmp_path, fashion_mnist_dir):
    limit_mb, ships_keras = SHIPPED[name]
    base = os.path.join(REPO, "saved_models", name)
    version_dir = os.path.join(base, "1")
    size = sum(os.path.getsize(os.path.join(folder, file)) for folder, _, files in os.walk(version_dir)
               for file in files)
    assert size <= limit_mb * 2**20
    with open(os.path.join(version_dir, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    reference = card["reference_metrics"]
    assert card["model_name"] == name and card["data_shape"] == [28, 28, 1]
    assert reference["examples"] == 500 and "default_rng(0)" in reference["images"]
    images = _binarized_test_images(fashion_mnist_dir, 500)
    k = reference["num_importance_samples"]
    per_request = card.get("max_samples_per_request", k * len(images)) // k  # as the card's figures were requested
    inputs = {"decode/z": np.random.default_rng(1).standard_normal((8, card["latent_dim"])).astype(np.float32)}
    for i, start in enumerate(range(0, len(images), per_request)):
        inputs |= {f"log_likelihood@{i}/images": images[start:start + per_request],
                   f"log_likelihood@{i}/num_importance_samples": np.array([k], np.int32),
                   f"log_likelihood@{i}/seed": np.array([reference["seed"]], np.int64)}
    outputs = run_serving_probe("tf1", version_dir, inputs, tmp_path)  # the server's way: C++ session, no tfvae
    requests = range(len(range(0, len(images), per_request)))
    assert not [key for key in outputs if key.endswith("/error")]
    for name in ("elbo", "iwae_bound"):
        served = np.concatenate([outputs[f"log_likelihood@{i}/{name}"] for i in requests])
        assert served.shape == (500,) and served.mean() == pytest.approx(reference[name], abs=1e-3)
    assert reference["iwae_bound"] > reference["elbo"]
    if not ships_keras:
        return
    test = card["test_metrics"]
    assert test["num_examples"] == 10000 and test["log_likelihood"] > test["elbo"] and card["reproduce"]
    model = tfvae.load_model(os.path.join(base, "model.keras"))
    exported = tf.train.load_checkpoint(os.path.join(version_dir, "variables", "variables"))
    assert len(model.variables) == len(exported.get_variable_to_shape_map()) - 1  # and the object graph
    for i, variable in enumerate(model.variables):  # the same weights, bit for bit
        np.testing.assert_array_equal(exported.get_tensor(f"model_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE"),
                                      variable.numpy(), err_msg=variable.path)
    # The same decoder outputs: to float rounding, or to bfloat16's (8 significant bits; the server's kernels and
    # Python's round differently) for a model that computes in mixed_bfloat16.
    tolerance = 1e-4 if model.decoder.dtype_policy.compute_dtype == "float32" else 0.1
    np.testing.assert_allclose(model.likelihood(inputs["decode/z"]).distribution.logits.numpy(),
                               outputs["decode/logits"], rtol=tolerance, atol=tolerance)
    # The same figure from Python, with its own sampling: k=1000 over 500 images leaves ~0.05 nats of noise.
    bound = evaluation.iwae_log_likelihood(model, images, num_samples=reference["num_importance_samples"])
    assert bound == pytest.approx(reference["iwae_bound"], abs=0.2)
