"""TensorFlow Datasets through --dataset=tfds:NAME, on TFDS's mock data (no download)."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfvae
from tfvae import data
from tfvae.data import streaming
from tfvae.train import training

SMALL = dict(hidden_units=(8,), latent_dim=2, batch_size=10, epochs=1, validation_examples=10)


@pytest.fixture
def mock_mnist():
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_a_tfds_name_loads_its_image_and_label_features_in_memory_or_streamed(mock_mnist):
    config = tfvae.TrainConfig(dataset="tfds:mnist", conditional=True, input_mode="memory", **SMALL)
    in_memory = data.prepare_data(config)
    assert in_memory.train_images.shape == (40, 28, 28, 1) and in_memory.num_classes <= 10
    assert in_memory.train_labels.shape == (40,) and in_memory.train_labels.max() < 10
    streamed = data.prepare_data(tfvae.TrainConfig(**{**config.to_dict(), "input_mode": "stream"}))
    assert isinstance(streamed, streaming.StreamData) and streamed.num_train_examples == 40
    decoded = np.stack([x.numpy() for x, _ in streamed.train.decoded()])
    np.testing.assert_array_equal(decoded, in_memory.train_images)


def test_a_tfds_run_trains_and_names_bad_feature_flags(tmp_path, mock_mnist):
    results = training.train_and_evaluate(tfvae.TrainConfig(dataset="tfds:mnist", **SMALL), str(tmp_path / "run"),
                                          verbose=0)
    assert results["step"] == 4 and np.isfinite(results["elbo"])
    with pytest.raises(data.DataError, match=r"flag --image_feature: tfds:mnist has no feature 'photo'"):
        data.prepare_data(tfvae.TrainConfig(dataset="tfds:mnist", image_feature="photo", **SMALL))
    with pytest.raises(data.DataError, match=r"flag --dataset: tfds:no_such_dataset_here"):
        data.prepare_data(tfvae.TrainConfig(dataset="tfds:no_such_dataset_here", **SMALL))


def test_without_the_tfds_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails as if not installed
    with pytest.raises(data.DataError, match=r"need the tensorflow-datasets package: pip install 'tfvae\[tfds\]'"):
        data.prepare_data(tfvae.TrainConfig(dataset="tfds:mnist", **SMALL))
