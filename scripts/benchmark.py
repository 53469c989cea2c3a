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
then the cost of the colour likelihoods: training steps of one conv VAE on
RGB images (--colour_image_size) with a Gaussian likelihood and with discretized logistic
mixtures of --colour_components components (and tfvae 0.3.0's per-channel
mixture), each row's ms/step and its ratio to the Gaussian's;
then peak memory (max RSS) and the time of evaluate.py's IWAE bound with
--eval_importance_samples over --eval_examples test images (extrapolated to
the full test set when fewer are used; the line says so), and how close that
pass comes to the machine's throughput for the decoder alone: latent samples
per second through the IWAE pass against a bare compiled decoder forward and
log p(x|z) on batches of the same size (the bound's floor: every sample needs
one decoder pass), and the conv decoders' one-channel likelihood head
(``networks.OneChannelConv2D``) against ``keras.layers.Conv2D`` with the same
weights, forward and forward + backward.

Timings alternate the contenders over --repeats rounds and report medians, so
a noisy machine affects them alike.
"""

import dataclasses
import resource
import time

import _startup
import keras
import numpy as np
import tensorflow as tf
from absl import flags
from benchmark_lib import handwritten_contender, measure, tfvae_contender

from tfvae import data, evaluation
from tfvae.nn import networks
from tfvae.train import cli, factory, training

cli.define_config_flags()
_STEPS = flags.DEFINE_integer("benchmark_steps", 400, "Training steps timed per contender and round.", lower_bound=10)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds; the median is reported.", lower_bound=1)
_CONV = flags.DEFINE_bool("include_conv", True, "Also benchmark the default conv VAE.")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 1000, "Test images for the IWAE timing (0 = skip).")
_EVAL_SAMPLES = flags.DEFINE_integer("eval_importance_samples", 5000, "k of the timed IWAE bound.")
_COLOUR_UNITS = flags.DEFINE_list("colour_hidden_units", ["16", "32"],
                                  "Conv network of the colour likelihood timing.")
_COLOUR_SIZE = flags.DEFINE_integer("colour_image_size", 32, "Height and width of the colour timing's RGB images.",
                                    lower_bound=4)
_COLOUR_LATENT = flags.DEFINE_integer("colour_latent_dim", 16, "Latent size of the colour likelihood timing.")
_COLOUR_COMPONENTS = flags.DEFINE_list("colour_components", ["1", "5"],
                                       "Mixture components M of the discretized logistic rows (empty: skip).")
_COLOUR_STEPS = flags.DEFINE_integer("colour_steps", 100, "Training steps timed per colour row and round.",
                                     lower_bound=1)
_COLOUR_BATCH = flags.DEFINE_integer("colour_batch_size", 64, "Batch size of the colour likelihood timing.",
                                     lower_bound=1)


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


def decoder_throughput(model, images, rounds: int = 5) -> float:
    """Latent samples per second through the decoder and log p(x|z) alone, on the IWAE pass's chunk size."""
    x = tf.constant(images, tf.float32)
    chunk = evaluation.IwaeEvaluator(model, _EVAL_SAMPLES.value).size_chunk(x.shape)
    z = tf.random.stateless_normal([chunk, len(images), model.latent_dim], seed=[1, 2])
    step = tf.function(lambda z: tf.reduce_sum(model.data_log_prob(x, z)), jit_compile=False)
    step(z)  # trace
    start = time.perf_counter()
    for _ in range(rounds):
        float(step(z))
    return rounds * chunk * len(images) / (time.perf_counter() - start)


def one_channel_head_speed(batch_size: int, data_shape, channels: int, rounds: int) -> dict:
    """Median ms of a 3x3 one-output-channel convolution (Conv2D, OneChannelConv2D) over [B, H, W, channels]."""
    features = tf.Variable(tf.random.stateless_normal([batch_size, *data_shape[:2], channels], seed=[3, 4]))
    plain, head = keras.layers.Conv2D(1, 3, padding="same"), networks.OneChannelConv2D(1, 3, padding="same")
    plain.build(features.shape), head.build(features.shape)
    head.set_weights(plain.get_weights())

    def programs(layer):
        variables = [features, *layer.trainable_variables]

        def backward():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(features))
            return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, variables)])

        return {"forward": tf.function(lambda: tf.reduce_sum(layer(features))), "forward + backward": tf.function(backward)}

    def repeated(program):
        def run(calls):
            for _ in range(calls):
                float(program())

        return run

    contenders = {(name, kind): repeated(program)
                  for name, layer in (("Conv2D", plain), ("OneChannelConv2D", head))
                  for kind, program in programs(layer).items()}
    calls_per_second = measure(contenders, steps=10, repeats=rounds, batch_size=1)  # one "example" = one call
    return {key: 1e3 / rate for key, rate in calls_per_second.items()}


