"""Writing any data set tfvae reads as TFRecord shards (``scripts/make_tfrecords.py``).

Images are stored as PNG (lossless): uint8 pixels as they are, float images
in [0, 1] as round(255 x). Data sets of files (image folders, shards) and
TFDS data sets are decoded and re-encoded as a stream, so a folder larger than memory converts
in bounded memory; the others are read into memory first, as training would.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tfvae.data import limits, loaders, records
from tfvae.data.formats import ReadOptions

__all__ = ["write_tfrecords"]


def _png_batches(images: tf.data.Dataset) -> tf.data.Dataset:
    def encode(x, y):
        if x.dtype != tf.uint8:
            x = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
        return tf.io.encode_png(x), y

    return images.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(256)


def _examples(images: tf.data.Dataset, with_labels: bool) -> Iterator[tuple[bytes, int | None]]:
    for encoded, labels in _png_batches(images).as_numpy_iterator():
        for image, label in zip(encoded, labels, strict=True):
            yield bytes(image), int(label) if with_labels else None


def write_tfrecords(dataset: str, data_dir: str | None, output_dir: str, num_shards: int, num_test_shards: int = 1,
                    compress: bool = False, channels: int = 0, image_size=(), validation_split: float = 0.1,
                    seed: int = 0, memory_budget_mb: int = limits.DEFAULT_MEMORY_BUDGET_MB) -> dict[str, list[str]]:
    """Writes ``dataset`` (a name of ``loaders.FORMATS``, read from ``data_dir``) as train and test shards in ``output_dir``.

    Labels are kept where the data has them. IDX, npz and CSV data are read
    into memory first, under ``memory_budget_mb`` (``loaders.load_dataset``). Shards are written under
    temporary names and renamed when complete; existing shards are never
    overwritten (``records.write_splits``). Returns {split: shard paths}.
    """
    found_format = loaders.find_format(dataset)
    if found_format.streams:
        options = ReadOptions(channels, tuple(image_size), validation_split, seed)
        found = found_format.load(dataset, data_dir, options).sources
        splits = {split: (_examples(source.decoded(), source.has_labels), source.num_examples,
                          num_shards if split == "train" else num_test_shards)
                  for split, source in found.items()}
    else:
        loaded = loaders.load_dataset(dataset, data_dir, memory_budget_mb=memory_budget_mb)
        splits = {}
        for split, images, labels in (("train", loaded.train_images, loaded.train_labels),
                                      ("test", loaded.test_images, loaded.test_labels)):
            fill = np.zeros(len(images), np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
            pixels = tf.data.Dataset.from_tensor_slices((images, fill))
            splits[split] = (_examples(pixels, labels is not None), len(images),
                             num_shards if split == "train" else num_test_shards)
    return records.write_splits(output_dir, splits, compress)
