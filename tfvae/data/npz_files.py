"""Arrays of a NumPy .npz archive, read under a memory budget from what their .npy headers claim.

An .npz is a zip archive of .npy members; each member opens with a header
giving its dtype and shape:

  claimed bytes = prod(shape) * itemsize      (Python ints: no overflow)

For each array asked for, the header is read alone (a few hundred bytes,
inflated on demand), checked (a number dtype, sizes >= 0, the member's
stated size equal to header + claim) and its claim taken from the
``limits.MemoryBudget``; only then is the array read. Members not asked
for are never read; objects are never unpickled.
"""

from __future__ import annotations

import math
import struct
import tokenize
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from tfvae.core.errors import DataError
from tfvae.data import limits

__all__ = ["read_npz"]

_NUMBER_KINDS = "biuf"  # bool, int, unsigned, float
# What a damaged archive can raise from zipfile, zlib and numpy's .npy reader (whose header parser lets
# tokenize's error out: found by fuzzing).
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                struct.error, tokenize.TokenError)


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header bytes) of one .npy member, read without its data."""
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = npy_format.read_array_header_2_0(member)
        else:
            raise DataError(f"{where}: .npy format version {version} is not read (1.0 and 2.0 are)")
        return shape, dtype, member.tell()


def _checked_claim(archive, info, where: str, budget: limits.MemoryBudget) -> None:
    shape, dtype, header = _header(archive, info, where)
    if dtype.kind not in _NUMBER_KINDS or dtype.itemsize == 0:
        raise DataError(f"{where}: data must be integer or float arrays; got dtype {dtype}")
    if any(d < 0 for d in shape):
        raise DataError(f"{where}: .npy header has a negative size in shape {list(shape)}")
    claimed = math.prod(shape) * dtype.itemsize
    if info.file_size != header + claimed:
        raise DataError(f"{where}: .npy data is truncated or has trailing bytes: header shape {list(shape)} of "
                        f"{dtype} needs {claimed:,} bytes, the archive stores {info.file_size - header:,}")
    budget.claim(claimed, f"{where}: .npy header shape {list(shape)} of {dtype}")


def read_npz(path: str, names: tuple[str, ...], budget: limits.MemoryBudget | None = None
             ) -> tuple[dict[str, np.ndarray], list[str]]:
    """({name: array} for those of ``names`` that the archive holds, the sorted names of all its arrays).

    Each array's header claim is checked and taken from ``budget`` (default
    ``limits.DEFAULT_MEMORY_BUDGET_MB``) before it is read. DataError naming the
    file (and the array) for anything unreadable.
    """
    budget = budget or limits.MemoryBudget()
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename[: -len(".npy")]: info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            found = {}
            for name in names:
                if name in members:
                    where = f"{path}[{name}]"
                    _checked_claim(archive, members[name], where, budget)
                    with archive.open(members[name]) as member:
                        found[name] = npy_format.read_array(member, allow_pickle=False)
            return found, sorted(members)
    except DataError:
        raise
    except _READ_ERRORS as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"{path}: cannot read .npz file ({reason})") from None
