"""The optimizer of a training run and the numeric precision it trains in.

  learning_rate_decay  none: constant; cosine: CosineDecay to 1% of the rate over the run
  precision            float32; mixed_bfloat16 / mixed_float16: networks in 16 bits, log-probs,
                       KL and loss in float32 (float16 also scales the loss: LossScaleOptimizer)
"""

from __future__ import annotations

import keras

from tfvae.core import choices

__all__ = ["LEARNING_RATE_DECAYS", "PRECISIONS", "make_optimizer"]

LEARNING_RATE_DECAYS = choices.register("learning_rate_decay", ("none", "cosine"))
PRECISIONS = choices.register("precision", ("float32", "mixed_bfloat16", "mixed_float16"))  # Keras dtype policy names


def make_optimizer(learning_rate: float, decay: str, total_steps: int,
                   precision: str = "float32") -> keras.optimizers.Optimizer:
    """Adam with the learning rate schedule ``decay`` over ``total_steps`` steps, loss-scaled for float16."""
    if decay not in LEARNING_RATE_DECAYS:
        raise ValueError(f"learning_rate_decay must be one of {LEARNING_RATE_DECAYS}; got {decay!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    if decay == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, max(1, total_steps), alpha=0.01)
    optimizer = keras.optimizers.Adam(learning_rate)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
