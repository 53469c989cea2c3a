"""Small inputs that tests in several folders build: binary image batches, randomised weights, PNGs, shards."""

import numpy as np
import tensorflow as tf

import tfvae
from tfvae.data import records

DATA_SHAPE = (8, 8, 1)


def make_model(architecture="mlp", likelihood="bernoulli", latent_dim=3, **kwargs):
    """An unbuilt 8x8x1 VAE: MLP [16] or conv [4, 8] trunks, Bernoulli or per-pixel Gaussian likelihood."""
    hidden = [16] if architecture == "mlp" else [4, 8]
    decoder = (tfvae.BernoulliDecoder(DATA_SHAPE, architecture=architecture, hidden_units=hidden)
               if likelihood == "bernoulli" else
               tfvae.GaussianDecoder(DATA_SHAPE, architecture=architecture, hidden_units=hidden, scale="per_pixel"))
    return tfvae.VAE(
        encoder=tfvae.GaussianEncoder(latent_dim, architecture=architecture, hidden_units=hidden),
        decoder=decoder,
        prior=tfvae.StandardNormalPrior(latent_dim),
        **kwargs,
    )


def binary_batch(n=5, seed=0, shape=DATA_SHAPE):
    """n binary images of ``shape`` (pixels on with probability 0.4), float32."""
    return (np.random.default_rng(seed).random((n, *shape)) < 0.4).astype(np.float32)


def randomise(layer, seed=0, scale=0.5):
    """Replaces every weight with N(0, scale^2) draws, so flows are far from their identity start."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        variable.assign(rng.normal(0.0, scale, variable.shape).astype(np.float32))


def png(array):
    """PNG bytes of a uint8 array [H, W, C]."""
    return tf.io.encode_png(tf.constant(array, tf.uint8)).numpy()


def write_shards(directory, images, labels=None, num_shards=3, test_images=None, compress=False):
    """Train shards of ``images`` (and a test split of ``test_images``, default the first 4 images)."""
    test_images = images[:4] if test_images is None else test_images
    label_of = (lambda i: None) if labels is None else (lambda i: int(labels[i]))
    splits = {"train": (((png(x), label_of(i)) for i, x in enumerate(images)), len(images), num_shards),
              "test": (((png(x), label_of(i)) for i, x in enumerate(test_images)), len(test_images), 1)}
    return records.write_splits(str(directory), splits, compress)


def write_table(path, values, labels=None, label_name="label", header=True):
    """A CSV file of ``values`` [N, D] (columns f1..fD) and, with ``labels``, a last column ``label_name``."""
    import os

    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    names = [f"f{i + 1}" for i in range(values.shape[1])] + ([label_name] if labels is not None else [])
    with open(path, "w") as f:
        if header:
            f.write(",".join(names) + "\n")
        for i, row in enumerate(values):
            f.write(",".join(f"{v:.6g}" for v in row) + (f",{int(labels[i])}" if labels is not None else "") + "\n")
    return str(path)


def factor_table(n, seed=0, features=6):
    """``features`` real values in [0, 1] per row driven by two hidden factors, and a class (0-2) from the first."""
    rng = np.random.default_rng(seed)
    factors = rng.random((n, 2))
    mixing = np.random.default_rng(99).random((2, features))
    values = np.clip(factors @ mixing / mixing.sum(0) + 0.03 * rng.standard_normal((n, features)), 0, 1)
    return values, np.minimum((factors[:, 0] * 3).astype(int), 2)
