"""Helpers shared by the command-line scripts (flags <-> TrainConfig, error lines).

The library never reads flags; scripts call ``define_config_flags`` at import
time and ``config_from_flags`` in ``main``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from tfvae import files
from tfvae.config import _CHOICES, TrainConfig

__all__ = [
    "config_from_flags",
    "define_config_flags",
    "exit_with_error",
    "load_run_or_exit",
    "quiet_logging",
    "write_flags_file",
]

HELP = {
    "dataset": "Data set: fashion_mnist (Debian's IDX files, else a keras.datasets download), mnist, "
    "idx (IDX files in --data_dir), npz (Keras-style .npz at --data_dir) or image_folder.",
    "data_dir": "Where the data is: a directory of IDX files or images, or an .npz file.",
    "train_examples": "Use only the first N training images (0 = all).",
    "likelihood": "p(x|z): bernoulli (dynamically binarized data), continuous_bernoulli or gaussian "
    "(intensities in [0, 1]), discretized_logistic (mixture) or categorical (256-way) (8-bit pixels).",
    "gaussian_scale": "Scale of a gaussian likelihood: fixed, learned (one global) or per_pixel.",
    "mixture_components": "Logistic components per pixel of a discretized_logistic likelihood.",
    "posterior": "q(z|x): diagonal or full (covariance Gaussian), or iaf (diagonal Gaussian + --flow_steps "
    "inverse autoregressive flow steps; KL by Monte Carlo).",
    "prior": "p(z): standard_normal, mixture (learned Gaussian mixture), vamp (VampPrior) or flow "
    "(--flow chain on N(0, I)); all but standard_normal use a Monte Carlo KL.",
    "prior_components": "Mixture components (mixture) or pseudo-inputs (vamp); 0 = 10 and 500.",
    "flow": "Flow of --prior=flow: maf (masked autoregressive) or real_nvp (affine coupling).",
    "flow_steps": "Steps of the flow prior or of the IAF posterior.",
    "flow_hidden_units": "Hidden widths of each flow step's network (MADE or coupling), e.g. 256,256.",
    "conditional": "Conditional VAE: feed the one-hot labels to encoder and decoder (needs labelled data).",
    "architecture": "Encoder/decoder networks: mlp or conv.",
    "hidden_units": "Hidden layer widths (mlp) or conv filters (conv), encoder side first, e.g. 400 or 32,64.",
    "activation": "Activation of the hidden layers (a Keras name).",
    "latent_dim": "Size of the latent z.",
    "epochs": "Passes over the training data (a resumed run continues to this total).",
    "batch_size": "Global batch size: examples per optimizer step over all replicas.",
    "learning_rate": "Adam learning rate.",
    "learning_rate_decay": "none or cosine (to 1% of --learning_rate over the run).",
    "beta": "Weight of the rate KL(q(z|x)||p(z)) in the loss (1 = the ELBO).",
    "kl_warmup_steps": "Linear warm-up of the KL weight from 0 to --beta over this many steps (0 = none).",
    "kl_schedule": "KL weight schedule: linear (one warm-up over --kl_warmup_steps) or cyclical (a warm-up "
    "at the start of every --kl_cycle_steps steps).",
    "kl_cycle_steps": "Cycle length of --kl_schedule=cyclical.",
    "kl_method": "KL estimator: auto (analytic where TFP has it), analytic or monte_carlo.",
    "free_bits": "KL floor in nats per group of latent dimensions, per example (0 = none).",
    "free_bits_group_size": "Latent dimensions per free-bits group (1 = per dimension; latent_dim = whole KL).",
    "objective": "Training objective: elbo or iwae (importance weighted bound with --samples_per_example).",
    "samples_per_example": "Posterior samples per example in training (k of the iwae objective).",
    "clip_global_norm": "Clip the (all-replica) gradient to this global norm (0 = no clipping).",
    "seed": "Seed of the data order, binarization, initialization and sampling noise.",
    "strategy": "tf.distribute strategy: default, one_device, mirrored (all local GPUs, or --devices, or the "
    "logical CPUs), multi_worker_mirrored (cluster from TF_CONFIG or Slurm) or tpu.",
    "devices": "Devices for one_device/mirrored, e.g. /gpu:0,/gpu:1 (default: all local GPUs).",
    "logical_cpu_devices": "Split the CPU into N logical devices (for mirrored training without accelerators; 0 = no).",
    "precision": "float32, mixed_bfloat16 or mixed_float16 (networks in 16 bits; log-probs, KL and loss in "
    "float32; float16 uses loss scaling).",
    "jit_compile": "XLA compilation of the training and evaluation steps: on, off or auto (on, except "
    "for conv networks without a GPU, where XLA is slower).",
    "steps_per_execution": "Optimizer steps run inside one compiled call.",
    "checkpoint_every_steps": "Write a checkpoint every N steps (and at the end of every epoch).",
    "max_checkpoints": "Checkpoints kept on disk.",
    "summary_every_steps": "Write training scalars to TensorBoard every N steps.",
    "eval_every_epochs": "Evaluate the validation ELBO and write image grids every N epochs.",
    "validation_examples": "Test images used for validation during training (0 = all).",
    "test_binarization_seed": "Seed of the one fixed binarization of the test set (bernoulli).",
}


def define_config_flags() -> None:
    """Defines one flag per TrainConfig field, with its default and help text."""
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        name, default = field.name, getattr(defaults, field.name)
        help_text = HELP[name]
        if name in _CHOICES:
            flags.DEFINE_enum(name, default, _CHOICES[name], help_text)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, [str(v) for v in default], help_text)
        else:
            flags.DEFINE_string(name, default, help_text)


def config_from_flags() -> TrainConfig:
    """The TrainConfig the parsed flags describe; a bad value exits naming the flag."""
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = flags.FLAGS[field.name].value
        if field.name in ("hidden_units", "flow_hidden_units"):
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                exit_with_error(f"flag --{field.name}: expected comma-separated positive ints; got {','.join(value)}")
        values[field.name] = value
    config = TrainConfig(**values)
    from tfvae.config import validate

    try:
        validate(config)
    except ValueError as e:
        exit_with_error(f"flag --{e}")
    return config


def write_flags_file(path: str) -> None:
    """Writes the main script's resolved flags, one per line, so --flagfile=path replays the run.

    The script must call ``flags.adopt_module_key_flags(cli)`` so that the
    config flags count as its own.
    """
    module_flags = flags.FLAGS.get_key_flags_for_module(sys.modules["__main__"])
    lines = [f.serialize() for f in sorted(module_flags, key=lambda f: f.name) if f.name != "flagfile"]
    files.write_atomic(path, "\n".join(line for line in lines if line) + "\n")


def load_run_or_exit(model_dir: str):
    """(TrainConfig, trained VAE) of a training run; exits with a one-line error naming --model_dir."""
    from tfvae import checkpoints, loading

    try:
        return loading.load_config(model_dir), loading.load_model(model_dir)
    except (FileNotFoundError, checkpoints.CheckpointError) as e:
        exit_with_error(f"flag --model_dir: {e}", code=1)


def quiet_logging() -> None:
    """Keeps absl INFO lines (TensorFlow's checkpoint chatter) off unless --verbosity is given."""
    from absl import logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def exit_with_error(message: str, code: int = 2) -> None:
    """Prints ``<script>: error: <message>`` on one line to stderr and exits."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(code)
