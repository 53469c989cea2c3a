"""One optimizer step under tf.distribute: every replica and worker applies it, or skips it, together.

A replica computes the gradient of its share of the loss (scaled by the
loss scale S under ``mixed_float16``: g_r = S * d loss_r / d w). The step:

  g      = sum_r g_r / S      summed across replicas and workers (one all-reduce), then unscaled (exact: S = 2^n)
  finite = all(isfinite(g))   the same on every replica and worker, since g is
  n      = ||g||_2            the global norm of the true gradient
  g      = g * min(1, c / n)  c = min(clip_global_norm, the spike guard's limit) (exactly 1 when not clipping)
  share  = S * g / R          what each of the R replicas hands the optimizer, which sums the shares

A ``keras.optimizers.LossScaleOptimizer`` decides "apply or skip" from the
gradients it is given, on one replica (``MirroredStrategy``) or on each
worker alone (``MultiWorkerMirroredStrategy``). Given the identical shares,
all reach the decision of ``finite``; on a skip no weight or moment changes
and the scale halves. A skipped step still counts: ``optimizer.iterations``
(tfvae's global step, which drives the training noise, KL and learning-rate
schedules and the checkpoint interval) advances with the data.

Without loss scaling, clipping or the guard the gradients go to the
optimizer as they are (it sums them: one all-reduce). With any of them the
sum is taken here first, so the optimizer's own sum is a second all-reduce
of identical shares (left in place: the step then works with any Keras
optimizer).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae.core import sampling

__all__ = ["StepReport", "apply_step", "loss_scale"]


class StepReport(dict):
    """What a step did: ``finite`` (applied), ``norm`` (global norm of the true gradient) and ``spike`` (bool
    tensors, or absent when the step went to the optimizer as it was)."""


def loss_scale(optimizer) -> tf.Variable | None:
    """The dynamic loss scale S of a ``LossScaleOptimizer``; None for any other optimizer."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.dynamic_scale
    return None


def _all_finite(grads) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])


def apply_step(optimizer, grads, variables, clip_global_norm: float | None = None, guard=None) -> StepReport:
    """Applies (or, on a non-finite gradient under loss scaling, skips) one step on every replica alike.

    Args:
      optimizer: a Keras optimizer, possibly a ``LossScaleOptimizer``.
      grads: this replica's gradients of its (scaled) share of the loss.
      variables: the trainable variables, in the order of ``grads``.
      clip_global_norm: clip the summed, unscaled gradient to this global norm (None: no clipping).
      guard: a ``gradient_guard.GradientSpikeGuard`` (None: no guard); its limit clips too, and a finite
        norm above it counts as a spike (a non-finite one never does).

    Returns:
      a ``StepReport``.
    """
    scale = loss_scale(optimizer)
    if scale is None and clip_global_norm is None and guard is None:
        optimizer.apply(grads, variables)
        return StepReport()
    _, num_replicas = sampling.replica_position()
    if num_replicas > 1:
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    if scale is not None:
        grads = [None if g is None else g / tf.cast(scale, g.dtype) for g in grads]
    norm = tf.linalg.global_norm(grads)
    limit = tf.constant(float("inf"))
    if clip_global_norm is not None:
        limit = tf.constant(float(clip_global_norm))
    spike_limit = None
    if guard is not None:
        spike_limit = guard.limit()
        limit = tf.minimum(spike_limit, limit)
    factor = tf.where(norm > limit, limit / norm, 1.0)  # exactly 1 when not clipping, also for +inf
    grads = [None if g is None else g * factor for g in grads]
    if guard is not None:
        guard.record(norm, limit)
    if scale is not None:
        grads = [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]
    if num_replicas > 1:
        grads = [None if g is None else g / num_replicas for g in grads]
    finite = _all_finite(grads)  # what the LossScaleOptimizer decides from, the same on every replica
    optimizer.apply(grads, variables)
    if scale is not None:
        optimizer.iterations.assign_add(tf.cast(tf.logical_not(finite), optimizer.iterations.dtype))  # skipped: counts too
    report = StepReport(finite=finite, norm=norm)
    if spike_limit is not None:
        report["spike"] = tf.math.is_finite(norm) & (norm > spike_limit)
    return report
