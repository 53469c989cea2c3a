"""A run's data, ready for training and evaluation: held in memory, or streamed from files when it does not fit.

``prepare_data`` reads ``config.dataset`` (through the registry of formats,
``loaders.FORMATS``) and returns an ``in_memory.InMemoryData`` or, when the
training split of a data set of files is streamed (``input_mode``), a
``streaming.StreamData``: the two kinds of ``training_data.TrainingData``,
which the trainer uses alike. ``from_python`` does the same for arrays and
``tf.data`` datasets given from Python. Each is two steps: reading
(``load_run_data``, ``load_python_data``: a ``formats.LoadedData``, data as
read, which ``summary.describe`` summarises) and ``make_ready``, so a
trainer can fit its defaults to the data in between. Bad data
raises ``DataError`` with one line naming the file (and record) and the
problem, before any training step where it can be found up front.

The loaders' names are re-exported here (``data.load_dataset``, ...), as
are ``pixels.binarize`` and ``errors.DataError``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from absl import logging

from tfvae.core import choices
from tfvae.core.errors import DataError
from tfvae.data import classes, loaders, sources, streaming
from tfvae.data.formats import LoadedArrays, LoadedData, ReadOptions
from tfvae.data.in_memory import InMemoryData
from tfvae.data.loaders import (
    DATASETS,
    DEFAULT_DATA_DIRS,
    PYTHON_DATASET,
    STREAMABLE,
    ImageData,
    check_dataset_name,
    decode_source,
    example_sources,
    image_data,
    load_csv,
    load_dataset,
    load_idx_directory,
    load_image_folder,
    load_npz,
    read_csv,
    read_idx,
    validate_images,
)
from tfvae.data.pixels import binarize, to_unit_interval
from tfvae.data.training_data import TrainingData

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "INPUT_MODES",
    "InMemoryData",
    "LoadedArrays",
    "LoadedData",
    "PYTHON_DATASET",
    "STREAMABLE",
    "DataError",
    "ImageData",
    "TrainingData",
    "binarize",
    "check_dataset_name",
    "example_sources",
    "from_python",
    "input_mode",
    "load_csv",
    "load_dataset",
    "load_idx_directory",
    "load_image_folder",
    "load_npz",
    "load_python_data",
    "load_run_data",
    "make_ready",
    "prepare_data",
    "read_csv",
    "read_idx",
    "scale_integers",
    "to_unit_interval",
    "validate_images",
]

INPUT_MODES = choices.register("input_mode", ("auto", "memory", "stream"))


def from_python(config, train_data, validation_data=None) -> InMemoryData | streaming.StreamData:
    """The data of a run given from Python (``train_and_evaluate(train_data=...)``), ready like ``prepare_data``'s:
    ``make_ready(config, load_python_data(config, train_data, validation_data))``."""
    return make_ready(config, load_python_data(config, train_data, validation_data))


def load_python_data(config, train_data, validation_data=None) -> LoadedData:
    """The data of a run given from Python, as read (``from_python`` without ``make_ready``).

    Args:
      config: the run's TrainConfig (its seed and validation_split).
      train_data: images as a NumPy array [N, H, W(, C)] (uint8 in [0, 255] or
        float in [0, 1]), an (images, labels) tuple, or a ``tf.data.Dataset``
        of unbatched images or (image, label) pairs (read once per epoch in
        its own order, then shuffled in the ``shuffle_buffer``; held in memory
        when ``input_mode`` says so, else streamed).
      validation_data: the same kinds, for validation and evaluation; None
        holds out ``config.validation_split`` of an array's examples
        (drawn with ``config.seed``); a dataset needs validation_data.
    """
    if isinstance(train_data, tf.data.Dataset) or isinstance(validation_data, tf.data.Dataset):
        if validation_data is None:
            raise ValueError("validation_data must be given with a tf.data.Dataset as train_data; got None")
        found = {split: sources.dataset_source(_as_dataset(value, name), name)
                 for split, value, name in (("train", train_data, "train_data"),
                                            ("test", validation_data, "validation_data"))}
        if found["train"].data_shape != found["test"].data_shape:
            raise DataError(f"train_data images {list(found['train'].data_shape)} and validation_data images "
                            f"{list(found['test'].data_shape)} have different shapes")
        return LoadedData("train_data", sources=found)
    images, labels = _images_and_labels(train_data, "train_data")
    if validation_data is None:
        order = np.random.default_rng(config.seed).permutation(len(images))
        held = max(1, int(round(len(images) * config.validation_split)))
        train, test = np.sort(order[held:]), np.sort(order[:held])
        splits = {"train": (images[train], None if labels is None else labels[train]),
                  "test": (images[test], None if labels is None else labels[test])}
    else:
        splits = {"train": (images, labels), "test": _images_and_labels(validation_data, "validation_data")}
    return LoadedData("train_data", arrays=image_data(splits, "train_data"))


def _images_and_labels(value, name: str):
    images, labels = value if isinstance(value, tuple) and len(value) == 2 else (value, None)
    images = validate_images(images, name)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{name}: labels must be {len(images)} ints, one per image; got an array of shape "
                            f"{list(labels.shape)} and dtype {labels.dtype}")
    return images, labels


def _as_dataset(value, name: str) -> tf.data.Dataset:
    if isinstance(value, tf.data.Dataset):
        return value
    images, labels = _images_and_labels(value, name)
    return tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels))


def input_mode(config, train_source: sources.ExampleSource) -> str:
    """"memory" or "stream": ``config.input_mode``, with auto = memory when the decoded training
    split fits in ``config.memory_budget_mb`` MiB."""
    if config.input_mode != "auto":
        return config.input_mode
    return "memory" if train_source.decoded_bytes <= config.memory_budget_mb * 2**20 else "stream"


def prepare_data(config, data_dir: str | None = None) -> InMemoryData | streaming.StreamData:
    """The data of a training run, ready for training and evaluation: ``make_ready(config, load_run_data(...))``.

    Loads ``config.dataset`` (from ``data_dir``, else ``config.data_dir``):
    into memory (``InMemoryData``), or, for a data set of files whose decoded
    training split is streamed (``input_mode``), as ``streaming.StreamData``.
    Keeps the first ``config.train_examples`` training images (0: all; in
    memory only), reads integer data as value / ``config.max_value``,
    binarizes the test set once with ``config.test_binarization_seed`` for a
    Bernoulli likelihood (the training set is binarized dynamically, per
    step) and keeps int labels for a ``config.conditional`` run (DataError if
    the data has none). With ``config.skip_bad_records`` every record is
    decoded once up front and those that do not decode are left out, logged
    and counted (``bad_records``); without it, such a record stops the run
    naming it. ``config`` is a ``TrainConfig``.
    """
    return make_ready(config, load_run_data(config, data_dir))


def load_run_data(config, data_dir: str | None = None) -> LoadedData:
    """``config.dataset`` as read (from ``data_dir``, else ``config.data_dir``): arrays in memory, or example
    sources for ``make_ready`` to decode or stream."""
    directory = data_dir or config.data_dir
    found = loaders.find_format(config.dataset)
    if not found.streams and config.input_mode == "stream":
        raise ValueError(f"input_mode must be memory or auto for dataset {config.dataset!r}, which is read into "
                         f"memory whole; got 'stream' (scripts/make_tfrecords.py writes it as TFRecord shards, "
                         f"which stream)")
    options = ReadOptions(config.channels, config.image_size, config.validation_split, config.seed,
                          config.memory_budget_mb, config.label_column, config.conditional, config.image_feature,
                          config.label_feature, config.skip_bad_records)
    return found.load(config.dataset, directory, options)


def make_ready(config, loaded: LoadedData) -> InMemoryData | streaming.StreamData:
    """``loaded`` ready for training and evaluation under ``config`` (what ``prepare_data`` does after reading)."""
    if loaded.arrays is not None:
        return _ready(config, loaded.arrays)
    return _from_sources(config, loaded.sources, loaded.name, loaded.skip_bad_records)


def _from_sources(config, found: dict, name: str, skip_bad_records: bool) -> InMemoryData | streaming.StreamData:
    """The run's data from {"train", "test"} example sources: decoded into memory or streamed (``input_mode``)."""
    if config.conditional and found["train"].has_labels and found["test"].has_labels:
        _source_classes(found, name)  # before decoding, which casts labels to int32
    bad = _bad_records(found) if skip_bad_records else ()
    if input_mode(config, found["train"]) == "memory":
        loaded = image_data({split: decode_source(source, source.record_ids(bad)) for split, source in found.items()},
                       name)
        return dataclasses.replace(_ready(config, loaded), bad_records=bad)
    return _stream(config, found, bad, name)


