"""The run configuration: ``TrainConfig``, six sections that together describe a training run.

  config.data           DataConfig          the data set and how it is read
  config.model          ModelConfig         likelihood, posterior, prior, networks, latents
  config.loss           LossConfig          the training objective (ELBO/IWAE, KL weight, free bits)
  config.optimization   OptimizationConfig  epochs, batch, learning rate, clipping
  config.distribution   DistributionConfig  strategy, devices, precision, XLA
  config.run            RunConfig           seed, checkpoints, summaries, validation, early stopping

Each setting is declared once, in its section (``sections.py``), with its
documentation (the flag's help), its choices (registered by the module that
implements them: this module imports no implementation) and its range.
``validate`` checks every value on its own, then the rules between fields
(``rules.py``, the one place that states them).

The flat view is the stable interface: a setting's name is unique over the
sections and is also its flag's name and its key in a run's config.json, so
``TrainConfig(epochs=3, latent_dim=8)``, ``config.epochs``, ``to_dict()``
(flat, the keys of config.json), ``from_dict`` and
``dataclasses.replace(config, epochs=5)`` work as in tfvae 0.3.0.
"""

from __future__ import annotations

import dataclasses
import json

from tfvae.train import rules
from tfvae.train.sections import (
    DataConfig,
    DistributionConfig,
    LossConfig,
    ModelConfig,
    OptimizationConfig,
    RunConfig,
)
from tfvae.train.settings import check_value, choices_of, help_of

__all__ = [
    "SECTIONS",
    "VERSION_KEY",
    "DataConfig",
    "DistributionConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizationConfig",
    "RunConfig",
    "TrainConfig",
    "field_help",
    "validate",
]

VERSION_KEY = "tfvae_version"  # the entry of a run's config.json that records the tfvae version that wrote it

# The sections in order: the attribute of TrainConfig that holds each, and its class.
SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optimization": OptimizationConfig,
    "distribution": DistributionConfig,
    "run": RunConfig,
}
_SETTINGS = tuple(field for section in SECTIONS.values() for field in dataclasses.fields(section))
_SECTION_OF = {field.name: name for name, section in SECTIONS.items() for field in dataclasses.fields(section)}
if len(_SECTION_OF) != len(_SETTINGS) or set(_SECTION_OF) & set(SECTIONS):
    raise ImportError("a setting's name must be unique over the sections and differ from every section's name")


