"""IWAE bounds on two logical CPU devices and on one, in a fresh process (the CPU is split before TensorFlow starts).

  python tests/evaluation/sharded_iwae_worker.py <out.json>

For each case writes {"sharded": the bounds of ``evaluation.iwae_log_likelihoods`` with a mirrored strategy of two
replicas, "one_device": ``VAE.log_likelihood`` of each batch with that batch's seed, on one device}.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from tfvae.core import distribute

STRATEGY = distribute.make_strategy("mirrored", logical_cpu_devices=2)

import tfvae  # noqa: E402  (after the CPU is split)
from tfvae import evaluation  # noqa: E402
from tfvae.core import sampling  # noqa: E402

SHAPE, K, SEED = (8, 8, 1), 40, 3


def hierarchical_model():
    with STRATEGY.scope():  # mirrored variables, as scripts/evaluate.py loads a model
        model = tfvae.VAE(tfvae.TopDownEncoder([3, 2], hidden_units=[16], ladder_units=8),
                          tfvae.BernoulliDecoder(SHAPE, hidden_units=[16]),
                          tfvae.HierarchicalPrior(tfvae.StandardNormalPrior(2), [3, 2]))
        model.build((None, *SHAPE))
    return model


def conditional_model():
    model = tfvae.VAE(tfvae.GaussianEncoder(3, hidden_units=[16], condition_dim=10),
                      tfvae.BernoulliDecoder(SHAPE, hidden_units=[16], condition_dim=10),
                      tfvae.StandardNormalPrior(3), num_classes=10)
    model.build((None, *SHAPE))
    return model


class OutOfMemoryAbove:
    """The model, whose IWAE bound raises ResourceExhaustedError for more than ``max_rows`` rows at a time."""

    def __init__(self, model, max_rows):
        self.model, self.max_rows = model, max_rows

    def __getattr__(self, name):
        return getattr(self.model, name)

    def log_likelihood(self, x, num_samples=5000, seed=None, chunk_size=None, labels=None, rows=None):
        if x.shape[0] > self.max_rows:
            raise tf.errors.ResourceExhaustedError(None, None, f"injected: {x.shape[0]} rows")
        return self.model.log_likelihood(x, num_samples, seed, chunk_size, labels, rows)


def case(model, images, batch_size, labels=None, evaluated=None):
    sharded = evaluation.iwae_log_likelihoods(evaluated or model, images, K, batch_size, SEED, labels,
                                              strategy=STRATEGY, chunk_size=16)
    one_device = [model.log_likelihood(images[lo : lo + batch_size], K, sampling.step_seed(SEED, step, salt=3),
                                       labels=None if labels is None else labels[lo : lo + batch_size]).numpy()
                  for step, lo in enumerate(range(0, len(images), batch_size))]
    return {"sharded": sharded.tolist(), "one_device": np.concatenate(one_device).tolist()}


def main(out_path):
    keras.utils.set_random_seed(0)
    images = (np.random.default_rng(0).random((16, *SHAPE)) < 0.4).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 10, 16)
    hierarchical, conditional = hierarchical_model(), conditional_model()
    report = {
        "num_replicas": STRATEGY.num_replicas_in_sync,
        "hierarchical_batch_7": case(hierarchical, images[:7], 7),
        "hierarchical_batch_8": case(hierarchical, images, 8),
        "hierarchical_one_example": case(hierarchical, images[:1], 1),
        "conditional_batch_5": case(conditional, images[:10], 5, labels[:10]),
        "retried_batch_7": case(hierarchical, images[:7], 7, evaluated=OutOfMemoryAbove(hierarchical, 1)),
    }
    with open(out_path, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
