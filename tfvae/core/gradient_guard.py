"""A guard against gradient spikes: clip an update far above the running level of recent ones, and count it.

With m_t the bias-corrected running mean (decay 0.99) of the applied
updates' global norms, an update whose (all-replica) gradient norm g_t
exceeds factor * m_t is clipped to factor * m_t and counted; the first
``warmup_steps`` updates only feed m_t. Deep hierarchical VAEs occasionally
produce such spikes (a near-zero posterior scale makes a KL gradient
explode); VDVAE skips them, NVAE clips. Clipping to the running level keeps
the step's direction and the run deterministic.

The state is a ``tf.Module`` of two variables, so ``tf.train.Checkpoint``
saves it with the model (a resumed run continues it exactly) while it stays
out of the model's Keras weights.

References:
  Child (2021), Very Deep VAEs Generalize Autoregressive Models (update skipping).
  Vahdat & Kautz (2020), NVAE.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["GradientSpikeGuard"]


class GradientSpikeGuard(tf.Module):
    """The running level of gradient norms and the spike rule (see the module docstring).

    Args:
      factor: a norm above factor * m_t is a spike (> 1).
      decay: of the running mean m_t (default 0.99).
      warmup_steps: updates that only feed m_t (default 100).
    """

    def __init__(self, factor: float, decay: float = 0.99, warmup_steps: int = 100):
        super().__init__(name="gradient_spike_guard")
        if not factor > 1:
            raise ValueError(f"gradient_spike_factor must be > 1; got {factor}")
        self.factor, self.decay, self.warmup_steps = float(factor), float(decay), int(warmup_steps)
        aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA  # every replica assigns the same value
        self.norm_mean = tf.Variable(0.0, trainable=False, aggregation=aggregation, name="norm_mean")
        self.updates = tf.Variable(0.0, trainable=False, aggregation=aggregation, name="updates")

    def limit(self) -> tf.Tensor:
        """factor * m_t once warmed up, else +inf: the largest norm this update may have."""
        debiased = self.norm_mean / (1.0 - tf.pow(self.decay, tf.maximum(self.updates, 1.0)))
        return tf.where(self.updates >= self.warmup_steps, self.factor * debiased, float("inf"))

    def record(self, norm: tf.Tensor, limit: tf.Tensor) -> None:
        """Feeds the applied norm min(norm, limit) into m_t (``limit`` may be lower than ``limit()``: a clip).

        A non-finite norm (a step that stops training) leaves m_t as it was.
        Whether ``norm`` was a spike is ``norm > limit()`` taken before this call.
        """
        applied = tf.minimum(norm, limit)
        updated = self.decay * self.norm_mean + (1.0 - self.decay) * applied
        finite = tf.math.is_finite(norm)
        self.norm_mean.assign(tf.where(finite, updated, self.norm_mean))
        self.updates.assign_add(tf.where(finite, 1.0, 0.0))
