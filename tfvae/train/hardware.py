"""Whether this machine computes a 16-bit ``--precision`` natively, and a warning when it does not.

Mixed precision pays only where the processor has 16-bit arithmetic:

  mixed_bfloat16  CPU: x86 AVX512_BF16 or AMX-BF16, Arm BF16;    GPU: compute capability >= 8.0
  mixed_float16   CPU: x86 AVX512_FP16 or AMX-FP16, Arm ASIMDHP;  GPU: compute capability >= 7.0

Elsewhere each 16-bit op is emulated (converted to float32 and back), so the
run is slower than in float32, not faster: ``conv_hierarchical.flags`` trains
4.5x slower in mixed_bfloat16 than in float32 on an AVX2-only AMD EPYC, and
1.2x faster on one with AVX512_BF16 (docs/training_at_scale.md). Training and
loading a run for evaluation or export call ``warn_if_emulated``; they still
honour the requested precision, which trains to the same quality as float32.

``uses_xla`` decides whether a run compiles its steps with XLA (--jit_compile,
whose choices ``JIT_COMPILE_MODES`` are registered here).
"""

from __future__ import annotations

import functools

import tensorflow as tf
from absl import logging

from tfvae.core import choices
from tfvae.nn import networks

__all__ = ["JIT_COMPILE_MODES", "NATIVE_CPU_FLAGS", "cpu_flags", "emulation_warning", "gpu_capabilities", "uses_xla",
           "warn_if_emulated"]

JIT_COMPILE_MODES = choices.register("jit_compile", ("auto", "on", "off"))

# precision -> CPU feature flags (Linux /proc/cpuinfo names) of which any one makes it native
NATIVE_CPU_FLAGS = {
    "mixed_bfloat16": frozenset({"avx512_bf16", "amx_bf16", "bf16"}),
    "mixed_float16": frozenset({"avx512_fp16", "amx_fp16", "asimdhp"}),
}
# precision -> the lowest GPU compute capability with native arithmetic for it
_NATIVE_GPU_CAPABILITY = {"mixed_bfloat16": (8, 0), "mixed_float16": (7, 0)}


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags (x86 "flags", Arm "Features" line of /proc/cpuinfo); None where unreadable."""
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return None


def emulation_warning(precision: str, cpu: frozenset[str] | None, gpu_capabilities=()) -> str | None:
    """One line saying that ``precision`` is emulated on these processors, or None if native (or unknown).

    Args:
      precision: a Keras dtype policy name (``optimizers.PRECISIONS``).
      cpu: the CPU's feature flags (``cpu_flags()``); None: unknown, no warning.
      gpu_capabilities: the (major, minor) compute capability of each GPU; with
        any GPU the networks run there, so the CPU is not judged. None: GPUs
        of unknown capability, no warning.
    """
    if precision not in NATIVE_CPU_FLAGS or gpu_capabilities is None:
        return None
    if gpu_capabilities:
        slow = [f"{major}.{minor}" for major, minor in gpu_capabilities if (major, minor) < _NATIVE_GPU_CAPABILITY[precision]]
        if not slow:
            return None
        lowest = ".".join(map(str, _NATIVE_GPU_CAPABILITY[precision]))
        where = f"GPU compute capability {', '.join(slow)} (native from {lowest})"
    elif cpu is None or cpu & NATIVE_CPU_FLAGS[precision]:
        return None
    else:
        where = f"a CPU without {' or '.join(sorted(NATIVE_CPU_FLAGS[precision]))} instructions"
    return (f"--precision={precision} is emulated on {where}: each 16-bit op converts to float32 and back, so this "
            "run will be slower than with --precision=float32, which trains to the same quality")


def gpu_capabilities(device_names, visible_gpus, details) -> tuple | None:
    """The (major, minor) compute capability of each GPU among ``device_names``; None if one's is unknown.

    ``device_names``: the devices a run computes on (a strategy's, e.g.
    ``/job:worker/replica:0/task:0/device:GPU:1``; None: every visible GPU);
    logical GPU i is the i-th of ``visible_gpus`` (TensorFlow's visible physical
    GPUs), whose details (a dict with ``compute_capability``) ``details`` gives.
    CPU devices among them are not GPUs: a run placed on the CPU of a GPU
    machine is judged by its CPU.
    """
    if device_names is None:
        chosen = list(visible_gpus)
    else:
        indices = [tf.DeviceSpec.from_string(name).device_index or 0 for name in device_names
                   if (tf.DeviceSpec.from_string(name).device_type or "").upper() == "GPU"]
        chosen = [visible_gpus[i] for i in indices if i < len(visible_gpus)]
    capabilities = []
    for gpu in chosen:
        capability = details(gpu).get("compute_capability")
        if not capability:
            return None
        capabilities.append(tuple(capability))
    return tuple(capabilities)


def _gpu_capabilities(device_names=None) -> tuple | None:
    return gpu_capabilities(device_names, tf.config.get_visible_devices("GPU"),
                            tf.config.experimental.get_device_details)


@functools.cache
def warn_if_emulated(precision: str, device_names: tuple[str, ...] | None = None) -> str | None:
    """Logs ``emulation_warning`` for the processors the run computes on (once per precision, devices and process);
    returns it. ``device_names``: the strategy's devices (None: every visible GPU, else the CPU)."""
    message = emulation_warning(precision, cpu_flags(), _gpu_capabilities(device_names))
    if message:
        logging.warning(message)
    return message


def uses_xla(config, gpu_available: bool) -> bool:
    """Whether the run compiles its steps with XLA.

    ``auto`` compiles everything except convolutions on CPU: XLA's CPU
    convolutions (in a fused multi-step loop above all) run far slower than
    TensorFlow's oneDNN kernels; see scripts/benchmark.py.
    """
    if config.jit_compile != "auto":
        return config.jit_compile == "on"
    return config.architecture not in networks.CONVOLUTIONAL or gpu_available
