"""``function(fn, jit_compile)``: ``tf.function`` that tells the code it traces whether XLA will compile it.

``tracing_for_xla()`` answers for the functions made here; ``in_xla_context()``
for any graph being built, including a plain ``tf.function(jit_compile=True)``.

XLA drops ``tf.debugging`` assertions (``Assert`` ops) and logs a warning
for each one it drops, so checks that hold in eager code and ordinary
graphs (the VAE's labels in range) are left out of code compiled by XLA,
whose inputs tfvae checks where they are read (the run's data).
"""

from __future__ import annotations

import contextlib
import functools
import threading

import tensorflow as tf

__all__ = ["function", "in_xla_context", "tracing_for_xla"]

_tracing = threading.local()


def tracing_for_xla() -> bool:
    """Whether the code running now is being traced by a ``function`` that XLA compiles."""
    return getattr(_tracing, "xla", False)


def in_xla_context() -> bool:
    """Whether the graph being built now (or one it is nested in) is compiled by XLA; False eagerly."""
    try:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return False


@contextlib.contextmanager
def _tracing_for(xla: bool):
    previous = tracing_for_xla()
    _tracing.xla = xla
    try:
        yield
    finally:
        _tracing.xla = previous


def function(fn, jit_compile: bool, **kwargs):
    """``tf.function(fn, jit_compile=jit_compile, **kwargs)``; while it traces, ``tracing_for_xla()`` is
    ``jit_compile``."""

    @functools.wraps(fn)
    def traced(*args, **inner_kwargs):
        with _tracing_for(bool(jit_compile)):
            return fn(*args, **inner_kwargs)

    return tf.function(traced, jit_compile=jit_compile, **kwargs)
