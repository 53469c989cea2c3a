"""Vector data [N, D] (tabular): CSV files, an MLP VAE trained, evaluated, sampled and exported on them."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script

from tfvae import data, evaluation
from tfvae.train import factory
from tfvae.train.config import TrainConfig


def write_csv(path, values, labels=None, header=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        if header:
            f.write(",".join([f"x{i}" for i in range(values.shape[1])] + (["label"] if labels is not None else []))
                    + "\n")
        for i, row in enumerate(values):
            f.write(",".join(f"{v:.6g}" for v in row) + (f",{labels[i]}" if labels is not None else "") + "\n")


def correlated_vectors(n, seed):
    """Ten features in [0, 1] driven by two hidden factors: a VAE with a small latent can model them."""
    rng = np.random.default_rng(seed)
    factors = rng.random((n, 2))
    mixing = rng.random((2, 10))
    return np.clip(factors @ mixing / mixing.sum(0) + 0.03 * rng.standard_normal((n, 10)), 0, 1)


def test_csv_files_give_vectors_labels_and_a_seeded_split(tmp_path):
    values, labels = correlated_vectors(30, 0), np.arange(30) % 3
    write_csv(str(tmp_path / "dir" / "train.csv"), values[:20], labels[:20])
    write_csv(str(tmp_path / "dir" / "test.csv"), values[20:], labels[20:])
    loaded = data.load_dataset("csv", str(tmp_path / "dir"))
    assert loaded.train_images.shape == (20, 10) and loaded.train_images.dtype == np.float32
    np.testing.assert_allclose(loaded.train_images, values[:20], atol=1e-6)
    np.testing.assert_array_equal(loaded.test_labels, labels[20:])
    write_csv(str(tmp_path / "one.csv"), np.round(values * 255), header=False)  # 8-bit values, no header
    split = data.load_dataset("csv", str(tmp_path / "one.csv"), validation_split=0.2, seed=1)
    assert split.train_images.dtype == np.uint8 and len(split.train_images) == 24 and len(split.test_images) == 6
    assert split.train_labels is None


def test_a_run_splits_one_csv_file_with_its_own_validation_split_and_seed(tmp_path):
    values = correlated_vectors(40, 1)
    write_csv(str(tmp_path / "one.csv"), values)
    path = str(tmp_path / "one.csv")

    def test_rows(**settings):
        prepared = data.prepare_data(TrainConfig(dataset="csv", data_dir=path, likelihood="gaussian", **settings))
        return np.asarray(prepared.test_images)

    assert len(test_rows()) == 4 and len(test_rows(validation_split=0.25)) == 10
    assert not np.array_equal(test_rows(seed=3), test_rows())  # another seed draws other rows
    np.testing.assert_array_equal(test_rows(seed=3), test_rows(seed=3))


def test_bad_csv_files_are_named_in_one_line(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n0.1,0.2\n0.3,oops\n")
    with pytest.raises(data.DataError, match=r"bad.csv: not a CSV file of numbers"):
        data.load_dataset("csv", str(tmp_path / "bad.csv"))
    (tmp_path / "big.csv").write_text("0.5,2.5\n0.1,0.2\n")
    with pytest.raises(data.DataError, match=r"big.csv \((train|test)\): float data must lie in \[0, 1\]"):
        data.load_dataset("csv", str(tmp_path / "big.csv"), validation_split=0.5)
    with pytest.raises(data.DataError, match=r"train.csv: cannot read CSV file"):
        data.load_dataset("csv", str(tmp_path))


def test_vector_models_need_an_mlp_and_a_likelihood_of_values(tmp_path):
    with pytest.raises(ValueError, match=r"vector data\) needs architecture mlp .* got conv"):
        factory.build_model(TrainConfig(architecture="conv", hidden_units=(8,)), (10,))
    with pytest.raises(ValueError, match=r"needs architecture mlp and a bernoulli, continuous_bernoulli or gaussian"):
        factory.build_model(TrainConfig(likelihood="categorical"), (10,))


@pytest.mark.parametrize("likelihood", ["gaussian"])
def test_an_mlp_vae_on_vectors_trains_evaluates_samples_and_exports(tmp_path, likelihood):
    write_csv(str(tmp_path / "data" / "train.csv"), correlated_vectors(600, 1))
    write_csv(str(tmp_path / "data" / "test.csv"), correlated_vectors(100, 2))
    run = str(tmp_path / "run")
    common = ["--dataset=csv", f"--data_dir={tmp_path / 'data'}", f"--model_dir={run}", f"--likelihood={likelihood}",
              "--hidden_units=32", "--latent_dim=2", "--batch_size=50", "--verbose=0", "--learning_rate=0.01"]
    trained = run_script("train.py", *common, "--epochs=15")
    assert trained.returncode == 0, trained.stderr[-2000:]
    config = TrainConfig(likelihood=likelihood, hidden_units=(32,), latent_dim=2)
    untrained = factory.build_model(config, (10,))
    untrained.build((None, 10))
    test_vectors = data.load_dataset("csv", str(tmp_path / "data")).test_images
    before = evaluation.elbo_metrics(untrained, test_vectors)["elbo"]
    after = json.loads(trained.stdout.strip().splitlines()[-1])["elbo"]
    assert after > before + 1.0  # it learns the two factors behind the ten features
    evaluated = run_script("evaluate.py", f"--model_dir={run}", "--num_importance_samples=50")
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics["num_examples"] == 100 and metrics["log_likelihood"] >= metrics["elbo"] - 0.05
    sampled = run_script("sample.py", f"--model_dir={run}", "--num_samples=7")
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    samples = np.load(os.path.join(run, "samples", "prior_samples.npy"))
    assert samples.shape == (7, 10) and np.loadtxt(os.path.join(run, "samples", "reconstructions.csv"),
                                                   delimiter=",", skiprows=1).shape == (7, 10)  # after the header
    exported = run_script("export.py", f"--model_dir={run}", f"--export_dir={tmp_path / 'export'}")
    assert exported.returncode == 0, exported.stderr[-2000:]
    served = tf.saved_model.load(str(tmp_path / "export" / "1"))
    x = tf.constant(correlated_vectors(3, 3), tf.float32)
    assert served.signatures["reconstruct"](vectors=x)["reconstruction"].shape == (3, 10)  # named by data kind
