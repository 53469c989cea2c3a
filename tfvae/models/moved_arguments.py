"""The arguments ``VAE`` took in tfvae 0.2, before the objective and the training step became parts of their own.

Passing one raises a one-line TypeError naming where it lives now, so code written for 0.2 says what to change
instead of failing on Keras' "Unrecognized keyword arguments".
"""

from __future__ import annotations

__all__ = ["MOVED_ARGUMENTS", "refuse"]

MOVED_ARGUMENTS = {
    "beta": "objective=tfvae.ELBO(beta=...)",
    "kl_warmup_steps": "tfvae.ELBO(kl_weight=tfvae.schedules.Linear(...))",
    "kl_schedule": "tfvae.ELBO(kl_weight=tfvae.schedules....)",
    "kl_cycle_steps": "tfvae.objectives.schedules.Cyclical(...)",
    "kl_method": "tfvae.ELBO(kl_method=...)",
    "free_bits": "tfvae.ELBO(free_bits=...)",
    "free_bits_group_size": "tfvae.ELBO(free_bits_group_size=...)",
    "num_samples": "tfvae.IWAE(num_samples=...)",
    "clip_global_norm": "model.compile(clip_global_norm=...)",
    "seed": "model.compile(seed=...)",
}


def refuse(kwargs: dict) -> None:
    """Raises TypeError("VAE no longer takes <name>; use <its new home>") if kwargs hold a 0.2 argument."""
    moved = sorted(set(kwargs) & set(MOVED_ARGUMENTS))
    if moved:
        raise TypeError(f"VAE no longer takes {moved[0]}; use {MOVED_ARGUMENTS[moved[0]]}")