def _bad_records(found: dict) -> tuple[sources.BadRecord, ...]:
    bad = tuple(r for split in ("train", "test") for r in sources.find_bad_records(found[split]))
    if bad:
        logging.warning("skipping %d records that do not decode (--skip_bad_records), e.g. %s", len(bad), bad[0])
    return bad


def _labels_or_error(loaded, config) -> tuple[np.ndarray | None, np.ndarray | None, int]:
    """(train labels, test labels, num_classes) of a conditional run; (None, None, 0) otherwise."""
    if not config.conditional:
        return None, None, 0
    if loaded.train_labels is None or loaded.test_labels is None:
        raise DataError(f"{loaded.source}: no labels for both splits; a conditional VAE (--conditional) needs "
                        "them (IDX *-labels-idx1-ubyte files, y_train/y_test in an .npz, class folders of an image "
                        "folder, or a label in every TFRecord)")
    train_labels, test_labels = (classes.class_indices(y, loaded.source) for y in (loaded.train_labels,
                                                                                   loaded.test_labels))
    for split, found, images in (("train", train_labels, loaded.train_images), ("test", test_labels,
                                                                                  loaded.test_images)):
        if len(found) != len(images):
            raise DataError(f"{loaded.source}: {len(found)} {split} labels for {len(images)} {split} examples")
    num_classes = classes.num_classes(int(max(train_labels.max(), test_labels.max())),
                                     len(train_labels) + len(test_labels), loaded.source)
    return train_labels, test_labels, num_classes


