"""TFRecord shards of encoded images: tfvae's on-disk layout for data sets of any size.

  DIR/train-00000-of-00004.tfrecord  ...  DIR/test-00000-of-00001.tfrecord   (or .tfrecord.gz)

Each record is a ``tf.train.Example`` with the features

  image: bytes   one encoded PNG or JPEG (any size; 1, 3 or 4 channels)
  label: int64   optional; needed by a conditional run

GZIP-compressed shards are recognised by their first bytes, whatever their
names. ``write_splits`` writes this layout (``scripts/make_tfrecords.py``
calls it through ``tfvae.conversion``); ``count_records`` checks a shard's
framing in Python (``framing.check_framing``: no length field may claim
more than the file holds) and then reads every record once, which finds
corrupt, truncated or feature-less records up front and names the file and
the index.
"""

from __future__ import annotations

import glob
import os

import tensorflow as tf

from tfvae.core import files
from tfvae.core.errors import DataError
from tfvae.data import framing

__all__ = [
    "IMAGE_KEY",
    "LABEL_KEY",
    "SPLITS",
    "compression_type",
    "count_records",
    "parse_example",
    "parse_examples",
    "record_dataset",
    "serialize_example",
    "shard_paths",
    "write_splits",
]

IMAGE_KEY = "image"
LABEL_KEY = "label"
SPLITS = ("train", "test")
_GZIP_MAGIC = b"\x1f\x8b"
_FEATURES = {  # a record's features as parsed in a graph; a missing label reads as -1
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}


def shard_paths(data_dir: str, split: str) -> list[str]:
    """The sorted ``DIR/<split>-*.tfrecord*`` shards; DataError naming the pattern if there are none."""
    if not os.path.isdir(data_dir):
        raise DataError(f"flag --data_dir: {data_dir} is not a directory of TFRecord shards")
    paths = sorted(p for p in glob.glob(os.path.join(data_dir, f"{split}-*.tfrecord*")) if not p.endswith(".tmp"))
    if not paths:
        raise DataError(f"{data_dir}: no {split} shards (files {split}-*.tfrecord or {split}-*.tfrecord.gz); "
                        "scripts/make_tfrecords.py writes them")
    return paths


def compression_type(path: str) -> str:
    """"GZIP" for a gzip-compressed shard (by its first two bytes), else ""."""
    try:
        with open(path, "rb") as f:
            return "GZIP" if f.read(2) == _GZIP_MAGIC else ""
    except OSError as e:
        raise DataError(f"{path}: cannot read TFRecord shard ({e.strerror})") from None


def record_dataset(path: str) -> tf.data.Dataset:
    """The serialized records of one shard, in order."""
    return tf.data.TFRecordDataset(path, compression_type=compression_type(path))


