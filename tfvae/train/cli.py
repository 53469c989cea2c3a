"""Helpers shared by the command-line scripts (flags <-> TrainConfig, error lines).

The library never reads flags; scripts call ``define_config_flags`` at import
time and ``config_from_flags`` in ``main``.
"""

from __future__ import annotations

import io
import os
import sys

from absl import flags

from tfvae.train import config as config_lib
from tfvae.train.config import TrainConfig
from tfvae.train.rundir import RunDirectoryError
from tfvae.train.settings import choices_of, help_of

__all__ = [
    "config_from_flags",
    "define_dataset_flag",
    "define_config_flags",
    "exit_with_error",
    "flag_error",
    "load_run_or_exit",
    "print_note",
    "quiet_logging",
    "resolved_flags",
    "serialize_flags",
    "settings_given",
]

def define_config_flags(flag_values: flags.FlagValues = flags.FLAGS, names=None) -> dict:
    """Defines one flag per TrainConfig setting in ``flag_values``: its name, default, help (the field's
    documentation) and choices (those its implementing module registered).

    ``names``: only these settings (default: all), e.g. the strategy flags of
    a script that does not train. Returns {name: its FlagHolder}.
    """
    defaults, holders = TrainConfig(), {}
    fields = {field.name: field for field in TrainConfig.settings()}
    for name in names or ():
        if name not in fields:
            raise ValueError(f"names must be TrainConfig settings; got {name!r}")
    for field in fields.values() if names is None else [fields[name] for name in names]:
        name, default, help_text = field.name, getattr(defaults, field.name), help_of(field)
        allowed = choices_of(field)
        if allowed is not None and isinstance(default, str):
            define, value = flags.DEFINE_enum, (default, allowed)
        elif isinstance(default, bool):
            define, value = flags.DEFINE_bool, (default,)
        elif isinstance(default, int):
            define, value = flags.DEFINE_integer, (default,)
        elif isinstance(default, float):
            define, value = flags.DEFINE_float, (default,)
        elif isinstance(default, tuple):
            define, value = flags.DEFINE_list, ([str(v) for v in default],)
        else:
            define, value = flags.DEFINE_string, (default,)
        holders[name] = define(name, *value, help_text, flag_values=flag_values)
    return holders


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
    for field in TrainConfig.settings():
        value = flag_values[field.name].value
        if str(field.type) == "tuple[int, ...]":  # hidden_units, flow_hidden_units, latent_dims
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                exit_with_error(f"flag --{field.name}: expected comma-separated positive ints; got {','.join(value)}")
        values[field.name] = value
    config = TrainConfig(**values)
    try:
        config_lib.validate(config)  # each value and the rules between them; no TensorFlow yet: a strategy may still need to split the CPU or join a cluster
    except ValueError as e:
        exit_with_error(flag_error(e))
    return config


def settings_given(flag_values: flags.FlagValues = flags.FLAGS) -> frozenset[str]:
    """The TrainConfig fields whose flags the command line (or a --flagfile) sets; the rest are defaults, which
    ``train_and_evaluate`` may fit to the data (``data_defaults``)."""
    return frozenset(name for name in TrainConfig.field_names() if flag_values[name].present)


def flag_error(error: ValueError) -> str:
    """``flag --<name> ...`` for an error whose message starts with a TrainConfig field (or ``<field>:``); else the
    message."""
    named = str(error).split(" ", 1)[0].removesuffix(":") in TrainConfig.field_names()
    return f"flag --{error}" if named else str(error)


def resolved_flags() -> str:
    """The main script's resolved flags, one per line, as flags.txt holds them (--flagfile= repeats them).

    The script must call ``flags.adopt_module_key_flags(cli)`` so that the
    config flags count as its own. A value that the file could not replay
    exactly exits with a one-line error naming the flag (``serialize_flags``).
    """
    module_flags = flags.FLAGS.get_key_flags_for_module(sys.modules["__main__"])
    try:
        return serialize_flags(module_flags)
    except ValueError as e:
        exit_with_error(str(e))


def serialize_flags(flag_list) -> str:
    """``flag_list`` (absl Flag objects; not --flagfile, not unset ones) as flags.txt lines, sorted by name.

    absl reads a flagfile one line per flag and strips each line, so a value
    holding a line break (which would add flags the user never gave) or
    ending with white space would not come back as it was: such a value is
    refused with a one-line ValueError naming the flag. Every line is read
    back as --flagfile= reads it and must give the same value.
    """
    lines = []
    for flag in sorted(flag_list, key=lambda f: f.name):
        line = flag.serialize()
        if flag.name == "flagfile" or not line:
            continue
        read_back = io.StringIO(line + "\n", newline=None).readlines()  # the flagfile reader's universal newlines
        replayed = read_back[0].strip() if len(read_back) == 1 else None
        if not flag.boolean and not _replays(flag, replayed):
            raise ValueError(f"flag --{flag.name}: {flag.value!r} cannot be written to flags.txt (one flag per "
                             "line) and replayed as it is: pass a value without line breaks or trailing "
                             "white space")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _replays(flag, line: str | None) -> bool:
    """Whether ``line`` (a flagfile line, stripped) parses back to ``flag``'s value."""
    prefix = f"--{flag.name}="
    if line is None or not line.startswith(prefix):
        return False
    try:
        return flag.parser.parse(line[len(prefix):]) == flag.value
    except (ValueError, TypeError):
        return False


def load_run_or_exit(model_dir: str):
    """(TrainConfig, trained VAE) of a training run; exits with a one-line error naming --model_dir."""
    from tfvae.train import checkpoints, loading

    try:
        return loading.load_config(model_dir), loading.load_model(model_dir)
    except (RunDirectoryError, checkpoints.CheckpointError) as e:
        exit_with_error(f"flag --model_dir: {e}", code=1)


def quiet_logging() -> None:
    """Shows tfvae's own absl INFO lines (the run summary) and everyone's warnings, but not the INFO lines of
    other libraries (TensorFlow's checkpoint chatter), unless --verbosity is given (then absl's own rule holds)."""
    import logging as python_logging

    from absl import logging

    if flags.FLAGS["verbosity"].present:
        return
    logging.set_verbosity(logging.INFO)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

    def from_tfvae_or_a_warning(record) -> bool:
        return record.levelno >= python_logging.WARNING or record.pathname.startswith(package)

    handler = logging.get_absl_handler()
    if not any(getattr(f, "__name__", "") == from_tfvae_or_a_warning.__name__ for f in handler.filters):
        handler.addFilter(from_tfvae_or_a_warning)


def print_note(message: str) -> None:
    """Prints ``<script>: note: <message>`` on one line to stderr (something left out, and why)."""
    print(f"{os.path.basename(sys.argv[0])}: note: {message}", file=sys.stderr)


def exit_with_error(message: str, code: int = 2, kind: str = "error") -> None:
    """Prints ``<script>: <kind>: <message>`` on one line to stderr and exits with ``code``."""
    print(f"{os.path.basename(sys.argv[0])}: {kind}: {message}", file=sys.stderr)
    sys.exit(code)
