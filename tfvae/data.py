"""Loading and validating image data sets into memory.

Every loader returns an ``ImageData`` whose images are uint8 in [0, 255] (or
float32 in [0, 1]) with shape [N, height, width, channels]. Bad data raises
``DataError`` (a ValueError) with one line naming the file and the problem,
before any training step.

Sources:
  * a directory of MNIST-format IDX files, gzipped or not
    (``train-images-idx3-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]`` and the
    optional label files); Fashion-MNIST from Debian's ``dataset-fashion-mnist``
    package is the default;
  * a Keras-style ``.npz`` with ``x_train``, ``x_test`` (``y_train``, ``y_test``
    optional);
  * a folder of PNG/JPEG images, with ``train/`` and ``test/`` subfolders or
    flat (then the last 10% of the sorted file names is the test split);
  * ``keras.datasets`` downloads (mnist, fashion_mnist) when no local copy is
    found and the machine has internet.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import os

import numpy as np

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "DataError",
    "ImageData",
    "binarize",
    "load_dataset",
    "prepare_data",
    "load_idx_directory",
    "load_image_folder",
    "load_npz",
    "read_idx",
]

DATASETS = ("fashion_mnist", "mnist", "idx", "npz", "image_folder")
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
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataError(ValueError):
    """A data file or array is unusable; the message names it and the problem."""


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

    @property
    def data_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.train_images.shape[1:])


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


def _decode_image(path: str) -> np.ndarray:
    import tensorflow as tf

    try:
        return tf.io.decode_image(tf.io.read_file(path), expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
        raise DataError(f"{path}: cannot decode image ({e.message.splitlines()[0]})") from None


def _read_image_files(paths: list[str], directory: str) -> np.ndarray:
    images = [_decode_image(p) for p in paths]
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        first = images[0].shape
        odd = next(p for p, img in zip(paths, images, strict=True) if img.shape != first)
        raise DataError(f"{odd}: image shape differs from {paths[0]} ({first}); resize all images alike")
    return np.stack(images)


def load_image_folder(directory: str, test_fraction: float = 0.1) -> ImageData:
    """Loads PNG/JPEG files from ``train/`` and ``test/`` or from one flat folder."""
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: image folder does not exist")

    def list_images(folder):
        return sorted(
            os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(_IMAGE_SUFFIXES)
        )

    if os.path.isdir(os.path.join(directory, "train")) and os.path.isdir(os.path.join(directory, "test")):
        splits = {s: list_images(os.path.join(directory, s)) for s in ("train", "test")}
    else:
        files = list_images(directory)
        num_test = max(1, int(round(len(files) * test_fraction))) if len(files) > 1 else 0
        splits = {"train": files[: len(files) - num_test], "test": files[len(files) - num_test :]}
    for split, paths in splits.items():
        if not paths:
            raise DataError(f"{directory}: no PNG/JPEG images for the {split} split")
    everything = _read_image_files(splits["train"] + splits["test"], directory)
    num_train = len(splits["train"])
    arrays = {
        "train": (validate_images(everything[:num_train], directory), None),
        "test": (validate_images(everything[num_train:], directory), None),
    }
    return _make(arrays, directory)


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


def load_dataset(dataset: str = "fashion_mnist", data_dir: str | None = None) -> ImageData:
    """Loads a data set by name.

    Args:
      dataset: "fashion_mnist" or "mnist" (IDX files in ``data_dir``, else the
        Debian package's directory, else a ``keras.datasets`` download), "idx"
        (IDX files in ``data_dir``), "npz" (``data_dir`` is the .npz file) or
        "image_folder" (``data_dir`` holds the images).
      data_dir: where the data is; required for idx, npz and image_folder.
    """
    if dataset not in DATASETS:
        raise DataError(f"dataset must be one of {DATASETS}; got {dataset!r}")
    if dataset in DEFAULT_DATA_DIRS:
        directory = data_dir or DEFAULT_DATA_DIRS[dataset]
        if data_dir or os.path.isdir(directory):
            return load_idx_directory(directory)
        return _load_keras_download(dataset)
    if not data_dir:
        raise DataError(f"dataset {dataset!r} needs a data_dir (a path); got none")
    if dataset == "idx":
        return load_idx_directory(data_dir)
    if dataset == "npz":
        return load_npz(data_dir)
    return load_image_folder(data_dir)


def validate_images(images: np.ndarray, source: str) -> np.ndarray:
    """Checks rank, size and value range; returns [N, H, W, C] uint8 or float32.

    Accepted: integer arrays in [0, 255] (stored as uint8) and float arrays in
    [0, 1] with no NaN; rank 3 [N, H, W] (a channel axis is added) or rank 4.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4:
        raise DataError(f"{source}: images must have rank 3 [N, H, W] or 4 [N, H, W, C]; got shape {list(images.shape)}")
    if images.shape[0] == 0:
        raise DataError(f"{source}: the data set is empty (0 images)")
    if min(images.shape[1:]) == 0:
        raise DataError(f"{source}: images have an empty dimension; shape {list(images.shape)}")
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all():
            raise DataError(f"{source}: images contain NaN or infinite values")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise DataError(f"{source}: float images must lie in [0, 1]; got values in [{low:g}, {high:g}]")
        return images.astype(np.float32, copy=False)
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(f"{source}: integer images must lie in [0, 255]; got values in [{low}, {high}]")
        return images.astype(np.uint8, copy=False)
    raise DataError(f"{source}: images must be integer or float arrays; got dtype {images.dtype}")


def _make(arrays: dict, source: str) -> ImageData:
    (train_images, train_labels), (test_images, test_labels) = arrays["train"], arrays["test"]
    if train_images.shape[1:] != test_images.shape[1:]:
        raise DataError(
            f"{source}: train images {list(train_images.shape[1:])} and test images "
            f"{list(test_images.shape[1:])} have different shapes"
        )
    return ImageData(train_images, test_images, source, train_labels, test_labels)


def to_unit_interval(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]; float32 input is returned as is."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """Fixed binarization x_b ~ Bernoulli(x / 255), float32 in {0, 1}, from ``seed``."""
    probs = to_unit_interval(images)
    return (np.random.default_rng(seed).random(probs.shape, dtype=np.float32) < probs).astype(np.float32)


def prepare_data(config, data_dir: str | None = None) -> ImageData:
    """The data of a training run, ready for training and evaluation.

    Loads ``config.dataset`` (from ``data_dir``, else ``config.data_dir``),
    keeps the first ``config.train_examples`` training images (0: all),
    binarizes the test set once with ``config.test_binarization_seed`` for a
    Bernoulli likelihood (the training set is binarized dynamically, per step)
    and keeps int labels for a ``config.conditional`` run (DataError if the
    data has none). ``config`` is a ``TrainConfig``.
    """
    loaded = load_dataset(config.dataset, data_dir or config.data_dir)
    train_images, train_labels, test_labels, num_classes = loaded.train_images, None, None, 0
    if config.conditional:
        if loaded.train_labels is None or loaded.test_labels is None:
            raise DataError(f"{loaded.source}: no labels for both splits; a conditional VAE (--conditional) needs "
                            "them (IDX *-labels-idx1-ubyte files, or y_train/y_test in an .npz)")
        train_labels, test_labels = (np.asarray(y, np.int32).reshape(-1) for y in (loaded.train_labels,
                                                                                    loaded.test_labels))
        if min(train_labels.min(), test_labels.min()) < 0:
            raise DataError(f"{loaded.source}: labels must be ints >= 0 for --conditional; found negative ones")
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    if config.train_examples:
        train_images = train_images[: config.train_examples]
        train_labels = None if train_labels is None else train_labels[: config.train_examples]
    binarized = config.likelihood == "bernoulli"
    test_images = (binarize(loaded.test_images, config.test_binarization_seed) if binarized
                   else to_unit_interval(loaded.test_images))
    return ImageData(train_images, test_images, loaded.source, train_labels, test_labels, binarized, num_classes)
