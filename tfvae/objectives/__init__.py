"""objectives: what a VAE is trained and evaluated on.

  bounds.py     the bounds as pure functions of distributions and samples (rate, IWAE, free bits, chunked IWAE)
  losses.py     the training objectives as serialisable parts: ELBO, IWAE
  schedules.py  KL weight schedules

``tfvae.objectives`` re-exports the bound functions of ``bounds.py`` (its 0.3.0 meaning).

May import: core.
"""

from tfvae.objectives.bounds import (
    KL_METHODS,
    check_group_size,
    chunked_iwae_bound,
    default_chunk_size,
    distortion,
    free_bits_rate,
    has_analytic_kl,
    importance_log_weights,
    iwae_bound,
    joint_layers,
    layer_rates,
    log_importance_weights,
    per_dimension_kl,
    rate,
)

__all__ = [
    "KL_METHODS",
    "check_group_size",
    "chunked_iwae_bound",
    "default_chunk_size",
    "distortion",
    "free_bits_rate",
    "has_analytic_kl",
    "importance_log_weights",
    "iwae_bound",
    "joint_layers",
    "layer_rates",
    "log_importance_weights",
    "per_dimension_kl",
    "rate",
]
