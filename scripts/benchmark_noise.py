"""The cost of a training step's noise under each --noise_scheme, per replica (a benchmark, not a test).

  python scripts/benchmark_noise.py                                  # global batch 1024 on 8 replicas' shares
  python scripts/benchmark_noise.py --replicas=2 --samples=5 --data_shape=32,32,3

One replica's draws of one step, on the CPU: the dynamic binarization's
uniforms [B_local, *data_shape] (compared with a gathered uint8 batch, as the
training loop does) and the posterior noise [samples, B_local, latent_dim].
global_batch draws both for the whole global batch with TensorFlow's
stateless kernels and keeps the replica's rows; per_example draws the
replica's rows only with ``core.counter_noise``. Printed: CPU milliseconds
per step of one replica (one thread, CPU time, so that other load on the
machine does not blur them) with XLA off and on, the median of --repeats
rounds of --steps steps, and R times that: the noise work of the whole job.
"""

import time

import _startup
from absl import flags

_BATCH = flags.DEFINE_integer("global_batch", 1024, "Global batch size B.", lower_bound=1)
_REPLICAS = flags.DEFINE_integer("replicas", 8, "Replicas R sharing the global batch (B_local = B / R).", lower_bound=1)
_SHAPE = flags.DEFINE_list("data_shape", ["28", "28", "1"], "Shape of one example (binarization noise).")
_LATENT = flags.DEFINE_integer("latent_dim", 32, "Latent size (posterior noise).", lower_bound=1)
_SAMPLES = flags.DEFINE_integer("samples", 1, "Posterior samples per example (IWAE k).", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 20, "Steps per timed round.", lower_bound=1)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds (median reported).", lower_bound=1)


def _step_draw(scheme, local_batch, replica_id):
    """draw(step) -> a scalar that depends on every value one replica draws in one step under ``scheme``."""
    import tensorflow as tf

    from tfvae.core import counter_noise, sampling
    from tfvae.data import in_memory

    shape = [int(d) for d in _SHAPE.value]
    images = tf.Variable(tf.cast(tf.random.stateless_uniform([4 * local_batch, *shape], [1, 2], 0, 256, tf.int32),
                                 tf.uint8))

    def draw(step):
        rows = tf.random.stateless_uniform([local_batch], tf.stack([step, 0]), 0, 4 * local_batch, tf.int32)
        x = in_memory.to_float(tf.gather(images, rows))
        bits = in_memory.binarize_batch(x, 0, step, replica_id, _REPLICAS.value, noise_scheme=scheme)
        if scheme == "per_example":
            eps = counter_noise.normal(counter_noise.step_key(0, step), [_SAMPLES.value, local_batch, _LATENT.value],
                                       replica_id * local_batch, batch_axis=1)
        else:  # sampling's global_batch draw: the whole batch, then the replica's rows
            eps = tf.random.stateless_normal([_SAMPLES.value, local_batch * _REPLICAS.value, _LATENT.value],
                                             seed=sampling.step_seed(0, step), alg=sampling.rng_algorithm())
            eps = eps[:, replica_id * local_batch:(replica_id + 1) * local_batch]
        return tf.reduce_sum(bits * x) + tf.reduce_sum(eps)

    return draw


def _cpu_ms_per_step(scheme, jit):
    import tensorflow as tf

    from tfvae.core import xla

    local_batch = _BATCH.value // _REPLICAS.value
    draw = _step_draw(scheme, local_batch, _REPLICAS.value - 1)  # the last replica: the largest offset

    def steps(first):
        def body(i, total):
            return i + 1, total + draw(tf.cast(i, tf.int64))

        return tf.while_loop(lambda i, _: i < first + _STEPS.value, body, [first, tf.constant(0.0)])[1]

    run = xla.function(steps, jit_compile=jit, autograph=False)
    run(tf.constant(0)).numpy()  # trace and compile
    rounds = []
    for repeat in range(_REPEATS.value):
        start = time.process_time()
        run(tf.constant((repeat + 1) * _STEPS.value)).numpy()
        rounds.append((time.process_time() - start) * 1000 / _STEPS.value)
    return sorted(rounds)[len(rounds) // 2]


def main(argv):
    del argv
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    replicas = _REPLICAS.value
    if _BATCH.value % replicas:
        raise SystemExit(f"flag --global_batch ({_BATCH.value}) must be divisible by --replicas ({replicas})")
    print(f"global batch {_BATCH.value} on {replicas} replicas (B_local {_BATCH.value // replicas}), data "
          f"{'x'.join(_SHAPE.value)}, latent {_LATENT.value}, {_SAMPLES.value} sample(s); CPU ms per step")
    print(f"  {'scheme':14s}{'XLA':5s}{'one replica':>13s}{f'x {replicas} replicas':>15s}")
    for scheme in ("global_batch", "per_example"):
        for jit in (False, True):
            ms = _cpu_ms_per_step(scheme, jit)
            print(f"  {scheme:14s}{'on' if jit else 'off':5s}{ms:13.2f}{ms * replicas:15.2f}")


if __name__ == "__main__":
    _startup.run(main)
