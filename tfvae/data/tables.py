"""The column names of a CSV table (``--dataset=csv``), for files written back as tables (sample.py's)."""

from __future__ import annotations

import os

__all__ = ["feature_names"]

_MAX_HEADER_BYTES = 1 << 20


def feature_names(path: str, label_column: str = "label") -> list[str] | None:
    """The feature columns' names, in order, from the header row of ``path`` (a .csv file, or a directory
    holding train.csv), without ``label_column``; None if the file has no header row or cannot be read.

    A header is a first row with a field that is not a number (as ``loaders.read_csv`` decides);
    at most its first MiB is read.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "train.csv")
    try:
        with open(path, errors="replace") as f:
            first = f.readline(_MAX_HEADER_BYTES)
    except OSError:
        return None
    names = [name.strip() for name in first.rstrip("\r\n").split(",")]
    try:
        [float(name) for name in names]
        return None
    except ValueError:
        return [name for name in names if name != label_column]
