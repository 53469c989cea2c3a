"""What a training run writes to TensorBoard, in one place.

  train/       loss, elbo, rate, distortion (nats per example), kl_weight (w_t), learning_rate,
               examples_per_second
  validation/  elbo, rate, distortion; active_units; kl_per_dimension (a histogram over the
               latent dimensions, diagonal Gaussian posterior and prior only); reconstructions
               and prior_samples image grids; a hierarchical VAE's rate_z_l and active_units_z_l
               per layer
  train/gradient_spikes  the fraction of steps the gradient spike guard clipped (when on)
  HParams      the run's TrainConfig, in the HParams dashboard

Only the chief of a multi-worker job writes; the others get no-op writers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api

from tfvae.evaluation import images

__all__ = ["Writers"]


def _hparam_value(value):
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


class Writers:
    """The run's train/ and validation/ summary writers."""

    def __init__(self, train_log_dir: str, validation_log_dir: str, enabled: bool = True):
        if enabled:
            self.train = tf.summary.create_file_writer(train_log_dir)
            self.validation = tf.summary.create_file_writer(validation_log_dir)
        else:
            self.train = self.validation = tf.summary.create_noop_writer()

    def hparams(self, config_values: dict) -> None:
        """The run's settings, once, for TensorBoard's HParams dashboard."""
        with self.train.as_default():
            hparams_api.hparams({name: _hparam_value(v) for name, v in config_values.items() if v is not None})

    def training(self, step: int, logs: dict, kl_weight: float, learning_rate: float) -> None:
        with self.train.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(name, value)
            tf.summary.scalar("kl_weight", kl_weight)
            tf.summary.scalar("learning_rate", learning_rate)

    def throughput(self, step: int, examples_per_second: float) -> None:
        with self.train.as_default(step=step):
            tf.summary.scalar("examples_per_second", examples_per_second)

    def validation_metrics(self, step: int, metrics: dict, kl_per_dimension: np.ndarray | None) -> None:
        with self.validation.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(name, value)
            if kl_per_dimension is not None:
                tf.summary.histogram("kl_per_dimension", kl_per_dimension)

    def validation_images(self, step: int, model, x, labels, seed: int) -> None:
        """Reconstructions of the first 32 validation images and 64 prior samples (class by class if conditional).

        Vector data (examples [D]) has no pictures: nothing is written.
        """
        if len(model.data_shape) != 3:
            return
        x = tf.convert_to_tensor(x[:32])
        labels = None if labels is None else labels[:32]
        sample_labels = np.arange(64) % model.num_classes if model.num_classes else None
        with self.validation.as_default(step=step):
            reconstructions = model.reconstruct(x, labels=labels)
            tf.summary.image("reconstructions", images.image_grid(images.side_by_side(x, reconstructions), 8)[None])
            samples = model.sample(64, seed=seed, labels=sample_labels)
            tf.summary.image("prior_samples", images.image_grid(samples)[None])

    def flush(self) -> None:
        self.train.flush()
        self.validation.flush()
