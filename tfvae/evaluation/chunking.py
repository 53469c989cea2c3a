"""How many importance samples one chunk of the IWAE evaluation may hold: its activation memory against a budget.

The IWAE bound draws its k samples a chunk at a time (``objectives.chunked_iwae_bound``); one chunk of c samples
for B examples computes c * B (example, sample) pairs at once. Its memory is estimated from the graph of one chunk
(``VAE.iwae_log_weights``: the posterior sample, log p(x|z), log p(z) and log q(z|x)), traced for r = 2 examples:

  S(c)            = sum over the graph's ops of the bytes of their outputs (ops that only view their input,
                    e.g. Reshape and Identity, left out), for a chunk of c samples
  bytes_per_pair  = max((S(2) - S(1)) / r, 4 * data_size)
  chunk           = min(k, max(1, floor(budget / (B_replica * bytes_per_pair))))

S counts every intermediate as if all were alive at once, so it bounds the chunk's activations from above
(TensorFlow frees each after its last use); the difference in c leaves out what does not grow with the samples
(weights, the encoder's pass over x). The floor of one float32 image per pair keeps the estimate from ever being
below the decoder's output. B_replica is the number of examples one device computes at a time.

The budget (bytes, per device): an explicit one; else on a GPU ``GPU_MEMORY_FRACTION`` of its free memory
(the memory limit TensorFlow was configured with, ``tf.config.set_logical_device_configuration``, less what it
holds now, ``tf.config.experimental.get_memory_info``), or ``DEFAULT_GPU_BUDGET`` when no limit was configured
(TensorFlow reports what it uses, not what the device has); on a CPU ``DEFAULT_CPU_BUDGET``, which keeps chunks
where CPU evaluation is fastest (docs/training_at_scale.md has the measurement). A chunk that still does not fit
is halved by the evaluation (``iwae.IwaeEvaluator``).
"""

from __future__ import annotations

import math
import weakref

import tensorflow as tf

__all__ = [
    "DEFAULT_CPU_BUDGET",
    "DEFAULT_GPU_BUDGET",
    "GPU_MEMORY_FRACTION",
    "bytes_per_pair",
    "chunk_size",
    "device_budget",
    "graph_bytes",
]

DEFAULT_CPU_BUDGET = 1 << 30
DEFAULT_GPU_BUDGET = 4 << 30
GPU_MEMORY_FRACTION = 0.5

# Ops whose output is a view of their input (or a variable's buffer): no new memory.
_VIEW_OPS = frozenset({"Reshape", "Identity", "IdentityN", "Squeeze", "ExpandDims", "StopGradient", "Snapshot",
                       "EnsureShape", "ReadVariableOp", "Placeholder", "Const", "NoOp"})
_TRACE_ROWS = 2
_PAIR_BYTES = weakref.WeakKeyDictionary()  # model -> {data shape: bytes per pair}


def graph_bytes(concrete_function) -> int:
    """Sum of the bytes of the outputs of every op of ``concrete_function``'s graph, view ops left out.

    Outputs of unknown shape, resources and variants count 0 (see ``bytes_per_pair`` for the floor).
    """
    total = 0
    for op in concrete_function.graph.get_operations():
        if op.type in _VIEW_OPS:
            continue
        for output in op.outputs:
            if output.dtype in (tf.resource, tf.variant) or not output.shape.is_fully_defined():
                continue
            total += output.shape.num_elements() * output.dtype.size
    return total


def bytes_per_pair(model, data_shape=None) -> int:
    """Activation bytes of one (example, importance sample) pair of ``model``'s IWAE chunk (module docstring).

    ``data_shape``: the shape of one example (default: the model's); a VAE
    not yet built is built for it. A conditional VAE is traced with labels.
    The result is kept for the model and data shape (tracing takes seconds).
    """
    data_shape = tuple(int(d) for d in (data_shape or getattr(model, "data_shape", None) or ()))
    if not data_shape:
        raise ValueError("data_shape must be given for a model that is not built; got None")
    known = _PAIR_BYTES.setdefault(model, {})
    if data_shape not in known:
        known[data_shape] = _traced_bytes_per_pair(model, data_shape)
    return known[data_shape]


def _traced_bytes_per_pair(model, data_shape: tuple) -> int:
    if not model.built:
        model.build((None, *data_shape))
    x_spec = tf.TensorSpec([_TRACE_ROWS, *data_shape], tf.float32)
    label_spec = tf.TensorSpec([_TRACE_ROWS], tf.int32) if getattr(model, "num_classes", 0) else None

    def chunk_bytes(count: int) -> int:
        def log_weights(x, seed, labels=None):
            return model.iwae_log_weights(x, seed, 0, count, labels=labels)

        function = tf.function(log_weights, autograph=False)
        specs = (x_spec, tf.TensorSpec([2], tf.int32)) + (() if label_spec is None else (label_spec,))
        return graph_bytes(function.get_concrete_function(*specs))

    estimate = (chunk_bytes(2) - chunk_bytes(1)) / _TRACE_ROWS
    return int(max(math.ceil(estimate), 4 * math.prod(data_shape)))


def _memory_limit(device: str) -> int | None:
    """The memory limit (bytes) logical GPU ``device`` ("GPU:i") was configured with, or None."""
    index = int(device.rsplit(":", 1)[-1])
    for physical in tf.config.list_physical_devices("GPU"):
        configs = tf.config.get_logical_device_configuration(physical) or [None]
        if index < len(configs):
            limit = getattr(configs[index], "memory_limit", None)
            return None if limit is None else int(limit) << 20
        index -= len(configs)
    return None


def device_budget(device: str, memory_info=None, memory_limit=None) -> int:
    """The chunk memory budget (bytes) of ``device`` (a device name, e.g. "/device:GPU:0" or "CPU:0").

    A GPU: GPU_MEMORY_FRACTION * (limit - in use) when its limit is known,
    else DEFAULT_GPU_BUDGET; anything else: DEFAULT_CPU_BUDGET.
    ``memory_info`` and ``memory_limit`` (functions of "GPU:i") stand in for
    TensorFlow's in tests.
    """
    spec = tf.DeviceSpec.from_string(device)
    if (spec.device_type or "").upper() != "GPU":
        return DEFAULT_CPU_BUDGET
    name = f"GPU:{spec.device_index or 0}"
    limit = (memory_limit or _memory_limit)(name)
    if limit is None:
        return DEFAULT_GPU_BUDGET
    in_use = (memory_info or tf.config.experimental.get_memory_info)(name)["current"]
    return max(0, int(GPU_MEMORY_FRACTION * (limit - in_use)))


def chunk_size(budget: int, rows: int, pair_bytes: int, num_samples: int) -> int:
    """min(num_samples, max(1, floor(budget / (rows * pair_bytes)))): samples per chunk for ``rows`` examples."""
    for name, value in (("budget", budget), ("rows", rows), ("pair_bytes", pair_bytes), ("num_samples", num_samples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "budget" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'budget' else 'positive'} int; "
                             f"got {value!r}")
    return min(num_samples, max(1, budget // (rows * pair_bytes)))
