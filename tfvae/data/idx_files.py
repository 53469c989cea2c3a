"""IDX files (MNIST's format), gzipped or not, read under a memory budget from what their headers claim.

Format: two zero bytes, a dtype code, the number of dimensions n, then n
big-endian uint32 sizes, then the data in C order:

  claimed bytes = d_1 * ... * d_n * itemsize      (Python ints: no overflow)

The claim is taken from the ``limits.MemoryBudget`` before any data is
read or inflated. A gzipped file is inflated in 1 MiB chunks straight into
the array and never past the claim (one byte more is read to find trailing
data), so a small .gz that inflates to gigabytes costs nothing beyond its
header.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

from tfvae.core.errors import DataError
from tfvae.data import limits

__all__ = ["IDX_DTYPES", "read_idx"]

IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 2**20


def _read_up_to(stream, count: int) -> bytes:
    """Up to ``count`` bytes (fewer only at the end of the stream)."""
    pieces, left = [], count
    while left:
        piece = stream.read(left)
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def _read_data(stream, claimed: int) -> tuple[np.ndarray, int]:
    """(uint8 buffer of ``claimed`` bytes filled from ``stream``, bytes actually read), in 1 MiB chunks."""
    buffer = np.empty(claimed, np.uint8)
    filled = 0
    while filled < claimed:
        piece = stream.read(min(_CHUNK, claimed - filled))
        if not piece:
            break
        buffer[filled : filled + len(piece)] = np.frombuffer(piece, np.uint8)
        filled += len(piece)
    return buffer, filled


def read_idx(path: str, budget: limits.MemoryBudget | None = None) -> np.ndarray:
    """The array of one IDX file (gzipped or not), its header's claim taken from ``budget`` first.

    Raises DataError naming the file for a bad magic number, a truncated
    header, a claim over the budget (default: ``limits.DEFAULT_MEMORY_BUDGET_MB``),
    data shorter or longer than the header claims, or an unreadable gzip stream.
    """
    budget = budget or limits.MemoryBudget()
    try:
        with open(path, "rb") as file:
            gzipped = file.read(2) == _GZIP_MAGIC
            file.seek(0)
            with (gzip.GzipFile(fileobj=file, mode="rb") if gzipped else file) as stream:
                return _parse(stream, path, budget, None if gzipped else os.fstat(file.fileno()).st_size)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read IDX file ({e})") from None


def _parse(stream, path: str, budget: limits.MemoryBudget, file_size: int | None) -> np.ndarray:
    magic = _read_up_to(stream, 4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'})")
    ndim = magic[3]
    sizes = _read_up_to(stream, 4 * ndim)
    if ndim == 0 or len(sizes) < 4 * ndim:
        raise DataError(f"{path}: IDX header is truncated or has 0 dimensions")
    shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = IDX_DTYPES[magic[2]]
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > 2**62:  # NumPy refuses it, even with a size of 0
        raise DataError(f"{path}: IDX header shape {list(shape)} is too large for an array")
    claimed = math.prod(shape) * dtype.itemsize
    header = 4 + 4 * ndim
    if file_size is not None and file_size - header != claimed:
        raise DataError(f"{path}: IDX data is truncated or has trailing bytes: header shape {list(shape)} "
                        f"needs {claimed:,} bytes, file has {file_size - header:,}")
    budget.claim(claimed, f"{path}: IDX header shape {list(shape)} of {dtype.name}")
    buffer, filled = _read_data(stream, claimed)
    if filled < claimed:
        raise DataError(f"{path}: IDX data is truncated: header shape {list(shape)} needs {claimed:,} bytes, "
                        f"file has {filled:,}")
    if stream.read(1):
        raise DataError(f"{path}: IDX data has trailing bytes: header shape {list(shape)} needs {claimed:,} bytes, "
                        "file has more")
    return buffer.view(dtype).reshape(shape)
