"""What reading a data set gives, and the shape of an entry in the registry of formats (``loaders.FORMATS``).

  LoadedArrays  train and test examples as their files held them, not yet ready for training
  LoadedData    a data set as read: LoadedArrays in memory, or {"train", "test"} example sources
  ReadOptions   the reading settings: decoding, the split of one pool, the memory budget, labels
  Format        one format of the registry: its reader and whether it reads example sources

Every data set tfvae reads by name (``--dataset``) is one entry of
``loaders.FORMATS`` (name -> Format; ``tfds:NAME`` is the entry "tfds"), and
every caller reads through it: ``loaders.load_dataset`` (into memory),
``loaders.example_sources`` (the sources of files), ``run_data.load_run_data``
(a run's data) and ``conversion.write_tfrecords``. A format whose reader gives
example sources (``streams``) is decoded into memory or streamed, as the run
decides (``run_data.make_ready``); the others are read into memory whole.
Making data ready for training (``in_memory.InMemoryData``,
``streaming.StreamData``) is a separate step, after reading.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tfvae.core.errors import DataError
from tfvae.data import limits
from tfvae.data.csv_files import LABEL_COLUMN

__all__ = ["ExampleArrays", "Format", "LoadedArrays", "LoadedData", "ReadOptions"]


class ExampleArrays:
    """What arrays of examples tell of themselves: ``train_images`` [N, *data_shape]."""

    train_images: np.ndarray

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train_images.shape[1:])

    @property
    def num_train_examples(self) -> int:
        return len(self.train_images)


@dataclasses.dataclass(frozen=True)
class LoadedArrays(ExampleArrays):
    """Train and test examples as loaded: [N, H, W, C] images or [N, D] vectors, uint8 in [0, 255] or float32 in
    [0, 1], and labels as the source has them (or None). ``run_data.make_ready`` makes them ready for training."""

    train_images: np.ndarray
    test_images: np.ndarray
    source: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class LoadedData:
    """A run's data as read, before ``make_ready`` prepares it for training (``describe`` summarises it).

    Attributes:
      name: what the data is, for messages (a path, a TFDS name, "train_data").
      arrays: the data held in memory as loaded (``LoadedArrays``), or None.
      sources: {"train", "test"} example sources, decoded into memory or
        streamed by ``make_ready`` (``input_mode``), or None.
      skip_bad_records: whether ``make_ready`` leaves out (and counts) the
        sources' records that do not decode.
    """

    name: str
    arrays: LoadedArrays | None = None
    sources: dict | None = None
    skip_bad_records: bool = False


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to read a data set (each format takes the settings that apply to it).

    Attributes:
      channels, image_size: decoding of image files and records (``sources``): channels 0 keeps them as stored,
        an (H, W) size crops to its aspect ratio and resizes.
      validation_split, seed: the test split of one pool of examples (an image folder without train/ and test/,
        one .csv file).
      memory_budget_mb: what the headers of IDX, .npz and CSV files may claim in all (MiB), checked before they
        are read.
      label_column: the label column of CSV data.
      require_label: whether every example must have a label (a conditional run).
      image_feature, label_feature: the features of a TFDS data set (empty: the first Image / ClassLabel).
      skip_bad_records: whether the records of files that do not decode are left out (``LoadedData``).
    """

    channels: int = 0
    image_size: tuple = ()
    validation_split: float = 0.1
    seed: int = 0
    memory_budget_mb: int = limits.DEFAULT_MEMORY_BUDGET_MB
    label_column: str = LABEL_COLUMN
    require_label: bool = False
    image_feature: str = ""
    label_feature: str = ""
    skip_bad_records: bool = False


@dataclasses.dataclass(frozen=True)
class Format:
    """One format of data sets read by name: ``read(dataset, data_dir, options) -> LoadedData``.

    Attributes:
      read: the reader; ``dataset`` is the name it was asked by (e.g. "mnist", "tfds:cifar10").
      streams: whether it reads example sources (decoded into memory or streamed) rather than arrays whole.
      needs_data_dir: whether a ``data_dir`` must be given.
    """

    read: Callable[[str, str | None, ReadOptions], LoadedData]
    streams: bool
    needs_data_dir: bool = True

    def load(self, dataset: str, data_dir: str | None, options: ReadOptions) -> LoadedData:
        """``read``, after checking that a ``data_dir`` is given where one is needed."""
        if self.needs_data_dir and not data_dir:
            raise DataError(f"flag --data_dir: dataset {dataset!r} needs a data_dir (a path); got none")
        return self.read(dataset, data_dir, options)
