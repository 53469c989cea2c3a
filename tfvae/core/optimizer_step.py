"""One optimizer step under tf.distribute: every replica and worker applies it, or skips it, together.

``OptimizerStep`` is the training step's mechanics after the gradients, in
one object with one job: the rules below (replica reduction, unscaling,
clipping, the spike guard, agreement on a skip) and the count of spikes and
skipped steps. ``VAE.compile(clip_global_norm=..., gradient_spike_factor=...)``
builds it, and ``VAE.train_step`` hands it the gradients; ``apply_step`` is
the same rules as a function, for a caller with no model (``device_check``).

A replica computes the gradient of its share of the loss (scaled by the
loss scale S under ``mixed_float16``: g_r = S * d loss_r / d w). The step:

  g      = sum_r g_r / S      summed across replicas and workers (one all-reduce), then unscaled (exact: S = 2^n)
  finite = all(isfinite(g))   the same on every replica and worker, since g is
  n      = ||g||_2            the global norm of the true gradient
  g      = g * min(1, c / n)  c = min(clip_global_norm, the spike guard's limit) (exactly 1 when not clipping)
  apply g                     on several replicas, from a cross-replica context (below); on one replica,
                              or for an optimizer that is not ``plain_update``, the optimizer gets
  share  = S * g / R          from each of the R replicas, and sums and unscales the shares itself

A ``keras.optimizers.LossScaleOptimizer`` decides "apply or skip" from the
gradients it is given, on one replica (``MirroredStrategy``) or on each
worker alone (``MultiWorkerMirroredStrategy``). Given the identical shares,
all reach the decision of ``finite``, as tfvae's own apply does; on a skip
no weight or moment changes and the scale halves. A skipped step still counts: ``optimizer.iterations``
(tfvae's global step, which drives the training noise, KL and learning-rate
schedules and the checkpoint interval) advances with the data.

One all-reduce per step. Without loss scaling, clipping or the guard the
gradients go to the optimizer as they are (it sums them). With any of them
the sum is taken here, and a Keras optimizer would sum again (its ``apply``
always all-reduces in a replica context). So on several replicas the summed
gradient g is applied from a cross-replica context (``merge_call``), the way
the optimizer applies after its own sum: ``update_step(g, w, lr)`` on each
replica's copy of each weight, then ``iterations += 1``; under loss scaling
the scale's bookkeeping is done here as ``LossScaleOptimizer`` does it
(skip: S <- S / 2; ``dynamic_growth_steps`` applied steps in a row: S <- 2 S).
This needs an optimizer whose ``apply`` is only that (``plain_update``: no
weight decay, EMA, gradient accumulation or Keras clipping options); any
other keeps the second all-reduce of identical shares, which gives the same
step.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae.core import gradient_guard, sampling

__all__ = ["OptimizerStep", "StepReport", "apply_step", "loss_scale", "plain_update"]


class StepReport(dict):
    """What a step did: ``finite`` (applied), ``norm`` (global norm of the true gradient) and ``spike`` (bool
    tensors, or absent when the step went to the optimizer as it was)."""


def loss_scale(optimizer) -> tf.Variable | None:
    """The dynamic loss scale S of a ``LossScaleOptimizer``; None for any other optimizer."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.dynamic_scale
    return None


def plain_update(optimizer) -> bool:
    """Whether ``optimizer.apply(g)`` is only ``update_step`` on every weight and ``iterations += 1``.

    True for an optimizer (or the inner one of a ``LossScaleOptimizer``)
    with no weight decay, EMA, gradient accumulation, ``clipnorm``,
    ``clipvalue`` or ``global_clipnorm``: tfvae can then apply an
    all-replica gradient itself, with no second all-reduce.
    """
    inner = optimizer.inner_optimizer if loss_scale(optimizer) is not None else optimizer
    settings = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "gradient_accumulation_steps")
    return (isinstance(inner, keras.optimizers.Optimizer) and not isinstance(inner, keras.optimizers.LossScaleOptimizer)
            and not getattr(inner, "use_ema", False) and all(getattr(inner, name, None) is None for name in settings))


