"""A run's data: loaded into memory, or streamed from files when it does not fit.

Every loader returns an ``ImageData`` whose images are uint8 in [0, 255] (or
float32 in [0, 1]) with shape [N, height, width, channels]; ``prepare_data``
returns a ``streaming.StreamData`` instead when the training split of a data
set of files is streamed (``input_mode``). Bad data raises ``DataError`` (a
ValueError) with one line naming the file (and record) and the problem,
before any training step where it can be found up front.

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
  * ``keras.datasets`` downloads (mnist, fashion_mnist) when no local copy is
    found and the machine has internet.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os

import numpy as np
import tensorflow as tf
from absl import logging

from tfvae import image_folders, records, sources, streaming, tfds_data
from tfvae.errors import DataError
from tfvae.pixels import binarize, to_unit_interval

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "INPUT_MODES",
    "STREAMABLE",
    "DataError",
    "ImageData",
    "binarize",
    "check_dataset_name",
    "example_sources",
    "from_python",
    "input_mode",
    "load_dataset",
    "prepare_data",
    "load_idx_directory",
    "load_image_folder",
    "load_csv",
    "load_npz",
    "read_csv",
    "read_idx",
]

DATASETS = ("fashion_mnist", "mnist", "idx", "npz", "image_folder", "tfrecord", "csv")
STREAMABLE = ("image_folder", "tfrecord")
INPUT_MODES = ("auto", "memory", "stream")
DEFAULT_DATA_DIRS = {
    "fashion_mnist": "/usr/share/datasets/fashion-mnist",
    "mnist": "/usr/share/datasets/mnist",
}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Train and test images, [N, H, W, C], uint8 in [0, 255] or float32 in [0, 1].

    As loaded, labels are whatever the source has. After ``prepare_data``:
    the test images are float32 (binarized once when ``binarize``), labels
    are int32 and kept for a conditional run only, and ``num_classes`` is
    max(label) + 1 over both splits (0 for an unconditional run).
    """

    train_images: np.ndarray
    test_images: np.ndarray
    source: str
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    binarize: bool = False
    num_classes: int = 0
    bad_records: tuple = ()

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.train_images.shape[1:])

    @property
    def num_train_examples(self) -> int:
        return len(self.train_images)

    def test_split(self, test_binarization_seed: int = 0, max_examples: int = 0):
        """(test images, test labels or None), the first ``max_examples`` (0: all), as ``evaluation`` takes them.

        The images are already prepared (``prepare_data``); the seed is used
        by ``streaming.StreamData.test_split`` only.
        """
        del test_binarization_seed
        images = self.test_images[: max_examples or None]
        return images, None if self.test_labels is None else self.test_labels[: len(images)]


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (gzipped or not) into a NumPy array.

    Format: two zero bytes, a dtype code, the number of dimensions n, then n
    big-endian uint32 sizes, then the data in C order.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated or has 0 dimensions")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX data is truncated or has trailing bytes: header shape {list(shape)} "
            f"needs {expected} bytes, file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_one(directory: str, patterns: tuple[str, ...], required: bool) -> str | None:
    matches = sorted({m for p in patterns for m in glob.glob(os.path.join(directory, p))})
    if len(matches) > 1:
        raise DataError(f"{directory}: several files match {patterns[0]}: {matches}")
    if not matches:
        if required:
            raise DataError(f"{directory}: no file matching {patterns[0]} (gzipped or not)")
        return None
    return matches[0]


def load_idx_directory(directory: str) -> ImageData:
    """Loads ``*train-images-idx3-ubyte[.gz]`` and ``*t10k-images-idx3-ubyte[.gz]``."""
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: data directory does not exist")
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_one(
            directory, (f"*{prefix}-images-idx3-ubyte", f"*{prefix}-images-idx3-ubyte.gz"), True
        )
        labels_path = _find_one(
            directory, (f"*{prefix}-labels-idx1-ubyte", f"*{prefix}-labels-idx1-ubyte.gz"), False
        )
        images = validate_images(read_idx(images_path), images_path)
        labels = None
        if labels_path:
            labels = read_idx(labels_path)
            if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
                raise DataError(
                    f"{labels_path}: {labels.shape[0] if labels.ndim else 0} labels for "
                    f"{images.shape[0]} images in {os.path.basename(images_path)}"
                )
        arrays[split] = (images, labels)
    return _make(arrays, directory)


