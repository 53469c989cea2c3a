"""Trains the test model in its own process (a fresh TensorFlow, so the CPU can be split).

  python tests/distributed_worker.py <data_dir> <model_dir> <out.npz> <strategy> <logical_cpus> <clip> <epochs> <jit_compile> [<overrides.json>]

overrides.json (a JSON object) replaces TrainConfig fields, e.g. the model family.

TF_CONFIG in the environment makes it one worker of a multi-worker job. Writes
the final weights (weight_0, weight_1, ...) and the training loss trajectory
from the run's TensorBoard log (written by the chief) to out.npz.
"""

import glob
import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import tfvae
from tfvae.train import factory


def loss_trajectory(model_dir):
    values = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "train", "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return np.array([values[step] for step in sorted(values)], np.float64)


def main(data_dir, model_dir, out_path, strategy, logical_cpus, clip, epochs, jit_compile, overrides="{}"):
    config = tfvae.TrainConfig(**{**dict(
        dataset="idx", data_dir=data_dir, hidden_units=(16,), latent_dim=2, epochs=int(epochs), batch_size=32,
        steps_per_execution=2, checkpoint_every_steps=4, summary_every_steps=2, validation_examples=0,
        strategy=strategy, logical_cpu_devices=int(logical_cpus), clip_global_norm=float(clip), seed=3,
        jit_compile=jit_compile,
    ), **json.loads(overrides)})
    strategy_object = tfvae.distribute.make_strategy(config.strategy, config.devices, config.logical_cpu_devices)
    keras.utils.set_random_seed(config.seed)  # Keras draws initializer seeds when layers are constructed
    model = factory.build_model(config, (8, 8, 1), num_classes=10)  # its variables are made inside the strategy's scope
    results = tfvae.train_and_evaluate(config, model_dir, model=model, strategy=strategy_object, verbose=0)
    arrays = {"elbo": np.array(results["elbo"]), "loss": loss_trajectory(model_dir)}
    arrays.update({f"weight_{i}": v.numpy() for i, v in enumerate(model.trainable_variables)})
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:])
