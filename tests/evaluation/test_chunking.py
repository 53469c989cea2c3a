"""The IWAE chunk's memory estimate and the chunk it allows (evaluation/chunking.py), against hand counts."""

import numpy as np
import pytest
import tensorflow as tf
from builders import binary_batch, make_model

from tfvae import evaluation
from tfvae.core import sampling
from tfvae.evaluation import chunking


class _KnownOps:
    """A stand-in VAE whose chunk of n samples for B rows runs ops of known sizes, per (row, sample) pair:

      noise [n, B, 1000]: the normal kernel's output, times stddev, plus mean     3 x 4000 bytes
      its square                                                                  4000
      a reshape of it (a view)                                                    0
      the sum over its last axes [n, B], plus a per-row term                      4 + 4

    and per row (not per pair) a [B, 300] tensor.
    """

    data_shape, built = (5,), True
    num_classes = 0

    def __init__(self, grows=True):
        self.grows = grows

    def iwae_log_weights(self, x, seed, first_sample, num_samples, labels=None, rows=None):
        per_row = tf.reduce_sum(tf.random.stateless_normal([x.shape[0], 300], seed))  # does not grow with n
        if not self.grows:
            return tf.zeros([num_samples, x.shape[0]]) + per_row
        noise = tf.random.stateless_normal([num_samples, x.shape[0], 1000], seed)
        squared = tf.reshape(tf.square(noise), [num_samples, x.shape[0], 10, 100])
        return tf.reduce_sum(squared, axis=[-2, -1]) + per_row


def test_bytes_per_pair_counts_each_op_output_that_grows_with_the_samples_and_skips_views():
    assert chunking.bytes_per_pair(_KnownOps()) == 3 * 4000 + 4000 + 4 + 4


def test_bytes_per_pair_is_at_least_one_float32_image():
    assert chunking.bytes_per_pair(_KnownOps(grows=False)) == 4 * 5


def test_bytes_per_pair_of_a_vae_covers_its_decoders_output_several_times():
    """An 8x8 Bernoulli VAE: log p(x|z) alone makes logits, then softplus/product terms, each 64 floats per pair."""
    model = make_model()
    model.build((None, 8, 8, 1))
    pair_bytes = chunking.bytes_per_pair(model)
    assert 3 * 64 * 4 <= pair_bytes <= 100 * 64 * 4


@pytest.mark.parametrize("budget, rows, pair_bytes, k, expected", [
    (10_000, 10, 100, 5000, 10),        # floor(10000 / 1000)
    (10_999, 10, 100, 5000, 10),
    (10_000, 10, 100, 7, 7),            # at most k
    (10, 10, 100, 5000, 1),             # at least 1
    (2**30, 100, 123_008, 5000, 87),    # the pretrained hierarchical MLP on a CPU
])
def test_chunk_size_is_the_budget_over_the_bytes_of_a_chunks_pairs(budget, rows, pair_bytes, k, expected):
    assert chunking.chunk_size(budget, rows, pair_bytes, k) == expected


@pytest.mark.parametrize("name, arguments", [("rows", (100, 0, 10, 5)), ("pair_bytes", (100, 1, 1.5, 5)),
                                             ("budget", (-1, 1, 10, 5)), ("num_samples", (100, 1, 10, True))])
def test_chunk_size_refuses_a_bad_argument_by_name(name, arguments):
    with pytest.raises(ValueError, match=f"^{name} must be a"):
        chunking.chunk_size(*arguments)


def test_device_budget_is_a_fraction_of_a_gpus_free_memory_when_its_limit_is_known():
    limit, in_use = 16 << 30, 3 << 30
    budget = chunking.device_budget("/job:localhost/replica:0/task:0/device:GPU:1",
                                    memory_info=lambda name: {"current": in_use, "peak": in_use},
                                    memory_limit=lambda name: limit if name == "GPU:1" else None)
    assert budget == int(chunking.GPU_MEMORY_FRACTION * (limit - in_use))
    assert chunking.device_budget("GPU:0", memory_limit=lambda name: None) == chunking.DEFAULT_GPU_BUDGET
    assert chunking.device_budget("/device:CPU:0") == chunking.DEFAULT_CPU_BUDGET


def test_the_evaluator_sizes_its_chunk_by_the_budget_and_the_examples_per_replica():
    model = make_model()
    model.build((None, 8, 8, 1))
    pair_bytes = chunking.bytes_per_pair(model)
    budget = 40 * 6 * pair_bytes + pair_bytes  # 40 samples for 6 examples, with room to spare
    evaluate = evaluation.IwaeEvaluator(model, num_samples=500, memory_budget=budget)
    bounds = evaluate(binary_batch(6), None, sampling.step_seed(3, 0))
    assert evaluate.chunk == 40
    np.testing.assert_allclose(bounds, model.log_likelihood(binary_batch(6), 500, sampling.step_seed(3, 0)).numpy(),
                               rtol=1e-5)
