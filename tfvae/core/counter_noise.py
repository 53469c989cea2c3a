"""Counter-based noise: each replica draws only its own examples' noise, the same on any device and compiler.

Every random word is Philox-4x32-10 (Salmon et al. 2011) of a key and a
128-bit counter, written in TensorFlow integer ops, so a draw is a pure
function of its coordinates:

  key      = the [2] int32 stateless seed, read as two uint32 words
             (``step_key(seed, step, salt)`` makes one per training step and purpose)
  counter  = (block, example, sample, stream)   four uint32 words:
             block    the element index // 4 (one Philox call gives 4 words: elements 4b .. 4b+3)
             example  the example's index in the *global* batch (first_example + row)
             sample   the index of the sample (the flattened dimensions before the batch axis)
             stream   which draw of the step it is (a latent layer's index; 0 by default)
  words    = philox4x32_10(counter, key)

A replica holding rows [r B_local, (r + 1) B_local) of a global batch calls
``uniform``/``normal`` with ``first_example = r * B_local`` and gets exactly
those rows of the one-replica draw, at 1/R of its cost; nothing depends on
how the batch is split. Only integer ops, gathers and one int64 -> float32
conversion touch the bits, so eager, ``tf.function`` and XLA (CPU and GPU)
give identical values (``words`` evaluates them in another order under XLA,
for speed; the values are the same) (TensorFlow's stateless ops do not: their XLA
kernels lay out the stream differently, and their floating-point maps to
the normal differ by rounding).

Word w (uint32) to uniform and normal:

  uniform  u = (2 floor(w / 2**9) + 1) / 2**24  in [2**-24, 1 - 2**-24], exact in float32 (23 bits)
  normal   z = Phi^-1((w + 1/2) / 2**32), Phi^-1 by inverse CDF: tabulated on 256 points per octave of the
           tail probability p = min(u, 1 - u) in (2**-33, 1/2) and interpolated linearly in 64-bit fixed
           point (2**-32); z is antisymmetric (z(w) = -z(2**32 - 1 - w)) and |z| <= 6.34. Its largest
           error against the exact Phi^-1 is below 1e-6 (tests/core/test_counter_noise.py measures it).

Every word is held in an int64 tensor (values in [0, 2**32)): int64 add,
multiply, shifts and bitwise ops have CPU, GPU and XLA kernels, and the
32 x 32 -> 64-bit products of Philox are formed from 16-bit halves so that no
product exceeds 2**49.

Example:
  key = counter_noise.step_key(seed=0, step=step, salt=0)
  eps = counter_noise.normal(key, [num_samples, local_batch, latent_dim], first_example=replica * local_batch,
                             batch_axis=1)

References:
  Salmon, Moraes, Dror & Shaw (2011), Parallel random numbers: as easy as 1, 2, 3 (Philox; Random123).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import tensorflow as tf

from tfvae.core import xla

__all__ = ["normal", "normal_of_words", "philox4x32", "step_key", "uniform", "uniform_of_words", "words"]

_MASK = 0xFFFFFFFF
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)  # Philox-4x32 round multipliers (Random123)
_WEYL = (0x9E3779B9, 0xBB67AE85)  # key increments between rounds: golden ratio and sqrt(3) - 1, as uint32
_ROUNDS = 10
_STEP_KEY_DOMAIN = 0x57E9C0DE  # counter word 3 of ``step_key``, so its words are not any draw's

# Phi^-1 table: entry i = e * K + j holds -Phi^-1(p_i) * 2**32 for p_i = 2**(e - 33) * (1 + j / K), e in [0, 32).
_BITS_PER_OCTAVE = 8
_K = 1 << _BITS_PER_OCTAVE
_FRACTION_BITS = 31  # the mantissa of v = 2 w' + 1 below its leading bit, as a 31-bit fraction
_WEIGHT_BITS = _FRACTION_BITS - _BITS_PER_OCTAVE  # interpolation weight within a segment
_SCALE_BITS = 32  # fixed point of the table: z * 2**32


def _inverse_cdf_table() -> np.ndarray:
    inverse_cdf = statistics.NormalDist().inv_cdf
    table = [round(-inverse_cdf(math.ldexp(1.0 + j / _K, e - 33)) * 2**_SCALE_BITS)
             for e in range(32) for j in range(_K)]
    table.append(0)  # p = 1/2
    table = np.asarray(table, np.int64)
    if np.abs(np.diff(table)).max() >= 2 ** (63 - _WEIGHT_BITS):  # the interpolation's product must fit in int64
        raise ImportError("the inverse-CDF table's steps overflow the fixed-point interpolation")
    return table


_TABLE = _inverse_cdf_table()


def _mulhilo(a: tf.Tensor, multiplier: int) -> tuple[tf.Tensor, tf.Tensor]:
    """(high, low) 32-bit words of a * multiplier, a in [0, 2**32): a * m = t + a * m_hi * 2**16, t = a * m_lo."""
    m_low, m_high = multiplier & 0xFFFF, multiplier >> 16
    t = a * m_low  # < 2**48
    u = a * m_high + tf.bitwise.right_shift(t, 16)  # < 2**48 + 2**32; a * m = u * 2**16 + (t mod 2**16)
    low = tf.bitwise.bitwise_or(tf.bitwise.left_shift(tf.bitwise.bitwise_and(u, 0xFFFF), 16),
                                tf.bitwise.bitwise_and(t, 0xFFFF))
    return tf.bitwise.right_shift(u, 16), low


def philox4x32(counter, key) -> list[tf.Tensor]:
    """Philox-4x32-10: four uint32 words (int64 tensors) of four counter words and two key words.

    Args:
      counter: four int64 tensors (broadcastable) of values in [0, 2**32).
      key: two int64 scalars (or tensors) of values in [0, 2**32).

    Each of the 10 rounds: (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2,
    c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); then k += (W0, W1) mod 2**32.
    """
    c0, c1, c2, c3 = (tf.convert_to_tensor(c, tf.int64) for c in counter)
    k0, k1 = (tf.convert_to_tensor(k, tf.int64) for k in key)
    for round_index in range(_ROUNDS):
        if round_index:
            k0 = tf.bitwise.bitwise_and(k0 + _WEYL[0], _MASK)
            k1 = tf.bitwise.bitwise_and(k1 + _WEYL[1], _MASK)
        high0, low0 = _mulhilo(c0, _MULTIPLIERS[0])
        high1, low1 = _mulhilo(c2, _MULTIPLIERS[1])
        xor = tf.bitwise.bitwise_xor
        c0, c1, c2, c3 = xor(xor(high1, c1), k0), low1, xor(xor(high0, c3), k1), low0
    return [c0, c1, c2, c3]


def _key_words(key) -> tuple[tf.Tensor, tf.Tensor]:
    """The [2] int32 seed as two uint32 words (int64): its bits, not its signed values."""
    key = tf.bitwise.bitwise_and(tf.cast(tf.convert_to_tensor(key), tf.int64), _MASK)
    return key[0], key[1]


def step_key(seed: int, step, salt: int = 0) -> tf.Tensor:
    """The [2] int32 key of one step's draws for one purpose: Philox of (step mod 2**32, step // 2**32, salt, D)
    under the key (seed mod 2**32, seed // 2**32 mod 2**32), its first two words.

    A pure function of (seed, step, salt), whatever the device or compiler.

    Args:
      seed: the run's seed, any int of up to 64 bits.
      step: the optimizer step, an int or integer scalar tensor (>= 0).
      salt: which of the step's draws (e.g. the posterior noise and the binarization get different salts).
    """
    seed = int(seed)
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must fit in 64 bits; got {seed}")
    step = tf.cast(step, tf.int64)
    counter = (tf.bitwise.bitwise_and(step, _MASK), tf.bitwise.bitwise_and(tf.bitwise.right_shift(step, 32), _MASK),
               int(salt) & _MASK, _STEP_KEY_DOMAIN)
    output = philox4x32(counter, (seed & _MASK, (seed >> 32) & _MASK))
    # uint32 words -> the int32 with the same bits
    return tf.cast(tf.stack([w - tf.cast(w >= 2**31, tf.int64) * 2**32 for w in output[:2]]), tf.int32)


def words(key, shape, first_example=0, batch_axis: int = 0, stream=0) -> tf.Tensor:
    """uint32 words (int64) of ``shape`` = [*samples, B_local, *elements]: the element e of row b of sample s is
    word e mod 4 of philox4x32((e // 4, first_example + b, s, stream), key).

    Args:
      key: the [2] int32 stateless seed.
      shape: a list of ints or a 1-D int tensor; dimension ``batch_axis`` is this replica's examples, those before
        it are flattened into the sample index s, those after it into the element index e.
      first_example: the global index of this replica's first example (an int or int32/int64 scalar tensor).
      batch_axis: where the examples are.
      stream: which draw of the step (e.g. a latent layer's index).

    Outside XLA each Philox call is computed once and its 4 words
    interleaved; under XLA, which would fuse that call into every element
    that reads it and then cannot vectorise the interleaving, each element
    computes its call and keeps its word (the same words; on a 2-core CPU
    ~8x faster for a [128, 28, 28, 1] batch, though 4x the integer work).
    """
    shape = tf.cast(tf.convert_to_tensor(shape), tf.int64)
    num_samples = tf.reduce_prod(shape[:batch_axis])
    local_batch = shape[batch_axis]
    num_elements = tf.reduce_prod(shape[batch_axis + 1:])
    example = tf.reshape(tf.cast(first_example, tf.int64) + tf.range(local_batch, dtype=tf.int64), [1, -1, 1])
    sample = tf.reshape(tf.range(num_samples, dtype=tf.int64), [-1, 1, 1])
    stream = tf.bitwise.bitwise_and(tf.cast(stream, tf.int64), _MASK)
    if xla.in_xla_context():
        element = tf.reshape(tf.range(num_elements, dtype=tf.int64), [1, 1, -1])
        full = tf.stack([num_samples, local_batch, num_elements])
        counter = [tf.broadcast_to(c, full) for c in (tf.bitwise.right_shift(element, 2), example, sample)]
        output = philox4x32([*counter, tf.fill(full, stream)], _key_words(key))
        lane = tf.broadcast_to(tf.bitwise.bitwise_and(element, 3), full)
        output = tf.where(lane < 2, tf.where(lane == 0, output[0], output[1]),
                          tf.where(lane == 2, output[2], output[3]))
    else:
        num_blocks = (num_elements + 3) // 4
        block = tf.reshape(tf.range(num_blocks, dtype=tf.int64), [1, 1, -1])
        full = tf.stack([num_samples, local_batch, num_blocks])
        counter = [tf.broadcast_to(c, full) for c in (block, example, sample)]
        output = tf.stack(philox4x32([*counter, tf.fill(full, stream)], _key_words(key)), axis=-1)  # [S, B, blocks, 4]
        output = tf.reshape(output, tf.stack([num_samples, local_batch, num_blocks * 4]))[:, :, :num_elements]
    return tf.reshape(output, shape)


def uniform_of_words(w: tf.Tensor) -> tf.Tensor:
    """u = (2 floor(w / 2**9) + 1) / 2**24: float32 in [2**-24, 1 - 2**-24], never 0 or 1, exact."""
    odd = tf.bitwise.bitwise_or(tf.bitwise.right_shift(w, 8), 1)  # odd, < 2**24: exact in float32
    return tf.cast(odd, tf.float32) * (2.0**-24)


def _floor_log2(v: tf.Tensor) -> tf.Tensor:
    """floor(log2 v) of int64 v in [1, 2**32), by binary search (integer ops only)."""
    exponent = tf.zeros_like(v)
    for shift in (16, 8, 4, 2, 1):
        above = v >= (1 << shift)
        v = tf.where(above, tf.bitwise.right_shift(v, shift), v)
        exponent = tf.where(above, exponent + shift, exponent)
    return exponent


def normal_of_words(w: tf.Tensor) -> tf.Tensor:
    """z = Phi^-1((w + 1/2) / 2**32), float32, by the interpolated inverse-CDF table (integer arithmetic).

    With p = (2 w' + 1) / 2**33 the tail probability (w' = w below 2**31,
    else 2**32 - 1 - w) and v = 2 w' + 1 = 2**e (1 + f), f in [0, 1): the
    table's segment is i = e K + floor(f K), the weight the rest of f, and
    z = -+ (T_i + (T_{i+1} - T_i) * weight) * 2**-32.
    """
    lower = w < 2**31
    tail = tf.where(lower, w, _MASK - w)
    v = 2 * tail + 1
    exponent = _floor_log2(v)
    fraction = tf.bitwise.left_shift(v - tf.bitwise.left_shift(tf.ones_like(v), exponent), _FRACTION_BITS - exponent)
    index = exponent * _K + tf.bitwise.right_shift(fraction, _WEIGHT_BITS)
    weight = tf.bitwise.bitwise_and(fraction, (1 << _WEIGHT_BITS) - 1)
    table = tf.constant(_TABLE)
    start = tf.gather(table, index)
    magnitude = start + tf.bitwise.right_shift((tf.gather(table, index + 1) - start) * weight, _WEIGHT_BITS)
    fixed = tf.where(lower, -magnitude, magnitude)
    return tf.cast(fixed, tf.float32) * (2.0**-_SCALE_BITS)


def uniform(key, shape, first_example=0, batch_axis: int = 0, stream=0) -> tf.Tensor:
    """U(0, 1) float32 of ``shape``, never 0 or 1 (``uniform_of_words`` of ``words``; arguments as there)."""
    return uniform_of_words(words(key, shape, first_example, batch_axis, stream))


def normal(key, shape, first_example=0, batch_axis: int = 0, stream=0) -> tf.Tensor:
    """N(0, 1) float32 of ``shape`` (``normal_of_words`` of ``words``; arguments as there)."""
    return normal_of_words(words(key, shape, first_example, batch_axis, stream))