def colour_likelihood_cost(config, image_size, hidden_units, latent_dim, batch_size, components, steps,
                           repeats) -> dict:
    """ms per training step of a conv VAE on RGB images: gaussian, then discretized_logistic per M.

    The same network, data (random 8-bit images: the cost does not depend on
    the pixels), batch and optimizer for every row; only the likelihood and
    its head differ. Also tfvae 0.3.0's per_channel mixture at the largest M.
    """
    images = np.random.default_rng(0).integers(0, 256, (64 * batch_size, image_size, image_size, 3), dtype=np.uint8)
    base = dataclasses.replace(config, architecture="conv", hidden_units=tuple(hidden_units), latent_dim=latent_dim,
                               batch_size=batch_size, likelihood="gaussian", train_examples=0, steps_per_execution=10,
                               validation_split=0.05)
    prepared = data.from_python(base, images)
    rows = {"gaussian": base}
    for m in components:
        rows[f"discretized_logistic M={m}"] = dataclasses.replace(base, likelihood="discretized_logistic",
                                                                  mixture_components=m)
    if components:
        rows[f"discretized_logistic M={max(components)} per_channel (0.3.0)"] = dataclasses.replace(
            base, likelihood="discretized_logistic", mixture_components=max(components), pixel_mixture="per_channel")
    rates = measure({name: tfvae_contender(row, prepared) for name, row in rows.items()}, steps, repeats, batch_size)
    return {name: 1e3 * batch_size / rate for name, rate in rates.items()}


def main(argv):
    del argv
    cli.quiet_logging()
    config = cli.config_from_flags()
    prepared = data.prepare_data(config)
    hidden = ",".join(str(u) for u in config.hidden_units)
    report(f"{config.architecture} VAE {np.prod(prepared.data_shape)}-{hidden}-{config.latent_dim}", config, prepared)
    if _CONV.value and config.architecture != "conv":
        conv = dataclasses.replace(config, architecture="conv", hidden_units=(32, 64))
        report(f"conv VAE 32,64 filters, latent {conv.latent_dim}", conv, prepared)
    channels = config.hidden_units[0] if config.architecture in networks.CONVOLUTIONAL else 32
    head = one_channel_head_speed(config.batch_size, prepared.data_shape, channels, _REPEATS.value)
    for kind in ("forward", "forward + backward"):
        print(f"one-channel likelihood head, {kind}, {config.batch_size}x{prepared.data_shape[0]}x"
              f"{prepared.data_shape[1]}x{channels}: Conv2D {head['Conv2D', kind]:.3f} ms, OneChannelConv2D "
              f"{head['OneChannelConv2D', kind]:.3f} ms; Conv2D / this = "
              f"{head['Conv2D', kind] / head['OneChannelConv2D', kind]:.2f}")
    components = [int(m) for m in _COLOUR_COMPONENTS.value]
    if components:
        units = [int(u) for u in _COLOUR_UNITS.value]
        size = _COLOUR_SIZE.value
        cost = colour_likelihood_cost(config, size, units, _COLOUR_LATENT.value, _COLOUR_BATCH.value, components,
                                      _COLOUR_STEPS.value, _REPEATS.value)
        print(f"\ncolour likelihoods, conv {','.join(map(str, units))} latent {_COLOUR_LATENT.value}, {size}x{size}x3, batch "
              f"{_COLOUR_BATCH.value}, {_REPEATS.value} rounds of {_COLOUR_STEPS.value} steps (median):")
        for name, ms in cost.items():
            print(f"  {name:45s} {ms:8.1f} ms/step   this / gaussian = {ms / cost['gaussian']:5.2f}")
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
        iwae_rate = len(images) * _EVAL_SAMPLES.value / seconds
        decoder_rate = decoder_throughput(model, images[:100])
        print(f"IWAE pass {iwae_rate:.0f} latent samples/s; bare decoder forward + log p(x|z) {decoder_rate:.0f}/s; "
              f"ratio {iwae_rate / decoder_rate:.2f}")
        print(f"peak memory after evaluation: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    _startup.run(main)
