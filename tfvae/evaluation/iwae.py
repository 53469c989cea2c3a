"""The IWAE bounds of a batch: split over a strategy's replicas, chunked by device memory, retried smaller when
the device runs out of memory.

For a batch of B examples with seed s, each example's bound is

  IWAE_k(x_n) = logsumexp_j(log w_jn) - log k,   log w_jn = log p(x_n|z_jn) + log p(z_jn) - log q(z_jn|x_n),

whose noise depends on (s, j, n, B) only (``sampling.sample_importance``). So the batch may be computed in any
pieces with the same result up to float rounding:

  replicas  the rows of each call are split over the R replicas in order, replica r taking the next
            floor(n / R) or ceil(n / R) rows (the first n mod R replicas one more); a replica with no rows
            (n < R) computes row 0 again and its result is dropped; the replicas' bounds are joined in order;
  chunks    ``chunk_size`` importance samples at a time, or as many as the memory budget allows
            (``chunking``), the same chunk on every replica;
  retries   a call that raises ``tf.errors.ResourceExhaustedError`` halves the chunk, or when it is 1 the
            examples each replica computes at a time, logs one warning with the new sizes and computes the batch
            again; later batches keep the smaller sizes. When nothing smaller is left it raises
            ``EvaluationMemoryError``.

Only strategies whose replicas all run in this process are taken (default, one_device, mirrored).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from absl import logging

from tfvae.core import distribute
from tfvae.evaluation import chunking

__all__ = ["EvaluationMemoryError", "IwaeEvaluator"]


class EvaluationMemoryError(RuntimeError):
    """The IWAE evaluation does not fit in device memory even at its smallest sizes."""


class IwaeEvaluator:
    """Per-example IWAE_k bounds of batches (the module docstring says how a batch is split and retried).

    Args:
      model: a built VAE.
      num_samples: k (default 5000).
      strategy: the tf.distribute strategy whose replicas share each batch (default: the current one).
      chunk_size: importance samples per chunk; None sizes it from ``memory_budget``.
      memory_budget: bytes per device for one chunk's activations; None takes ``chunking.device_budget``.

    Example:
      evaluate = IwaeEvaluator(model, 5000, strategy=tfvae.distribute.make_strategy("mirrored"))
      bounds = evaluate(x, None, sampling.step_seed(3, 0))      # [B] float64 nats
    """

    def __init__(self, model, num_samples: int = 5000, strategy=None, chunk_size: int | None = None,
                 memory_budget: int | None = None):
        for name, value in (("num_samples", num_samples), ("chunk_size", chunk_size),
                            ("memory_budget", memory_budget)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int{'' if name == 'num_samples' else ' or None'}; "
                                 f"got {value!r}")
        self.strategy = strategy or tf.distribute.get_strategy()
        if isinstance(self.strategy, (tf.distribute.TPUStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
            raise ValueError("strategy must keep all its replicas in this process (default, one_device or "
                             f"mirrored) for the IWAE evaluation; got {type(self.strategy).__name__}")
        self.model, self.num_samples = model, num_samples
        self.num_replicas = self.strategy.num_replicas_in_sync
        self.chunk = chunk_size  # None until the first batch when sized by memory
        self.rows_per_replica = None  # None: the whole batch at once
        self._memory_budget = memory_budget
        self._batch_rows = 0

    # ------------------------------------------------------------ sizes
    def memory_budget(self) -> int:
        """Bytes per device for one chunk: the given budget, else the smallest of the replicas' devices'."""
        if self._memory_budget is not None:
            return self._memory_budget
        return min(chunking.device_budget(device) for device in distribute.replica_devices(self.strategy))

    def size_chunk(self, batch_shape) -> int:
        """The importance samples per chunk for batches of shape ``batch_shape`` [B, *data_shape]: ``chunk_size``
        if given, else sized by the memory budget on the first call (``chunking``) and kept (until a retry halves
        it)."""
        if self.chunk is None:
            rows = math.ceil(int(batch_shape[0]) / self.num_replicas)
            pair_bytes = chunking.bytes_per_pair(self.model, tuple(batch_shape[1:]))
            self.chunk = chunking.chunk_size(self.memory_budget(), rows, pair_bytes, self.num_samples)
            logging.info("IWAE evaluation: %d importance samples per chunk for %d examples per replica",
                         self.chunk, rows)
        return self.chunk

    def _shrink(self, batch_rows: int) -> None:
        rows = self.rows_per_replica or math.ceil(batch_rows / self.num_replicas)
        if self.chunk > 1:
            self.chunk //= 2
        elif rows > 1:
            rows = self.rows_per_replica = rows // 2
        else:
            raise EvaluationMemoryError(
                "the IWAE evaluation does not fit in device memory even at 1 importance sample per chunk and 1 "
                f"example per replica at a time (of a batch of {batch_rows}); lower --batch_size (every call "
                "draws the noise of its whole batch), free the devices' memory or use larger ones")
        logging.warning("IWAE evaluation ran out of device memory; retrying the batch with %d importance samples "
                        "per chunk and %d examples per replica at a time", self.chunk, rows)

    # ------------------------------------------------------------ bounds
    def _replica_bounds(self, x, labels, seed, first_row):
        """This replica's rows' bounds: ``VAE.log_likelihood``, whose traced function the model keeps across calls."""
        return self.model.log_likelihood(x, self.num_samples, seed, self.chunk, labels,
                                         rows=(int(first_row), self._batch_rows))

    def _shares(self, num_rows: int) -> list[tuple[int, int]]:
        """(offset, size) of each replica's rows of a call of ``num_rows``, in replica order."""
        sizes = [num_rows // self.num_replicas + (r < num_rows % self.num_replicas) for r in range(self.num_replicas)]
        return [(sum(sizes[:r]), size) for r, size in enumerate(sizes)]

    def _call(self, x, labels, seed, first_row: int) -> np.ndarray:
        """Bounds of rows first_row .. first_row + len(x) - 1 of the batch, split over the replicas."""
        if self.num_replicas == 1:
            outputs = self.strategy.run(self._replica_bounds, args=(x, labels, seed, first_row))
            return self.strategy.experimental_local_results(outputs)[0].numpy()
        shares = self._shares(int(x.shape[0]))

        def rows_of(values, replica):
            offset, size = shares[replica]
            return values[offset : offset + size] if size else values[:1]  # no rows: row 0, dropped below

        def per_replica(make):
            return self.strategy.experimental_distribute_values_from_function(
                lambda context: make(context.replica_id_in_sync_group))

        xs = per_replica(lambda r: rows_of(x, r))
        ys = None if labels is None else per_replica(lambda r: rows_of(labels, r))
        firsts = per_replica(lambda r: tf.constant(first_row + (shares[r][0] if shares[r][1] else 0), tf.int32))
        outputs = self.strategy.run(self._replica_bounds, args=(xs, ys, seed, firsts))
        parts = [part.numpy() for part in self.strategy.experimental_local_results(outputs)]
        return np.concatenate([part for part, (_, size) in zip(parts, shares, strict=True) if size])

    def __call__(self, x, labels, seed) -> np.ndarray:
        """IWAE_k of each row of the batch ``x`` (labels for a conditional VAE), [B] float64 nats.

        ``seed`` is the batch's [2] stateless seed; the result does not depend
        on the replicas, chunks or retries.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        labels = None if labels is None else tf.convert_to_tensor(labels)
        seed = tf.convert_to_tensor(seed, tf.int32)
        self._batch_rows = batch_rows = int(x.shape[0])
        self.size_chunk(x.shape)
        while True:
            step = batch_rows if self.rows_per_replica is None else self.rows_per_replica * self.num_replicas
            try:
                return np.concatenate([
                    self._call(x[lo : lo + step], None if labels is None else labels[lo : lo + step], seed, lo)
                    for lo in range(0, batch_rows, step)]).astype(np.float64)
            except tf.errors.ResourceExhaustedError:
                self._shrink(batch_rows)
