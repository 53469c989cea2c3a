"""Prints the streaming input's training throughput against the in-memory path's, and its peak memory.

  python scripts/benchmark_input.py                         # MLP and conv VAE on Fashion-MNIST
  python scripts/benchmark_input.py --memory_sets_gb=0.5,3  # also peak RSS streaming 64x64x3 sets of that size

Throughput: in one process, for the model the train.py flags describe (the
MLP 784-400-20 by default) and for the default conv VAE, tfvae's training
loop on Fashion-MNIST held in memory (``--input_mode=memory``) and streamed
from TFRecord shards of the same images (``--input_mode=stream``: interleaved
shard reads, shuffle buffer, parallel PNG decoding, prefetch), alternating
over --repeats rounds (medians), and their ratio. The shards are written to a
temporary directory unless --tfrecord_dir names existing ones.

Memory: for each size in --memory_sets_gb, a set of random 64x64x3 PNG
records of about that many GB is written to --scratch_dir, and a fresh
process trains the conv VAE of scripts/configs/rgb64_image_folder.flags
(32,64,128 filters, latent 64, 5-component discretized logistic, batch 64)
on it, streamed, for --memory_steps steps and prints its peak RSS (max
resident set size), so the figures show whether memory grows with the data,
and its training examples/s after a warm-up block.
"""

import dataclasses
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import _startup
import tensorflow as tf
from absl import flags
from benchmark_lib import measure, tfvae_contender

from tfvae import data
from tfvae.data import conversion, records
from tfvae.train import cli, training

cli.define_config_flags()
_STEPS = flags.DEFINE_integer("benchmark_steps", 400, "Training steps timed per contender and round.", lower_bound=10)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds; the median is reported.", lower_bound=1)
_THROUGHPUT = flags.DEFINE_bool("throughput", True, "Compare streamed and in-memory training throughput.")
_CONV = flags.DEFINE_bool("include_conv", True, "Also benchmark the default conv VAE.")
_TFRECORD_DIR = flags.DEFINE_string("tfrecord_dir", None, "Fashion-MNIST TFRecord shards (default: written to a "
                                    "temporary directory).")
_MEMORY_SETS = flags.DEFINE_list("memory_sets_gb", [], "Sizes (GB) of generated 64x64x3 sets to stream for peak RSS.")
_MEMORY_STEPS = flags.DEFINE_integer("memory_steps", 200, "Training steps per memory measurement.", lower_bound=1)
_SCRATCH = flags.DEFINE_string("scratch_dir", None, "Where the generated sets go (default: a temporary directory; "
                               "deleted afterwards).")
_MEMORY_UNITS = flags.DEFINE_list("memory_hidden_units", ["32", "64", "128"], "Conv filters of the memory "
                                   "measurements' model (rgb64_image_folder.flags').")
_CHILD = flags.DEFINE_string("measure_rss_of", None, "(internal) train on these shards and print the peak RSS.")

_RECORD_SIDE = 64


def throughput(title, config, tfrecord_dir):
    memory = dataclasses.replace(config, input_mode="memory", train_examples=0)  # the same examples as the shards
    stream = dataclasses.replace(config, dataset="tfrecord", data_dir=tfrecord_dir, input_mode="stream",
                                 train_examples=0)
    contenders = {"in memory": tfvae_contender(memory, data.prepare_data(memory)),
                  "streamed": tfvae_contender(stream, data.prepare_data(stream))}
    rates = measure(contenders, _STEPS.value, _REPEATS.value, config.batch_size)
    print(f"\n{title}: batch {config.batch_size}, steps_per_execution {config.steps_per_execution}, XLA "
          f"{training.xla_enabled(config)}, shuffle buffer {config.shuffle_buffer}, {_REPEATS.value} rounds of "
          f"{_STEPS.value} steps (median)")
    for name, rate in rates.items():
        print(f"  {name:12s} {rate:10.0f} examples/s")
    print(f"  streamed / in memory = {rates['streamed'] / rates['in memory']:.2f}")


