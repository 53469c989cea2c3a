"""Input order and binarization: deterministic, resumable and replica-invariant."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core import sampling
from tfvae.data import in_memory


def _blocks(**kwargs):
    args = dict(num_examples=100, global_batch_size=8, seed=1, epoch=0, block_steps=[12])
    args.update(kwargs)
    return [(i.numpy(), int(c)) for i, c in in_memory.train_index_blocks(**args)]


def test_one_epoch_visits_distinct_examples_in_a_seeded_order():
    (indices, count), = _blocks()
    assert count == 12 and indices.shape == (12, 8)
    assert len(np.unique(indices)) == 96
    (again, _), = _blocks()
    np.testing.assert_array_equal(indices, again)
    (other_epoch, _), = _blocks(epoch=1)
    assert not np.array_equal(indices, other_epoch)


def test_blocks_and_skipping_give_the_same_steps_as_one_pass():
    (whole, _), = _blocks()
    pieces = _blocks(block_steps=[5, 5, 2])
    assert [c for _, c in pieces] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate([p[:c] for p, c in pieces]), whole)
    resumed = _blocks(block_steps=[7], skip_steps=5)
    np.testing.assert_array_equal(resumed[0][0], whole[5:])


def test_replicas_split_each_global_batch_in_order():
    (whole, _), = _blocks()
    per_replica = _blocks(num_replicas=2, replica_ids=(0, 1))
    np.testing.assert_array_equal(np.concatenate([per_replica[0][0], per_replica[1][0]], axis=1), whole)
    second_worker = _blocks(num_replicas=4, replica_ids=(2, 3))
    np.testing.assert_array_equal(np.concatenate([b for b, _ in second_worker], axis=1), whole[:, 4:])


def test_binarization_is_replica_invariant_and_unbiased():
    x = tf.fill([8, 6, 6, 1], 0.3)
    whole = in_memory.binarize_batch(x, seed=5, step=tf.constant(3, tf.int64))
    halves = [in_memory.binarize_batch(x[:4], 5, tf.constant(3, tf.int64), replica_id=r, num_replicas=2)
              for r in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)
    later = in_memory.binarize_batch(x, seed=5, step=tf.constant(4, tf.int64))
    assert not np.array_equal(whole, later)
    many = in_memory.binarize_batch(tf.fill([1000, 6, 6, 1], 0.3), 5, tf.constant(0, tf.int64))
    assert abs(float(tf.reduce_mean(many)) - 0.3) < 0.01  # standard error 0.0024


def test_per_example_binarization_draws_a_replicas_rows_only_the_same_with_and_without_xla():
    x, step = tf.fill([8, 6, 6, 1], 0.3), tf.constant(3, tf.int64)

    def binarize(batch, replica_id=0, num_replicas=1):
        return in_memory.binarize_batch(batch, 5, step, replica_id, num_replicas, noise_scheme="per_example")

    whole = binarize(x)
    for replicas in (2, 4):
        local = 8 // replicas
        shares = [binarize(x[:local], r, replicas) for r in range(replicas)]
        np.testing.assert_array_equal(np.concatenate(shares), whole)
    compiled = tf.function(binarize, jit_compile=True)
    np.testing.assert_array_equal(compiled(x[:4], tf.constant(1), 2), whole[4:])
    assert not np.array_equal(whole, in_memory.binarize_batch(x, 5, step + 1, noise_scheme="per_example"))
    assert not np.array_equal(whole, in_memory.binarize_batch(x, 5, step))  # not the global_batch stream
    many = in_memory.binarize_batch(tf.fill([1000, 6, 6, 1], 0.3), 5, step, noise_scheme="per_example")
    assert abs(float(tf.reduce_mean(many)) - 0.3) < 0.012  # 5 standard errors (0.0024)


def test_per_example_binarization_noise_is_not_the_posterior_noise_of_the_same_step():
    """x_b = 1[u < 1/2] and eps < 0 are the same event of one word (u < 1/2 iff w < 2**31 iff eps < 0): if the
    binarization and the posterior drew the same words, they would agree everywhere; independent, half the time."""
    seed, step, shape = 5, tf.constant(3, tf.int64), [64, 16]
    bits = in_memory.binarize_batch(tf.fill(shape, 0.5), seed, step, noise_scheme="per_example").numpy()
    q = tfp.distributions.MultivariateNormalDiag(tf.zeros(shape), tf.ones(shape))
    eps = sampling.sample_posterior(q, sampling.training_seed(seed, step, "per_example"), 1)[0].numpy()
    agreement = np.mean(bits == (eps < 0))
    assert abs(agreement - 0.5) < 5 * 0.5 / np.sqrt(bits.size)  # 5 standard errors of 1024 fair coins


def test_an_unknown_noise_scheme_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"noise_scheme must be one of \('global_batch', 'per_example'\); got 'x'"):
        in_memory.binarize_batch(tf.fill([2, 3], 0.5), 5, tf.constant(0, tf.int64), noise_scheme="x")


def test_image_dataset_matches_the_index_blocks():
    images = np.arange(100 * 4, dtype=np.uint8).reshape(100, 2, 2, 1)
    batches = list(in_memory.train_batches(images, 8, seed=1, epoch=0, binarize=False))
    (whole, _), = _blocks()
    assert len(batches) == 12
    np.testing.assert_allclose(batches[3].numpy(), images[whole[3]] / 255.0, rtol=1e-6)


def test_batch_larger_than_the_data_or_not_divisible_by_replicas_is_rejected():
    with pytest.raises(ValueError, match=r"batch_size \(200\) must not exceed the number of training examples \(100\)"):
        _blocks(global_batch_size=200)
    with pytest.raises(ValueError, match=r"batch_size \(8\) must be divisible by the number of replicas \(3\)"):
        _blocks(num_replicas=3, replica_ids=(0,))


_COPIES_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
from tfvae.core import distribute
from tfvae.data import in_memory

distribute.split_cpu(2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
images = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1)
data = in_memory.InMemoryData(images, images[:2].astype(np.float32), "test", train_labels=np.arange(10, dtype=np.int32))
feed = data.training_feed(strategy, global_batch_size=4, seed=0)
read = {}

def replica(rows):
    copy = feed.local_copy()
    replica_id = tf.get_static_value(tf.distribute.get_replica_context().replica_id_in_sync_group)
    read[int(replica_id)] = [feed.image_copies[copy].device, feed.label_copies[copy].device]
    return feed.examples(rows)

rows = strategy.experimental_distribute_values_from_function(
    lambda ctx: tf.constant([[3, 1], [9, 4]][ctx.replica_id_in_sync_group]))
gathered = tf.function(lambda r: strategy.run(replica, args=(r,)))(rows)
print(json.dumps({
    "replica_devices": list(distribute.replica_devices(strategy)),
    "copy_devices": [feed.image_copies[i].device for i in range(len(feed.image_copies))],
    "read": {str(k): v for k, v in sorted(read.items())},
    "images": [np.asarray(v).tolist() for v in strategy.experimental_local_results(gathered[0])],
    "labels": [np.asarray(v).tolist() for v in strategy.experimental_local_results(gathered[1])],
}))
"""


def test_each_replica_gathers_its_batch_from_the_copy_on_its_own_device():
    """Two logical CPU devices: a copy of the images and labels on each, and replica r reads the one on device r."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run([sys.executable, "-c", _COPIES_SCRIPT], capture_output=True, text=True, timeout=300,
                            cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    devices = report["replica_devices"]
    assert len(devices) == 2 and report["copy_devices"] == devices
    for replica, (image_device, label_device) in report["read"].items():
        assert image_device == label_device == devices[int(replica)]
    images = np.arange(10 * 2 * 2 * 1).reshape(10, 2, 2, 1)
    for replica, rows in enumerate([[3, 1], [9, 4]]):
        np.testing.assert_array_equal(report["images"][replica], images[rows])
        np.testing.assert_array_equal(report["labels"][replica], rows)
