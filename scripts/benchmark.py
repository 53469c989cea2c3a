"""Prints training throughput, peak memory and evaluation time (a benchmark, not a test).

  python scripts/benchmark.py                     # MLP 784-400-20 and the default conv VAE
  python scripts/benchmark.py --hidden_units=512,256 --latent_dim=32   # any train.py flags

In one process it measures, for the model the train.py flags describe (the
MLP 784-400-20, batch 128, Adam 1e-3, Bernoulli by default) and for the
default conv VAE:
  * tfvae's training loop (steady state, examples/s),
  * a minimal hand-written TF2 loop over the same networks and data: a
    tf.data pipeline (gather, dynamic binarization, prefetch) feeding a
    tf.function step with plain TF maths, with and without XLA,
  * their ratios,
then peak memory (max RSS) and the time of evaluate.py's IWAE bound with
--eval_importance_samples over --eval_examples test images (extrapolated to
the full test set when fewer are used; the line says so).

Timings alternate the contenders over --repeats rounds and report medians, so
a noisy machine affects them alike.
"""

import dataclasses
import os
import resource
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from tfvae import cli, evaluation, factory, pipeline, training

cli.define_config_flags()
_STEPS = flags.DEFINE_integer("benchmark_steps", 400, "Training steps timed per contender and round.", lower_bound=10)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds; the median is reported.", lower_bound=1)
_CONV = flags.DEFINE_bool("include_conv", True, "Also benchmark the default conv VAE.")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 1000, "Test images for the IWAE timing (0 = skip).")
_EVAL_SAMPLES = flags.DEFINE_integer("eval_importance_samples", 5000, "k of the timed IWAE bound.")


def tfvae_contender(config, prepared):
    """tfvae's own compiled block function over index blocks, as train_and_evaluate runs it."""
    keras.utils.set_random_seed(config.seed)
    model = factory.build_model(config, prepared.data_shape)
    model.build((None, *prepared.data_shape))
    optimizer = keras.optimizers.Adam(config.learning_rate)
    model.compile(optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    images = tf.Variable(prepared.train_images, trainable=False)
    run_block = training._make_train_function(model, tf.distribute.get_strategy(), images, prepared.binarize,
                                              config.seed,
                                              training.xla_enabled(config))
    spe = config.steps_per_execution

    def blocks(epoch):
        steps = pipeline.steps_per_epoch(len(prepared.train_images), config.batch_size)
        plan = [spe] * (steps // spe)
        return pipeline.train_index_blocks(len(prepared.train_images), config.batch_size, config.seed, epoch,
                                           plan, skip_steps=steps - sum(plan)).repeat()

    iterator = iter(blocks(0))

    def run(num_steps):
        for _ in range(max(1, num_steps // spe)):
            logs = run_block(iterator)
        return float(logs["loss"])

    return run


def handwritten_contender(config, prepared, jit_compile):
    """A minimal TF2 loop: tf.data batches -> tf.function step with plain TF maths."""
    keras.utils.set_random_seed(config.seed)
    model = factory.build_model(config, prepared.data_shape)
    model.build((None, *prepared.data_shape))
    encoder_net = [model.encoder.trunk, model.encoder.head]
    decoder_net = [model.decoder.trunk, model.decoder.head]
    variables = model.trainable_variables
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(variables)
    latent = config.latent_dim

    @tf.function(jit_compile=jit_compile)
    def step(x, seed):
        with tf.GradientTape() as tape:
            params = encoder_net[1](encoder_net[0](x))
            loc, raw_scale = params[:, :latent], params[:, latent:]
            scale = tf.nn.softplus(raw_scale) + 1e-4
            z = loc + scale * tf.random.stateless_normal(tf.shape(loc), seed)
            logits = tf.reshape(decoder_net[1](decoder_net[0](z)), tf.shape(x))
            distortion = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), [1, 2, 3])
            rate = 0.5 * tf.reduce_sum(loc**2 + scale**2 - 1.0 - 2.0 * tf.math.log(scale), 1)
            loss = tf.reduce_mean(distortion + rate)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    dataset = pipeline.train_batches(prepared.train_images, config.batch_size, config.seed, 0, True).repeat()
    iterator = iter(dataset)
    counter = [0]

    def run(num_steps):
        for _ in range(num_steps):
            counter[0] += 1
            loss = step(next(iterator), tf.constant([config.seed, counter[0]]))
        return float(loss)

    return run


def measure(contenders, steps, repeats, batch_size):
    """Median examples/s per contender; contenders alternate within each round."""
    for run in contenders.values():
        run(max(steps // 4, 1))  # compile and warm up
    rates = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run(steps)
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def report(title, config, prepared):
    contenders = {
        "tfvae": tfvae_contender(config, prepared),
        "handwritten tf.function + XLA": handwritten_contender(config, prepared, True),
        "handwritten tf.function": handwritten_contender(config, prepared, False),
    }
    rates = measure(contenders, _STEPS.value, _REPEATS.value, config.batch_size)
    print(f"\n{title}: batch {config.batch_size}, steps_per_execution {config.steps_per_execution}, "
          f"tfvae XLA {training.xla_enabled(config)} (--jit_compile={config.jit_compile}), {_REPEATS.value} rounds of {_STEPS.value} steps (median)")
    for name, rate in rates.items():
        print(f"  {name:32s} {rate:10.0f} examples/s   tfvae / this = {rates['tfvae'] / rate:5.2f}")


def main(argv):
    del argv
    cli.quiet_logging()
    config = cli.config_from_flags()
    prepared = training.prepare_data(config)
    hidden = ",".join(str(u) for u in config.hidden_units)
    report(f"{config.architecture} VAE {np.prod(prepared.data_shape)}-{hidden}-{config.latent_dim}", config, prepared)
    if _CONV.value and config.architecture != "conv":
        conv = dataclasses.replace(config, architecture="conv", hidden_units=(32, 64))
        report(f"conv VAE 32,64 filters, latent {conv.latent_dim}", conv, prepared)
    print(f"\npeak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if _EVAL_EXAMPLES.value:
        keras.utils.set_random_seed(config.seed)
        model = factory.build_model(config, prepared.data_shape)
        images = prepared.test_images[: _EVAL_EXAMPLES.value]
        evaluation.iwae_log_likelihood(model, images[:100], _EVAL_SAMPLES.value)  # trace
        start = time.perf_counter()
        evaluation.iwae_log_likelihood(model, images, _EVAL_SAMPLES.value)
        seconds = time.perf_counter() - start
        full = seconds * len(prepared.test_images) / len(images)
        note = "" if len(images) == len(prepared.test_images) else f" (measured on {len(images)}, extrapolated)"
        print(f"IWAE bound k={_EVAL_SAMPLES.value} over {len(prepared.test_images)} test images: {full:.0f} s{note}")
        print(f"peak memory after evaluation: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    app.run(main)