def _apply_summed(optimizer, grads, variables, finite) -> None:
    """Applies the all-replica gradient ``grads`` (unscaled, identical on every replica) with no further all-reduce.

    Called on every replica; the update runs once, from a cross-replica
    context, on each replica's copy: w <- update_step(g, w, lr), then the
    step counts. Under loss scaling a non-finite ``finite`` skips the update
    and halves S; a finite one counts towards doubling S.
    """
    scale = loss_scale(optimizer)
    inner = optimizer.inner_optimizer if scale is not None else optimizer
    pairs = [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]

    def update(distribution, summed, applied):
        learning_rate = inner.learning_rate

        def apply():
            for g, v in zip(summed, [v for _, v in pairs], strict=True):
                distribution.extended.update(
                    v.value if isinstance(v, keras.Variable) else v,
                    lambda weight, gradient: inner.update_step(gradient, weight, learning_rate),
                    args=(g,), group=False)
            inner.iterations.assign_add(1)
            if scale is not None:
                grow = optimizer.step_counter >= optimizer.dynamic_growth_steps - 1
                scale.assign(tf.where(grow, scale * 2.0, scale))
                optimizer.step_counter.assign(tf.where(grow, tf.zeros_like(optimizer.step_counter),
                                                       optimizer.step_counter + 1))
            return tf.constant(True)

        def skip():
            inner.iterations.assign_add(1)  # a skipped step still counts (see the module docstring)
            scale.assign(scale * 0.5)
            optimizer.step_counter.assign(tf.zeros_like(optimizer.step_counter))
            return tf.constant(False)

        if scale is None:
            return apply()
        # ``applied`` is the same on every replica and worker (computed from the summed gradient): take the first.
        return tf.cond(distribution.experimental_local_results(applied)[0], apply, skip)

    tf.distribute.get_replica_context().merge_call(update, args=([g for g, _ in pairs], finite))


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
    if num_replicas > 1 and plain_update(optimizer):
        finite = _all_finite(grads)
        _apply_summed(optimizer, grads, variables, finite)
    else:
        if scale is not None:
            grads = [None if g is None else g * tf.cast(scale, g.dtype) for g in grads]
        if num_replicas > 1:
            grads = [None if g is None else g / num_replicas for g in grads]
        finite = _all_finite(grads)  # what the LossScaleOptimizer decides from, the same on every replica
        optimizer.apply(grads, variables)
        if scale is not None:  # skipped: counts too
            optimizer.iterations.assign_add(tf.cast(tf.logical_not(finite), optimizer.iterations.dtype))
    report = StepReport(finite=finite, norm=norm)
    if spike_limit is not None:
        report["spike"] = tf.math.is_finite(norm) & (norm > spike_limit)
    return report


class OptimizerStep:
    """Applies a replica's gradients by the rules of the module docstring, and counts spikes and skipped steps.

      g      = sum_r g_r / S                       one all-reduce, then unscaled (S = 1 without loss scaling)
      g      = g * min(1, c / ||g||_2)             c = min(clip_global_norm, factor * m_t of the spike guard)
      spike  = isfinite(||g||) and ||g|| > factor * m_t     counted in ``gradient_spikes``
      skip   = not all(isfinite(g))                under loss scaling only; counted in ``skipped_steps``

    Every replica and worker computes the same g, so all reach the same
    decisions; a skipped step changes no weight, halves S and still advances
    ``optimizer.iterations``.

    Args:
      clip_global_norm: c, a float > 0: clip the all-replica, unscaled
        gradient to this global norm, so it means the same on 1 or N
        replicas and under any loss scale (Keras' ``global_clipnorm`` clips
        each replica's part). None (default): no clipping.
      gradient_spike_factor: a float > 1: the spike guard
        (``gradient_guard.GradientSpikeGuard``) clips a gradient whose norm
        exceeds factor times the running mean of recent norms to that level
        and counts it. None (default): no guard.

    Attributes:
      guard: the ``GradientSpikeGuard`` or None. Its state is not tracked by
        this object: the owner tracks it (a ``VAE`` as ``model.gradient_guard``,
        so ``tf.train.Checkpoint(model=...)`` saves and restores it).
      spike_tracker, skip_tracker: ``keras.metrics.Mean`` of the fraction of
        steps that were spikes (``gradient_spikes``) and skipped
        (``skipped_steps``).

    Example:
      step = OptimizerStep(clip_global_norm=1.0)
      applied = step.apply(optimizer, tape.gradient(optimizer.scale_loss(loss), variables), variables)
    """

    def __init__(self, clip_global_norm: float | None = None, gradient_spike_factor: float | None = None):
        if clip_global_norm is not None and not clip_global_norm > 0:
            raise ValueError(f"clip_global_norm must be > 0 or None; got {clip_global_norm}")
        self.clip_global_norm = None if clip_global_norm is None else float(clip_global_norm)
        self.guard = None
        if gradient_spike_factor is not None:
            self.guard = gradient_guard.GradientSpikeGuard(gradient_spike_factor)
        self.spike_tracker = keras.metrics.Mean(name="gradient_spikes")
        self.skip_tracker = keras.metrics.Mean(name="skipped_steps")

    @property
    def gradient_spike_factor(self) -> float | None:
        return None if self.guard is None else self.guard.factor

    def metrics(self, optimizer) -> list:
        """The trackers this step reports with ``optimizer``: spikes with the guard, skips under loss scaling."""
        trackers = [self.spike_tracker] if self.guard is not None else []
        if loss_scale(optimizer) is not None:
            trackers.append(self.skip_tracker)
        return trackers

    def apply(self, optimizer, grads, variables) -> tf.Tensor | None:
        """Applies (or skips) the step on every replica alike and counts it.

        Args:
          optimizer: a Keras optimizer, possibly a ``LossScaleOptimizer``.
          grads: this replica's gradients of its share of the loss, scaled
            by the optimizer (``optimizer.scale_loss``).
          variables: the trainable variables, in the order of ``grads``.

        Returns:
          under loss scaling, a bool tensor: whether the step was applied
          (the same on every replica), so that the caller can leave a
          skipped step's figures out of its metrics; else None (every step
          is applied).
        """
        report = apply_step(optimizer, grads, variables, self.clip_global_norm, self.guard)
        if "spike" in report:
            self.spike_tracker.update_state(tf.cast(report["spike"], tf.float32))
        if loss_scale(optimizer) is None:
            return None
        self.skip_tracker.update_state(tf.cast(tf.logical_not(report["finite"]), tf.float32))
        return report["finite"]
