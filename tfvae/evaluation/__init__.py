"""evaluation: figures of a trained model on test data, and pictures of it.

  metrics.py  ELBO terms, the IWAE bound, bounds files, bits/dim, active units, KL per dimension
  iwae.py     the IWAE bounds of a batch: split over replicas, chunked by memory, retried smaller on OOM
  chunking.py the activation memory of one IWAE chunk, the memory budget, samples per chunk
  images.py   image grids as PNG and TensorBoard summaries, vector samples as .npy/.csv
  latent_views.py  what the latents control: traversals of the (top) layer, layer samples
  samples.py  what scripts/sample.py writes: prior samples, traversals, reconstructions

``tfvae.evaluation`` re-exports ``metrics.py``'s names (its 0.3.0 meaning) and ``iwae.py``'s.

May import: core, data, models, objectives.
"""

from tfvae.evaluation.iwae import EvaluationMemoryError, IwaeEvaluator
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
    "EvaluationMemoryError",
    "IwaeEvaluator",
    "active_units",
    "bits_per_dim",
    "elbo_metrics",
    "evaluate_model",
    "iwae_log_likelihood",
    "iwae_log_likelihoods",
    "kl_per_dimension",
    "standard_error",
]
