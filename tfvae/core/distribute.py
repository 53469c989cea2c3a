"""tf.distribute strategies from a name, in one place.

  default                 TensorFlow's default strategy (one device, no distribution)
  one_device              OneDeviceStrategy on --devices[0] (default: the first GPU, else the CPU)
  mirrored                MirroredStrategy over --devices (default: all local GPUs, else the
                          logical CPU devices, else the CPU)
  multi_worker_mirrored   MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG, else from
                          Slurm's environment (SLURM_JOB_ID), else it is an error
  tpu                     TPUStrategy on the TPU the TPUClusterResolver finds

Batch sizes are global everywhere: each replica gets batch / num_replicas
examples, and the loss is the mean over the global batch (see
``VAE.train_step``), so results do not depend on the number of replicas.
``split_cpu`` divides the CPU into logical devices, so that machines without
accelerators (and tests) can run several replicas.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tfvae.core import choices, sampling

__all__ = [
    "STRATEGIES",
    "any_worker",
    "check_batch_size",
    "replica_devices",
    "clip_across_replicas",
    "describe",
    "disable_tensor_float_32",
    "set_determinism",
    "global_batch_size",
    "make_strategy",
    "num_workers",
    "split_cpu",
    "validate_tf_config",
    "worker_role",
]

STRATEGIES = choices.register("strategy", ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu"))


def split_cpu(num_devices: int) -> None:
    """Splits the physical CPU into ``num_devices`` logical devices (before TensorFlow starts using it)."""
    if int(num_devices) < 1:
        raise ValueError(f"logical_cpu_devices must be a positive int; got {num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(int(num_devices))]
    if current is not None and len(current) == len(wanted):
        return
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        raise ValueError(
            f"logical_cpu_devices={num_devices}: TensorFlow is already initialised with "
            f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s); split the CPU before building anything"
        ) from None


def validate_tf_config(text: str | None) -> dict:
    """Parses TF_CONFIG; raises a one-line ValueError if it cannot describe a worker of a cluster."""
    if not text:
        raise ValueError("TF_CONFIG is not set; multi_worker_mirrored needs a cluster (TF_CONFIG or Slurm)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e.msg} at position {e.pos})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or not config["cluster"]:
        raise ValueError('TF_CONFIG has no "cluster": expected {"cluster": {"worker": ["host:port", ...]}, '
                         '"task": {"type": "worker", "index": 0}}')
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError('TF_CONFIG has no "task" with "type" and "index", e.g. {"type": "worker", "index": 0}')
    jobs = config["cluster"].get(task["type"])
    if not isinstance(jobs, list) or not 0 <= int(task["index"]) < len(jobs):
        raise ValueError(f"TF_CONFIG task {task['type']}:{task['index']} is not in its cluster {config['cluster']}")
    return config


def worker_role(strategy) -> tuple[bool, int]:
    """(is_chief, task index) of this process; (True, 0) outside multi-worker training.

    The chief writes checkpoints, summaries and files of the run; other workers
    write their checkpoint copies to a scratch folder.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True, 0
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                        and "chief" not in resolver.cluster_spec().as_dict())
    return is_chief, task_id


