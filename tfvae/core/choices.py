"""The names a setting may take, registered by the module that implements them.

A module that implements a setting's alternatives registers their names
where it defines them, and the run config (``tfvae/train/config.py``) reads
them from here, so the config names no implementation module::

  LIKELIHOODS = choices.register("likelihood", ("bernoulli", "gaussian", ...))   # models/decoders.py
  choices.of("likelihood")                                                       # the same tuple

Importing ``tfvae`` imports every implementing module, so the registry is
full before any config is checked. A setting registered twice must name the
same choices (a module re-imported, e.g. by a test, registers again).
"""

from __future__ import annotations

__all__ = ["of", "register", "registered"]

_CHOICES: dict[str, tuple] = {}


def register(setting: str, names: tuple) -> tuple:
    """Records ``names`` as the values ``setting`` may take and returns them (the same tuple)."""
    if not isinstance(names, tuple) or not names:
        raise ValueError(f"the choices of {setting} must be a non-empty tuple; got {names!r}")
    known = _CHOICES.get(setting)
    if known is not None and known != names:
        raise ValueError(f"the choices of {setting} are already registered as {known}; got {names}")
    _CHOICES.setdefault(setting, names)
    return _CHOICES[setting]


def of(setting: str) -> tuple:
    """The registered values of ``setting``; a one-line LookupError if no module registered it."""
    try:
        return _CHOICES[setting]
    except KeyError:
        raise LookupError(f"no module registered the choices of {setting}; import tfvae first") from None


def registered() -> dict[str, tuple]:
    """{setting: its choices} for every registered setting."""
    return dict(_CHOICES)
