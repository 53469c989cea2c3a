"""Streaming input: every example once per epoch across workers, exact resume, bounded plans, bad records."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from builders import png, write_shards
from conftest import assert_killed_run_resumes_exactly, checkpoint_weights, last_error_line, run_script

import tfvae
from tfvae import data, evaluation
from tfvae.data import limits, records, sources, streaming
from tfvae.train import loops, training

NUM = 48  # numbered examples: label i on the image of example i


@pytest.fixture(scope="module")
def numbered_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numbered")
    images = np.stack([np.full((4, 4, 1), i, np.uint8) for i in range(NUM)])
    write_shards(folder, images, labels=np.arange(NUM), num_shards=4)
    return str(folder)


def _source(folder):
    return sources.tfrecord_source(folder, "train")


def _labels(dataset):
    return np.concatenate([y.numpy().reshape(-1) for _, y in dataset])


def test_two_workers_read_disjoint_shards_and_see_every_example_once_per_epoch(numbered_dir):
    source = _source(numbered_dir)
    steps = streaming.steps_per_epoch(source, 8, num_workers=2)
    assert steps == 6  # each worker holds 2 shards of 12 examples: 6 steps of 4 examples each
    orders = []
    for epoch in (0, 1):
        shares = [_labels(streaming.train_dataset(source, 8, seed=5, epoch=epoch, steps=steps, shuffle_buffer=10,
                                                  num_workers=2, worker_index=w, with_labels=True))
                  for w in (0, 1)]
        assert not set(shares[0]) & set(shares[1])
        assert sorted(np.concatenate(shares)) == list(range(NUM))
        orders.append(np.concatenate(shares))
        # Images match their labels: decoding follows the records.
        images = np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in streaming.train_dataset(
            source, 8, seed=5, epoch=epoch, steps=steps, shuffle_buffer=10, num_workers=2, worker_index=0,
            with_labels=True)])
        np.testing.assert_array_equal(images, shares[0])
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch
    again = _labels(streaming.train_dataset(source, 8, seed=5, epoch=1, steps=steps, shuffle_buffer=10, num_workers=2,
                                            worker_index=0, with_labels=True))
    np.testing.assert_array_equal(again, orders[1][: len(again)])


def test_a_resumed_epoch_continues_with_exactly_the_batches_not_yet_consumed(numbered_dir):
    source = _source(numbered_dir)
    full = [y.numpy() for _, y in streaming.train_dataset(source, 6, 1, 3, steps=8, shuffle_buffer=20,
                                                          with_labels=True)]
    resumed = [y.numpy() for _, y in streaming.train_dataset(source, 6, 1, 3, steps=8, shuffle_buffer=20,
                                                             skip_steps=3, with_labels=True)]
    assert len(full) == 8 and len(resumed) == 5
    for a, b in zip(full[3:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_blocks_follow_the_plan_and_give_each_replica_its_rows_of_every_step(numbered_dir):
    source = _source(numbered_dir)
    batches = [y.numpy() for _, y in streaming.train_dataset(source, 8, 2, 0, steps=6, shuffle_buffer=16,
                                                             with_labels=True)]
    elements = list(streaming.train_blocks(source, 8, 2, 0, steps=6, plan=[2, 3, 1], shuffle_buffer=16,
                                           num_local_replicas=2, with_labels=True))
    assert len(elements) == 3 * 2
    step = 0
    for b, count in enumerate([2, 3, 1]):
        for replica in (0, 1):
            (images, labels), element_count = elements[2 * b + replica]
            assert int(element_count) == count and labels.shape == (3, 4) and images.shape == (3, 4, 4, 4, 1)
            for k in range(count):
                np.testing.assert_array_equal(labels[k], batches[step + k][4 * replica: 4 * replica + 4])
            np.testing.assert_array_equal(labels[count:], 0)  # padding rows
        step += count
    with pytest.raises(ValueError, match="plan sums to 5, but 6 steps remain"):
        streaming.train_blocks(source, 8, 2, 0, steps=6, plan=[2, 3], shuffle_buffer=16)


def test_a_shuffle_buffer_larger_than_the_data_shuffles_as_one_of_its_size():
    # Why bounding the buffer by the records read changes no order: tf.data draws from the elements it holds.
    numbers = tf.data.Dataset.range(300)
    exact = list(numbers.shuffle(300, seed=7, reshuffle_each_iteration=False).as_numpy_iterator())
    larger = list(numbers.shuffle(10**6, seed=7, reshuffle_each_iteration=False).as_numpy_iterator())
    assert exact == larger and sorted(exact) == list(range(300)) and exact != list(range(300))


def test_the_shuffle_buffer_is_bounded_by_the_records_a_worker_reads(numbered_dir, monkeypatch):
    # Before: the flag went to tf.data as given; 10^9 on 300 records held 20 GB, 2^63 - 1 crashed (SIGSEGV).
    requested, shuffle = [], tf.data.Dataset.shuffle
    monkeypatch.setattr(tf.data.Dataset, "shuffle",
                        lambda self, size, *args, **kwargs: requested.append(int(size)) or shuffle(self, size, *args,
                                                                                                     **kwargs))
    source = _source(numbered_dir)
    largest = streaming.train_dataset(source, 8, seed=5, epoch=0, steps=3, shuffle_buffer=limits.MAX_SHUFFLE_BUFFER,
                                      num_workers=2, worker_index=1)
    assert requested == [24]  # worker 1 of 2 reads shards 1 and 3: 24 records
    exact = streaming.train_dataset(source, 8, seed=5, epoch=0, steps=3, shuffle_buffer=24, num_workers=2,
                                    worker_index=1)
    assert [x.tolist() for x in largest.as_numpy_iterator()] == [x.tolist() for x in exact.as_numpy_iterator()]
    for bad in (0, limits.MAX_SHUFFLE_BUFFER + 1, 2**63 - 1, True, 1.5):
        with pytest.raises(ValueError, match=r"^shuffle_buffer must be an int in \[1, 16777216\] \(records\); got"):
            streaming.train_dataset(source, 8, seed=5, epoch=0, steps=3, shuffle_buffer=bad)


def test_auto_input_mode_streams_a_training_split_over_the_memory_budget(tmp_path):
    rng = np.random.default_rng(0)
    write_shards(tmp_path, rng.integers(0, 256, (120, 64, 64, 3), dtype=np.uint8), num_shards=2)  # 1.4 MiB decoded
    config = tfvae.TrainConfig(dataset="tfrecord", data_dir=str(tmp_path), validation_examples=3)
    assert isinstance(data.prepare_data(dataclasses_replace(config, memory_budget_mb=1)), streaming.StreamData)
    in_memory = data.prepare_data(dataclasses_replace(config, memory_budget_mb=2))
    assert isinstance(in_memory, data.ImageData) and in_memory.train_images.shape == (120, 64, 64, 3)
    with pytest.raises(ValueError, match="input_mode must be memory or auto for dataset 'idx'"):
        data.prepare_data(tfvae.TrainConfig(dataset="idx", data_dir=str(tmp_path), input_mode="stream"))
    with pytest.raises(ValueError, match="train_examples must be 0 when the training split is streamed"):
        data.prepare_data(dataclasses_replace(config, input_mode="stream", train_examples=10))


def dataclasses_replace(config, **changes):
    return tfvae.TrainConfig(**{**config.to_dict(), **changes})


STREAM_FLAGS = ["--dataset=tfrecord", "--input_mode=stream", "--shuffle_buffer=30", "--hidden_units=16",
                "--latent_dim=3", "--batch_size=8", "--epochs=2", "--validation_examples=8", "--steps_per_execution=2",
                "--checkpoint_every_steps=3", "--verbose=0"]


def test_a_streamed_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, numbered_dir):
    assert_killed_run_resumes_exactly(tmp_path, [f"--data_dir={numbered_dir}", *STREAM_FLAGS], "ckpt-12")


def _with_a_bad_image(folder, bad_index, count=48):
    images = [png(np.full((4, 4, 1), i, np.uint8)) for i in range(count)]
    images[bad_index] = b"\x89PNG\r\n\x1a\n but not really"
    records.write_splits(str(folder), {"train": (((x, None) for x in images), count, 1),
                                       "test": (iter([(images[0], None)] * 8), 8, 1)})
    return str(folder / "train-00000-of-00001.tfrecord")


def test_a_bad_record_met_mid_epoch_stops_training_naming_it_and_keeps_the_last_checkpoint(tmp_path):
    shard = _with_a_bad_image(tmp_path / "data", bad_index=41)
    config = tfvae.TrainConfig(dataset="tfrecord", data_dir=str(tmp_path / "data"), input_mode="stream",
                               shuffle_buffer=1, hidden_units=(8,), latent_dim=2, batch_size=8, epochs=2,
                               validation_examples=8, steps_per_execution=1, checkpoint_every_steps=2)
    with pytest.raises(data.DataError) as stopped:
        training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0)
    message = str(stopped.value)
    assert message.startswith(f"{shard}: record 41: cannot decode image (Invalid PNG")
    assert "pass --skip_bad_records" in message and "ckpt-4 is kept" in message  # records 40-47 are step 6's
    path, _ = checkpoint_weights(str(tmp_path / "run"))
    assert path.endswith("ckpt-4")

    _with_a_bad_image(tmp_path / "early", bad_index=3)  # read in the first step of every epoch
    skipping = tfvae.TrainConfig(**{**config.to_dict(), "skip_bad_records": True, "data_dir": str(tmp_path / "early")})
    results = training.train_and_evaluate(skipping, str(tmp_path / "skipping"), verbose=0)
    assert results["skipped_records"] == 1 and results["step"] == 2 * 5  # 47 good records: 5 batches of 8
    assert json.load(open(tmp_path / "skipping" / "metrics.json"))["skipped_records"] == 1


def test_train_script_names_a_bad_record_in_one_line(tmp_path):
    shard = _with_a_bad_image(tmp_path / "data", bad_index=0)  # the first record: found before training
    result = run_script("train.py", "--dataset=tfrecord", f"--data_dir={tmp_path / 'data'}",
                        f"--model_dir={tmp_path / 'run'}", "--epochs=1", "--batch_size=8", "--hidden_units=8")
    assert result.returncode == 1
    assert last_error_line(result).startswith(f"train.py: error: {shard}: record 0: cannot decode image")
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_a_streamed_test_split_evaluates_like_the_same_split_in_memory(tmp_path):
    rng = np.random.default_rng(3)
    write_shards(tmp_path / "data", rng.integers(0, 256, (40, 6, 6, 1), dtype=np.uint8), num_shards=2,
                 test_images=rng.integers(0, 256, (30, 6, 6, 1), dtype=np.uint8))
    config = tfvae.TrainConfig(dataset="tfrecord", data_dir=str(tmp_path / "data"), input_mode="stream",
                               hidden_units=(8,), latent_dim=2, batch_size=8, epochs=1, validation_examples=10,
                               test_binarization_seed=4)
    training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0)
    model = tfvae.load_model(str(tmp_path / "run"))
    streamed, none = data.prepare_data(config).test_split(config.test_binarization_seed)
    in_memory, _ = data.prepare_data(dataclasses_replace(config, input_mode="memory")).test_split()
    assert none is None and len(streamed) == 30 and streamed.shape == (30, 6, 6, 1)
    np.testing.assert_array_equal(np.concatenate([x for x, _ in streamed.batches(7)]), in_memory)
    assert set(np.unique(in_memory)) == {0.0, 1.0}
    figures = [evaluation.evaluate_model(model, images, num_importance_samples=20, batch_size=7)
               for images in (streamed, in_memory)]
    assert figures[0] == pytest.approx(figures[1], rel=1e-6)
    result = run_script("evaluate.py", f"--model_dir={tmp_path / 'run'}", "--num_importance_samples=20",
                        "--batch_size=7", "--max_examples=21")
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["num_examples"] == 21
    head = evaluation.evaluate_model(model, in_memory[:21], num_importance_samples=20, batch_size=7)
    assert printed["log_likelihood"] == pytest.approx(head["log_likelihood"], rel=1e-5)


def test_streamed_batches_are_converted_and_binarized_like_the_same_examples_in_memory(tmp_path):
    images = np.random.default_rng(5).integers(0, 256, (16, 4, 4, 1), dtype=np.uint8)
    write_shards(tmp_path, images, num_shards=1)
    config = tfvae.TrainConfig(dataset="tfrecord", data_dir=str(tmp_path), input_mode="stream", hidden_units=(4,),
                               latent_dim=2, batch_size=8, validation_examples=4)
    streamed = data.prepare_data(config)
    in_memory = data.prepare_data(dataclasses_replace(config, input_mode="memory"))
    strategy = tf.distribute.get_strategy()
    model, _ = training.build_model_and_optimizer(config, streamed, strategy)
    for binarized in (True, False):
        if not binarized:
            streamed, in_memory = (dataclasses.replace(d, binarize=False) for d in (streamed, in_memory))
        x_streamed, _ = loops.StreamingTrainingLoop(model, strategy, streamed, config).rows_to_batch(
            tf.constant(images[3:11]))
        x_in_memory, _ = loops.TrainingLoop(model, strategy, in_memory, config).rows_to_batch(tf.range(3, 11))
        np.testing.assert_array_equal(x_streamed.numpy(), x_in_memory.numpy())
        values = set(np.unique(x_streamed.numpy()))
        assert values <= {0.0, 1.0} if binarized else len(values) > 2
