"""What a run's data is, in one line: ``describe(loaded)`` of the data as read, before it is made ready.

The trainer logs it at the start of every run (with the run's settings) and
fits its defaults to it (``tfvae.train.data_defaults``): how many examples
each split holds, their shape and kind (images [H, W, C] or vectors [D]), the
dtype and value range as stored (integers are read as value / max_value,
floats as they are), and the classes the labels name.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfvae.data.formats import LoadedData

__all__ = ["DataDescription", "describe"]


@dataclasses.dataclass(frozen=True)
class DataDescription:
    """A run's data as read.

    Attributes:
      source: what the data is (a path, a data set name, "train_data").
      data_shape: one example's shape: [H, W, C] (images) or [D] (vectors).
      dtype: the examples' dtype as held: "uint8" (integers, 0-255) or "float32" (in [0, 1]).
      value_range: (min, max) over both splits as stored; None when not scanned (files read as needed).
      train_examples, test_examples: examples in each split.
      num_classes: max(label) + 1 over both splits; 0 without labels.
      binary: every value is 0 or 1.
    """

    source: str
    data_shape: tuple[int, ...]
    dtype: str
    value_range: tuple[float, float] | None
    train_examples: int
    test_examples: int
    num_classes: int = 0
    binary: bool = False

    @property
    def kind(self) -> str:
        """"images" ([H, W, C]) or "vectors" ([D], tabular data)."""
        return "images" if len(self.data_shape) == 3 else "vectors"

    @property
    def real_valued(self) -> bool:
        """Float data with values other than 0 and 1 (a density, not intensities to binarize, fits them best)."""
        return self.dtype == "float32" and not self.binary

    def text(self) -> str:
        """One line: ``<source>: <n> training + <m> test examples, <kind> [shape], <dtype> in [min, max], <classes>``."""
        if self.value_range is None:
            values = f"{self.dtype} (8-bit image files; values not scanned)"
        else:
            low, high = self.value_range
            values = f"{self.dtype} in [{low:g}, {high:g}]"
        classes = f"labels of {self.num_classes} classes (0-{self.num_classes - 1})" if self.num_classes else "no labels"
        return (f"{self.source}: {self.train_examples} training + {self.test_examples} test examples, {self.kind} "
                f"{list(self.data_shape)}, {values}, {classes}")


def describe(loaded: LoadedData) -> DataDescription:
    """The ``DataDescription`` of ``loaded`` (``run_data.load_run_data`` or ``load_python_data``)."""
    if loaded.arrays is not None:
        return _describe_arrays(loaded.arrays)
    train, test = loaded.sources["train"], loaded.sources["test"]
    labelled = train.has_labels and test.has_labels
    num_classes = max(train.max_label, test.max_label) + 1 if labelled else 0
    return DataDescription(loaded.name, tuple(train.data_shape), "uint8", None, train.num_examples,
                           test.num_examples, max(num_classes, 0))


def _describe_arrays(arrays) -> DataDescription:
    splits = (arrays.train_images, arrays.test_images)
    low = min(float(split.min()) for split in splits)
    high = max(float(split.max()) for split in splits)
    binary = all(np.isin(split, (0, 1)).all() for split in splits) if high <= 1 else False
    return DataDescription(arrays.source, tuple(int(d) for d in arrays.train_images.shape[1:]),
                           str(arrays.train_images.dtype), (low, high), len(arrays.train_images),
                           len(arrays.test_images), _num_classes(arrays.train_labels, arrays.test_labels), binary)


def _num_classes(train_labels, test_labels) -> int:
    """max(label) + 1 over both splits' int labels, as a conditional run counts them; 0 without (usable) labels."""
    if train_labels is None or test_labels is None:
        return 0
    labels = [np.asarray(y).reshape(-1) for y in (train_labels, test_labels)]
    if not all(np.issubdtype(y.dtype, np.integer) for y in labels) or not all(y.size for y in labels):
        return 0
    if min(int(y.min()) for y in labels) < 0:
        return 0
    return max(int(y.max()) for y in labels) + 1
