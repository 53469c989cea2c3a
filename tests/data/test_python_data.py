"""Data given from Python: arrays, (x, y) tuples and tf.data datasets through train_and_evaluate."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import last_error_line, run_script

import tfvae
from tfvae import data
from tfvae.data import sources, streaming

SMALL = dict(hidden_units=(8,), latent_dim=2, batch_size=20, epochs=2, validation_examples=0, steps_per_execution=3)


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 6, 6), np.uint8)


def test_an_array_trains_with_a_seeded_held_out_split_and_the_run_records_python_data(tmp_path):
    images = _images(100)
    config = tfvae.TrainConfig(validation_split=0.2, **SMALL)
    prepared = data.from_python(config, images)
    assert prepared.train_images.shape == (80, 6, 6, 1) and prepared.test_images.shape == (20, 6, 6, 1)
    train_rows = {row.tobytes() for row in prepared.train_images}
    assert len(train_rows) == 80
    results = tfvae.train_and_evaluate(config, str(tmp_path / "run"), train_data=images, verbose=0)
    assert results["step"] == 2 * 4
    assert json.load(open(tmp_path / "run" / "config.json"))["dataset"] == "python"
    evaluated = run_script("evaluate.py", f"--model_dir={tmp_path / 'run'}", "--num_importance_samples=5")
    assert evaluated.returncode == 1
    assert "dataset 'python': this run's data was given from Python" in last_error_line(evaluated)
    with pytest.raises(ValueError, match="validation_data is given without train_data"):
        tfvae.train_and_evaluate(config, str(tmp_path / "other"), validation_data=images, verbose=0)


def test_a_dataset_in_memory_trains_exactly_like_the_same_arrays(tmp_path):
    vectors = (np.random.default_rng(1).random((60, 5)) < 0.4).astype(np.float32)  # Bernoulli vectors
    labels = np.arange(60) % 3
    config = tfvae.TrainConfig(conditional=True, input_mode="memory", **SMALL)
    validation = (vectors[:20], labels[:20])
    from_arrays = tfvae.train_and_evaluate(config, str(tmp_path / "arrays"), train_data=(vectors, labels),
                                           validation_data=validation, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((vectors, labels))
    from_dataset = tfvae.train_and_evaluate(config, str(tmp_path / "dataset"), train_data=dataset,
                                            validation_data=validation, verbose=0)
    assert from_dataset == from_arrays
    assert tfvae.load_model(str(tmp_path / "dataset")).num_classes == 3


def test_a_streamed_dataset_gives_every_example_once_per_epoch_split_across_workers():
    numbered = tf.data.Dataset.range(40).map(lambda i: (tf.fill([2, 2, 1], tf.cast(i, tf.uint8)), i))
    source = sources.dataset_source(numbered, "train_data")
    assert source.num_examples == 40 and source.data_shape == (2, 2, 1) and source.max_label == 39
    steps = streaming.steps_per_epoch(source, 8, num_workers=2)
    seen = np.concatenate([y.numpy() for w in (0, 1) for _, y in streaming.train_dataset(
        source, 8, seed=0, epoch=0, steps=steps, shuffle_buffer=10, num_workers=2, worker_index=w, with_labels=True)])
    assert sorted(seen) == list(range(40))
    images = np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in streaming.train_dataset(
        source, 8, seed=0, epoch=0, steps=steps, shuffle_buffer=10, with_labels=True)])
    assert sorted(images) == list(range(40))


def test_a_streamed_dataset_trains_through_train_and_evaluate(tmp_path):
    images = _images(80, seed=2)
    config = tfvae.TrainConfig(input_mode="stream", **SMALL)
    results = tfvae.train_and_evaluate(config, str(tmp_path / "run"), verbose=0,
                                       train_data=tf.data.Dataset.from_tensor_slices(images),
                                       validation_data=images[:20])
    assert results["step"] == 2 * 4 and np.isfinite(results["elbo"])
    with pytest.raises(ValueError, match="validation_data must be given with a tf.data.Dataset"):
        data.from_python(config, tf.data.Dataset.from_tensor_slices(images))
    with pytest.raises(ValueError, match="is infinite"):
        data.from_python(config, tf.data.Dataset.from_tensor_slices(images).repeat(), images[:5])
    with pytest.raises(data.DataError, match="train_data: labels must be 80 ints"):
        data.from_python(config, (images, np.zeros(79, int)))
    assert os.path.exists(tmp_path / "run" / "metrics.json")
