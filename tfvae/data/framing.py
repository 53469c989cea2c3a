"""TFRecord framing checked in Python, with bounded reads, before TensorFlow's reader is given a shard.

A TFRecord file is a sequence of records, each framed as

  length       uint64, little-endian
  length_crc   uint32, masked_crc32c(length bytes)
  data         length bytes
  data_crc     uint32, masked_crc32c(data)

  masked_crc32c(b) = ((c >> 15) | (c << 17)) + 0xA282EAD8  (mod 2^32),  c = CRC-32C(b)

TensorFlow's reader allocates ``length`` bytes as soon as the length field's
CRC holds: a 150-byte file whose field claims 2^40 bytes kills the process
(SIGSEGV) instead of raising. ``check_framing`` walks the length fields
first, reading 12 bytes per record and skipping the data: each length's CRC
must hold, and each record must fit in what is left of the file and in
``limits.MAX_RECORD_BYTES``. A GZIP shard is inflated in 64 KiB chunks
(the data discarded as it goes) and may not inflate to more than
``limits.MAX_SHARD_BYTES``. The data CRCs are left to TensorFlow's reader,
which checks them once a record's size is known to be sane.
"""

from __future__ import annotations

import os
import struct
import zlib

from tfvae.core.errors import DataError
from tfvae.data import limits

__all__ = ["check_framing", "crc32c", "frame_record", "masked_crc32c"]

_HEADER = 12  # length (8) + length_crc (4)
_FOOTER = 4  # data_crc
_CHUNK = 2**16
_GZIP_MAGIC = b"\x1f\x8b"


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1  # the Castagnoli polynomial, reflected
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as TFRecord uses it (a table-driven loop: for short fields)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord stores (module docstring)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One record framed as TFRecord writes it (for tests and fuzzing; shards are written by TensorFlow)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


class _PlainStream:
    """An uncompressed shard: reads of a few bytes, skips by seeking within the file's size."""

    def __init__(self, file):
        self._file = file
        self._size = os.fstat(file.fileno()).st_size
        self.position = 0

    def read(self, count: int) -> bytes:
        data = self._file.read(count)
        self.position += len(data)
        return data

    def left_at_most(self, count: int) -> int:
        """Bytes left from the current position, or ``count`` if at least that many are (not consumed)."""
        return min(count, self._size - self.position)

    def skip(self, count: int) -> int:
        count = self.left_at_most(count)
        self._file.seek(count, os.SEEK_CUR)
        self.position += count
        return count


class _GzipStream:
    """A GZIP shard (one or more members) inflated in bounded chunks; ``position`` counts inflated bytes."""

    def __init__(self, file, path: str):
        self._file, self._path = file, path
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self.position = 0

    def _inflate(self) -> bytes:
        """The next inflated bytes (at most 64 KiB); b"" at the end of the last member."""
        try:
            while True:
                if self._inflater.unconsumed_tail:
                    out = self._inflater.decompress(self._inflater.unconsumed_tail, _CHUNK)
                elif self._inflater.eof:
                    rest = self._inflater.unused_data or self._file.read(_CHUNK)
                    if not rest:
                        return b""
                    self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a further member
                    out = self._inflater.decompress(rest, _CHUNK)
                else:
                    raw = self._file.read(_CHUNK)
                    if not raw:
                        raise DataError(f"{self._path}: the GZIP stream is truncated (at {self.position:,} inflated "
                                        "bytes)")
                    out = self._inflater.decompress(raw, _CHUNK)
                if out:
                    return out
        except zlib.error as e:
            raise DataError(f"{self._path}: corrupt GZIP stream ({e}) at {self.position:,} inflated bytes") from None

    def _take(self, count: int, keep: bool) -> tuple[bytes, int]:
        kept, taken = [], 0
        while taken < count:
            if not self._pending:
                self._pending = self._inflate()
                if not self._pending:
                    break
            piece, self._pending = self._pending[: count - taken], self._pending[count - taken:]
            taken += len(piece)
            if keep:
                kept.append(piece)
            if self.position + taken > limits.MAX_SHARD_BYTES:
                raise DataError(f"{self._path}: inflates to more than {limits.describe_bytes(limits.MAX_SHARD_BYTES)}"
                                ", the limit of one GZIP shard; write smaller shards")
        self.position += taken
        return b"".join(kept), taken

    def read(self, count: int) -> bytes:
        return self._take(count, keep=True)[0]

    def left_at_most(self, count: int) -> int:
        return count  # unknown without inflating: ``skip`` finds out

    def skip(self, count: int) -> int:
        return self._take(count, keep=False)[1]


def check_framing(path: str, max_record_bytes: int | None = None) -> int:
    """The number of records of the shard at ``path``, after checking every record's framing.

    Raises DataError naming the shard and the record index when a length
    field is cut short or fails its CRC, or a record claims more than
    ``max_record_bytes`` (default ``limits.MAX_RECORD_BYTES``) or more than
    the bytes left in the file (for a GZIP shard: left in its inflated
    stream, which is not inflated past ``limits.MAX_SHARD_BYTES``). Memory:
    a few 64 KiB chunks, whatever the file claims.
    """
    max_record_bytes = limits.MAX_RECORD_BYTES if max_record_bytes is None else max_record_bytes
    try:
        with open(path, "rb") as file:
            compressed = file.read(2) == _GZIP_MAGIC
            file.seek(0)
            stream = _GzipStream(file, path) if compressed else _PlainStream(file)
            index = 0
            while True:
                header = stream.read(_HEADER)
                if not header:
                    return index
                where = f"{path}: record {index}"
                if len(header) < _HEADER:
                    raise DataError(f"{where} is corrupt or truncated (its length field is cut short: "
                                    f"{len(header)} of {_HEADER} bytes at the end of the file)")
                (length,) = struct.unpack("<Q", header[:8])
                (stored_crc,) = struct.unpack("<I", header[8:])
                if masked_crc32c(header[:8]) != stored_crc:
                    raise DataError(f"{where} is corrupt or truncated (its length field fails its CRC)")
                if length > max_record_bytes:
                    raise DataError(f"{where} claims {limits.describe_bytes(length)}, more than the "
                                    f"{limits.describe_bytes(max_record_bytes)} limit of one record")
                needed = length + _FOOTER
                left = stream.left_at_most(needed)
                if left == needed:
                    left = stream.skip(needed)
                if left < needed:
                    raise DataError(f"{where} is corrupt or truncated (it claims {length:,} bytes and its CRC 4 "
                                    f"more, but only {left:,} are left in the file)")
                index += 1
    except OSError as e:
        raise DataError(f"{path}: cannot read TFRecord shard ({e.strerror or e})") from None
