"""The description of a run's data (data/summary.py), integer scaling (--max_value) and the CSV label column."""

import numpy as np
import pytest
from builders import factor_table, png, write_table

from tfvae import data
from tfvae.train.config import TrainConfig


def test_describe_counts_the_splits_and_reads_the_range_dtype_and_classes_of_arrays():
    images = np.arange(40 * 4, dtype=np.int64).reshape(40, 2, 2) % 17  # ints 0..16
    labels = np.arange(40) % 5
    loaded = data.load_python_data(TrainConfig(validation_split=0.25), (images, labels))
    described = data.describe(loaded)
    assert (described.train_examples, described.test_examples) == (30, 10)
    assert described.data_shape == (2, 2, 1) and described.kind == "images"
    assert described.dtype == "uint8" and described.value_range == (0, 16)
    assert described.num_classes == 5 and not described.binary and not described.real_valued
    assert described.text() == ("train_data: 30 training + 10 test examples, images [2, 2, 1], uint8 in [0, 16], "
                                "labels of 5 classes (0-4)")


@pytest.mark.parametrize("values, binary, real_valued", [
    (np.array([[0.0, 1.0], [1.0, 1.0]] * 5, np.float32), True, False),
    (np.array([[0.0, 0.5], [1.0, 1.0]] * 5, np.float32), False, True),
    (np.array([[0, 1], [1, 1]] * 5, np.int64), True, False),
])
def test_describe_tells_binary_from_real_valued_tables(values, binary, real_valued):
    described = data.describe(data.load_python_data(TrainConfig(), values))
    assert described.kind == "vectors" and described.binary == binary and described.real_valued == real_valued
    assert described.num_classes == 0 and described.text().endswith("no labels")


def test_describe_of_files_read_as_needed_counts_them_without_scanning_values(tmp_path):
    for split, count in (("train", 6), ("test", 2)):
        for i in range(count):
            folder = tmp_path / split / f"class_{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}.png").write_bytes(png(np.full((4, 4, 1), 9 * i, np.uint8)))
    config = TrainConfig(dataset="image_folder", data_dir=str(tmp_path))
    described = data.describe(data.load_run_data(config))
    assert (described.train_examples, described.test_examples, described.num_classes) == (6, 2, 2)
    assert described.value_range is None and "(8-bit image files; values not scanned)" in described.text()


def test_max_value_reads_integers_as_value_over_max_value():
    values = np.arange(17, dtype=np.uint8)
    scaled = data.scale_integers(values, 16, "x")
    np.testing.assert_allclose(data.to_unit_interval(scaled), values / 16, atol=0.5 / 255)  # one uint8 rounding
    assert data.scale_integers(values, 255, "x") is values
    with pytest.raises(data.DataError, match=r"x: integer data reach 17, above max_value=16 \(--max_value"):
        data.scale_integers(np.arange(18, dtype=np.uint8), 16, "x")
    with pytest.raises(data.DataError, match=r"max_value=16 \(--max_value\) applies to integer data"):
        data.scale_integers(np.zeros(3, np.float32), 16, "x")


def test_a_run_with_max_value_gets_its_integers_on_the_whole_unit_interval(tmp_path):
    digits = np.random.default_rng(0).integers(0, 17, (30, 4)).astype(np.float64)
    digits[0, 0] = 16
    path = write_table(tmp_path / "digits.csv", digits)
    squashed = data.prepare_data(TrainConfig(dataset="csv", data_dir=path, likelihood="gaussian"))
    scaled = data.prepare_data(TrainConfig(dataset="csv", data_dir=path, likelihood="gaussian", max_value=16))
    assert squashed.test_images.max() <= 16 / 255 + 1e-6  # the 8-bit reading, which the run summary warns of
    np.testing.assert_allclose(data.to_unit_interval(scaled.train_images).max(), 1.0)
    np.testing.assert_allclose(scaled.test_images, np.round(squashed.test_images * 255 * 255 / 16) / 255, atol=1e-6)


def test_the_label_column_is_named_by_label_column(tmp_path):
    values, labels = factor_table(20)
    path = write_table(tmp_path / "table.csv", values, labels, label_name="target")
    with pytest.raises(data.DataError, match=r"got values in \[0, 2\]"):  # "target" read as a feature
        data.load_dataset("csv", path)
    named = data.load_dataset("csv", path, label_column="target")
    assert named.train_images.shape[1] == 6
    np.testing.assert_array_equal(np.sort(np.concatenate([named.train_labels, named.test_labels])), np.sort(labels))


@pytest.mark.parametrize("header", [True, False])
def test_a_conditional_run_on_a_csv_without_the_label_column_names_the_column_and_the_flag(tmp_path, header):
    values, labels = factor_table(20)
    path = write_table(tmp_path / "table.csv", values, labels, label_name="target", header=header)
    with pytest.raises(data.DataError, match=r"table.csv: no column named 'label' \(--label_column\) to give labels; "
                                             r"a conditional VAE \(--conditional\) needs a header row"):
        data.prepare_data(TrainConfig(dataset="csv", data_dir=path, conditional=True))
