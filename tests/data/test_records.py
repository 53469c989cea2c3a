"""TFRecord shards: the layout written and read back, bad records named, nothing overwritten."""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from builders import png, write_shards
from conftest import last_error_line, run_script, write_idx_dataset

from tfvae import data
from tfvae.data import records, sources


@pytest.mark.parametrize("compress", [False, True])
def test_shards_round_trip_images_and_labels_losslessly(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 5, 7, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 10)
    paths = write_shards(tmp_path, images, labels, num_shards=3, compress=compress)
    assert [os.path.basename(p) for p in paths["train"]] == [
        f"train-0000{i}-of-00003.tfrecord{'.gz' if compress else ''}" for i in range(3)]
    assert [records.count_records(p)[0] for p in paths["train"]] == [4, 3, 3]  # contiguous, sizes within one
    loaded = data.load_dataset("tfrecord", str(tmp_path))
    np.testing.assert_array_equal(loaded.train_images, images)
    np.testing.assert_array_equal(loaded.train_labels, labels)
    np.testing.assert_array_equal(loaded.test_images, images[:4])
    assert not glob.glob(str(tmp_path / ".*.tmp"))


def test_existing_shards_are_never_overwritten_and_a_failed_write_leaves_nothing(tmp_path):
    images = np.zeros((4, 3, 3, 1), np.uint8)
    write_shards(tmp_path, images, num_shards=2)
    before = {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "*"))}
    with pytest.raises(data.DataError, match="already holds train shards .* they are kept"):
        write_shards(tmp_path, images + 1, num_shards=2)
    assert {p: open(p, "rb").read() for p in glob.glob(str(tmp_path / "*"))} == before

    def failing():
        yield png(images[0]), None
        raise OSError("disk full")

    fresh = tmp_path / "fresh"
    with pytest.raises(OSError, match="disk full"):
        records.write_splits(str(fresh), {"train": (failing(), 4, 2)})
    assert os.listdir(fresh) == []  # neither a shard nor a temporary file


def test_a_corrupt_record_is_named_by_file_and_index(tmp_path):
    images = np.arange(6 * 4 * 4).reshape(6, 4, 4, 1).astype(np.uint8)
    paths = write_shards(tmp_path, images, num_shards=1)
    shard = paths["train"][0]
    raw = bytearray(open(shard, "rb").read())
    lengths = [len(records.serialize_example(png(x))) for x in images]
    # Framing: 8-byte length, 4-byte CRC, data, 4-byte CRC. Flip a byte inside record 3's data.
    offset = sum(16 + n for n in lengths[:3]) + 12 + 5
    raw[offset] ^= 0xFF
    open(shard, "wb").write(bytes(raw))
    with pytest.raises(data.DataError, match=rf"^{shard}: record 3 is corrupt or truncated"):
        data.load_dataset("tfrecord", str(tmp_path))
    open(shard, "wb").write(bytes(raw[: sum(16 + n for n in lengths[:2]) + 20]))  # truncated inside record 2
    with pytest.raises(data.DataError, match=rf"^{shard}: record 2 is corrupt or truncated"):
        data.load_dataset("tfrecord", str(tmp_path))


def test_records_without_image_or_label_are_named_before_training(tmp_path):
    good = records.serialize_example(png(np.zeros((2, 2, 1))), 1)
    no_image = tf.train.Example(features=tf.train.Features(feature={
        "pixels": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))})).SerializeToString()
    no_label = records.serialize_example(png(np.zeros((2, 2, 1))))
    for name, bad in (("a", no_image), ("b", no_label)):
        folder = tmp_path / name
        records.write_splits(str(folder), {"test": (iter([(png(np.zeros((2, 2, 1))), 1)]), 1, 1)})
        with tf.io.TFRecordWriter(str(folder / "train-00000-of-00001.tfrecord")) as writer:
            for serialized in (good, good, bad):
                writer.write(serialized)
    shard = str(tmp_path / "a" / "train-00000-of-00001.tfrecord")
    with pytest.raises(data.DataError, match=rf"^{shard}: record 2 has no 'image' feature .* it has \['pixels'\]"):
        sources.tfrecord_source(str(tmp_path / "a"), "train")
    shard = str(tmp_path / "b" / "train-00000-of-00001.tfrecord")
    assert sources.tfrecord_source(str(tmp_path / "b"), "train").has_labels is False
    with pytest.raises(data.DataError, match=rf"^{shard}: record 2 has no 'label' feature .* \(--conditional\)"):
        sources.tfrecord_source(str(tmp_path / "b"), "train", require_label=True)


def test_missing_shards_and_mismatched_shapes_are_one_line_errors(tmp_path):
    with pytest.raises(data.DataError, match="no train shards .* scripts/make_tfrecords.py writes them"):
        data.load_dataset("tfrecord", str(tmp_path))
    write_shards(tmp_path / "mixed", np.zeros((4, 3, 3, 1), np.uint8), num_shards=2)
    with tf.io.TFRecordWriter(str(tmp_path / "mixed" / "train-00002-of-00003.tfrecord")) as writer:
        writer.write(records.serialize_example(png(np.zeros((5, 3, 1)))))
    with pytest.raises(data.DataError, match=r"flag --image_size: record 0 of .*train-00002-of-00003.tfrecord is 5x3 "
                                             r"but record 0 of .*train-00000-of-00002.tfrecord is 3x3"):
        data.load_dataset("tfrecord", str(tmp_path / "mixed"))
    resized = data.load_dataset("tfrecord", str(tmp_path / "mixed"), image_size=(3, 3))
    assert resized.train_images.shape == (5, 3, 3, 1)


def test_make_tfrecords_converts_any_source_and_refuses_to_overwrite(tmp_path):
    idx = write_idx_dataset(str(tmp_path / "idx"), num_train=20, num_test=6)
    out = str(tmp_path / "shards")
    result = run_script("make_tfrecords.py", "--dataset=idx", f"--data_dir={idx}", f"--output_dir={out}",
                        "--num_shards=4", "--compress", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"train": 4, "test": 1}
    original, converted = data.load_dataset("idx", idx), data.load_dataset("tfrecord", out)
    np.testing.assert_array_equal(converted.train_images, original.train_images)
    np.testing.assert_array_equal(converted.train_labels, original.train_labels)
    np.testing.assert_array_equal(converted.test_images, original.test_images)
    before = {p: open(p, "rb").read() for p in glob.glob(os.path.join(out, "*"))}
    again = run_script("make_tfrecords.py", "--dataset=idx", f"--data_dir={idx}", f"--output_dir={out}", timeout=300)
    assert again.returncode == 1
    assert last_error_line(again).startswith(f"make_tfrecords.py: error: flag --output_dir: {out} already holds")
    assert {p: open(p, "rb").read() for p in glob.glob(os.path.join(out, "*"))} == before