def write_random_set(directory, gigabytes):
    """Random 64x64x3 PNGs (incompressible: ~12.4 kB each) as 64 train shards and a small test shard."""
    per_record = 3 * _RECORD_SIDE**2 + 150
    count = max(256, int(gigabytes * 1e9 / per_record))

    def examples(n, seed):
        noise = tf.data.Dataset.range(n).map(lambda i: tf.random.stateless_uniform(
            [_RECORD_SIDE, _RECORD_SIDE, 3], seed=tf.stack([tf.cast(seed, tf.int64), i]), maxval=256, dtype=tf.int32))
        pngs = noise.map(lambda x: tf.io.encode_png(tf.cast(x, tf.uint8)), num_parallel_calls=tf.data.AUTOTUNE)
        for encoded in pngs.batch(512).as_numpy_iterator():
            yield from ((bytes(e), None) for e in encoded)

    records.write_splits(directory, {"train": (examples(count, 1), count, 64), "test": (examples(256, 2), 256, 1)})
    return count


def measure_rss(config, tfrecord_dir):
    """(child) Streams a conv VAE's training over the shards; prints the peak RSS in MiB."""
    from benchmark_lib import tfvae_contender as contender

    stream = dataclasses.replace(config, dataset="tfrecord", data_dir=tfrecord_dir, input_mode="stream",
                                 architecture="conv", hidden_units=tuple(int(u) for u in _MEMORY_UNITS.value),
                                 latent_dim=64, batch_size=64,
                                 likelihood="discretized_logistic", validation_examples=256, train_examples=0)
    run = contender(stream, data.prepare_data(stream))
    run(min(_MEMORY_STEPS.value, stream.steps_per_execution))  # compile and warm up
    start = time.perf_counter()
    run(_MEMORY_STEPS.value)
    rate = _MEMORY_STEPS.value * stream.batch_size / (time.perf_counter() - start)
    print(f"peak_rss_mib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} examples_per_second {rate:.0f}")


def memory_sets(sizes):
    scratch = _SCRATCH.value or tempfile.mkdtemp(prefix="tfvae_memory_sets_")
    try:
        for size in sizes:
            directory = os.path.join(scratch, f"set_{size}gb")
            if not os.path.isdir(directory):
                count = write_random_set(directory, float(size))
            else:
                count = sum(records.count_records(p)[0] for p in records.shard_paths(directory, "train"))
            on_disk = sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)) / 1e9
            result = subprocess.run([sys.executable, os.path.abspath(__file__), f"--measure_rss_of={directory}",
                                     f"--memory_steps={_MEMORY_STEPS.value}",
                                     f"--memory_hidden_units={','.join(_MEMORY_UNITS.value)}"],
                                    capture_output=True, text=True)
            lines = [line.split() for line in result.stdout.splitlines() if line.startswith("peak_rss_mib")]
            if result.returncode or not lines:
                raise RuntimeError(result.stderr[-2000:])
            decoded = count * 3 * _RECORD_SIDE**2 / 1e9
            print(f"  {count} records, {on_disk:.2f} GB of shards ({decoded:.2f} GB decoded): "
                  f"{_MEMORY_STEPS.value} streamed conv training steps, peak RSS {lines[0][1]} MiB, "
                  f"{lines[0][3]} examples/s")
    finally:
        if not _SCRATCH.value:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv):
    del argv
    cli.quiet_logging()
    config = cli.config_from_flags()
    if _CHILD.value:
        return measure_rss(config, _CHILD.value)
    if _THROUGHPUT.value:
        compare_throughput(config)
    if _MEMORY_SETS.value:
        print("\npeak memory, streaming (random 64x64x3 PNG records):")
        memory_sets(_MEMORY_SETS.value)
    print(f"\nCPU: {_cpu_model()}")


def compare_throughput(config):
    tfrecord_dir, temporary = _TFRECORD_DIR.value, None
    if not tfrecord_dir:
        temporary = tempfile.mkdtemp(prefix="tfvae_fashion_mnist_tfrecord_")
        tfrecord_dir = os.path.join(temporary, "shards")
        conversion.write_tfrecords(config.dataset, config.data_dir, tfrecord_dir, num_shards=8)
    try:
        hidden = ",".join(str(u) for u in config.hidden_units)
        throughput(f"{config.architecture} VAE {hidden}-{config.latent_dim}", config, tfrecord_dir)
        if _CONV.value and config.architecture != "conv":
            throughput(f"conv VAE 32,64 filters, latent {config.latent_dim}",
                       dataclasses.replace(config, architecture="conv", hidden_units=(32, 64)), tfrecord_dir)
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    _startup.run(main)