def load_npz(path: str) -> ImageData:
    """Loads a Keras-style ``.npz`` with x_train and x_test (y_* optional)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            contents = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: cannot read .npz file ({e})") from None
    arrays = {}
    for split in ("train", "test"):
        if f"x_{split}" not in contents:
            raise DataError(f"{path}: missing array x_{split} (found {sorted(contents)})")
        images = validate_images(contents[f"x_{split}"], f"{path}[x_{split}]")
        labels = contents.get(f"y_{split}")
        if labels is not None and labels.shape[:1] != images.shape[:1]:
            raise DataError(
                f"{path}: y_{split} has {labels.shape[0] if labels.ndim else 0} labels "
                f"for {images.shape[0]} images in x_{split}"
            )
        arrays[split] = (images, labels)
    return _make(arrays, path)


LABEL_COLUMN = "label"


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(values [N, D], labels [N] or None) of a CSV file of numbers, one example per row.

    An optional first row of column names; a column named ``label`` holds
    int labels and is not a feature. Values are floats in [0, 1], or, when
    every value is a whole number and some exceed 1, 8-bit values in [0, 255].
    """
    try:
        with open(path) as f:
            first = f.readline()
        names = [n.strip() for n in first.split(",")]
        try:
            [float(n) for n in names]
            header = None
        except ValueError:
            header = names
        values = np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, ndmin=2, dtype=np.float64)
    except OSError as e:
        raise DataError(f"{path}: cannot read CSV file ({e.strerror})") from None
    except ValueError as e:
        raise DataError(f"{path}: not a CSV file of numbers ({str(e).splitlines()[0]})") from None
    labels = None
    if header and LABEL_COLUMN in header:
        column = header.index(LABEL_COLUMN)
        labels, values = values[:, column], np.delete(values, column, axis=1)
        if not np.all(labels == np.round(labels)):
            raise DataError(f"{path}: column {LABEL_COLUMN!r} must hold whole numbers")
        labels = labels.astype(np.int64)
    if values.shape[1] == 0:
        raise DataError(f"{path}: no feature columns (only {LABEL_COLUMN!r})")
    if np.all(values == np.round(values)) and values.max(initial=0) > 1:
        values = values.astype(np.int64)
    return values, labels


def load_csv(path: str, validation_split: float = 0.1, seed: int = 0) -> ImageData:
    """Vectors [N, D] from ``path``/train.csv and ``path``/test.csv, or from one .csv file whose
    ``validation_split`` of rows (drawn with ``seed``) is the test split (``read_csv``)."""
    if os.path.isdir(path):
        arrays = {split: read_csv(os.path.join(path, f"{split}.csv")) for split in ("train", "test")}
    else:
        values, labels = read_csv(path)
        if len(values) < 2:
            raise DataError(f"{path}: needs at least 2 rows to split into train and test; found {len(values)}")
        order = np.random.default_rng(seed).permutation(len(values))
        held = max(1, int(round(len(values) * validation_split)))
        parts = {"train": np.sort(order[held:]), "test": np.sort(order[:held])}
        arrays = {split: (values[rows], None if labels is None else labels[rows]) for split, rows in parts.items()}
    return _make({split: (validate_images(values, f"{path} ({split})"), labels)
                  for split, (values, labels) in arrays.items()}, path)


def load_image_folder(directory: str, channels: int = 0, image_size=(), validation_split: float = 0.1,
                      seed: int = 0) -> ImageData:
    """Decodes an image folder (layouts in ``tfvae.image_folders``) into memory; labels from class folders."""
    splits = image_folders.list_image_folder(directory, validation_split, seed)
    arrays = {split: _decode_source(sources.image_folder_source(files, channels, image_size, f"{directory} ({split})"))
              for split, files in splits.items()}
    return _make(arrays, directory)


def _decode_source(source, skipped=frozenset()) -> tuple[np.ndarray, np.ndarray | None]:
    images, labels = source.to_arrays(skipped)
    return validate_images(images, source.name), labels


def _load_keras_download(name: str) -> ImageData:
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
    return _make(
        {
            "train": (validate_images(x_train, source), y_train),
            "test": (validate_images(x_test, source), y_test),
        },
        source,
    )


