"""CSV files of numbers (vectors, one example per row), read under a memory budget counted before parsing.

Values are separated by commas and rows by newlines, so a file holds at most

  values <= commas + newlines + 1,   claimed bytes = 8 * values   (float64, as parsed)

counted in 1 MiB chunks and taken from the ``limits.MemoryBudget`` before
NumPy parses anything. An optional first row of column names (read with a
bounded length); the column named ``label_column`` (default ``label``)
holds int labels and is not a feature.
"""

from __future__ import annotations

import warnings

import numpy as np

from tfvae.core.errors import DataError
from tfvae.data import limits

__all__ = ["LABEL_COLUMN", "read_csv"]

LABEL_COLUMN = "label"
_CHUNK = 2**20
_LABEL_LIMIT = 2**31 - 1


def _count_values(path: str) -> int:
    """An upper bound on the values in the file: commas + newlines + 1, counted in chunks."""
    separators = 1
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            separators += chunk.count(b",") + chunk.count(b"\n")
    return separators


def _header(path: str, budget: limits.MemoryBudget) -> list[str] | None:
    """The column names of the first row, or None when it holds numbers; its length is bounded by the budget."""
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline(budget.left + 1)
    if len(first) > budget.left:
        raise DataError(f"{path}: the first line is longer than the memory budget (--memory_budget_mb="
                        f"{budget.megabytes}); not a CSV file of numbers")
    names = [n.strip() for n in first.split(",")]
    try:
        [float(n) for n in names]
    except ValueError:
        return names
    return None


def read_csv(path: str, budget: limits.MemoryBudget | None = None, label_column: str = LABEL_COLUMN,
             require_label: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(values [N, D], labels [N] or None) of a CSV file of numbers, one example per row.

    The column named ``label_column`` holds the int labels (DataError if
    ``require_label`` and the first row names no such column).

    Values are floats in [0, 1], or, when every value is a whole number and
    some exceed 1, 8-bit values in [0, 255] (int64). Labels are whole
    numbers within int32. The file's values are counted and their float64
    bytes taken from ``budget`` (default ``limits.DEFAULT_MEMORY_BUDGET_MB``)
    before it is parsed.
    """
    budget = budget or limits.MemoryBudget()
    try:
        count = _count_values(path)
        budget.claim(8 * count, f"{path}: a CSV file of up to {count:,} values (float64)")
        header = _header(path, budget)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": an empty file is refused below
            values = np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, ndmin=2, dtype=np.float64,
                                encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read CSV file ({e.strerror or e})") from None
    except DataError:
        raise
    except ValueError as e:  # a UnicodeDecodeError too
        raise DataError(f"{path}: not a CSV file of numbers ({(str(e).splitlines() or ['?'])[0]})") from None
    labels = None
    if len(values) == 0:
        raise DataError(f"{path}: no rows of values")
    if header and values.shape[1] != len(header):
        raise DataError(f"{path}: the first row names {len(header)} columns but the rows hold {values.shape[1]} "
                        "values")
    if require_label and not (header and label_column in header):
        found = f"; its header names {header}" if header else ""
        raise DataError(f"{path}: no column named {label_column!r} (--label_column) to give labels; a conditional "
                        f"VAE (--conditional) needs a header row naming the columns, one of them the int class "
                        f"labels{found}")
    if header and label_column in header:
        column = header.index(label_column)
        labels, values = values[:, column], np.delete(values, column, axis=1)
        if not np.all(labels == np.round(labels)) or not np.all(np.abs(labels) <= _LABEL_LIMIT):
            raise DataError(f"{path}: column {label_column!r} must hold whole numbers within int32")
        labels = labels.astype(np.int64)
    if values.shape[1] == 0:
        raise DataError(f"{path}: no feature columns (only {label_column!r})")
    if np.all(values == np.round(values)) and values.max(initial=0) > 1:
        low, high = values.min(), values.max()
        if low < 0 or high > 255:
            raise DataError(f"{path}: integer data must lie in [0, 255]; got values in [{low:g}, {high:g}]")
        values = values.astype(np.int64)
    return values, labels
