"""KL weight schedules: w(t), the weight of the rate at optimizer step t.

A schedule is a callable of the step that returns a float32 scalar; the
objective multiplies it by its ``beta``. Like ``keras.optimizers.schedules``,
the classes here are Keras-serialisable (``get_config``/``from_config``,
registered under the package "tfvae"), so a model that carries one survives
the ``.keras`` round trip. Any callable of the step works as well (it is not
serialisable unless Keras can serialise it).

  Constant(value):                   w(t) = value
  Linear(warmup_steps, value):       w(t) = value * min(1, t / warmup_steps)
  Cyclical(cycle_steps, warmup_steps, value):
                                     w(t) = value * min(1, (t mod cycle_steps) / warmup_steps)

Each is a function of the step alone, so a resumed run (which restores the
optimizer's step) continues the schedule where it stopped.

References:
  Bowman et al. (2016), Generating Sentences from a Continuous Space (KL annealing).
  Fu et al. (2019), Cyclical Annealing Schedule: A Simple Approach to Mitigating KL Vanishing.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfvae.core import choices
from tfvae.core.serialisable import Serialisable

__all__ = ["SCHEDULES", "Constant", "Cyclical", "Linear", "Schedule", "get", "make"]

SCHEDULES = choices.register("kl_schedule", ("linear", "cyclical"))  # the names train.py's --kl_schedule takes


class Schedule(Serialisable):
    """Base of the KL weight schedules: ``schedule(step)`` -> float32 scalar tensor."""

    def __call__(self, step) -> tf.Tensor:
        raise NotImplementedError


def _non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 0:
        raise ValueError(f"{name} must be an int >= 0; got {value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="tfvae")
class Constant(Schedule):
    """w(t) = value (default 1: the plain ELBO)."""

    def __init__(self, value: float = 1.0):
        if not value >= 0:
            raise ValueError(f"value must be >= 0; got {value}")
        self.value = float(value)

    def __call__(self, step) -> tf.Tensor:
        return tf.constant(self.value, tf.float32)

    def get_config(self) -> dict:
        return {"value": self.value}


@keras.saving.register_keras_serializable(package="tfvae")
class Linear(Schedule):
    """Linear warm-up: w(t) = value * min(1, t / warmup_steps); value throughout if warmup_steps = 0."""

    def __init__(self, warmup_steps: int, value: float = 1.0):
        self.warmup_steps = _non_negative_int("kl_warmup_steps", warmup_steps)
        if not value >= 0:
            raise ValueError(f"value must be >= 0; got {value}")
        self.value = float(value)

    def __call__(self, step) -> tf.Tensor:
        if self.warmup_steps == 0:
            return tf.constant(self.value, tf.float32)
        fraction = tf.cast(tf.cast(step, tf.int64), tf.float32) / float(self.warmup_steps)
        return self.value * tf.minimum(1.0, fraction)

    def get_config(self) -> dict:
        return {"warmup_steps": self.warmup_steps, "value": self.value}


@keras.saving.register_keras_serializable(package="tfvae")
class Cyclical(Schedule):
    """A linear warm-up over ``warmup_steps`` at the start of every cycle of ``cycle_steps`` (Fu et al. 2019).

    w(t) = value * min(1, (t mod cycle_steps) / warmup_steps), 0 < warmup_steps <= cycle_steps
    (default warmup_steps = cycle_steps // 2, the paper's R = 0.5).
    """

    def __init__(self, cycle_steps: int, warmup_steps: int | None = None, value: float = 1.0):
        cycle_steps = _non_negative_int("kl_cycle_steps", cycle_steps)
        warmup_steps = max(1, cycle_steps // 2) if warmup_steps is None else _non_negative_int("kl_warmup_steps",
                                                                                              warmup_steps)
        if not 0 < warmup_steps <= cycle_steps:
            raise ValueError("kl_cycle_steps must be >= kl_warmup_steps > 0 for a cyclical schedule; got "
                             f"{cycle_steps} and {warmup_steps}")
        if not value >= 0:
            raise ValueError(f"value must be >= 0; got {value}")
        self.cycle_steps, self.warmup_steps, self.value = cycle_steps, warmup_steps, float(value)

    def __call__(self, step) -> tf.Tensor:
        position = tf.cast(step, tf.int64) % self.cycle_steps
        return self.value * tf.minimum(1.0, tf.cast(position, tf.float32) / float(self.warmup_steps))

    def get_config(self) -> dict:
        return {"cycle_steps": self.cycle_steps, "warmup_steps": self.warmup_steps, "value": self.value}


def make(name: str, warmup_steps: int = 0, cycle_steps: int = 0) -> Schedule:
    """The schedule ``name`` (one of SCHEDULES) from train.py's --kl_schedule, --kl_warmup_steps, --kl_cycle_steps.

    "linear" with warmup_steps = 0 is ``Constant()``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"kl_schedule must be one of {SCHEDULES}; got {name!r}")
    if name == "cyclical":
        return Cyclical(cycle_steps, warmup_steps)
    return Linear(warmup_steps) if warmup_steps else Constant()


def get(identifier) -> Schedule:
    """A schedule from None (``Constant()``), a number (``Constant(number)``), a callable or a serialised config."""
    if identifier is None:
        return Constant()
    if isinstance(identifier, (int, float)) and not isinstance(identifier, bool):
        return Constant(identifier)
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if not callable(identifier):
        raise ValueError(f"kl_weight must be a schedule, a callable of the step or a number; got {identifier!r}")
    return identifier
