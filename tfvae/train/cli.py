"""Helpers shared by the command-line scripts (flags <-> TrainConfig, error lines).

The library never reads flags; scripts call ``define_config_flags`` at import
time and ``config_from_flags`` in ``main``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from tfvae.train import config as config_lib
from tfvae.train.config import TrainConfig
from tfvae.train.rundir import RunDirectoryError

__all__ = [
    "config_from_flags",
    "define_dataset_flag",
    "define_config_flags",
    "exit_with_error",
    "flag_error",
    "load_run_or_exit",
    "quiet_logging",
    "resolved_flags",
]

def define_config_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one flag per TrainConfig field in ``flag_values``: its default, its help (TrainConfig's Attributes)
    and choices."""
    defaults, help_texts = TrainConfig(), config_lib.field_help()
    for field in dataclasses.fields(TrainConfig):
        name, default = field.name, getattr(defaults, field.name)
        help_text = help_texts[name]
        if name in config_lib.CHOICES:
            flags.DEFINE_enum(name, default, config_lib.CHOICES[name], help_text, flag_values=flag_values)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, [str(v) for v in default], help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def define_dataset_flag(default: str | None, help_text: str):
    """A --dataset flag that takes the names ``data.check_dataset_name`` accepts (``data.DATASETS`` or tfds:NAME)."""
    from tfvae import data

    def known(name):
        try:
            return name is None or bool(data.check_dataset_name(name))
        except data.DataError:
            return False

    holder = flags.DEFINE_string("dataset", default, f"{help_text}: one of {data.DATASETS} or tfds:NAME.")
    flags.register_validator("dataset", known, f"must be one of {data.DATASETS} or tfds:NAME")
    return holder


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """The TrainConfig the parsed ``flag_values`` describe; a bad value exits naming the flag."""
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = flag_values[field.name].value
        if str(field.type) == "tuple[int, ...]":  # hidden_units, flow_hidden_units, latent_dims
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                exit_with_error(f"flag --{field.name}: expected comma-separated positive ints; got {','.join(value)}")
        values[field.name] = value
    config = TrainConfig(**values)
    try:
        config_lib.validate(config)  # no TensorFlow yet: a strategy may still need to split the CPU or join a cluster
    except ValueError as e:
        exit_with_error(flag_error(e))
    return config


def flag_error(error: ValueError) -> str:
    """``flag --<name> ...`` for an error whose message starts with a TrainConfig field; else the message."""
    named = str(error).split(" ", 1)[0] in {f.name for f in dataclasses.fields(TrainConfig)}
    return f"flag --{error}" if named else str(error)


def resolved_flags() -> str:
    """The main script's resolved flags, one per line, as flags.txt holds them (--flagfile= repeats them).

    The script must call ``flags.adopt_module_key_flags(cli)`` so that the
    config flags count as its own.
    """
    module_flags = flags.FLAGS.get_key_flags_for_module(sys.modules["__main__"])
    lines = [f.serialize() for f in sorted(module_flags, key=lambda f: f.name) if f.name != "flagfile"]
    return "\n".join(line for line in lines if line) + "\n"


def load_run_or_exit(model_dir: str):
    """(TrainConfig, trained VAE) of a training run; exits with a one-line error naming --model_dir."""
    from tfvae.train import checkpoints, loading

    try:
        return loading.load_config(model_dir), loading.load_model(model_dir)
    except (RunDirectoryError, checkpoints.CheckpointError) as e:
        exit_with_error(f"flag --model_dir: {e}", code=1)


def quiet_logging() -> None:
    """Keeps absl INFO lines (TensorFlow's checkpoint chatter) off unless --verbosity is given."""
    from absl import logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def exit_with_error(message: str, code: int = 2, kind: str = "error") -> None:
    """Prints ``<script>: <kind>: <message>`` on one line to stderr and exits with ``code``."""
    print(f"{os.path.basename(sys.argv[0])}: {kind}: {message}", file=sys.stderr)
    sys.exit(code)