@dataclasses.dataclass(init=False)
class TrainConfig:
    """Everything that defines a training run, in six sections (``config.model.latent_dim``).

    Args:
      data, model, loss, optimization, distribution, run: the sections
        (``DataConfig()``, ... when not given).
      **settings: settings by their flat names (the flag names), e.g.
        ``epochs=3``; each replaces its value in the section that holds it.

    Every setting also reads and writes by its flat name (``config.epochs`` is
    ``config.optimization.epochs``). Each is documented where it is declared,
    in ``tfvae/train/sections.py``, and ``scripts/train.py --help`` shows the
    same text.

    Example:
      config = tfvae.TrainConfig(epochs=3, latent_dim=8)
      assert config.model.latent_dim == config.latent_dim == 8
      longer = config.replace(epochs=10)                  # or dataclasses.replace(config, epochs=10)
      same = tfvae.TrainConfig.from_json(config.to_json())  # config.json's flat keys
    """

    data: DataConfig
    model: ModelConfig
    loss: LossConfig
    optimization: OptimizationConfig
    distribution: DistributionConfig
    run: RunConfig

    def __init__(self, data: DataConfig | None = None, model: ModelConfig | None = None,
                 loss: LossConfig | None = None, optimization: OptimizationConfig | None = None,
                 distribution: DistributionConfig | None = None, run: RunConfig | None = None, **settings):
        unknown = sorted(set(settings) - set(_SECTION_OF))
        if unknown:
            raise TypeError(f"TrainConfig() got an unexpected keyword argument {unknown[0]!r}")
        given = {"data": data, "model": model, "loss": loss, "optimization": optimization,
                 "distribution": distribution, "run": run}
        for name, section in SECTIONS.items():
            value = given[name]
            if value is not None and not isinstance(value, section):
                raise TypeError(f"TrainConfig {name} must be a {section.__name__}; got {type(value).__name__}")
            own = {key: v for key, v in settings.items() if _SECTION_OF[key] == name}
            # always a copy: configs made from one another (replace) never share a section
            object.__setattr__(self, name, dataclasses.replace(value, **own) if value is not None else section(**own))

    def __getattr__(self, name: str):
        section = _SECTION_OF.get(name)
        if section is None:
            raise AttributeError(f"'TrainConfig' object has no attribute {name!r}")
        return getattr(getattr(self, section), name)

    def __setattr__(self, name: str, value) -> None:
        section = _SECTION_OF.get(name)
        if section is None:
            object.__setattr__(self, name, value)
        else:
            setattr(getattr(self, section), name, value)

    def __dir__(self):
        return sorted({*super().__dir__(), *_SECTION_OF})

    @classmethod
    def settings(cls) -> tuple[dataclasses.Field, ...]:
        """Every setting's field, section by section (``field.name`` is the flat name, the flag's)."""
        return _SETTINGS

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every setting's flat name (the flag names, config.json's keys), section by section."""
        return tuple(field.name for field in _SETTINGS)

    @classmethod
    def section_of(cls, name: str) -> str:
        """The section that holds the setting ``name`` ("model" for "latent_dim"); KeyError if none does."""
        return _SECTION_OF[name]

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``: settings by their flat names, or whole sections (``model=ModelConfig(...)``)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """{flat name: value} for every setting: the entries of a run's config.json."""
        return {field.name: getattr(getattr(self, _SECTION_OF[field.name]), field.name) for field in _SETTINGS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        """The config of flat ``values``; a one-line ValueError names unknown fields and ``source``.

        A run's config.json also records the tfvae version that wrote it
        (``VERSION_KEY``): that entry is not a setting and is left out
        (``tfvae.load_config(model_dir)`` also checks the version). A
        discretized logistic config without ``pixel_mixture`` was written
        before that field existed, by tfvae 0.3.0, whose mixture is
        ``per_channel``.
        """
        values = {name: value for name, value in values.items() if name != VERSION_KEY}
        if "pixel_mixture" not in values and values.get("likelihood") == "discretized_logistic":
            values["pixel_mixture"] = "per_channel"
        unknown = sorted(set(values) - set(_SECTION_OF))
        if unknown:
            raise ValueError(f"{source} has unknown fields {unknown}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The config of a JSON object, e.g. a run's config.json: ``TrainConfig.from_json(open(path).read())``."""
        return cls.from_dict(json.loads(text), "config.json")


def validate(config: TrainConfig) -> None:
    """Raises the one-line ValueError of the first bad setting: each value on its own, then the rules between them.

    Each value is checked against its choices and range, declared with its
    field (``sections.py``); then every rule between fields
    (``rules.check``). Pure Python: no TensorFlow is started, so the scripts
    call it before they build a strategy. What depends on the data (its
    shape, its labels) is checked when the data is read and the model built.
    """
    for name in SECTIONS:
        section = getattr(config, name)
        for field in dataclasses.fields(section):
            check_value(field, getattr(section, field.name))
    rules.check(config)


def field_help() -> dict[str, str]:
    """{setting: its documentation} (the flags' help), from each field's declaration."""
    return {field.name: help_of(field) for field in _SETTINGS}


def __getattr__(name: str):
    """The names tfvae 0.3.0's config module had: ``CHOICES`` (now registered by the implementing modules and
    read through ``settings.choices_of``), ``JIT_COMPILE_MODES`` and ``uses_xla`` (now in ``hardware``)."""
    if name == "CHOICES":
        return {field.name: choices_of(field) for field in _SETTINGS if choices_of(field) is not None}
    if name in ("JIT_COMPILE_MODES", "uses_xla"):
        from tfvae.train import hardware

        return getattr(hardware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
