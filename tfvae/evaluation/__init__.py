"""evaluation: figures of a trained model on test data, and pictures of it.

  metrics.py  ELBO terms, the IWAE bound, bounds files, bits/dim, active units, KL per dimension
  images.py   image grids as PNG and TensorBoard summaries, vector samples as .npy/.csv
  latent_views.py  what the latents control: traversals of the (top) layer, layer samples
  samples.py  what scripts/sample.py writes: prior samples, traversals, reconstructions

``tfvae.evaluation`` re-exports ``metrics.py``'s names (its 0.3.0 meaning).

May import: core, data, models, objectives.
"""

from tfvae.evaluation.metrics import (
    ACTIVE_UNIT_THRESHOLD,
    BoundsFile,
    BoundsFileError,
    ElboMetrics,
    active_units,
    bits_per_dim,
    elbo_metrics,
    evaluate_model,
    iwae_log_likelihood,
    iwae_log_likelihoods,
    kl_per_dimension,
    standard_error,
)

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "BoundsFile",
    "BoundsFileError",
    "ElboMetrics",
    "active_units",
    "bits_per_dim",
    "elbo_metrics",
    "evaluate_model",
    "iwae_log_likelihood",
    "iwae_log_likelihoods",
    "kl_per_dimension",
    "standard_error",
]
