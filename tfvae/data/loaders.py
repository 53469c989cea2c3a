"""Data sets read by name: the registry of formats (``FORMATS``) and the readers of IDX, .npz, CSV and downloads.

``FORMATS`` maps each ``--dataset`` name to its ``formats.Format``: IDX
directories (fashion_mnist, mnist, idx), .npz and CSV files are read into
memory whole; image folders, TFRecord shards and TFDS data sets (tfds:NAME)
give example sources, decoded into memory or streamed (``sources``).
``find_format`` looks a name up; ``load_dataset`` reads any format into
memory, ``example_sources`` gives the sources of a format of files.

Every loader returns ``formats.LoadedArrays`` whose examples are uint8 in [0, 255]
(or float32 in [0, 1]) with shape [N, height, width, channels], or [N, D]
for vectors. Bad data raises ``DataError`` (a ValueError) with one line
naming the file (and record) and the problem.

Sources:
  * a directory of MNIST-format IDX files, gzipped or not
    (``train-images-idx3-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]`` and the
    optional label files); Fashion-MNIST from Debian's ``dataset-fashion-mnist``
    package is the default;
  * a Keras-style ``.npz`` with ``x_train``, ``x_test`` (``y_train``, ``y_test``
    optional);
  * a folder of image files with ``train/`` and ``test/`` subfolders or one
    pool split by a seeded ``validation_split``, class subfolders giving
    labels (``tfvae.image_folders``);
  * TFRecord shards of encoded images (``tfvae.records``);
  * CSV files of vectors [N, D] (tabular data, for MLP models);
  * TensorFlow Datasets (``tfvae.tfds_data``);
  * ``keras.datasets`` downloads (mnist, fashion_mnist) when no local copy is
    found and the machine has internet.

IDX, .npz and CSV files are read into memory whole: what their headers
claim (their values counted, for CSV), summed over a data set's files, must
fit in ``memory_budget_mb`` MiB, checked before anything is read or
inflated (``limits.MemoryBudget``; ``idx_files``, ``npz_files``,
``csv_files``).
"""

from __future__ import annotations

import glob
import os

import numpy as np

from tfvae.core.errors import DataError
from tfvae.data import image_folders, limits, records, sources, tfds_data
from tfvae.data.csv_files import LABEL_COLUMN, read_csv
from tfvae.data.formats import Format, LoadedArrays, LoadedData, ReadOptions
from tfvae.data.idx_files import read_idx
from tfvae.data.in_memory import InMemoryData
from tfvae.data.npz_files import read_npz

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "FORMATS",
    "LABEL_COLUMN",
    "PYTHON_DATASET",
    "STREAMABLE",
    "ImageData",
    "LoadedArrays",
    "check_dataset_name",
    "decode_source",
    "example_sources",
    "find_format",
    "image_data",
    "load_csv",
    "load_dataset",
    "load_idx_directory",
    "load_image_folder",
    "load_npz",
    "read_csv",
    "read_idx",
    "validate_images",
]

PYTHON_DATASET = "python"  # the dataset a run records when its data was given from Python
DEFAULT_DATA_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}
ImageData = InMemoryData  # tfvae 0.3.0's name of the data ready in memory (loaders now give LoadedArrays)


def _find_one(directory: str, patterns: tuple[str, ...], required: bool) -> str | None:
    matches = sorted({m for p in patterns for m in glob.glob(os.path.join(directory, p))})
    if len(matches) > 1:
        raise DataError(f"{directory}: several files match {patterns[0]}: {matches}")
    if not matches:
        if required:
            raise DataError(f"{directory}: no file matching {patterns[0]} (gzipped or not)")
        return None
    return matches[0]


def load_idx_directory(directory: str, memory_budget_mb: int = limits.DEFAULT_MEMORY_BUDGET_MB) -> LoadedArrays:
    """Loads ``*train-images-idx3-ubyte[.gz]`` and ``*t10k-images-idx3-ubyte[.gz]`` (and their labels), whose
    headers together may claim at most ``memory_budget_mb`` MiB."""
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: data directory does not exist")
    budget = limits.MemoryBudget(memory_budget_mb)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_one(
            directory, (f"*{prefix}-images-idx3-ubyte", f"*{prefix}-images-idx3-ubyte.gz"), True
        )
        labels_path = _find_one(
            directory, (f"*{prefix}-labels-idx1-ubyte", f"*{prefix}-labels-idx1-ubyte.gz"), False
        )
        images = validate_images(read_idx(images_path, budget), images_path)
        labels = None
        if labels_path:
            labels = read_idx(labels_path, budget)
            if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
                raise DataError(
                    f"{labels_path}: {labels.shape[0] if labels.ndim else 0} labels for "
                    f"{images.shape[0]} images in {os.path.basename(images_path)}"
                )
        arrays[split] = (images, labels)
    return image_data(arrays, directory)


