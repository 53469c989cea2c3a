"""Latency and throughput of an exported SavedModel, in-process (a benchmark, not a test).

  python scripts/benchmark_serving.py --export=saved_models/mlp/1

For every signature: batch-1 latency (median and p99 over --calls calls) and
examples/s at --batch_size. Loads the export with tf.saved_model.load only:
the numbers are those of the graph a server runs, without network or
(de)serialisation costs. log_likelihood's throughput is measured with the
largest batch its model card's max_samples_per_request allows at
--num_importance_samples, and the seconds per such request are printed.
"""

import json
import os
import statistics
import time

import _startup
import numpy as np
import tensorflow as tf
from absl import flags

_EXPORT = flags.DEFINE_string("export", None, "A version folder of an export (…/<name>/<version>).")
_CALLS = flags.DEFINE_integer("calls", 500, "Timed batch-1 calls per signature.", lower_bound=10)
_BATCH = flags.DEFINE_integer("batch_size", 256, "Batch of the throughput measurement.", lower_bound=1)
_K = flags.DEFINE_integer("num_importance_samples", 100, "k of the log_likelihood calls.", lower_bound=1)
flags.mark_flag_as_required("export")


def inputs_for(signature, batch, card, rng):
    images = (rng.random((batch, *card["data_shape"])) < 0.5).astype(np.float32)
    seed = tf.constant([1], tf.int64)
    return {
        "encode": lambda: {"images": tf.constant(images), "seed": seed},
        "decode": lambda: {"z": tf.constant(rng.normal(size=(batch, card["latent_dim"])).astype(np.float32))},
        "reconstruct": lambda: {"images": tf.constant(images)},
        "sample": lambda: {"num_samples": tf.constant([batch], tf.int32), "seed": seed},
        "log_likelihood": lambda: {"images": tf.constant(images), "seed": seed,
                                   "num_importance_samples": tf.constant([_K.value], tf.int32)},
    }[signature]()


def main(argv):
    del argv
    with open(os.path.join(_EXPORT.value, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    loaded = tf.saved_model.load(_EXPORT.value)
    rng = np.random.default_rng(0)
    batch = min(_BATCH.value, card["max_batch_size"])
    print(f"{_EXPORT.value}: batch-1 latency over {_CALLS.value} calls, throughput at batch {batch} "
          f"(log_likelihood with k={_K.value})")
    print(f"  {'signature':16s} {'median ms':>10s} {'p99 ms':>10s} {'examples/s':>12s}")
    for signature in card["signatures"]:
        function = loaded.signatures[signature]
        single = inputs_for(signature, 1, card, rng)
        for _ in range(10):
            function(**single)
        latencies = []
        for _ in range(_CALLS.value):
            start = time.perf_counter()
            function(**single)
            latencies.append(1e3 * (time.perf_counter() - start))
        # a log_likelihood request may hold at most max_samples_per_request (batch * k) importance samples
        size = batch if signature != "log_likelihood" else max(1, min(batch, card.get(
            "max_samples_per_request", batch * _K.value) // _K.value))
        large = inputs_for(signature, size, card, rng)
        function(**large)
        rounds = max(3, 2000 // size)
        start = time.perf_counter()
        for _ in range(rounds):
            function(**large)
        seconds = time.perf_counter() - start
        rate = rounds * size / seconds
        if signature == "log_likelihood":
            print(f"  (log_likelihood: batch {size} x k {_K.value} = {size * _K.value} samples per request, "
                  f"{seconds / rounds:.3f} s per request)")
        p99 = float(np.percentile(latencies, 99))
        print(f"  {signature:16s} {statistics.median(latencies):10.2f} {p99:10.2f} {rate:12.0f}")


if __name__ == "__main__":
    _startup.run(main)
