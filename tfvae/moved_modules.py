"""Where the flat modules of tfvae 0.3.0 live now: ``import tfvae.rundir`` and ``tfvae.rundir`` keep working.

tfvae 0.4 moved its modules into folders (``tfvae/layout.py``). Each old path is an alias of the module at its new
home (the same object, so a patch through either name is seen by both). The module paths in ``tfvae.__all__``
(``tfvae.data``, ``tfvae.evaluation``, ``tfvae.export``, ...) are public and stay; any other old path still works
but gives a ``DeprecationWarning`` naming the new one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

__all__ = ["MOVED", "PUBLIC", "install", "resolve"]

MOVED = {
    "checkpoints": "tfvae.train.checkpoints", "cli": "tfvae.train.cli", "config": "tfvae.train.config",
    "conversion": "tfvae.data.conversion", "decoders": "tfvae.models.decoders",
    "distribute": "tfvae.core.distribute", "encoders": "tfvae.models.encoders", "errors": "tfvae.core.errors",
    "export": "tfvae.serving.export", "factory": "tfvae.train.factory", "files": "tfvae.core.files",
    "flows": "tfvae.nn.flows", "gradient_guard": "tfvae.core.gradient_guard", "hardware": "tfvae.train.hardware",
    "hierarchical": "tfvae.models.hierarchical", "image_folders": "tfvae.data.image_folders",
    "images": "tfvae.evaluation.images", "loaders": "tfvae.data.loaders", "loading": "tfvae.train.loading",
    "loops": "tfvae.train.loops", "losses": "tfvae.objectives.losses", "model": "tfvae.models.vae",
    "networks": "tfvae.nn.networks", "optimizers": "tfvae.train.optimizers", "pipeline": "tfvae.data.in_memory",
    "pixel_distributions": "tfvae.models.pixel_distributions", "pixels": "tfvae.data.pixels",
    "preemption": "tfvae.train.preemption", "priors": "tfvae.models.priors", "records": "tfvae.data.records",
    "resnet": "tfvae.nn.resnet", "rundir": "tfvae.train.rundir", "runlock": "tfvae.train.runlock",
    "sampling": "tfvae.core.sampling", "schedules": "tfvae.objectives.schedules",
    "serialisable": "tfvae.core.serialisable", "serving_requests": "tfvae.serving.requests",
    "serving_warmup": "tfvae.serving.warmup", "sources": "tfvae.data.sources", "streaming": "tfvae.data.streaming",
    "summaries": "tfvae.train.summaries", "tfds_data": "tfvae.data.tfds_data", "training": "tfvae.train.training",
}
# Old module paths named in tfvae.__all__: public names, no warning.
PUBLIC = frozenset({"distribute", "export", "hierarchical", "losses", "schedules"})


def resolve(name: str):
    """The module an old name (``"rundir"``) now is, with a DeprecationWarning unless the name is public."""
    if name not in PUBLIC:
        warnings.warn(f"tfvae.{name} moved to {MOVED[name]}; the old path will be removed in tfvae 0.5",
                      DeprecationWarning, stacklevel=3)
    return importlib.import_module(MOVED[name])


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, name: str):
        self.name = name

    def create_module(self, spec):
        module = resolve(self.name)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module):
        # Already executed at its new home; the import system set the alias's spec on it: give its own back.
        module.__spec__ = self.own_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Answers ``import tfvae.<old>`` with the module at its new home."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != "tfvae" or name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(name))


def install() -> None:
    """Puts the finder of old paths first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
