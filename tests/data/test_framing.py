"""TFRecord framing checked in Python before TensorFlow reads a shard: lengths, CRCs, bounded reads, GZIP bounds."""

import gzip
import struct
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
from builders import png
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference_masked_crc32c

from tfvae import data
from tfvae.data import framing, limits, records


def _shard(path, payloads, compress=False):
    options = tf.io.TFRecordOptions(compression_type="GZIP" if compress else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for payload in payloads:
            writer.write(payload)
    return str(path)


def _forged_length(length: int) -> bytes:
    """A length field claiming ``length`` bytes whose CRC holds: what TensorFlow's reader trusts."""
    field = struct.pack("<Q", length)
    return field + struct.pack("<I", framing.masked_crc32c(field))


def test_crc_matches_tensorboards_implementation_and_frames_match_tensorflows_writer(tmp_path):
    rng = np.random.default_rng(0)
    for size in (0, 1, 8, 13, 100, 1000):
        payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert framing.masked_crc32c(payload) == reference_masked_crc32c(payload)
    assert framing.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720, B.4)
    payloads = [b"", b"a", records.serialize_example(png(np.zeros((3, 3, 1), np.uint8)), 2)]
    written = open(_shard(tmp_path / "s.tfrecord", payloads), "rb").read()
    assert written == b"".join(framing.frame_record(p) for p in payloads)


@pytest.mark.parametrize("compress", [False, True])
def test_check_framing_counts_the_records_tensorflow_reads(tmp_path, compress):
    payloads = [records.serialize_example(png(np.full((4, 4, 1), i, np.uint8)), i) for i in range(7)]
    path = _shard(tmp_path / "s.tfrecord", payloads, compress)
    assert framing.check_framing(path) == 7 == records.count_records(path)[0]
    assert framing.check_framing(_shard(tmp_path / "empty.tfrecord", [], compress)) == 0


@pytest.mark.parametrize("compress", [False, True])
def test_a_length_field_claiming_2_to_the_40_bytes_is_named_not_a_segfault(tmp_path, compress):
    # The shard: one good record, then a length field claiming 2^40 bytes with a valid CRC (150 bytes in
    # all). TensorFlow's reader allocates the claim and the process dies by SIGSEGV; the framing check comes first.
    good = framing.frame_record(records.serialize_example(png(np.zeros((2, 2, 1), np.uint8)), 1))
    contents = (good + _forged_length(2**40) + bytes(150))[:150]
    path = tmp_path / "train-00000-of-00001.tfrecord"
    path.write_bytes(gzip.compress(contents) if compress else contents)
    message = rf"^{path}: record 1 claims 1,099,511,627,776 bytes \(1048576.0 MiB\), more than the 268,435,456"
    with pytest.raises(data.DataError, match=message):
        framing.check_framing(str(path))  # count_records calls it first: tests/data/test_hostile_data.py


def test_lengths_beyond_the_file_and_broken_or_cut_length_fields_are_named(tmp_path):
    good = framing.frame_record(b"x" * 10)
    cases = {
        "beyond": (good + _forged_length(1000) + b"y" * 20,
                   r"record 1 is corrupt or truncated \(it claims 1,000 bytes and its CRC 4 more, but only 20 are"),
        "crc": (good + struct.pack("<Q", 5) + b"\0\0\0\0" + b"z" * 9, r"record 1 is corrupt or truncated \(its "
                                                                       r"length field fails its CRC\)"),
        "cut": (good + good[:7], r"record 1 is corrupt or truncated \(its length field is cut short: 7 of 12"),
    }
    for name, (contents, message) in cases.items():
        path = tmp_path / f"{name}.tfrecord"
        path.write_bytes(contents)
        with pytest.raises(data.DataError, match=rf"^{path}: {message}"):
            framing.check_framing(str(path))


def test_gzip_shards_are_inflated_in_bounded_chunks_and_not_past_the_shard_limit(tmp_path, monkeypatch):
    # 40 MB of one record's data inflate from a 40 kB file: the check reads it in 64 KiB chunks.
    record = framing.frame_record(bytes(40 * 2**20))
    path = tmp_path / "big.tfrecord.gz"
    path.write_bytes(gzip.compress(record))
    tracemalloc.start()
    assert framing.check_framing(str(path)) == 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20, peak
    monkeypatch.setattr(limits, "MAX_SHARD_BYTES", 2**20)
    with pytest.raises(data.DataError, match=rf"^{path}: inflates to more than 1,048,576 bytes \(1.0 MiB\), the limit "
                                             "of one GZIP shard"):
        framing.check_framing(str(path))
    monkeypatch.undo()
    cut = tmp_path / "cut.tfrecord.gz"
    cut.write_bytes(gzip.compress(record)[:-20])
    with pytest.raises(data.DataError, match=rf"^{cut}: the GZIP stream is truncated"):
        framing.check_framing(str(cut))


def test_a_record_over_the_record_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = _shard(tmp_path / "s.tfrecord", [b"a" * 100, b"b" * 3000])
    assert framing.check_framing(path) == 2
    monkeypatch.setattr(limits, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(data.DataError, match=r"record 1 claims 3,000 bytes .* more than the 1,000 bytes"):
        records.count_records(path)


def test_a_record_whose_parse_error_is_not_utf8_is_named(tmp_path):
    # TensorFlow quotes the record's bytes in its error message, which then fails to decode as UTF-8: a
    # UnicodeDecodeError instead of an OpError (found by fuzzing).
    path = tmp_path / "s.tfrecord"
    path.write_bytes(framing.frame_record(b"\n\x8b"))
    with pytest.raises(data.DataError, match=rf"^{path}: record 0 is not a tf.train.Example$"):
        records.count_records(str(path))