def num_workers(strategy) -> int:
    """Number of worker tasks of a multi-worker strategy's cluster; 1 otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 1
    return max(1, sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values()))


def any_worker(strategy, flags: list[bool]) -> list[bool]:
    """For each flag, whether it is set on any worker (a sum across workers; all workers must call it).

    On one machine (one worker) the flags are returned as they are, without
    communication. Used so that every worker stops or saves at the same step.
    """
    if num_workers(strategy) == 1:
        return list(flags)
    local = [float(flag) for flag in flags]
    per_replica = strategy.run(lambda: tf.constant(local, tf.float32))
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    return [bool(value > 0) for value in total.numpy()]


def check_batch_size(global_batch: int, num_replicas: int) -> None:
    """Raises ValueError unless the global batch splits evenly over the replicas."""
    if global_batch % num_replicas:
        raise ValueError(f"batch_size ({global_batch}) must be divisible by the number of replicas ({num_replicas})")


def global_batch_size(local_batch: tf.Tensor) -> tf.Tensor:
    """B = B_local * R, float32, for this replica's batch ``local_batch`` (any tensor with a batch axis).

    Each replica divides its summed loss by B, and the optimizer sums the
    replicas' gradients: the gradient of the global-batch mean, for any R.
    """
    _, num_replicas = sampling.replica_position()
    return tf.cast(tf.shape(local_batch)[0] * num_replicas, tf.float32)


def clip_across_replicas(grads, clip_norm):
    """Clips the all-replica gradient sum to ``clip_norm`` by global norm; returns (this replica's share, norm).

    The optimizer sums what each replica passes it, so each replica passes
    clipped_sum / R; the clipping therefore means the same on 1 or R replicas.
    ``clip_norm`` may be a scalar tensor (+inf: no clipping); ``norm`` is the
    global norm of the unclipped sum. Kept for callers of tfvae 0.3.0: a
    training step clips with ``optimizer_step.OptimizerStep``, which also
    unscales a loss-scaled gradient first.
    """
    _, num_replicas = sampling.replica_position()
    if num_replicas > 1:
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
    norm = tf.linalg.global_norm(grads)
    scale = tf.where(norm > clip_norm, clip_norm / norm, 1.0)  # exactly 1 when not clipping, also for +inf
    grads = [None if g is None else g * scale for g in grads]
    if num_replicas > 1:
        grads = [g / num_replicas for g in grads]
    return grads, norm


def replica_devices(strategy) -> tuple[str, ...]:
    """The devices this worker's replicas of ``strategy`` compute on (the default strategy: TensorFlow's default
    device, the first GPU if any, else the CPU)."""
    try:
        return tuple(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy
        return tuple(d.name for d in (tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[:1])


def describe(strategy) -> str:
    """One line naming the strategy and the devices its replicas run on (logged at the start of a run)."""
    devices = replica_devices(strategy)
    return (f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replica(s) in all, on this worker "
            f"{', '.join(devices)}; visible GPUs: {len(tf.config.list_logical_devices('GPU'))}")


def set_determinism(deterministic: bool) -> None:
    """Makes TensorFlow's ops (and XLA's) deterministic, so a rerun on the same device model and software stack
    repeats the same bits (``tf.config.experimental.enable_op_determinism``: no autotuned, atomics-based or
    otherwise run-to-run varying GPU kernels, at some speed cost). False leaves TensorFlow's default."""
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def disable_tensor_float_32() -> None:
    """Keeps float32 matmuls and convolutions in float32 on Ampere and newer GPUs (TensorFlow runs them in TF32,
    10 mantissa bits, by default), so reported figures match a CPU's to float32 rounding."""
    tf.config.experimental.enable_tensor_float_32_execution(False)


def _local_devices(kind: str) -> list[str]:
    return [d.name for d in tf.config.list_logical_devices(kind)]


def make_strategy(name: str, devices=(), logical_cpu_devices: int = 0) -> tf.distribute.Strategy:
    """The tf.distribute strategy called ``name`` (see the module docstring).

    Args:
      name: one of STRATEGIES.
      devices: device names for one_device/mirrored, e.g. ("/gpu:0", "/gpu:1").
      logical_cpu_devices: if > 0, first split the CPU into that many devices.

    Raises:
      ValueError: one line naming what is wrong (unknown name, bad TF_CONFIG,
        no TPU, ...).
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {name!r}")
    if logical_cpu_devices:
        split_cpu(logical_cpu_devices)
    devices = list(devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        device = devices[0] if devices else (_local_devices("GPU") or _local_devices("CPU"))[0]
        return tf.distribute.OneDeviceStrategy(device)
    if name == "mirrored":
        if not devices and not _local_devices("GPU") and len(_local_devices("CPU")) < 2:
            raise ValueError(
                "strategy mirrored: no GPU is visible and the CPU is one device; install the GPU build "
                "(pip install -e .[gpu]) and check that TensorFlow sees the GPUs, split the CPU with "
                "logical_cpu_devices (--logical_cpu_devices=N, for tests), or use strategy default")
        devices = devices or _local_devices("GPU") or _local_devices("CPU")
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        if os.environ.get("TF_CONFIG") or "SLURM_JOB_ID" not in os.environ:
            validate_tf_config(os.environ.get("TF_CONFIG"))
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        else:
            resolver = tf.distribute.cluster_resolver.SlurmClusterResolver()
        # NCCL between GPUs (the collective TensorFlow's own GPU guides use); AUTO (ring) on CPUs.
        implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL
                          if tf.config.list_physical_devices("GPU") else
                          tf.distribute.experimental.CommunicationImplementation.AUTO)
        options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.NotFoundError, RuntimeError) as e:
        raise ValueError(f"strategy tpu: no TPU found ({str(e).splitlines()[0]})") from None
    return tf.distribute.TPUStrategy(resolver)