def _source_classes(found: dict, name: str) -> int:
    """num_classes of {"train", "test"} labelled sources, from their largest labels as stored (before any cast)."""
    return classes.num_classes(max(found["train"].max_label, found["test"].max_label),
                              found["train"].num_examples + found["test"].num_examples, name)


def _test_images(config, images: np.ndarray) -> tuple[np.ndarray, bool]:
    binarized = config.likelihood == "bernoulli"
    return (binarize(images, config.test_binarization_seed) if binarized else to_unit_interval(images)), binarized


def scale_integers(images: np.ndarray, max_value: int, source: str) -> np.ndarray:
    """Integer data read as value / max_value: uint8 round(value * 255 / max_value) (the identity for 255).

    DataError if a value exceeds ``max_value``, or if ``max_value`` is not
    255 and the data are floats (which are taken as they are, in [0, 1]).
    """
    if max_value == 255:
        return images
    if images.dtype != np.uint8:
        raise DataError(f"{source}: max_value={max_value} (--max_value) applies to integer data; these are "
                        f"{images.dtype} values in [0, 1], read as they are (leave max_value at 255)")
    high = int(images.max(initial=0))
    if high > max_value:
        raise DataError(f"{source}: integer data reach {high}, above max_value={max_value} (--max_value: the value "
                        "that means 1.0)")
    return np.round(images.astype(np.float32) * np.float32(255.0 / max_value)).astype(np.uint8)


def _ready(config, loaded: LoadedArrays) -> InMemoryData:
    train_labels, test_labels, num_classes = _labels_or_error(loaded, config)
    train_images = scale_integers(loaded.train_images, config.max_value, f"{loaded.source} (train)")
    if config.train_examples:
        train_images = train_images[: config.train_examples]
        train_labels = None if train_labels is None else train_labels[: config.train_examples]
    test_images = scale_integers(loaded.test_images, config.max_value, f"{loaded.source} (test)")
    test_images, binarized = _test_images(config, test_images)
    return InMemoryData(train_images, test_images, loaded.source, train_labels, test_labels, binarized, num_classes,
                        test_binarization_seed=config.test_binarization_seed if binarized else None)


def _stream(config, found: dict, bad: tuple, directory: str) -> streaming.StreamData:
    """The streamed training split, with the validation examples decoded into memory."""
    train, test = found["train"], found["test"]
    if config.max_value != 255:
        raise ValueError(f"max_value must be 255 when the training split is streamed (image files and records are "
                         f"8-bit); got {config.max_value}")
    if config.train_examples:
        raise ValueError(f"train_examples must be 0 when the training split is streamed (input_mode {config.input_mode}"
                         f", {train.decoded_bytes / 2**20:.0f} MiB decoded); got {config.train_examples}")
    if config.conditional and not (train.has_labels and test.has_labels):
        raise DataError(f"{directory}: no labels for both splits; a conditional VAE (--conditional) needs them")
    count = config.validation_examples or None
    images, labels = test.to_arrays(test.record_ids(bad), limit=count)
    test_images, binarized = _test_images(config, validate_images(images, test.name))
    num_classes = _source_classes(found, directory) if config.conditional else 0
    return streaming.StreamData(train, test, test_images, labels if config.conditional else None, directory,
                                binarized, num_classes, bad,
                                config.test_binarization_seed if binarized else None)