def load_dataset(dataset: str = "fashion_mnist", data_dir: str | None = None, channels: int = 0, image_size=(),
                 validation_split: float = 0.1, seed: int = 0) -> ImageData:
    """Loads a data set into memory by name.

    Args:
      dataset: "fashion_mnist" or "mnist" (IDX files in ``data_dir``, else the
        Debian package's directory, else a ``keras.datasets`` download), "idx"
        (IDX files in ``data_dir``), "npz" (``data_dir`` is the .npz file),
        "image_folder" (``data_dir`` holds the images, ``tfvae.image_folders``),
        "tfrecord" (``data_dir`` holds the shards, ``tfvae.records``) or "csv"
        (vectors: ``data_dir`` holds train.csv and test.csv, or is one .csv file).
      data_dir: where the data is; required for all but fashion_mnist and mnist.
      channels, image_size: decoding of image files and records (``tfvae.sources``).
      validation_split, seed: the test split of an image folder without train/ and test/, or of one .csv.
    """
    if tfds_data.is_tfds(dataset):
        found = tfds_data.tfds_sources(dataset, data_dir)
        return _make({split: _decode_source(source) for split, source in found.items()}, dataset)
    if dataset == PYTHON_DATASET:
        raise DataError(f"dataset {PYTHON_DATASET!r}: this run's data was given from Python "
                        "(train_and_evaluate(train_data=...)); pass --dataset and --data_dir to read data from files")
    check_dataset_name(dataset)
    if dataset in DEFAULT_DATA_DIRS:
        directory = data_dir or DEFAULT_DATA_DIRS[dataset]
        if data_dir or os.path.isdir(directory):
            return load_idx_directory(directory)
        return _load_keras_download(dataset)
    if not data_dir:
        raise DataError(f"flag --data_dir: dataset {dataset!r} needs a data_dir (a path); got none")
    if dataset == "idx":
        return load_idx_directory(data_dir)
    if dataset == "npz":
        return load_npz(data_dir)
    if dataset == "csv":
        return load_csv(data_dir, validation_split, seed)
    found = example_sources(dataset, data_dir, channels, image_size, validation_split, seed)
    return _make({split: _decode_source(source) for split, source in found.items()}, data_dir)


def check_dataset_name(dataset: str) -> str:
    """``dataset`` if it names a data set tfvae reads (one of ``DATASETS``, or tfds:NAME); else DataError."""
    if dataset not in DATASETS and not (tfds_data.is_tfds(dataset) and len(dataset) > len(tfds_data.PREFIX)):
        raise DataError(f"dataset must be one of {DATASETS} or tfds:NAME (a TensorFlow Datasets name); got {dataset!r}")
    return dataset


def example_sources(dataset: str, data_dir: str, channels: int = 0, image_size=(), validation_split: float = 0.1,
                    seed: int = 0, require_label: bool = False) -> dict[str, sources.ExampleSource]:
    """{"train", "test"}: the example sources of a data set read from files as needed (``STREAMABLE``)."""
    if dataset not in STREAMABLE:
        raise ValueError(f"dataset must be one of {STREAMABLE} to be streamed; got {dataset!r}")
    if not data_dir:
        raise DataError(f"flag --data_dir: dataset {dataset!r} needs a data_dir (a path); got none")
    if dataset == "tfrecord":
        found = {split: sources.tfrecord_source(data_dir, split, channels, image_size, require_label)
                 for split in records.SPLITS}
    else:
        found = {split: sources.image_folder_source(files, channels, image_size, f"{data_dir} ({split})")
                 for split, files in image_folders.list_image_folder(data_dir, validation_split, seed).items()}
    train, test = found["train"], found["test"]
    if train.data_shape != test.data_shape:
        raise DataError(f"{data_dir}: train images {list(train.data_shape)} and test images "
                        f"{list(test.data_shape)} have different shapes; pass --image_size and --channels")
    return found


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


def _make(arrays: dict, source: str) -> ImageData:
    (train_images, train_labels), (test_images, test_labels) = arrays["train"], arrays["test"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{source}: train images {list(train_images.shape[1:])} and test images "
            f"{list(test_images.shape[1:])} have different shapes"
        )
    return ImageData(train_images, test_images, source, train_labels, test_labels)


PYTHON_DATASET = "python"


