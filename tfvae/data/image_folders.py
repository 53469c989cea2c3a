"""Folders of image files, laid out as Keras' ``image_dataset_from_directory`` reads them.

  DIR/train/<class>/*.png  and  DIR/test/<class>/*.png    the two splits, labels from class folders
  DIR/<class>/*.png                                       one pool, split by a seeded validation_split
  DIR/train/*.png, DIR/test/*.png  or  DIR/*.png          the same without labels

Class folders are sorted by name and numbered from 0 (the test split uses
the training split's numbering). Files: PNG, JPEG, BMP or GIF (first frame).
``list_image_folder`` only lists; sizes are read from the files' headers by
``image_sizes`` (``image_headers``), so a folder of any size is checked
without decoding it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfvae.core.errors import DataError
from tfvae.data import image_headers, limits

__all__ = ["IMAGE_SUFFIXES", "ImageFiles", "image_sizes", "list_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """The image files of one split, their labels (None without class folders) and the class names."""

    paths: tuple[str, ...]
    labels: tuple[int, ...] | None
    class_names: tuple[str, ...]


def _images_in(folder: str) -> list[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, f)))


def _class_folders(folder: str) -> list[str]:
    return sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)) and not d.startswith("."))


def _list(folder: str, class_names: list[str] | None = None) -> ImageFiles:
    """The files of ``folder``: in class subfolders (labelled) if it has any, else directly in it."""
    classes = _class_folders(folder)
    if not classes:
        return ImageFiles(tuple(_images_in(folder)), None, ())
    numbering = class_names or classes
    unknown = sorted(set(classes) - set(numbering))
    if unknown:
        raise DataError(f"{folder}: class folders {unknown} are not among the training split's classes {numbering}")
    paths, labels = [], []
    for name in classes:
        files = _images_in(os.path.join(folder, name))
        paths += files
        labels += [numbering.index(name)] * len(files)
    return ImageFiles(tuple(paths), tuple(labels), tuple(numbering))


def list_image_folder(directory: str, validation_split: float = 0.1, seed: int = 0) -> dict[str, ImageFiles]:
    """{"train": ImageFiles, "test": ImageFiles} of ``directory`` (layouts in the module docstring).

    Without ``train/`` and ``test/`` subfolders, the files are shuffled with
    ``seed`` and the last ``validation_split`` of them (at least one) is
    the test split, as Keras splits a folder.
    """
    if not os.path.isdir(directory):
        raise DataError(f"flag --data_dir: image folder {directory} does not exist")
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must lie in (0, 1); got {validation_split}")
    train_dir, test_dir = os.path.join(directory, "train"), os.path.join(directory, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        train = _list(train_dir)
        splits = {"train": train, "test": _list(test_dir, list(train.class_names) or None)}
        if (splits["train"].labels is None) != (splits["test"].labels is None):
            raise DataError(f"{directory}: train/ and test/ must both have class folders, or neither")
    else:
        pool = _list(directory)
        if len(pool.paths) < 2:
            raise DataError(f"{directory}: needs at least 2 images to split into train and test; "
                            f"found {len(pool.paths)} (PNG, JPEG, BMP or GIF)")
        order = np.random.default_rng(seed).permutation(len(pool.paths))
        num_test = max(1, int(round(len(order) * validation_split)))
        parts = {"train": np.sort(order[: len(order) - num_test]), "test": np.sort(order[len(order) - num_test:])}
        splits = {split: ImageFiles(tuple(pool.paths[i] for i in chosen),
                                    None if pool.labels is None else tuple(pool.labels[i] for i in chosen),
                                    pool.class_names)
                  for split, chosen in parts.items()}
    for split, files in splits.items():
        if not files.paths:
            raise DataError(f"{directory}: no images (PNG, JPEG, BMP or GIF) for the {split} split")
    return splits


def image_sizes(paths) -> list[tuple[int, int, int]]:
    """(height, width, channels as decoded) of each file: from its header (PNG, JPEG: ``image_headers``), else
    by decoding it. DataError naming the file if it cannot be read or decoded, or if its header claims more
    than ``limits.MAX_IMAGE_PIXELS`` pixels (it is then never decoded)."""
    import tensorflow as tf

    sizes = []
    for path in paths:
        try:
            size = image_headers.read_image_shape(path)
            if size is None:
                contents = tf.io.read_file(path)
                size = tuple(int(d) for d in tf.io.decode_image(contents, expand_animations=False).shape)
        except OSError as e:
            raise DataError(f"{path}: cannot read image ({e.strerror})") from None
        except tf.errors.OpError as e:
            raise DataError(f"{path}: cannot decode image ({e.message.splitlines()[0]})") from None
        if size[0] * size[1] > limits.MAX_IMAGE_PIXELS:
            raise DataError(f"{path}: its header claims {size[0]}x{size[1]} pixels, more than the "
                            f"{limits.MAX_IMAGE_PIXELS:,} of one image (a decompression-bomb guard)")
        sizes.append(size)
    return sizes
