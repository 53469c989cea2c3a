"""Training throughput vs number of replicas, XLA and steps per call (a benchmark, not a test).

  python scripts/benchmark_distribute.py                       # 1, 2, 4 logical CPU devices
  python scripts/benchmark_distribute.py --devices_list=1,2 --hidden_units=512,256

For each device count it starts a fresh process (the CPU must be split before
TensorFlow starts), builds MirroredStrategy over that many logical CPU devices
(the default strategy for 1) and times tfvae's training loop on the MLP of the
train.py flags with XLA on/off and --steps_per_execution 1 and 50, at the same
global batch. On a CPU the devices share the same 2 cores, so the multi-device
figures measure the overhead of distribution, not a speed-up.
"""

import dataclasses
import json
import subprocess
import sys

import _startup
from absl import flags

from tfvae.train import cli

cli.define_config_flags()
_DEVICES = flags.DEFINE_list("devices_list", ["1", "2", "4"], "Logical CPU device counts to compare.")
_STEPS = flags.DEFINE_integer("benchmark_steps", 200, "Timed steps per variant and round.", lower_bound=10)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds (median reported).", lower_bound=1)
_WORKER = flags.DEFINE_integer("worker_devices", 0, "Internal: run as the measuring process with N devices.")

_VARIANTS = flags.DEFINE_list("variants", ["on:50", "on:1", "off:50", "off:1"],
                              "Variants to time, each <XLA on|off>:<steps per call>.")


def variants():
    """[(jit_compile, steps_per_execution)] of --variants; a bad entry exits naming the flag."""
    parsed = []
    for item in _VARIANTS.value:
        jit, _, steps = item.partition(":")
        if jit not in ("on", "off") or not steps.isdigit() or int(steps) < 1:
            cli.exit_with_error(f"flag --variants: expected entries like on:50 or off:1; got {item!r}")
        parsed.append((jit, int(steps)))
    return parsed


def measure_in_this_process(num_devices):
    import tensorflow as tf

    from tfvae.core import distribute

    if num_devices > 1:
        distribute.split_cpu(num_devices)
    import benchmark_lib  # the tfvae contender of scripts/benchmark.py

    from tfvae import data

    config = cli.config_from_flags()
    prepared = data.prepare_data(config)
    strategy = (tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(num_devices)]) if num_devices > 1
                else tf.distribute.get_strategy())
    contenders = {}
    for jit, spe in variants():
        variant = dataclasses.replace(config, jit_compile=jit, steps_per_execution=spe)
        contenders[f"{jit},{spe}"] = benchmark_lib.tfvae_contender(variant, prepared, strategy)
    rates = benchmark_lib.measure(contenders, _STEPS.value, _REPEATS.value, config.batch_size)
    print("RESULT " + json.dumps(rates))


def main(argv):
    if _WORKER.value:
        measure_in_this_process(_WORKER.value)
        return
    passthrough = [a for a in argv[1:]] + [a for a in sys.argv[1:] if a.startswith("--") and
                                           not a.startswith("--devices_list")]
    table = {}
    for count in (int(d) for d in _DEVICES.value):
        result = subprocess.run([sys.executable, __file__, f"--worker_devices={count}", *passthrough],
                                capture_output=True, text=True, timeout=3600)
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        if result.returncode or not lines:
            cli.exit_with_error(f"{count} devices: measuring process failed: {result.stderr.strip()[-500:]}", 1)
        table[count] = json.loads(lines[-1][len("RESULT "):])
    config = cli.config_from_flags()
    print(f"MLP {','.join(map(str, config.hidden_units))}-{config.latent_dim}, global batch {config.batch_size}, "
          f"{_REPEATS.value} rounds of {_STEPS.value} steps (median examples/s; ratio to 1 device, same variant)")
    header = "".join(f"{f'XLA {jit}, {spe} steps/call':>26s}" for jit, spe in variants())
    print(f"  {'devices':8s}{header}")
    for count, rates in table.items():
        cells = "".join(f"{rates[f'{jit},{spe}']:>16.0f} ({rates[f'{jit},{spe}'] / table[1][f'{jit},{spe}'] if 1 in table else 1:4.2f}x)"
                        for jit, spe in variants())
        print(f"  {count:<8d}{cells}")


if __name__ == "__main__":
    _startup.run(main)