def from_python(config, train_data, validation_data=None) -> ImageData | streaming.StreamData:
    """The data of a run given from Python (``train_and_evaluate(train_data=...)``), ready like ``prepare_data``'s.

    Args:
      config: the run's TrainConfig (likelihood, labels, input mode, seeds).
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
        return _from_sources(config, found, "train_data", skip_bad_records=False)
    images, labels = _images_and_labels(train_data, "train_data")
    if validation_data is None:
        order = np.random.default_rng(config.seed).permutation(len(images))
        held = max(1, int(round(len(images) * config.validation_split)))
        train, test = np.sort(order[held:]), np.sort(order[:held])
        splits = {"train": (images[train], None if labels is None else labels[train]),
                  "test": (images[test], None if labels is None else labels[test])}
    else:
        splits = {"train": (images, labels), "test": _images_and_labels(validation_data, "validation_data")}
    return _ready(config, _make(splits, "train_data"))


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


def prepare_data(config, data_dir: str | None = None) -> ImageData | streaming.StreamData:
    """The data of a training run, ready for training and evaluation.

    Loads ``config.dataset`` (from ``data_dir``, else ``config.data_dir``):
    into memory (``ImageData``), or, for a data set of files whose decoded
    training split is streamed (``input_mode``), as ``streaming.StreamData``.
    Keeps the first ``config.train_examples`` training images (0: all; in
    memory only), binarizes the test set once with
    ``config.test_binarization_seed`` for a Bernoulli likelihood (the
    training set is binarized dynamically, per step) and keeps int labels for
    a ``config.conditional`` run (DataError if the data has none). With
    ``config.skip_bad_records`` every record is decoded once up front and
    those that do not decode are left out, logged and counted
    (``bad_records``); without it, such a record stops the run naming it.
    ``config`` is a ``TrainConfig``.
    """
    directory = data_dir or config.data_dir
    if tfds_data.is_tfds(config.dataset):
        found = tfds_data.tfds_sources(config.dataset, directory, config.image_feature, config.label_feature,
                                       require_label=config.conditional)
        return _from_sources(config, found, config.dataset, skip_bad_records=False)
    if config.dataset not in STREAMABLE:
        if config.input_mode == "stream":
            raise ValueError(f"input_mode must be memory or auto for dataset {config.dataset!r}, which is read into "
                             f"memory whole; got 'stream' (scripts/make_tfrecords.py writes it as TFRecord shards, "
                             f"which stream)")
        return _ready(config, load_dataset(config.dataset, directory))
    found = example_sources(config.dataset, directory, config.channels, config.image_size, config.validation_split,
                            config.seed, require_label=config.conditional)
    return _from_sources(config, found, directory, config.skip_bad_records)


def _from_sources(config, found: dict, name: str, skip_bad_records: bool) -> ImageData | streaming.StreamData:
    """The run's data from {"train", "test"} example sources: decoded into memory or streamed (``input_mode``)."""
    bad = _bad_records(found) if skip_bad_records else ()
    if input_mode(config, found["train"]) == "memory":
        loaded = _make({split: _decode_source(source, source.record_ids(bad)) for split, source in found.items()},
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
    train_labels, test_labels = (np.asarray(y, np.int32).reshape(-1) for y in (loaded.train_labels,
                                                                                loaded.test_labels))
    if min(train_labels.min(), test_labels.min()) < 0:
        raise DataError(f"{loaded.source}: labels must be ints >= 0 for --conditional; found negative ones")
    return train_labels, test_labels, int(max(train_labels.max(), test_labels.max())) + 1


def _test_images(config, images: np.ndarray) -> tuple[np.ndarray, bool]:
    binarized = config.likelihood == "bernoulli"
    return (binarize(images, config.test_binarization_seed) if binarized else to_unit_interval(images)), binarized


def _ready(config, loaded: ImageData) -> ImageData:
    train_labels, test_labels, num_classes = _labels_or_error(loaded, config)
    train_images = loaded.train_images
    if config.train_examples:
        train_images = train_images[: config.train_examples]
        train_labels = None if train_labels is None else train_labels[: config.train_examples]
    test_images, binarized = _test_images(config, loaded.test_images)
    return ImageData(train_images, test_images, loaded.source, train_labels, test_labels, binarized, num_classes)


def _stream(config, found: dict, bad: tuple, directory: str) -> streaming.StreamData:
    """The streamed training split, with the validation examples decoded into memory."""
    train, test = found["train"], found["test"]
    if config.train_examples:
        raise ValueError(f"train_examples must be 0 when the training split is streamed (input_mode {config.input_mode}"
                         f", {train.decoded_bytes / 2**20:.0f} MiB decoded); got {config.train_examples}")
    if config.conditional and not (train.has_labels and test.has_labels):
        raise DataError(f"{directory}: no labels for both splits; a conditional VAE (--conditional) needs them")
    count = config.validation_examples or None
    images, labels = test.to_arrays(test.record_ids(bad), limit=count)
    test_images, binarized = _test_images(config, validate_images(images, test.name))
    num_classes = max(train.max_label, test.max_label) + 1 if config.conditional else 0
    return streaming.StreamData(train, test, test_images, labels if config.conditional else None, directory,
                                binarized, num_classes, bad)
