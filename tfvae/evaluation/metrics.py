"""Test-set evaluation: ELBO terms, the IWAE bound, bits/dim, active units.

  bits_per_dim  = -log_likelihood / (D * log 2),  D = H * W * C
  active_units  = #{i : Cov_x(E_q[z_i | x]) > 0.01}   (Burda et al. 2015)

All figures are means over the test examples, in nats per example unless the
name says otherwise. Test images are a float array [N, H, W, C] (with an
optional labels array), or a ``streaming.TestSplit`` read in batches (its
labels come with its batches), so a test split of any size is evaluated in
bounded memory.

A long IWAE pass (a conv model's k=5000 over 10k images takes hours on a
CPU) can be interrupted and continued: ``BoundsFile`` keeps the per-example
bounds computed so far, and ``iwae_log_likelihoods(done=...)`` skips them.
Batch b's noise is drawn from (seed, b), so the continued pass gives exactly
the bounds of an uninterrupted one.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile

import numpy as np
import tensorflow as tf

from tfvae import objectives
from tfvae.core import files, sampling, xla
from tfvae.data import in_memory
from tfvae.evaluation import iwae

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
    "standard_error",
    "kl_per_dimension",
]

ACTIVE_UNIT_THRESHOLD = 0.01


def _batches(images, labels: np.ndarray | None, batch_size: int):
    """(step, x, labels of x or None) over ``images`` in order: an array, or a ``streaming.TestSplit``."""
    if hasattr(images, "batches"):
        for step, (x, y) in enumerate(images.batches(batch_size)):
            yield step, tf.constant(x), None if y is None else tf.constant(y)
        return
    for step, x in enumerate(in_memory.eval_batches(images, batch_size)):
        y = None if labels is None else tf.constant(labels[step * batch_size : (step + 1) * batch_size])
        yield step, x, y


class ElboMetrics:
    """Mean ELBO terms of ``model`` over a set of examples, traced (and XLA-compiled) once for all calls.

      elbo = -(rate + distortion),  distortion = -log p(x|z),  rate = KL(q(z|x) || p(z)),  z ~ q(z|x)

    averaged over the examples (a hierarchical VAE adds rate_z_l per layer).
    Batch b's noise is drawn from (seed, b), so calls on the same examples
    and weights agree. A training run builds one and calls it at every
    validation: a fresh ``tf.function`` per call would trace and compile
    the model's ELBO each time (docs/performance.md has what that cost).

    Args:
      model: the VAE.
      seed: seed of the sampling noise (default 1).
      jit_compile: XLA-compile the per-batch sums (default True).

    Example:
      validate = ElboMetrics(model)
      validate(images)["elbo"]          # traced here
      validate(images)["elbo"]          # the same figure, no tracing
    """

    def __init__(self, model, seed: int = 1, jit_compile: bool = True):
        self.model, self.seed = model, seed
        self._batch_sums = xla.function(self._sums, jit_compile=jit_compile, reduce_retracing=True)

    def _sums(self, x, y, step):
        terms = self.model.elbo_terms(x, sampling.step_seed(self.seed, step, salt=2), labels=y)
        return {k: tf.reduce_sum(v) for k, v in terms.items()}

    def __call__(self, images, labels: np.ndarray | None = None, batch_size: int = 500) -> dict:
        """{elbo, rate, distortion, ...}: means over ``images`` (float [0, 1] or uint8; labels for a conditional VAE)."""
        totals = {}
        for step, x, y in _batches(images, labels, batch_size):
            for k, v in self._batch_sums(x, y, tf.constant(step, tf.int64)).items():
                totals[k] = totals.get(k, 0.0) + float(v)
        return {k: v / len(images) for k, v in totals.items()}


def elbo_metrics(model, images: np.ndarray, labels: np.ndarray | None = None, batch_size: int = 500, seed: int = 1,
                 jit_compile: bool = True) -> dict:
    """Mean elbo, rate and distortion (and a hierarchical VAE's rate_z_l per layer) over ``images``, once.

    ``images`` are float [0, 1] or uint8; labels for a conditional VAE. To
    evaluate the same model repeatedly, build one ``ElboMetrics`` and call it.
    """
    return ElboMetrics(model, seed, jit_compile)(images, labels, batch_size)


def iwae_log_likelihoods(
    model, images: np.ndarray, num_samples: int = 5000, batch_size: int = 100, seed: int = 3,
    labels: np.ndarray | None = None, done: np.ndarray | None = None, on_batch=None, strategy=None,
    chunk_size: int | None = None, memory_budget: int | None = None,
) -> np.ndarray:
    """The importance-weighted bound IWAE_k(x) <= log p(x) of each of ``images`` (log p(x|y) with labels), [N].

    ``done``: the bounds of the first len(done) examples from an earlier pass
    with the same settings (a multiple of ``batch_size``, or all of them);
    their batches are skipped and the result equals one uninterrupted pass.
    ``on_batch(bounds)`` is called with the bounds so far after each batch.
    Each batch is split over ``strategy``'s replicas, its k samples drawn
    ``chunk_size`` at a time (default: as many as ``memory_budget`` bytes per
    device hold) and retried smaller if a device runs out of memory
    (``iwae.IwaeEvaluator``); none of these change the bounds beyond float rounding.
    """
    done = np.zeros([0]) if done is None else np.asarray(done, np.float64)
    if len(done) == len(images):
        return done
    if len(done) % batch_size:
        raise ValueError(f"done holds {len(done)} bounds, not a multiple of batch_size {batch_size}")
    evaluate = iwae.IwaeEvaluator(model, num_samples, strategy, chunk_size, memory_budget)
    bounds, skipped_batches = [done], len(done) // batch_size
    for step, x, y in _batches(images, labels, batch_size):
        if step < skipped_batches:
            continue
        bounds.append(evaluate(x, y, sampling.step_seed(seed, step, salt=3)))
        if on_batch is not None:
            on_batch(np.concatenate(bounds))
    return np.concatenate(bounds)


class BoundsFileError(ValueError):
    """A bounds file that cannot be read, or holds another evaluation's bounds."""


class BoundsFile:
    """An .npz file of the per-example IWAE bounds computed so far, to continue an interrupted evaluation.

    It holds ``bounds`` (of the first n test examples, in order) and
    ``settings`` (JSON: what must match to continue, e.g. the checkpoint, k,
    batch size, data and number of examples). ``load`` returns the saved bounds when the settings match
    (None if there is no file) and refuses another evaluation's file, naming
    it; ``save`` writes to a temporary name and renames, so an interruption
    never leaves a half-written file.

    The file is checked before its bounds are used, since a wrong count would
    silently change the printed mean: exactly the members ``bounds`` and
    ``settings``, read without pickles and within the sizes the settings
    allow (``settings["num_examples"]`` float64 values); ``bounds`` a 1-D
    float array of finite values, no more than ``settings["num_examples"]``
    and a whole number of ``settings["batch_size"]`` batches (or all
    examples). Anything else is a one-line ``BoundsFileError``; the file is
    left as it is.
    """

    _SETTINGS_BYTES = 2**16  # the settings JSON of evaluate.py is a few hundred bytes
    _HEADER_BYTES = 2**12  # an .npy header

    def __init__(self, path: str, settings: dict):
        self.path, self.settings = path, dict(settings)

    def load(self) -> np.ndarray | None:
        if not os.path.lexists(self.path):
            return None
        num_examples, batch_size = self.settings.get("num_examples"), self.settings.get("batch_size")
        bounds, settings = self._read(num_examples)
        differing = sorted(k for k in set(settings) | set(self.settings) if settings.get(k) != self.settings.get(k))
        if differing:
            name = differing[0]
            raise BoundsFileError(f"{self.path} holds another evaluation's bounds ({name} {settings.get(name)!r}, "
                                  f"not {self.settings.get(name)!r}); pass another file or remove it")
        count = len(bounds)
        if num_examples is not None and count > num_examples:
            raise BoundsFileError(f"{self.path}: holds {count} bounds for {num_examples} examples; pass another "
                                  "file or remove it")
        if batch_size and count % batch_size and count != num_examples:
            raise BoundsFileError(f"{self.path}: holds {count} bounds, not whole batches of {batch_size} nor all "
                                  f"{num_examples} examples; pass another file or remove it")
        return bounds

    def _read(self, num_examples) -> tuple[np.ndarray, dict]:
        """(bounds, settings) of the file, each member's size checked before it is read."""
        limit = 8 * (num_examples if isinstance(num_examples, int) else 2**24) + self._HEADER_BYTES
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = {info.filename: info for info in archive.infolist()}
                if sorted(members) != ["bounds.npy", "settings.npy"]:
                    raise ValueError(f"members {sorted(members)[:4]}, not ['bounds', 'settings']")
                arrays = {}
                for name, most in (("bounds.npy", limit), ("settings.npy", self._SETTINGS_BYTES)):
                    if members[name].file_size > most:
                        raise ValueError(f"{name[:-4]} claims {members[name].file_size} bytes, more than the "
                                         f"{most} its settings allow")
                    with archive.open(name) as member:
                        arrays[name] = np.load(io.BytesIO(member.read(most + 1)), allow_pickle=False)
            bounds, settings = arrays["bounds.npy"], arrays["settings.npy"]
            if bounds.ndim != 1 or bounds.dtype.kind != "f":
                raise ValueError(f"bounds must be a 1-D float array; got {bounds.dtype} of shape {list(bounds.shape)}")
            if not np.isfinite(bounds).all():
                raise ValueError("bounds must be finite; found NaN or Inf")
            if settings.ndim != 0 or settings.dtype.kind != "U":
                raise ValueError("settings must be a JSON string")
            settings = json.loads(str(settings))
            if not isinstance(settings, dict):
                raise ValueError("settings must be a JSON object")
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported in one line
            text = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BoundsFileError(f"{self.path}: not a bounds file ({text}); pass another file or remove it") from None
        return bounds.astype(np.float64), settings

    def save(self, bounds: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, bounds=np.asarray(bounds, np.float64), settings=json.dumps(self.settings, sort_keys=True))
        files.write_atomic(self.path, buffer.getvalue())


def iwae_log_likelihood(
    model, images: np.ndarray, num_samples: int = 5000, batch_size: int = 100, seed: int = 3,
    labels: np.ndarray | None = None, strategy=None, chunk_size: int | None = None, memory_budget: int | None = None,
) -> float:
    """Mean importance-weighted bound log p(x) >= IWAE_k over ``images`` (log p(x|y) with labels)."""
    return float(iwae_log_likelihoods(model, images, num_samples, batch_size, seed, labels, strategy=strategy,
                                      chunk_size=chunk_size, memory_budget=memory_budget).mean())


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``: sample std (ddof=1) / sqrt(N); 0 for one value."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _latent_locations(model, images, batch_size, labels) -> list[np.ndarray]:
    """Each layer's posterior location over ``images``: [N, D_l] per layer (one for a single-layer VAE)."""
    batches = []
    for _, x, y in _batches(images, labels, batch_size):
        location = sampling.posterior_location(model.posterior(x, y))
        batches.append([t.numpy() for t in (location if isinstance(location, (list, tuple)) else [location])])
    return [np.concatenate(layer) for layer in zip(*batches, strict=True)]


def active_units(model, images: np.ndarray, batch_size: int = 500, labels: np.ndarray | None = None,
                 per_layer: bool = False):
    """Number of latent dimensions i with Cov_x(E_q[z_i | x]) > 0.01 (Burda et al. 2015).

    Cov_x is the variance over ``images`` (a variance, not a standard
    deviation); the location is E_q[z], or for a flow posterior the flow
    applied to its base mean (``sampling.posterior_location``); for a
    hierarchical VAE each layer's location given the locations above it.
    ``per_layer=True`` returns {name: count} over ``model.latent_names``.
    """
    counts = [int((layer.astype(np.float64).var(axis=0) > ACTIVE_UNIT_THRESHOLD).sum())
              for layer in _latent_locations(model, images, batch_size, labels)]
    return dict(zip(model.latent_names, counts, strict=True)) if per_layer else sum(counts)


def kl_per_dimension(model, images: np.ndarray, batch_size: int = 500,
                     labels: np.ndarray | None = None) -> np.ndarray | None:
    """Mean over ``images`` of KL(q(z_d|x) || p(z_d)) for each latent dimension d, [latent_dim] nats.

    Defined when posterior and prior are diagonal Gaussians (their sum is
    then the rate); None for families whose KL does not split by dimension.
    """
    totals = None
    for _, x, y in _batches(images, labels, batch_size):
        try:
            kl = objectives.per_dimension_kl(model.posterior(x, y), model.prior)
        except ValueError:
            return None
        batch_total = tf.reduce_sum(kl, axis=0).numpy().astype(np.float64)
        totals = batch_total if totals is None else totals + batch_total
    return totals / len(images)


def bits_per_dim(log_likelihood: float, data_shape) -> float:
    """-log p(x) / (D log 2) with D = prod(data_shape): nats per example -> bits per dimension."""
    return -log_likelihood / (math.prod(data_shape) * math.log(2.0))


def evaluate_model(
    model, images: np.ndarray, num_importance_samples: int = 5000, batch_size: int = 100, jit_compile: bool = True,
    labels: np.ndarray | None = None, bounds_file: BoundsFile | None = None, strategy=None,
    chunk_size: int | None = None, memory_budget: int | None = None,
) -> dict:
    """All test figures for ``images`` (already binarized where the likelihood needs it).

    ``log_likelihood_stderr`` is the standard error of the mean bound over
    the examples (how much it could move on another sample of test images of
    this size); a hierarchical VAE adds active units per layer. ``density``
    says whether p(x|z) is a density on [0, 1]^D (gaussian, continuous
    Bernoulli: ``decoder.is_density``), whose log_likelihood can be positive
    and bits_per_dim negative, comparable only with other densities on the
    same scale, or a probability of discrete values (bits_per_dim >= 0). With a
    ``bounds_file`` the IWAE pass continues from the bounds it holds and
    saves them after every batch. ``strategy``, ``chunk_size`` and
    ``memory_budget`` shape the IWAE pass (``iwae_log_likelihoods``), not its figures.
    """
    done = None if bounds_file is None else bounds_file.load()  # a file that does not match fails before any work
    metrics = elbo_metrics(model, images, labels, jit_compile=jit_compile)
    bounds = iwae_log_likelihoods(model, images, num_importance_samples, batch_size, labels=labels, done=done,
                                  on_batch=None if bounds_file is None else bounds_file.save, strategy=strategy,
                                  chunk_size=chunk_size, memory_budget=memory_budget)
    log_likelihood = float(bounds.mean())
    units = active_units(model, images, labels=labels, per_layer=True)
    metrics.update(
        log_likelihood=log_likelihood,
        log_likelihood_stderr=standard_error(bounds),
        num_importance_samples=int(num_importance_samples),
        bits_per_dim=bits_per_dim(log_likelihood, images.shape[1:]),
        active_units=sum(units.values()),
        num_examples=int(len(images)),
        density=bool(getattr(model.decoder, "is_density", False)),
    )
    if len(units) > 1:
        metrics.update({f"active_units_{name}": count for name, count in units.items()})
    return metrics
