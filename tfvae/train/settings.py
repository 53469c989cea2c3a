"""One setting of the run config: its default, its documentation, its choices and its range, declared together.

A section of the config (``sections.py``) declares each field with ``setting``::

  latent_dim: int = setting(20, "Size of the latent z (with --latent_dims: set to their total).", check=positive)

The help is the flag's help (``cli.define_config_flags``); ``choices=True``
takes the values the implementing module registered under the field's name
(``tfvae.core.choices``), so the config imports no implementation; ``check``
states the range of the value on its own (rules between fields:
``rules.py``). A check returns None, or the one-line message naming the
field, what it expects and what it got.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from tfvae.core import choices as choices_registry

__all__ = [
    "check_value",
    "choices_of",
    "help_of",
    "int_in",
    "non_empty_positive_ints",
    "non_negative",
    "positive",
    "positive_ints",
    "setting",
]

Check = Callable[[str, object], "str | None"]


def setting(default, help: str, *, choices: bool = False, check: Check | None = None) -> dataclasses.Field:
    """A dataclass field with ``default``, documented by ``help`` (one or more sentences, the flag's help).

    Args:
      default: the value when the flag or keyword is not given (a tuple for list settings).
      help: what the setting means, its values and its default's meaning.
      choices: the value must be one of the names the implementing module registered under this field's name.
      check: the range of the value on its own: ``positive``, ``non_negative``, ``int_in(low, high)``, ...
    """
    if not help or help != " ".join(help.split()):
        raise ValueError(f"a setting's help must be non-empty text on one line without doubled spaces; got {help!r}")
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "check": check})


def help_of(field: dataclasses.Field) -> str:
    """The field's documentation (the flag's help)."""
    return field.metadata["help"]


def choices_of(field: dataclasses.Field) -> tuple | None:
    """The values the field may take (registered by the module that implements them), or None: any in range."""
    return choices_registry.of(field.name) if field.metadata.get("choices") else None


def check_value(field: dataclasses.Field, value) -> None:
    """Raises the one-line ValueError of a value the field cannot take on its own (its choices, then its check)."""
    allowed = choices_of(field)
    if allowed is not None and value not in allowed:
        raise ValueError(f"{field.name} must be one of {allowed}; got {value!r}")
    check = field.metadata.get("check")
    message = check(field.name, value) if check else None
    if message:
        raise ValueError(message)


# ------------------------------------------------------------------ the checks of one value
def positive(name: str, value) -> str | None:
    return None if value > 0 else f"{name} must be > 0; got {value}"


def non_negative(name: str, value) -> str | None:
    return None if value >= 0 else f"{name} must be >= 0; got {value}"


def int_in(low: int, high: int, meaning: str) -> Check:
    """An int in [low, high]; ``meaning`` (e.g. "(records)") follows the range in the message."""
    def check(name: str, value) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"{name} must be an int in [{low}, {high}] {meaning}; got {value!r}"
    return check


def positive_ints(name: str, value) -> str | None:
    """A list of positive ints, possibly empty."""
    return None if not value or min(value) > 0 else f"{name} must be positive ints; got {list(value)}"


def non_empty_positive_ints(name: str, value) -> str | None:
    ok = value and min(value) > 0
    return None if ok else f"{name} must be a non-empty list of positive ints; got {list(value)}"