def serialize_example(image: bytes, label: int | None = None) -> bytes:
    """One record: ``image`` (encoded PNG/JPEG bytes) and, if given, an int ``label``."""
    feature = {IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
    if label is not None:
        feature[LABEL_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(image bytes, label int64; -1 where the record has none) of one serialized record, in a graph."""
    features = tf.io.parse_single_example(serialized, _FEATURES)
    return features[IMAGE_KEY], features[LABEL_KEY]


def parse_examples(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``parse_example`` of a batch of serialized records: (image bytes [n], labels int64 [n])."""
    features = tf.io.parse_example(serialized, _FEATURES)
    return features[IMAGE_KEY], features[LABEL_KEY]


def _check_record(serialized: bytes, path: str, index: int, require_label: bool) -> None:
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError; reported with the place
        raise DataError(f"{path}: record {index} is not a tf.train.Example") from None
    feature = example.features.feature
    if IMAGE_KEY not in feature or len(feature[IMAGE_KEY].bytes_list.value) != 1:
        raise DataError(f"{path}: record {index} has no '{IMAGE_KEY}' feature (one bytes value: an encoded PNG or "
                        f"JPEG); it has {sorted(feature)}")
    if require_label and (LABEL_KEY not in feature or len(feature[LABEL_KEY].int64_list.value) != 1):
        raise DataError(f"{path}: record {index} has no '{LABEL_KEY}' feature (one int64); a conditional run "
                        "(--conditional) needs a label in every record")


def count_records(path: str, require_label: bool = False) -> tuple[int, int, int]:
    """Reads every record of a shard; returns (number of records, smallest label, largest label).

    The labels are -1 where the records have none. Raises DataError naming
    the file and the record index for a corrupt or truncated record (its
    framing is checked first, in Python, so that TensorFlow's reader never
    meets a length field that claims more than the file holds), one that is
    not a ``tf.train.Example``, one without an ``image`` feature, and
    (``require_label``) one without a ``label`` or with a negative one. The
    pass runs in a graph; only a failing shard is read again record by
    record to find the index.
    """
    framing.check_framing(path)
    dataset = record_dataset(path).map(lambda r: parse_example(r)[1],
                                       num_parallel_calls=tf.data.AUTOTUNE)
    start = (tf.constant(0, tf.int64), tf.constant(2**62, tf.int64), tf.constant(-1, tf.int64))
    try:
        count, low, high = (int(v) for v in dataset.reduce(
            start, lambda s, y: (s[0] + 1, tf.minimum(s[1], y), tf.maximum(s[2], y))))
        low = -1 if count == 0 else low
        if not (require_label and low < 0):
            return count, low, high
    except (tf.errors.OpError, UnicodeDecodeError):  # TensorFlow's message can quote the record's bytes: not UTF-8
        pass
    index = 0
    iterator = iter(record_dataset(path))
    while True:
        try:
            serialized = next(iterator)
        except StopIteration:
            break
        except (tf.errors.OpError, UnicodeDecodeError) as e:
            reason = (e.message if isinstance(e, tf.errors.OpError) else "unreadable").splitlines()[0]
            raise DataError(f"{path}: record {index} is corrupt or truncated ({reason})") from None
        _check_record(serialized.numpy(), path, index, require_label)
        index += 1
    raise DataError(f"{path}: labels must be ints >= 0 for --conditional; found a negative one")


def write_splits(output_dir: str, splits: dict, compress: bool = False) -> dict[str, list[str]]:
    """Writes each split's examples as shards: ``splits`` = {split: (examples, num_examples, num_shards)}.

    ``examples`` yields (encoded image bytes, label or None). Example i of a
    split goes to shard i * num_shards // num_examples (contiguous runs, sizes
    within one of each other). All shards are written under temporary names
    and renamed only when every split is complete, so a failure leaves no
    shard behind; an existing shard of any of the splits is never
    overwritten (DataError before anything is written). Returns the paths.
    """
    for split, (_, num_examples, num_shards) in splits.items():
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        if not num_shards >= 1:
            raise ValueError(f"num_shards must be >= 1; got {num_shards}")
        if num_examples < num_shards:
            raise DataError(f"{split}: {num_examples} examples cannot fill {num_shards} shards; pass a smaller "
                            "--num_shards")
        existing = sorted(glob.glob(os.path.join(output_dir, f"{split}-*.tfrecord*")))
        if existing:
            raise DataError(f"flag --output_dir: {output_dir} already holds {split} shards ({existing[0]}, ...); "
                            "they are kept: write into an empty directory")
    os.makedirs(output_dir, exist_ok=True)
    suffix = ".tfrecord.gz" if compress else ".tfrecord"
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compress else "")
    paths = {split: [os.path.join(output_dir, f"{split}-{i:05d}-of-{n:05d}{suffix}") for i in range(n)]
             for split, (_, _, n) in splits.items()}
    temporary = {}
    try:
        for p in (p for ps in paths.values() for p in ps):
            temporary[p] = files.new_temporary(p)  # a unique new file: no clobbering, no planted link followed
        for split, (examples, num_examples, num_shards) in splits.items():
            writers = [tf.io.TFRecordWriter(temporary[p], options) for p in paths[split]]
            written = 0
            for image, label in examples:
                if written < num_examples:
                    writers[written * num_shards // num_examples].write(serialize_example(image, label))
                written += 1
            for writer in writers:
                writer.close()
            if written != num_examples:
                raise DataError(f"{split}: expected {num_examples} examples, got {written}")
        for path, tmp in temporary.items():
            files.commit(tmp, path)
    finally:
        for tmp in temporary.values():
            files.discard(tmp)
    return paths
