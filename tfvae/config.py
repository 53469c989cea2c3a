"""The run configuration: one dataclass that describes a training run.

Scripts fill it from flags; the library never reads flags. ``to_json`` and
``from_json`` write and read ``<model_dir>/config.json``.
"""

from __future__ import annotations

import dataclasses
import json

__all__ = ["TrainConfig", "uses_xla", "validate"]


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run (see scripts/train.py for help texts)."""

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    train_examples: int = 0
    likelihood: str = "bernoulli"
    gaussian_scale: str = "learned"
    mixture_components: int = 5
    posterior: str = "diagonal"
    prior: str = "standard_normal"
    prior_components: int = 0
    flow: str = "maf"
    flow_steps: int = 4
    flow_hidden_units: tuple[int, ...] = (256, 256)
    conditional: bool = False
    architecture: str = "mlp"
    hidden_units: tuple[int, ...] = (400,)
    activation: str = "relu"
    latent_dim: int = 20
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    learning_rate_decay: str = "none"
    beta: float = 1.0
    kl_warmup_steps: int = 0
    kl_schedule: str = "linear"
    kl_cycle_steps: int = 0
    kl_method: str = "auto"
    free_bits: float = 0.0
    free_bits_group_size: int = 1
    objective: str = "elbo"
    samples_per_example: int = 1
    clip_global_norm: float = 0.0
    seed: int = 0
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    logical_cpu_devices: int = 0
    precision: str = "float32"
    jit_compile: str = "auto"
    steps_per_execution: int = 50
    checkpoint_every_steps: int = 2000
    max_checkpoints: int = 3
    summary_every_steps: int = 200
    eval_every_epochs: int = 1
    validation_examples: int = 2000
    test_binarization_seed: int = 0

    def __post_init__(self):
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        self.flow_hidden_units = tuple(int(u) for u in self.flow_hidden_units)
        self.devices = tuple(str(d) for d in self.devices)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        values = json.loads(text)
        if isinstance(values.get("jit_compile"), bool):  # written before jit_compile took "auto"
            values["jit_compile"] = "on" if values["jit_compile"] else "off"
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config.json has unknown fields {unknown}")
        return cls(**values)


_CHOICES = {
    "likelihood": ("bernoulli", "continuous_bernoulli", "gaussian", "discretized_logistic", "categorical"),
    "posterior": ("diagonal", "full", "iaf"),
    "prior": ("standard_normal", "mixture", "vamp", "flow"),
    "flow": ("maf", "real_nvp"),
    "kl_schedule": ("linear", "cyclical"),
    "objective": ("elbo", "iwae"),
    "gaussian_scale": ("fixed", "learned", "per_pixel"),
    "architecture": ("mlp", "conv"),
    "kl_method": ("auto", "analytic", "monte_carlo"),
    "learning_rate_decay": ("none", "cosine"),
    "jit_compile": ("auto", "on", "off"),
    "strategy": ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu"),
    "precision": ("float32", "mixed_bfloat16", "mixed_float16"),
}
_POSITIVE = ("latent_dim", "epochs", "batch_size", "steps_per_execution", "checkpoint_every_steps",
             "max_checkpoints", "summary_every_steps", "eval_every_epochs", "mixture_components", "flow_steps",
             "free_bits_group_size", "samples_per_example")
_NON_NEGATIVE = ("train_examples", "kl_warmup_steps", "beta", "clip_global_norm", "validation_examples",
                 "logical_cpu_devices", "prior_components", "kl_cycle_steps", "free_bits")


def validate(config: TrainConfig) -> None:
    """Raises a one-line ValueError naming the first field with a bad value."""
    for name, choices in _CHOICES.items():
        if getattr(config, name) not in choices:
            raise ValueError(f"{name} must be one of {choices}; got {getattr(config, name)!r}")
    for name in _POSITIVE:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be > 0; got {getattr(config, name)}")
    for name in _NON_NEGATIVE:
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0; got {getattr(config, name)}")
    if not config.learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0; got {config.learning_rate}")
    if config.precision == "mixed_float16" and config.clip_global_norm:
        raise ValueError("clip_global_norm must be 0 with precision=mixed_float16 (its gradients are loss-scaled); "
                         f"got {config.clip_global_norm}")
    for name in ("hidden_units", "flow_hidden_units"):
        units = getattr(config, name)
        if not units or min(units) <= 0:
            raise ValueError(f"{name} must be a non-empty list of positive ints; got {list(units)}")
    if config.kl_schedule == "cyclical" and not 0 < config.kl_warmup_steps <= config.kl_cycle_steps:
        raise ValueError("kl_cycle_steps must be >= kl_warmup_steps > 0 with kl_schedule=cyclical; got "
                         f"{config.kl_cycle_steps} and {config.kl_warmup_steps}")
    if config.free_bits and config.latent_dim % config.free_bits_group_size:
        raise ValueError(f"free_bits_group_size must divide latent_dim ({config.latent_dim}); "
                         f"got {config.free_bits_group_size}")
    if config.free_bits and config.free_bits_group_size < config.latent_dim and (
            config.posterior != "diagonal" or config.prior != "standard_normal"):
        raise ValueError("free_bits_group_size must equal latent_dim unless posterior=diagonal and "
                         f"prior=standard_normal (per-dimension KL needs both to factorise); got {config.free_bits_group_size}")
    if config.free_bits and config.objective == "iwae":
        raise ValueError(f"free_bits must be 0 with objective=iwae; got {config.free_bits}")
    if config.conditional and config.prior == "vamp":
        raise ValueError("conditional must be false with prior=vamp (a VampPrior does not depend on the labels)")


def uses_xla(config: TrainConfig, gpu_available: bool) -> bool:
    """Whether the run compiles its steps with XLA.

    ``auto`` compiles everything except convolutions on CPU: XLA's CPU
    convolutions (in a fused multi-step loop above all) run far slower than
    TensorFlow's oneDNN kernels; see scripts/benchmark.py.
    """
    if config.jit_compile != "auto":
        return config.jit_compile == "on"
    return config.architecture != "conv" or gpu_available
