"""Class labels of a conditional run: whole numbers in [0, num_classes), num_classes bounded by the data.

A label becomes a one-hot vector of ``num_classes = max(label) + 1``
entries, so a file's largest label sets the size of tensors and weights.
The rule, checked on the labels as stored (int64, uint64 or float) before
any cast to int32:

  0 <= label  and  label is a whole number
  num_classes = max(label) + 1 <= min(number of examples, limits.MAX_CLASSES)

(a class needs an example, and no run has more classes than the ceiling;
this also keeps every label within int32). Anything else is a one-line
DataError naming the source.
"""

from __future__ import annotations

import numpy as np

from tfvae.core.errors import DataError
from tfvae.data import limits

__all__ = ["class_indices", "num_classes"]


def num_classes(max_label: int, num_examples: int, source: str) -> int:
    """max_label + 1, if the labels' largest value fits the rule (module docstring); else DataError."""
    bound = min(int(num_examples), limits.MAX_CLASSES)
    if max_label + 1 > bound:
        reason = (f"at most the number of examples ({num_examples})" if bound == num_examples else
                  f"at most {limits.MAX_CLASSES}")
        raise DataError(f"{source}: labels must be class indices 0..K-1 with K {reason} for --conditional; "
                        f"found label {max_label}")
    return int(max_label) + 1


def class_indices(labels, source: str) -> np.ndarray:
    """``labels`` as int32 [N], if they are whole numbers >= 0 (of any int, bool or float dtype); else DataError.

    Checked in the labels' own dtype, so nothing wraps: a label of 2^40 is
    refused by ``num_classes``, never read as 0.
    """
    values = np.asarray(labels).reshape(-1)
    if values.size == 0:
        return values.astype(np.int32)
    if values.dtype == np.bool_:
        values = values.astype(np.int8)
    if np.issubdtype(values.dtype, np.floating):
        whole = np.isfinite(values) & (values == np.floor(values))
        if not whole.all():
            raise DataError(f"{source}: labels must be whole numbers for --conditional; found "
                            f"{float(values[~whole][0])}")
    elif not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"{source}: labels must be whole numbers for --conditional; got dtype {values.dtype}")
    low, high = values.min(), values.max()
    if low < 0:
        raise DataError(f"{source}: labels must be ints >= 0 for --conditional; found negative ones")
    if high > np.iinfo(np.int32).max:
        raise DataError(f"{source}: labels must be class indices within int32 for --conditional; found label "
                        f"{int(high)}")
    return values.astype(np.int32)
