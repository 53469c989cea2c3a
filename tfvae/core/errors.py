"""The error of unusable data, shared by every data module."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data file, record or array is unusable; the one-line message names it and the problem."""