def load_npz(path: str, memory_budget_mb: int = limits.DEFAULT_MEMORY_BUDGET_MB) -> LoadedArrays:
    """Loads a Keras-style ``.npz`` with x_train and x_test (y_* optional), whose headers together may claim at
    most ``memory_budget_mb`` MiB; other arrays in it are not read."""
    contents, names = read_npz(path, ("x_train", "x_test", "y_train", "y_test"), limits.MemoryBudget(memory_budget_mb))
    arrays = {}
    for split in ("train", "test"):
        if f"x_{split}" not in contents:
            raise DataError(f"{path}: missing array x_{split} (found {names})")
        images = validate_images(contents[f"x_{split}"], f"{path}[x_{split}]")
        labels = contents.get(f"y_{split}")
        if labels is not None and labels.shape[:1] != images.shape[:1]:
            raise DataError(
                f"{path}: y_{split} has {labels.shape[0] if labels.ndim else 0} labels "
                f"for {images.shape[0]} images in x_{split}"
            )
        arrays[split] = (images, labels)
    return image_data(arrays, path)


def load_csv(path: str, validation_split: float = 0.1, seed: int = 0,
             memory_budget_mb: int = limits.DEFAULT_MEMORY_BUDGET_MB, label_column: str = LABEL_COLUMN,
             require_label: bool = False) -> LoadedArrays:
    """Vectors [N, D] from ``path``/train.csv and ``path``/test.csv, or from one .csv file whose
    ``validation_split`` of rows (drawn with ``seed``) is the test split (``read_csv``); their values (as
    float64) may take at most ``memory_budget_mb`` MiB."""
    budget = limits.MemoryBudget(memory_budget_mb)
    if os.path.isdir(path):
        arrays = {split: read_csv(os.path.join(path, f"{split}.csv"), budget, label_column, require_label)
                  for split in ("train", "test")}
    else:
        values, labels = read_csv(path, budget, label_column, require_label)
        if len(values) < 2:
            raise DataError(f"{path}: needs at least 2 rows to split into train and test; found {len(values)}")
        order = np.random.default_rng(seed).permutation(len(values))
        held = max(1, int(round(len(values) * validation_split)))
        parts = {"train": np.sort(order[held:]), "test": np.sort(order[:held])}
        arrays = {split: (values[rows], None if labels is None else labels[rows]) for split, rows in parts.items()}
    return image_data({split: (validate_images(values, f"{path} ({split})"), labels)
                  for split, (values, labels) in arrays.items()}, path)


def load_image_folder(directory: str, channels: int = 0, image_size=(), validation_split: float = 0.1,
                      seed: int = 0) -> LoadedArrays:
    """Decodes an image folder (layouts in ``tfvae.image_folders``) into memory; labels from class folders."""
    splits = image_folders.list_image_folder(directory, validation_split, seed)
    arrays = {split: decode_source(sources.image_folder_source(files, channels, image_size, f"{directory} ({split})"))
              for split, files in splits.items()}
    return image_data(arrays, directory)


def decode_source(source, skipped=frozenset()) -> tuple[np.ndarray, np.ndarray | None]:
    """(validated examples, labels or None) of an example source, decoded into memory but ``skipped``."""
    images, labels = source.to_arrays(skipped)
    return validate_images(images, source.name), labels


def _load_keras_download(name: str) -> LoadedArrays:
    import keras

    loader = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist}[name]
    source = f"keras.datasets.{name}"
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as e:  # noqa: BLE001 - Keras raises a bare Exception for a failed download
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(
            f"dataset {name!r}: no local copy in {DEFAULT_DATA_DIRS[name]} and the {source} download failed "
            f"({reason}); put the four IDX files (train-images-idx3-ubyte.gz, ...) in a directory and pass "
            f"--data_dir=DIR{' or apt-get install -y dataset-fashion-mnist' if name == 'fashion_mnist' else ''}, "
            "or a Keras .npz with --dataset=npz --data_dir=FILE") from None
    return image_data(
        {
            "train": (validate_images(x_train, source), y_train),
            "test": (validate_images(x_test, source), y_test),
        },
        source,
    )


