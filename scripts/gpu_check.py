"""The accelerator path's acceptance check: one table of what this machine does (``tfvae.train.device_check``).

  python scripts/gpu_check.py                  # on a GPU machine: full settings, under 10 minutes on one GPU
  python scripts/gpu_check.py --settings=tiny  # on a CPU: the same checks, tiny (the suite runs this)

Rows: devices found and in use; ms/step of the MLP and conv configs with XLA on and off and
steps_per_execution 1 vs 50, and the first compiled call's time; peak memory; float32 log-probs under
mixed_float16 and mixed_bfloat16; a forced overflow on one of two replicas; a bitwise resume with
--deterministic; the k=5000 IWAE evaluation of the conv config. The last column says where each row ran:
"GPU", or "CPU (...)" on a machine without one. docs/training_at_scale.md says which rows have been seen on
real GPUs.
"""

import _startup
import tensorflow as tf
from absl import flags

from tfvae.core import distribute
from tfvae.train import device_check

_SETTINGS = flags.DEFINE_enum("settings", "auto", ["auto", "tiny", "full"],
                              "auto: full on a GPU, tiny on a CPU.")


def main(argv):
    del argv
    if not tf.config.list_physical_devices("GPU"):
        distribute.split_cpu(2)  # two logical CPU devices for the two-replica check
    settings = {"auto": None, "tiny": device_check.Settings.tiny(), "full": device_check.Settings.full()}
    rows = device_check.run_checks(settings[_SETTINGS.value])
    width = max(len(name) for name, _, _ in rows)
    print(f"{'check':<{width}} | ran on | result")
    for name, result, where in rows:
        print(f"{name:<{width}} | {where} | {result}")


if __name__ == "__main__":
    _startup.run(main)
