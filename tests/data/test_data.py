"""Loaders: real Fashion-MNIST, IDX/npz/image files, and one-line errors for bad data."""

import gzip
import os

import numpy as np
import pytest
from conftest import write_idx, write_idx_dataset

from tfvae import data


def test_loads_debian_fashion_mnist_by_default(fashion_mnist_dir):
    loaded = data.load_dataset("fashion_mnist")
    assert loaded.train_images.shape == (60000, 28, 28, 1) and loaded.test_images.shape == (10000, 28, 28, 1)
    assert loaded.train_images.dtype == np.uint8 and loaded.train_images.max() == 255
    assert loaded.train_labels.shape == (60000,) and set(np.unique(loaded.test_labels)) == set(range(10))
    assert loaded.source == fashion_mnist_dir


@pytest.mark.parametrize("gzipped", [True, False])
def test_reads_idx_files_gzipped_or_not(tmp_path, gzipped):
    directory = write_idx_dataset(str(tmp_path), num_train=10, num_test=4, shape=(5, 6), gzipped=gzipped)
    loaded = data.load_dataset("idx", directory)
    assert loaded.train_images.shape == (10, 5, 6, 1) and loaded.test_images.shape == (4, 5, 6, 1)


def test_reads_emnist_style_prefixed_idx_names(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 3)):
        write_idx(str(tmp_path / f"emnist-letters-{prefix}-images-idx3-ubyte.gz"), rng.integers(0, 256, (n, 4, 4)))
    loaded = data.load_idx_directory(str(tmp_path))
    assert loaded.train_images.shape == (6, 4, 4, 1) and loaded.train_labels is None


def test_truncated_idx_file_is_reported_with_its_name(tmp_path):
    directory = write_idx_dataset(str(tmp_path), gzipped=False)
    path = os.path.join(directory, "train-images-idx3-ubyte")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(data.DataError, match=r"train-images-idx3-ubyte: IDX data is truncated"):
        data.load_dataset("idx", directory)


def test_corrupt_gzip_is_reported_with_its_name(tmp_path):
    directory = write_idx_dataset(str(tmp_path))
    path = os.path.join(directory, "t10k-images-idx3-ubyte.gz")
    with open(path, "r+b") as f:
        f.truncate(30)
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte.gz: cannot read IDX file"):
        data.load_dataset("idx", directory)


def test_bad_magic_number_is_reported(tmp_path):
    directory = write_idx_dataset(str(tmp_path))
    with open(os.path.join(directory, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(data.DataError, match="not an IDX file"):
        data.load_dataset("idx", directory)


def test_label_count_mismatch_is_reported(tmp_path):
    directory = write_idx_dataset(str(tmp_path), num_train=10)
    write_idx(os.path.join(directory, "train-labels-idx1-ubyte.gz"), np.zeros(9))
    with pytest.raises(data.DataError, match=r"train-labels-idx1-ubyte.gz: 9 labels for 10 images"):
        data.load_dataset("idx", directory)


def test_missing_directory_and_missing_files_are_reported(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_dataset("idx", str(tmp_path / "nope"))
    with pytest.raises(data.DataError, match=r"no file matching \*train-images-idx3-ubyte"):
        data.load_dataset("idx", str(tmp_path))


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def test_npz_round_trip_accepts_floats_in_unit_interval(tmp_path):
    rng = np.random.default_rng(0)
    path = _write_npz(tmp_path / "d.npz", x_train=rng.random((6, 4, 4)).astype(np.float32),
                      x_test=rng.random((2, 4, 4)).astype(np.float32), y_train=np.arange(6), y_test=np.arange(2))
    loaded = data.load_dataset("npz", path)
    assert loaded.train_images.dtype == np.float32 and loaded.train_images.shape == (6, 4, 4, 1)


@pytest.mark.parametrize("x_train, message", [
    (np.full((3, 4, 4), 300), r"x_train\]: integer data must lie in \[0, 255\]; got values in \[300, 300\]"),
    (np.full((3, 4, 4), 1.5, np.float32), r"float data must lie in \[0, 1\]"),
    (np.full((3, 4, 4), np.nan, np.float32), "NaN or infinite"),
    (np.zeros((3, 4, 4, 1, 1)), r"rank 2 \[N, D\] \(vectors\), 3 .* or 4"),
    (np.zeros((0, 4, 4)), "empty"),
])
def test_bad_npz_arrays_are_rejected_naming_the_array(tmp_path, x_train, message):
    path = _write_npz(tmp_path / "d.npz", x_train=x_train, x_test=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(data.DataError, match=message):
        data.load_dataset("npz", path)


def test_npz_without_test_split_or_with_label_mismatch_is_rejected(tmp_path):
    path = _write_npz(tmp_path / "a.npz", x_train=np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(data.DataError, match="missing array x_test"):
        data.load_dataset("npz", path)
    path = _write_npz(tmp_path / "b.npz", x_train=np.zeros((3, 4, 4), np.uint8), x_test=np.zeros((2, 4, 4), np.uint8),
                      y_train=np.zeros(2))
    with pytest.raises(data.DataError, match="y_train has 2 labels for 3 images"):
        data.load_dataset("npz", path)


def test_fixed_binarization_is_reproducible_and_unbiased():
    images = np.full((200, 10, 10, 1), 64, np.uint8)
    first, second = data.binarize(images, seed=0), data.binarize(images, seed=0)
    np.testing.assert_array_equal(first, second)
    assert set(np.unique(first)) == {0.0, 1.0}
    # mean of 20000 Bernoulli(64/255) draws: standard error 0.003
    assert abs(first.mean() - 64 / 255) < 0.015


def test_unknown_dataset_name_is_rejected():
    with pytest.raises(data.DataError, match="dataset must be one of"):
        data.load_dataset("cifar")
