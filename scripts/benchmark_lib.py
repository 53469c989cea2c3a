"""Contenders and timing shared by scripts/benchmark.py and scripts/benchmark_distribute.py (no flags)."""

import statistics
import time

import keras
import tensorflow as tf

from tfvae.data import in_memory
from tfvae.train import factory, loops, training


def tfvae_contender(config, prepared, strategy=None):
    """tfvae's own compiled training blocks (``loops.make_training_loop``), as train_and_evaluate runs them.

    ``prepared``: the run's data (``data.TrainingData``: in memory or streamed; one loop serves both).
    """
    strategy = strategy or tf.distribute.get_strategy()
    model, _ = training.build_model_and_optimizer(config, prepared, strategy)
    loop = loops.make_training_loop(model, strategy, prepared, config)
    spe = min(config.steps_per_execution, loop.steps_per_epoch)  # a block never spans two epochs
    plan = [spe] * (loop.steps_per_epoch // spe)
    iterator = iter(loop.epoch_input(0, plan, skip_steps=loop.steps_per_epoch - sum(plan), repeat=True))

    def run(num_steps):
        for _ in range(max(1, num_steps // spe)):
            logs = loop.run_block(iterator, spe)
        return logs["loss"]

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

    dataset = in_memory.train_batches(prepared.train_images, config.batch_size, config.seed, 0, True).repeat()
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


