"""Counter-based noise: Philox-4x32-10 against known answers, bits the same in every context, and a replica's
share of a draw equal to its rows of the whole draw."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfvae.core import counter_noise

KEY = tf.constant([-5, 7], tf.int32)


def _hex(words):
    return [f"{int(w):08x}" for w in words]


# ------------------------------------------------------------------ Philox
@pytest.mark.parametrize("counter, key, expected", [
    ([0, 0, 0, 0], [0, 0], ["6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8"]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, ["408f276d", "41c83b0e", "a20bc7c6", "6d5451fd"]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     ["d16cfe09", "94fdcceb", "5001e420", "24126ea1"]),
], ids=["zeros", "ones", "pi"])
def test_philox_matches_the_random123_known_answers(counter, key, expected):
    assert _hex(counter_noise.philox4x32(counter, key)) == expected


def _tensorflow_philox(counter, key):
    """TensorFlow's own Philox-4x32-10 kernel: the first 4 words of the stream at (key, counter)."""
    packed_counter = tf.constant([counter[0] | counter[1] << 32, counter[2] | counter[3] << 32], tf.uint64)
    packed_key = tf.constant([key[0] | key[1] << 32], tf.uint64)
    return tf.raw_ops.StatelessRandomUniformFullIntV2(shape=[4], key=packed_key, counter=packed_counter, alg=1,
                                                      dtype=tf.uint32).numpy()


def test_philox_matches_tensorflows_philox_kernel_on_random_counters_and_keys():
    rng = np.random.default_rng(0)
    for _ in range(20):
        counter, key = [int(v) for v in rng.integers(0, 2**32, 4)], [int(v) for v in rng.integers(0, 2**32, 2)]
        assert _hex(counter_noise.philox4x32(counter, key)) == _hex(_tensorflow_philox(counter, key))


# ------------------------------------------------------------------ the same bits everywhere
def _draws(first_example):
    return [counter_noise.normal(KEY, [3, 5, 7], first_example, batch_axis=1, stream=2),
            counter_noise.uniform(KEY, tf.constant([5, 4, 4, 1]), first_example),
            counter_noise.step_key(2**40 + 3, tf.constant(2**33 + 9, tf.int64), salt=11)]


def test_bits_are_the_same_eagerly_in_a_graph_and_under_xla():
    first = tf.constant(6)
    eager = _draws(first)
    for function in (tf.function(_draws), tf.function(_draws, jit_compile=True)):
        for mine, theirs in zip(eager, function(first), strict=True):
            np.testing.assert_array_equal(tf.bitcast(mine, tf.int32) if mine.dtype == tf.float32 else mine,
                                          tf.bitcast(theirs, tf.int32) if theirs.dtype == tf.float32 else theirs)


def test_a_replicas_share_equals_its_rows_of_the_one_replica_draw():
    whole = counter_noise.normal(KEY, [2, 8, 5], first_example=0, batch_axis=1, stream=1).numpy()
    for replicas in (2, 4, 8):
        local = 8 // replicas
        shares = [counter_noise.normal(KEY, [2, local, 5], first_example=r * local, batch_axis=1, stream=1)
                  for r in range(replicas)]
        np.testing.assert_array_equal(np.concatenate(shares, axis=1), whole)
    images = counter_noise.uniform(KEY, [8, 3, 3, 2], first_example=40).numpy()
    np.testing.assert_array_equal(counter_noise.uniform(KEY, [3, 3, 3, 2], first_example=45), images[5:])


def test_a_dynamic_batch_in_a_graph_gives_the_static_draw():
    draw = tf.function(lambda x, first: counter_noise.uniform(KEY, tf.shape(x), first),
                       input_signature=[tf.TensorSpec([None, 6], tf.float32), tf.TensorSpec([], tf.int32)])
    np.testing.assert_array_equal(draw(tf.zeros([3, 6]), tf.constant(2)), counter_noise.uniform(KEY, [3, 6], 2))


def test_every_coordinate_gets_its_own_words():
    """No counter word is reused: elements, examples, samples, streams and keys each change every word drawn."""
    base = counter_noise.words(KEY, [3, 4, 9], batch_axis=1).numpy()
    assert len(np.unique(base)) == base.size  # 108 distinct uint32: a collision has probability ~1e-6
    for other in (counter_noise.words(KEY, [3, 4, 9], batch_axis=1, stream=1),
                  counter_noise.words(KEY, [3, 4, 9], first_example=4, batch_axis=1),
                  counter_noise.words(tf.constant([-5, 8]), [3, 4, 9], batch_axis=1)):
        assert not np.isin(other.numpy(), base).any()
    assert counter_noise.words(KEY, [3, 4, 9], batch_axis=0).shape == (3, 4, 9)


def test_step_keys_differ_by_seed_step_and_salt_and_stay_the_run_seeds_function():
    keys = {tuple(counter_noise.step_key(seed, step, salt).numpy())
            for seed in (0, 1, 2**32) for step in (0, 1, 2**32) for salt in (0, 1)}
    assert len(keys) == 18
    np.testing.assert_array_equal(counter_noise.step_key(5, 3, 1), counter_noise.step_key(5, tf.constant(3), 1))
    with pytest.raises(ValueError, match="seed must fit in 64 bits; got 18446744073709551616"):
        counter_noise.step_key(2**64, 0)


# ------------------------------------------------------------------ the maps to U(0, 1) and N(0, 1)
def test_uniform_never_reaches_0_or_1_and_is_exact_at_the_ends():
    ends = counter_noise.uniform_of_words(tf.constant([0, 255, 2**32 - 1], tf.int64)).numpy()
    np.testing.assert_array_equal(ends, np.float32([2**-24, 2**-24, 1 - 2**-24]))


def test_normal_is_phi_inverse_of_the_word_within_1e_6():
    rng = np.random.default_rng(1)
    w = np.concatenate([rng.integers(0, 2**32, 200_000), np.arange(4096), 2**32 - 1 - np.arange(4096),
                        2**31 + np.arange(-2048, 2048)] + [2**k + rng.integers(0, 2**k, 2000) for k in range(12, 32)])
    z = counter_noise.normal_of_words(tf.constant(w, tf.int64)).numpy()
    exact = stats.norm.ppf((w + 0.5) / 2**32)
    assert np.abs(z - exact).max() < 1e-6  # the interpolation (measured 8.7e-7) plus float32 rounding
    np.testing.assert_array_equal(counter_noise.normal_of_words(tf.constant(2**32 - 1 - w, tf.int64)), -z)


N = 2**20


def test_uniform_and_normal_pass_kolmogorov_smirnov_and_moment_checks():
    # With 2**20 draws the KS statistic of a correct sampler exceeds 2.0 / sqrt(N) with probability 1e-3.5 (the
    # Kolmogorov distribution's tail 2 exp(-2 * 2.0**2) = 6.7e-4), and each moment lies within 5 standard errors.
    u = counter_noise.uniform(KEY, [4, N // 4 // 8, 8], batch_axis=1).numpy().ravel().astype(np.float64)
    z = counter_noise.normal(KEY, [4, N // 4 // 8, 8], batch_axis=1, stream=3).numpy().ravel().astype(np.float64)
    assert stats.kstest(u, "uniform").statistic < 2.0 / np.sqrt(N)
    assert stats.kstest(z, "norm").statistic < 2.0 / np.sqrt(N)
    assert abs(z.mean()) < 5 / np.sqrt(N)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / N)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / N)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(N)  # neighbouring elements are independent
