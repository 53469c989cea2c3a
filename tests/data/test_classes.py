"""Class labels of a conditional run: whole numbers within int32, num_classes bounded by the data, checked as stored."""

import numpy as np
import pytest
from builders import write_shards

import tfvae
from tfvae import data
from tfvae.data import classes, limits


def test_num_classes_is_the_largest_label_plus_one_within_the_examples_and_the_ceiling():
    assert classes.num_classes(9, 60000, "d") == 10
    assert classes.num_classes(0, 1, "d") == 1
    with pytest.raises(data.DataError, match=r"^d: labels must be class indices 0..K-1 with K at most the number of "
                                             r"examples \(20\) for --conditional; found label 1099511627776$"):
        classes.num_classes(2**40, 20, "d")
    with pytest.raises(data.DataError, match=rf"K at most {limits.MAX_CLASSES} for --conditional; found label 70000"):
        classes.num_classes(70000, 10**6, "d")


@pytest.mark.parametrize("labels, message", [
    (np.array([0, 2**40]), "within int32 .* found label 1099511627776"),
    (np.array([0, 2**63 + 5], np.uint64), "within int32 .* found label 9223372036854775813"),
    (np.array([0.0, 1.5]), "whole numbers .* found 1.5"),
    (np.array([0.0, np.nan]), "whole numbers .* found nan"),
    (np.array(["a", "b"]), "whole numbers .* got dtype <U1"),
    (np.array([3, -1]), "ints >= 0 .* negative"),
])
def test_class_indices_refuse_what_a_cast_to_int32_would_change(labels, message):
    with pytest.raises(data.DataError, match=message):
        classes.class_indices(labels, "d")


def test_class_indices_keep_whole_numbers_of_any_dtype():
    for labels in (np.array([0, 3, 2], np.uint8), np.array([0.0, 3.0, 2.0]), np.array([False, True, True]),
                   np.array([[0], [3], [2]], np.int64)):
        found = classes.class_indices(labels, "d")
        assert found.dtype == np.int32 and found.tolist() == np.asarray(labels, np.int64).reshape(-1).tolist()


@pytest.mark.parametrize("input_mode", ["memory", "stream"])
def test_a_tfrecord_label_of_2_to_the_40_is_refused_in_both_input_modes(tmp_path, input_mode):
    # Before: in memory the label was cast to int32 and became class 0 silently; streamed, the one-hot of
    # 2^40 + 1 classes ran out of memory.
    images = np.zeros((8, 4, 4, 1), np.uint8)
    write_shards(tmp_path, images, labels=[0, 1, 2, 3, 0, 1, 2**40, 3], num_shards=2)
    config = tfvae.TrainConfig(dataset="tfrecord", data_dir=str(tmp_path), conditional=True, input_mode=input_mode,
                               validation_examples=2)
    with pytest.raises(data.DataError, match=r"labels must be class indices 0..K-1 with K at most the number of "
                                             r"examples \(12\) for --conditional; found label 1099511627776"):
        data.prepare_data(config)


def test_an_npz_label_of_2e9_is_refused_before_any_one_hot(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((6, 4, 4), np.uint8), x_test=np.zeros((2, 4, 4), np.uint8),
             y_train=np.array([0, 1, 2, 0, 1, 2_000_000_000]), y_test=np.array([0, 1]))
    config = tfvae.TrainConfig(dataset="npz", data_dir=str(path), conditional=True)
    with pytest.raises(data.DataError, match=r"\(8\) for --conditional; found label 2000000000$"):
        data.prepare_data(config)
    np.savez(path, x_train=np.zeros((6, 4, 4), np.uint8), x_test=np.zeros((2, 4, 4), np.uint8),
             y_train=np.array([0, 1, 2, 0, 1, 2]), y_test=np.array([0, 1]))
    assert data.prepare_data(config).num_classes == 3