def load_dataset(dataset: str = "fashion_mnist", data_dir: str | None = None, channels: int = 0, image_size=(),
                 validation_split: float = 0.1, seed: int = 0,
                 memory_budget_mb: int = limits.DEFAULT_MEMORY_BUDGET_MB, label_column: str = LABEL_COLUMN,
                 require_label: bool = False) -> LoadedArrays:
    """Loads a data set into memory by name (``FORMATS``), its example sources decoded whole.

    Args:
      dataset: "fashion_mnist" or "mnist" (IDX files in ``data_dir``, else the
        Debian package's directory, else a ``keras.datasets`` download), "idx"
        (IDX files in ``data_dir``), "npz" (``data_dir`` is the .npz file),
        "image_folder" (``data_dir`` holds the images, ``tfvae.image_folders``),
        "tfrecord" (``data_dir`` holds the shards, ``tfvae.records``), "csv"
        (vectors: ``data_dir`` holds train.csv and test.csv, or is one .csv file)
        or tfds:NAME (``data_dir``: the TFDS data directory, optional).
      data_dir: where the data is; required for all but fashion_mnist, mnist and tfds:NAME.
      channels, image_size: decoding of image files and records (``tfvae.sources``).
      validation_split, seed: the test split of an image folder without train/ and test/, or of one .csv.
      memory_budget_mb: what the headers of IDX, .npz and CSV files may claim in all (MiB), checked before
        they are read.
      label_column, require_label: the label column of csv data, and whether labels must be there.
    """
    options = ReadOptions(channels, tuple(image_size), validation_split, seed, memory_budget_mb, label_column,
                          require_label)
    loaded = find_format(dataset).load(dataset, data_dir, options)
    if loaded.arrays is not None:
        return loaded.arrays
    return image_data({split: decode_source(source) for split, source in loaded.sources.items()}, loaded.name)


def check_dataset_name(dataset: str) -> str:
    """``dataset`` if it names a data set tfvae reads (one of ``DATASETS``, or tfds:NAME); else DataError."""
    if dataset not in DATASETS and not (tfds_data.is_tfds(dataset) and len(dataset) > len(tfds_data.PREFIX)):
        raise DataError(f"dataset must be one of {DATASETS} or tfds:NAME (a TensorFlow Datasets name); got {dataset!r}")
    return dataset


def find_format(dataset: str) -> Format:
    """The ``FORMATS`` entry of a dataset name (tfds:NAME: "tfds"); DataError for another name."""
    if dataset == PYTHON_DATASET:
        raise DataError(f"dataset {PYTHON_DATASET!r}: this run's data was given from Python "
                        "(train_and_evaluate(train_data=...)); pass --dataset and --data_dir to read data from files")
    check_dataset_name(dataset)
    return FORMATS["tfds" if tfds_data.is_tfds(dataset) else dataset]


def example_sources(dataset: str, data_dir: str, channels: int = 0, image_size=(), validation_split: float = 0.1,
                    seed: int = 0, require_label: bool = False) -> dict[str, sources.ExampleSource]:
    """{"train", "test"}: the example sources of a data set of files, read as needed (``STREAMABLE``)."""
    if dataset not in STREAMABLE:
        raise ValueError(f"dataset must be one of {STREAMABLE} to be streamed; got {dataset!r}")
    options = ReadOptions(channels, tuple(image_size), validation_split, seed, require_label=require_label)
    return FORMATS[dataset].load(dataset, data_dir, options).sources


# ================================================================ the readers of the registry
def _arrays(loaded: LoadedArrays) -> LoadedData:
    return LoadedData(loaded.source, arrays=loaded)


def _read_idx_or_download(dataset: str, data_dir: str | None, options: ReadOptions) -> LoadedData:
    directory = data_dir or DEFAULT_DATA_DIRS[dataset]
    if data_dir or os.path.isdir(directory):
        return _arrays(load_idx_directory(directory, options.memory_budget_mb))
    return _arrays(_load_keras_download(dataset))


def _read_idx(dataset: str, data_dir: str, options: ReadOptions) -> LoadedData:
    return _arrays(load_idx_directory(data_dir, options.memory_budget_mb))


def _read_npz(dataset: str, data_dir: str, options: ReadOptions) -> LoadedData:
    return _arrays(load_npz(data_dir, options.memory_budget_mb))


