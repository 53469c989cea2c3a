"""The one rule of a conditional part called without its condition: a one-line error, before Keras wraps it."""

from __future__ import annotations

__all__ = ["RefusesMissingCondition"]


class RefusesMissingCondition:
    """Mixin for a Keras layer with ``condition_dim`` whose ``call`` takes ``condition=``.

    Calling a conditional one (``condition_dim > 0``) without ``condition``
    raises a one-line ValueError saying what to pass, in ``__call__``: an
    error raised in ``call`` would reach the user under Keras' "Exception
    encountered when calling ..." preamble.
    """

    def __call__(self, inputs, condition=None, **kwargs):
        if self.condition_dim and condition is None:
            raise ValueError(
                f"{type(self).__name__} is conditional (condition_dim={self.condition_dim}): pass "
                f"condition=tf.one_hot(labels, {self.condition_dim}), or use the VAE's posterior(x, labels) and "
                "likelihood(z, labels)")
        if condition is not None:  # an unconditional subclass's call(x) need not take it
            kwargs["condition"] = condition
        return super().__call__(inputs, **kwargs)
