"""The rules between settings, in one place: each states one rule and gives the one-line error naming its flags.

A rule is a function of the config that returns None when the config keeps
it, else the message. ``check`` applies them in order (``config.validate``
calls it, after each value's own check). The parts keep their own checks for
callers that build them from Python; a rule here states each one that a
config alone decides, so that a bad command line fails before TensorFlow
starts, naming the flags. What depends on the data (its shape, its labels)
is checked when it is read and the model built on it.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["RULES", "check", "latent_layers"]


def latent_layers(config) -> tuple[int, ...]:
    """The stochastic layers' sizes, bottom to top: --latent_dims, or (latent_dim,) for one layer."""
    return config.latent_dims or (config.latent_dim,)


def iwae_takes_no_free_bits(config) -> str | None:
    """The IWAE bound has no per-dimension KL to floor."""
    if config.objective == "iwae" and config.free_bits:
        return f"free_bits must be 0 with objective=iwae; got {config.free_bits}"
    return None


def free_bits_groups_fit_the_layers(config) -> str | None:
    """A free-bits group is at least a layer (one group: its whole KL) or divides it."""
    if not config.free_bits or config.objective != "elbo":
        return None
    size = config.free_bits_group_size
    for layer in latent_layers(config):
        if size <= 0 or (size < layer and layer % size):
            return f"free_bits_group_size must divide latent_dim ({layer}) or be at least it; got {size}"
    return None


def per_dimension_free_bits_need_factorised_kl(config) -> str | None:
    """Free bits on groups smaller than the (top) layer need a KL that factorises over its dimensions."""
    top_size = latent_layers(config)[-1]  # below the top, a hierarchy's layers are diagonal Gaussians
    if (config.free_bits and config.objective == "elbo" and config.free_bits_group_size < top_size
            and (config.posterior != "diagonal" or config.prior != "standard_normal")):
        return (f"free_bits_group_size must be at least the (top) latent size {top_size} unless posterior=diagonal "
                "and prior=standard_normal (per-dimension KL needs both to factorise); got "
                f"{config.free_bits_group_size}")
    return None


def cyclical_schedule_has_a_cycle(config) -> str | None:
    """A cyclical KL schedule warms up within each cycle."""
    if config.kl_schedule == "cyclical" and not 0 < config.kl_warmup_steps <= config.kl_cycle_steps:
        return ("kl_cycle_steps must be >= kl_warmup_steps > 0 for a cyclical schedule; got "
                f"{config.kl_cycle_steps} and {config.kl_warmup_steps}")
    return None


def hierarchy_has_diagonal_posteriors(config) -> str | None:
    """Each layer's conditional in a hierarchical VAE is a diagonal Gaussian."""
    if len(latent_layers(config)) > 1 and config.posterior != "diagonal":
        return (f"posterior must be diagonal with several --latent_dims (each layer's conditional is a diagonal "
                f"Gaussian); got {config.posterior!r}")
    return None


def hierarchy_is_unconditional(config) -> str | None:
    """A hierarchical VAE takes no labels."""
    if len(latent_layers(config)) > 1 and config.conditional:
        return "conditional must be off with several --latent_dims (a hierarchical VAE takes no labels)"
    return None


def conditional_prior_depends_on_labels(config) -> str | None:
    """A VampPrior mixes the posteriors of pseudo-inputs, which carry no labels."""
    if config.conditional and config.prior == "vamp":
        return ("prior must not be vamp with conditional (a VampPrior's p(z) does not depend on the labels); got "
                "'vamp'")
    return None


def real_nvp_needs_two_dimensions(config) -> str | None:
    """An affine coupling layer splits the (top) latent into two non-empty halves."""
    top_size = latent_layers(config)[-1]
    if config.prior == "flow" and config.flow == "real_nvp" and top_size < 2:
        return f"latent_dim must be >= 2 with prior=flow and flow=real_nvp (the top layer's size); got {top_size}"
    return None


def conv_image_size_fits_the_strides(config) -> str | None:
    """Stride-2 convolutions halve the image once per level, so --image_size must divide evenly."""
    if config.architecture != "conv" or not config.image_size:
        return None
    factor = 2 ** len(config.hidden_units)
    if any(side % factor for side in config.image_size):
        return (f"image_size must be divisible by {factor} (2 ** len(hidden_units)) with architecture=conv; got "
                f"{','.join(str(side) for side in config.image_size)}")
    return None


RULES: tuple[Callable, ...] = (
    iwae_takes_no_free_bits,
    per_dimension_free_bits_need_factorised_kl,
    free_bits_groups_fit_the_layers,
    cyclical_schedule_has_a_cycle,
    hierarchy_has_diagonal_posteriors,
    hierarchy_is_unconditional,
    conditional_prior_depends_on_labels,
    real_nvp_needs_two_dimensions,
    conv_image_size_fits_the_strides,
)


def check(config) -> None:
    """Raises the one-line ValueError of the first rule ``config`` breaks."""
    for rule in RULES:
        message = rule(config)
        if message:
            raise ValueError(message)
