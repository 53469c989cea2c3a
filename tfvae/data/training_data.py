"""The one interface between a run's data and the trainer: ``TrainingData`` and the ``TrainingFeed`` it gives.

A run's data ready for training is one of

  in_memory.InMemoryData   decoded into memory (arrays, files read whole, or a ``tf.data`` read once)
  streaming.StreamData     the training split read from its files (or a user's ``tf.data``) as training goes

and the trainer asks it, never tests which it is:

  data_shape, num_train_examples, num_classes, binarize, source, bad_records
  test_images, test_labels        test examples held in memory, float32 (binarized once if binarize): the whole
                                  split in memory, its first validation_examples when streamed; the trainer
                                  validates on the first validation_examples
  steps_per_epoch(B, W)           full global batches of B in one epoch read by W workers
  training_feed(strategy, B, seed, shuffle_buffer)
                                  the input of the compiled training blocks (below), made once per run
  test_split(seed, max_examples)  the test split as ``evaluation`` takes it: (images, labels or None)

A ``TrainingFeed`` gives the training loop, per epoch, blocks of K steps and
turns one row of a block into that step's examples:

  blocks(epoch, plan, skip_steps, context) -> tf.data.Dataset of (block, count), one element per local replica
                                  of ``context`` (a ``tf.distribute.InputContext``): plan[b] steps in block b,
                                  padded to K = max(plan) rows of which the first ``count`` are real
  examples(row)   -> (images [b, ...] uint8 in [0, 255] or float32 in [0, 1], int32 labels [b] or None), in a graph
  check_records() -> raises ``DataError`` naming a record that does not decode, if the feed has one
                                  (the loop calls it when a block fails)

The loop converts the examples to float32 and, when ``binarize``, binarizes
them with the noise of (seed, step) (``in_memory.binarize_batch``), so the
same global example at the same step gives the same batch whichever kind of
data feeds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import tensorflow as tf

__all__ = ["TrainingData", "TrainingFeed", "resolve_test_seed"]


@runtime_checkable
class TrainingFeed(Protocol):
    """The input of a run's compiled training blocks (module docstring)."""

    def blocks(self, epoch: int, plan: Sequence[int], skip_steps: int,
               context: tf.distribute.InputContext) -> tf.data.Dataset: ...

    def examples(self, row) -> tuple[tf.Tensor, tf.Tensor | None]: ...

    def check_records(self) -> None: ...


@runtime_checkable
class TrainingData(Protocol):
    """A run's data ready for training and evaluation (module docstring)."""

    source: str
    binarize: bool
    num_classes: int
    bad_records: tuple
    test_images: np.ndarray
    test_labels: np.ndarray | None

    @property
    def data_shape(self) -> tuple[int, ...]: ...

    @property
    def num_train_examples(self) -> int: ...

    def steps_per_epoch(self, global_batch_size: int, num_workers: int = 1) -> int: ...

    def training_feed(self, strategy: tf.distribute.Strategy, global_batch_size: int, seed: int,
                      shuffle_buffer: int) -> TrainingFeed: ...

    def test_split(self, test_binarization_seed: int | None = None, max_examples: int = 0): ...


def resolve_test_seed(prepared_with: int | None, asked: int | None) -> int | None:
    """The seed of a test split's one binarization: the one the data were made ready with (``prepared_with``);
    ``asked`` (a caller's, as 0.3.0's ``test_split`` took it) if they were not; ValueError if the two differ."""
    if prepared_with is None:
        return asked
    if asked is not None and asked != prepared_with:
        raise ValueError(f"test_binarization_seed must be the seed the data were made ready with ({prepared_with}; "
                         f"the test split is binarized once, by make_ready); got {asked}")
    return prepared_with