def _read_csv(dataset: str, data_dir: str, options: ReadOptions) -> LoadedData:
    return _arrays(load_csv(data_dir, options.validation_split, options.seed, options.memory_budget_mb,
                            options.label_column, options.require_label))


def _same_shapes(found: dict, data_dir: str) -> dict:
    train, test = found["train"], found["test"]
    if train.data_shape != test.data_shape:
        raise DataError(f"{data_dir}: train images {list(train.data_shape)} and test images "
                        f"{list(test.data_shape)} have different shapes; pass --image_size and --channels")
    return found


def _read_tfrecord(dataset: str, data_dir: str, options: ReadOptions) -> LoadedData:
    found = {split: sources.tfrecord_source(data_dir, split, options.channels, options.image_size,
                                            options.require_label)
             for split in records.SPLITS}
    return LoadedData(data_dir, sources=_same_shapes(found, data_dir), skip_bad_records=options.skip_bad_records)


def _read_image_folder(dataset: str, data_dir: str, options: ReadOptions) -> LoadedData:
    found = {split: sources.image_folder_source(files, options.channels, options.image_size, f"{data_dir} ({split})")
             for split, files in image_folders.list_image_folder(data_dir, options.validation_split,
                                                                 options.seed).items()}
    return LoadedData(data_dir, sources=_same_shapes(found, data_dir), skip_bad_records=options.skip_bad_records)


def _read_tfds(dataset: str, data_dir: str | None, options: ReadOptions) -> LoadedData:
    # As in 0.3.0, skip_bad_records is for files: a TFDS data set's records are not decoded up front.
    return LoadedData(dataset, sources=tfds_data.tfds_sources(dataset, data_dir, options.image_feature,
                                                              options.label_feature, options.require_label))


FORMATS: dict[str, Format] = {
    "fashion_mnist": Format(_read_idx_or_download, streams=False, needs_data_dir=False),
    "mnist": Format(_read_idx_or_download, streams=False, needs_data_dir=False),
    "idx": Format(_read_idx, streams=False),
    "npz": Format(_read_npz, streams=False),
    "image_folder": Format(_read_image_folder, streams=True),
    "tfrecord": Format(_read_tfrecord, streams=True),
    "csv": Format(_read_csv, streams=False),
    "tfds": Format(_read_tfds, streams=True, needs_data_dir=False),  # every tfds:NAME
}
DATASETS = tuple(name for name in FORMATS if name != "tfds")  # the names --dataset takes, besides tfds:NAME
STREAMABLE = tuple(name for name in DATASETS if FORMATS[name].streams)  # the formats of files that stream


def validate_images(images: np.ndarray, source: str) -> np.ndarray:
    """Checks rank, size and value range; returns [N, H, W, C] images or [N, D] vectors, uint8 or float32.

    Accepted: integer arrays in [0, 255] (stored as uint8) and float arrays in
    [0, 1] with no NaN; rank 4 [N, H, W, C], rank 3 [N, H, W] (a channel axis
    is added) or rank 2 [N, D] (vectors: tabular data, for MLP models).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim not in (2, 4):
        raise DataError(f"{source}: data must have rank 2 [N, D] (vectors), 3 [N, H, W] or 4 [N, H, W, C]; got "
                        f"shape {list(images.shape)}")
    if images.shape[0] == 0:
        raise DataError(f"{source}: the data set is empty (0 examples)")
    if min(images.shape[1:]) == 0:
        raise DataError(f"{source}: examples have an empty dimension; shape {list(images.shape)}")
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise DataError(f"{source}: data contain NaN or infinite values")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"{source}: float data must lie in [0, 1] (scale each column or channel to it); got "
                            f"values in [{low:g}, {high:g}]")
        return images.astype(np.float32, copy=False)
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(f"{source}: integer data must lie in [0, 255]; got values in [{low}, {high}]")
        return images.astype(np.uint8, copy=False)
    raise DataError(f"{source}: data must be integer or float arrays; got dtype {images.dtype}")


def image_data(arrays: dict, source: str) -> LoadedArrays:
    """The LoadedArrays of {"train": (images, labels), "test": (images, labels)}; DataError if their shapes differ."""
    (train_images, train_labels), (test_images, test_labels) = arrays["train"], arrays["test"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{source}: train images {list(train_images.shape[1:])} and test images "
            f"{list(test_images.shape[1:])} have different shapes"
        )
    return LoadedArrays(train_images, test_images, source, train_labels, test_labels)
