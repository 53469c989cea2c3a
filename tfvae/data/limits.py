"""The stated ceilings on what a data file may claim, and the memory budget of the formats read into memory whole.

Every size a file states (an IDX header's shape, an .npy header's shape, a
TFRecord length field, a label, an image header's width and height) is
checked against these before anything is allocated or decompressed. Sizes
are computed with Python ints, so a forged header cannot overflow them.

  MAX_RECORD_BYTES     2^28 B = 256 MiB   one TFRecord record (what the reader allocates for it)
  MAX_SHARD_BYTES      2^34 B = 16 GiB    one shard, after GZIP decompression
  MAX_CLASSES          2^16 = 65,536      classes of a conditional run: labels in [0, MAX_CLASSES)
  MAX_SHUFFLE_BUFFER   2^24 = 16,777,216  records in the streaming shuffle buffer
  MAX_IMAGE_PIXELS     2^27 = 134,217,728 pixels of one image (e.g. 16384 x 8192; a PNG or JPEG that claims more
                                          is refused from its header, a decompression-bomb guard)

IDX, .npz and CSV files are read into memory whole: the arrays their
headers claim, summed over the files of a data set, must fit in
``--memory_budget_mb`` (``MemoryBudget``), checked before reading them.
"""

from __future__ import annotations

from tfvae.core.errors import DataError

__all__ = [
    "DEFAULT_MEMORY_BUDGET_MB",
    "MAX_CLASSES",
    "MAX_IMAGE_PIXELS",
    "MAX_RECORD_BYTES",
    "MAX_SHARD_BYTES",
    "MAX_SHUFFLE_BUFFER",
    "MemoryBudget",
    "describe_bytes",
]

MAX_RECORD_BYTES = 2**28
MAX_SHARD_BYTES = 2**34
MAX_CLASSES = 2**16
MAX_SHUFFLE_BUFFER = 2**24
MAX_IMAGE_PIXELS = 2**27
DEFAULT_MEMORY_BUDGET_MB = 2048


def describe_bytes(count: int) -> str:
    """``count`` bytes for a message: "47,040,000 bytes (44.9 MiB)" (any int: a claim can exceed a float)."""
    mebibytes = f"{count / 2**20:.1f}" if count < 2**100 else f"{count // 2**20:,}"
    return f"{count:,} bytes ({mebibytes} MiB)"


class MemoryBudget:
    """The bytes that the files of one data set may claim in memory, ``megabytes`` MiB in all.

    Each file's claim is taken from the budget before the file is read; a
    claim larger than what is left raises DataError naming the file, the
    claim and the flag.

    Example:
      budget = MemoryBudget(2048)
      budget.claim(47_040_000, "train-images-idx3-ubyte.gz: header shape [60000, 28, 28] of uint8")
    """

    def __init__(self, megabytes: int = DEFAULT_MEMORY_BUDGET_MB):
        if isinstance(megabytes, bool) or int(megabytes) != megabytes or megabytes <= 0:
            raise ValueError(f"memory_budget_mb must be a positive int; got {megabytes!r}")
        self.megabytes = int(megabytes)
        self.limit = self.megabytes * 2**20
        self.used = 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def claim(self, count: int, what: str) -> None:
        """Takes ``count`` bytes (a Python int, any size) for ``what``; DataError if they do not fit."""
        if count < 0:
            raise ValueError(f"a claim must be >= 0 bytes; got {count}")
        if count > self.left:
            already = f", {describe_bytes(self.used)} of it taken by the files before" if self.used else ""
            raise DataError(f"{what} needs {describe_bytes(count)}, more than the memory budget "
                            f"(--memory_budget_mb={self.megabytes}{already}); these files are read into memory whole: "
                            "pass a larger --memory_budget_mb if the machine has the memory")
        self.used += count
