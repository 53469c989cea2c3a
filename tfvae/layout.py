"""The package's architecture in one table: its folders, what lives in each, and which folders each may import.

A folder imports only from itself and the folders listed for it, so nothing imports upward:

  core  <  nn, objectives, data  <  models  <  evaluation, serving  <  train  <  tfvae/__init__.py, scripts/

``objectives`` sits below ``models`` (a change from the first plan, core < nn < models < objectives): the bounds are
pure functions of distributions and samples and need no model, while ``VAE`` needs its default objective and its
bounds. ``tests/test_layout.py`` checks every module's imports against this table and each folder's
``__init__.py`` docstring against its row.
"""

from __future__ import annotations

__all__ = ["ANYWHERE", "FOLDERS", "Folder"]

import dataclasses


@dataclasses.dataclass(frozen=True)
class Folder:
    """One folder of the package: what lives there and the folders it may import (besides itself)."""

    contents: str
    may_import: tuple[str, ...]


FOLDERS = {
    "core": Folder("seeds and replica position, distribution strategies, files, errors, the serialisation base, "
                   "latent structure (flat or joint), the optimizer step (replica sum, loss scaling, clipping, the "
                   "gradient spike guard), the registry of settings' choices", ()),
    "nn": Folder("networks: MLP and conv trunks, residual trunks, flow networks (MADE, coupling) and their bijectors",
                 ("core",)),
    "objectives": Folder("the bounds as pure functions of distributions, the ELBO and IWAE parts, KL schedules",
                         ("core",)),
    "data": Folder("data sets and their formats, in-memory and streamed input, conversion, pixels", ("core",)),
    "models": Folder("the VAE, encoders, decoders, priors, hierarchical parts, pixel distributions",
                     ("core", "nn", "objectives")),
    "evaluation": Folder("test-set metrics, the IWAE evaluation, bounds files, image grids",
                         ("core", "data", "models", "objectives")),
    "serving": Folder("SavedModel export, warm-up records, request helpers", ("core", "models", "objectives")),
    "train": Folder("the run config, building parts from it, the trainer and its loops, checkpoints, the run "
                    "directory and its lock, preemption, summaries, optimizers, hardware, the scripts' flags",
                    ("core", "nn", "objectives", "data", "models", "evaluation")),
}
# Top-level modules with no tfvae imports of their own, which any folder may import.
ANYWHERE = ("version",)
