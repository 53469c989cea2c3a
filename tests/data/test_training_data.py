"""Data in memory and streamed answer one interface (``training_data``), and the one training loop uses it alike."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from builders import write_shards

import tfvae
from tfvae import data
from tfvae.data import formats, in_memory, loaders, streaming
from tfvae.data.training_data import TrainingData, TrainingFeed
from tfvae.train import loops, training

NUM_EXAMPLES, BATCH = 40, 8


def _images(seed=3):
    return np.random.default_rng(seed).integers(0, 256, (NUM_EXAMPLES, 4, 4, 1), dtype=np.uint8)


def _config(directory, **kwargs):
    settings = dict(dataset="tfrecord", data_dir=str(directory), hidden_units=(4,), latent_dim=2, batch_size=BATCH,
                    validation_examples=4, steps_per_execution=2, shuffle_buffer=1, seed=7)
    return tfvae.TrainConfig(**{**settings, **kwargs})


@pytest.fixture
def both_kinds(tmp_path):
    """(config, the same shards made ready in memory, and streamed)."""
    write_shards(tmp_path, _images(), num_shards=1, test_images=_images(4)[:8])
    config = _config(tmp_path)
    return (config, data.prepare_data(dataclasses.replace(config, input_mode="memory")),
            data.prepare_data(dataclasses.replace(config, input_mode="stream")))


def test_data_in_memory_and_streamed_both_answer_the_training_data_interface(both_kinds):
    config, held, streamed = both_kinds
    assert isinstance(held, in_memory.InMemoryData) and isinstance(streamed, streaming.StreamData)
    strategy = tf.distribute.get_strategy()
    for prepared in (held, streamed):
        assert isinstance(prepared, TrainingData)
        assert prepared.data_shape == (4, 4, 1) and prepared.num_train_examples == NUM_EXAMPLES
        assert prepared.steps_per_epoch(BATCH) == NUM_EXAMPLES // BATCH
        assert prepared.binarize and len(prepared.test_images[: config.validation_examples]) == 4
        assert isinstance(prepared.training_feed(strategy, BATCH, config.seed, config.shuffle_buffer), TrainingFeed)
    # What was loaded is not what is ready: arrays as read have no binarization, steps or feed.
    loaded = loaders.load_dataset("tfrecord", config.data_dir)
    assert isinstance(loaded, formats.LoadedArrays) and not isinstance(loaded, TrainingData)


def test_a_test_split_is_binarized_with_the_seed_it_was_made_ready_with(both_kinds):
    config, held, streamed = both_kinds
    for prepared in (held, streamed):
        images, _ = prepared.test_split(max_examples=3)
        same, _ = prepared.test_split(config.test_binarization_seed, 3)
        assert len(images) == len(same) == 3
        with pytest.raises(ValueError, match="test_binarization_seed must be the seed the data were made ready with"):
            prepared.test_split(config.test_binarization_seed + 1)


def _trained_weights(config, prepared):
    strategy = tf.distribute.get_strategy()
    model, _ = training.build_model_and_optimizer(config, prepared, strategy)
    loop = loops.make_training_loop(model, strategy, prepared, config)
    plan = training.block_plan(0, loop.steps_per_epoch, config.steps_per_execution, checkpoint_every=10**6)
    iterator = iter(loop.epoch_input(0, plan))
    for steps in plan:
        loop.run_block(iterator, steps)
    return [w.numpy() for w in model.weights]


def test_the_loop_trains_the_same_weights_from_the_same_batches_in_memory_and_streamed(tmp_path):
    """Shards written in the order the in-memory epoch draws, read with a buffer of 1: the same batches per step,
    so the one loop must give bitwise the same weights whichever kind of data feeds it."""
    images = _images()
    config = _config(tmp_path)
    steps = NUM_EXAMPLES // BATCH
    order = np.random.default_rng([config.seed, 0]).permutation(NUM_EXAMPLES)[: steps * BATCH]
    write_shards(tmp_path, images[order], num_shards=1, test_images=_images(4)[:8])
    streamed = data.prepare_data(dataclasses.replace(config, input_mode="stream"))
    held = in_memory.InMemoryData(images, streamed.test_images, "in memory", binarize=True)
    assert held.steps_per_epoch(BATCH) == streamed.steps_per_epoch(BATCH) == steps
    from_memory, from_files = _trained_weights(config, held), _trained_weights(config, streamed)
    assert not np.array_equal(from_memory[0], _trained_weights(dataclasses.replace(config, seed=8), held)[0])
    for a, b in zip(from_memory, from_files, strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_name_reads_through_the_one_registry_of_formats(tmp_path):
    assert set(loaders.DATASETS) == set(loaders.FORMATS) - {"tfds"}
    assert loaders.STREAMABLE == ("image_folder", "tfrecord")
    assert loaders.find_format("tfds:mnist") is loaders.FORMATS["tfds"]
    with pytest.raises(data.DataError, match="dataset must be one of"):
        loaders.find_format("parquet")
    with pytest.raises(data.DataError, match="this run's data was given from Python"):
        loaders.find_format(data.PYTHON_DATASET)
    with pytest.raises(data.DataError, match="flag --data_dir: dataset 'tfrecord' needs a data_dir"):
        loaders.load_dataset("tfrecord")
