"""SavedModel export for TensorFlow Serving: one signature per VAE job.

The export is a ``tf.Module`` holding only the model's variables and five
``tf.function`` signatures of standard TF ops (no py_func, no tfvae or TFP
objects), so a stock ``tensorflow_model_server`` and ``tf.saved_model.load``
run it without this package:

  signature        inputs                                       outputs
  encode           images, seed                                 loc, scale*, scale_tril**, z ~ q(z|x)
  decode           z                                            probs|mean, logits|scale*
  reconstruct      images                                       reconstruction = mean of p(x | z = E_q[z])
  sample           num_samples, seed                            images = mean of p(x|z), z ~ p(z)
  log_likelihood   images, num_importance_samples, seed         elbo, iwae_bound   (nats per example)
  serving_default  = reconstruct

``loc`` is E_q[z] (for an IAF posterior, the flow of its base mean; for a
hierarchical VAE each layer's mean given the means above it, concatenated
top layer first, with each layer's ``loc_z_l`` and ``scale_z_l`` as well); the
outputs marked * exist where the distribution has a closed-form standard
deviation (not for IAF posteriors or discretized logistic likelihoods);
``scale_tril`` [batch, latent_dim, latent_dim] (** ) only for a
full-covariance posterior, whose covariance is scale_tril @ scale_tril^T.
A conditional VAE (``num_classes > 0``) takes ``labels`` too on every
signature: int32 [batch], one class in [0, num_classes) per example (per
drawn image for ``sample``).

``images`` are float32 [batch, H, W, C] in [0, 1], declared with the model's
H, W, C (so ``saved_model_cli`` and TF Serving's /metadata show them); a
model of vectors (tabular data) names that input, and sample's output,
``vectors`` instead: float32 [batch, D] in [0, 1] (``data_name``); ``z``
float32 [batch, latent_dim]. Request-level parameters (``seed``,
``num_samples``, ``num_importance_samples``) are int vectors whose elements
must all be equal: one value in the columnar ("inputs") format, the value
repeated on every instance in the row ("instances") format. ``seed`` is any
int64 and all its 64 bits count (``sampling.as_seed``). Seeds are stateless:
the same seed gives the same output on every call and after every reload,
and equals the in-process ``model.sample(n, seed=s)``,
``model.encoder(x).sample(seed=...)`` and ``model.log_likelihood(x, k, seed=s)``.

Every input is checked in the graph as well as by its declared shape (TF
Serving's C++ session feeds tensors without checking them against the
signature); a bad one fails the request with an ``InvalidArgumentError``
whose message starts with the input's name (TF Serving answers 400 with it):
wrong shape, NaN/Inf, values outside [0, 1], a batch over ``max_batch_size``,
unequal or out-of-range parameters, labels out of range or not one per example.

Per-request cost is bounded in the graph too, so a stock server enforces it
(a request is refused before any work, with the limit in the message; the
limits are in the model card): a batch holds at most ``max_batch_size``
examples (``num_samples`` of ``sample`` too); ``log_likelihood`` evaluates
batch * k decoder passes, so ``num_importance_samples`` is at most
``max_importance_samples`` and batch * num_importance_samples at most
``max_samples_per_request``; a finite ``z`` can still overflow the decoder
(|z| = 3e38 gives NaN probabilities), so ``decode`` takes |z| <= ``max_abs_latent``
and fails, naming ``z``, rather than return a non-finite output.

Layout (TF Serving's): ``<export_dir>/<version>/saved_model.pb``,
``variables/``, ``assets.extra/{model_card.json, flags.txt,
tf_serving_warmup_requests}`` (the warm-up records: ``serving_warmup``). A version is
written under a temporary name and renamed; an existing version is never
touched.
"""

from __future__ import annotations

import json
import numbers
import os
import re
import shutil
import tempfile

import tensorflow as tf

from tfvae.core import files, latents, sampling
from tfvae.models import decoders
from tfvae.serving import warmup

__all__ = [
    "DEFAULT_SIGNATURE",
    "data_name",
    "ExportError",
    "SIGNATURES",
    "ServingModule",
    "export_model",
    "next_version",
    "reference_metrics",
    "versions",
]

SIGNATURES = ("encode", "decode", "reconstruct", "sample", "log_likelihood")
DEFAULT_SIGNATURE = "reconstruct"
MODEL_CARD = "model_card.json"
MAX_SAMPLES_PER_REQUEST = 2**16  # batch * k of one log_likelihood request (docs/serving.md: 2.5 s for an MLP 784-400-20)
MAX_ABS_LATENT = 1000.0  # |z| decode takes


def data_name(data_shape) -> str:
    """The name of the examples' input (and of sample's output): "images" [H, W, C], or "vectors" [D]."""
    return "images" if len(data_shape) == 3 else "vectors"


class ExportError(ValueError):
    """An export that cannot be written (bad version, existing version, bad directory)."""


def _require(condition, message: str, *values):
    """An in-graph check: fails the call with InvalidArgumentError('<message> ...values')."""
    return tf.debugging.Assert(condition, [message, *values], summarize=8)


def _checked(value: tf.Tensor, *checks) -> tf.Tensor:
    """value, available only after every check has passed (checks run first, in the graph)."""
    with tf.control_dependencies(checks):
        return tf.identity(value)


def _has_shape(value: tf.Tensor, trailing: list[int]) -> tf.Tensor:
    """Whether value has shape [batch, *trailing]; false (not an error) for any other rank.

    A server can feed a tensor of another rank than the signature's, so the
    comparison must not assume it.
    """
    shape = tf.shape(value)
    rank = len(trailing) + 1
    padded = tf.concat([shape, tf.zeros([rank], tf.int32)], 0)[1:rank]
    return (tf.size(shape) == rank) & tf.reduce_all(tf.equal(padded, trailing))


def _request_parameter(values: tf.Tensor, name: str, low: int | None = None, high: int | None = None) -> tf.Tensor:
    """The one value of a request-level parameter vector (all elements equal, in [low, high] if given)."""
    values = _checked(values, _require(tf.size(values) > 0, f"{name}: expected at least one value"))
    first = values[0]
    checks = [_require(tf.reduce_all(tf.equal(values, first)), f"{name}: all values must be equal; got", values)]
    if low is not None:
        checks.append(_require((first >= low) & (first <= high), f"{name}: expected a value in [{low}, {high}]; got",
                               first))
    return _checked(first, *checks)


def _stddev_if_closed_form(distribution) -> dict:
    """{"scale": distribution.stddev()} where TFP has it in closed form, else {}."""
    try:
        return {"scale": distribution.stddev()}
    except NotImplementedError:
        return {}


class _Served:
    """What the signatures read of the model, held where TensorFlow does not track it: tracking the Keras model
    would save its variable wrappers as well as the variables (see ``ServingModule.model_variables``)."""

    def __init__(self, model):
        self.model = model
        self.data_shape = [int(d) for d in model.data_shape]
        self.latent_dim, self.num_classes = model.latent_dim, int(model.num_classes)
        self.bernoulli = isinstance(model.decoder, decoders.BernoulliDecoder)
        self.examples = data_name(self.data_shape)


class ServingModule(tf.Module):
    """The exportable form of a trained ``VAE``: its variables and one ``tf.function`` per signature.

    Each signature is a method (``_encode``, ``_decode``, ``_reconstruct``,
    ``_sample``, ``_log_likelihood``) bound in ``__init__`` to the input
    signature the model's shapes give it (``encode``, ``decode``, ...); the
    checks they share are the helpers ``_checked_batch``, ``_checked_examples``
    and ``_checked_labels`` (the inputs, limits and outputs are in the module
    docstring).

    Args:
      model: a built ``tfvae.VAE``; a conditional one (``num_classes > 0``)
        gets a ``labels`` input on every signature.
      max_batch_size: largest batch a request may send (default 1024); also
        the largest ``num_samples`` of ``sample``.
      max_importance_samples: largest ``num_importance_samples`` (default 10000).
      max_samples_per_request: largest batch * num_importance_samples of a
        ``log_likelihood`` request (default 2^16 = 65536; its cost is that
        many decoder passes).
      max_abs_latent: largest |z| ``decode`` takes (default 1000; prior
        draws lie within a few units of 0).
    """

    def __init__(self, model, max_batch_size: int = 1024, max_importance_samples: int = 10000,
                 max_samples_per_request: int = MAX_SAMPLES_PER_REQUEST, max_abs_latent: float = MAX_ABS_LATENT):
        super().__init__(name="tfvae_serving")
        for name, value in (("max_batch_size", max_batch_size), ("max_importance_samples", max_importance_samples),
                            ("max_samples_per_request", max_samples_per_request)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ExportError(f"{name} must be a positive int; got {value!r}")
        if isinstance(max_abs_latent, bool) or not isinstance(max_abs_latent, numbers.Real) or not (
                0 < max_abs_latent < float("inf")):
            raise ExportError(f"max_abs_latent must be a positive finite number; got {max_abs_latent!r}")
        self.limits = {"max_batch_size": int(max_batch_size), "max_importance_samples": int(max_importance_samples),
                       "max_samples_per_request": int(max_samples_per_request),
                       "max_abs_latent": float(max_abs_latent)}
        # The tf.Variables themselves: tracking Keras 3 variable wrappers saves copies that a
        # TF1-style (TF Serving) load restores while the functions read the uninitialised originals.
        self.model_variables = [v.value for v in model.variables]
        self.max_batch_size = int(max_batch_size)
        self._served = _Served(model)
        served = self._served
        images = tf.TensorSpec([None, *served.data_shape], tf.float32, name=served.examples)
        seed = tf.TensorSpec([None], tf.int64, name="seed")
        labels = [tf.TensorSpec([None], tf.int32, name="labels")] if served.num_classes else []
        z = tf.TensorSpec([None, served.latent_dim], tf.float32, name="z")
        num_samples = tf.TensorSpec([None], tf.int32, name="num_samples")
        num_importance = tf.TensorSpec([None], tf.int32, name="num_importance_samples")
        self.encode = _signature_function(self._encode, images, seed, *labels)
        self.decode = _signature_function(self._decode, z, *labels)
        self.reconstruct = _signature_function(self._reconstruct, images, *labels)
        self.sample = _signature_function(self._sample, num_samples, seed, *labels)
        self.log_likelihood = _signature_function(self._log_likelihood, images, num_importance, seed, *labels)

    # ------------------------------------------------------------ the signatures
    def _encode(self, images, seed, labels=None):
        """loc, scale (where closed-form), scale_tril (full covariance), per-layer loc_z_l/scale_z_l, z ~ q(z|x)."""
        seed = _request_parameter(seed, "seed")
        x = self._checked_examples(images)
        posterior = self._served.model.posterior(x, self._checked_labels(labels, x))
        z = latents.as_vector(posterior.sample(seed=sampling.as_seed(seed)))
        return {**_posterior_outputs(posterior, self._served.model.latent_names), "z": z}

    def _decode(self, z, labels=None):
        """p(x|z)'s probs and logits (Bernoulli) or mean and scale (where closed-form), all finite."""
        latent_dim, max_abs_latent = self._served.latent_dim, self.limits["max_abs_latent"]
        z = self._checked_batch(z, "z", [latent_dim], f"[batch, {latent_dim}]")
        z = _checked(
            z,
            _require(tf.reduce_all(tf.math.is_finite(z)), "z: values must be finite (found NaN or Inf)"),
            _require(tf.reduce_all(tf.abs(z) <= max_abs_latent),
                     f"z: values must lie in [-{max_abs_latent:g}, {max_abs_latent:g}]; got min and max",
                     tf.reduce_min(z), tf.reduce_max(z)),
        )
        z = tf.reshape(z, [-1, latent_dim])
        likelihood = self._served.model.likelihood(z, self._checked_labels(labels, z))
        if self._served.bernoulli:
            outputs = {"probs": likelihood.mean(), "logits": likelihood.distribution.logits}
        else:
            outputs = {"mean": likelihood.mean(), **_stddev_if_closed_form(likelihood)}
        return {name: _checked(value, _require(tf.reduce_all(tf.math.is_finite(value)),
                                               f"z: the decoder output {name} is not finite for these latents"))
                for name, value in outputs.items()}

    def _reconstruct(self, images, labels=None):
        """The mean of p(x | z = E_q[z])."""
        x = self._checked_examples(images)
        return {"reconstruction": self._served.model.reconstruct(x, self._checked_labels(labels, x))}

    def _sample(self, num_samples, seed, labels=None):
        """The mean of p(x|z), z ~ p(z), for num_samples draws."""
        num_samples = _request_parameter(num_samples, "num_samples", 1, self.max_batch_size)
        seed = _request_parameter(seed, "seed")
        z = self._served.model.prior.sample(num_samples, seed=sampling.as_seed(seed))
        return {self._served.examples: self._served.model.likelihood(z, self._checked_labels(labels, z)).mean()}

    def _log_likelihood(self, images, num_importance_samples, seed, labels=None):
        """The ELBO and IWAE_k bounds per example (nats), k = num_importance_samples, batch * k bounded."""
        max_samples = self.limits["max_samples_per_request"]
        k = _request_parameter(num_importance_samples, "num_importance_samples", 1,
                               self.limits["max_importance_samples"])
        seed = sampling.as_seed(_request_parameter(seed, "seed"))
        x = self._checked_examples(images)
        batch = tf.shape(x, out_type=tf.int64)[0]
        x = _checked(x, _require(batch * tf.cast(k, tf.int64) <= max_samples,
                                 f"num_importance_samples: batch * num_importance_samples must be at most "
                                 f"{max_samples}; got batch and num_importance_samples", batch, k))
        y = self._checked_labels(labels, x)
        model = self._served.model
        return {"elbo": model.elbo(x, seed, labels=y), "iwae_bound": model.iwae_bound(x, k, seed, labels=y)}

    # ------------------------------------------------------------ shared checks
    def _checked_batch(self, value, name: str, trailing: list[int], trailing_text: str):
        """value of shape [batch, *trailing] with batch <= max_batch_size, else the call fails naming ``name``."""
        return _checked(
            value,
            _require(_has_shape(value, trailing), f"{name}: expected shape {trailing_text}; got", tf.shape(value)),
            _require(tf.shape(value)[0] <= self.max_batch_size,
                     f"{name}: batch larger than the maximum of {self.max_batch_size} examples; got",
                     tf.shape(value)[0]),
        )

    def _checked_examples(self, images):
        """The examples input: the model's shape, a batch within the limit, finite values in [0, 1]."""
        data_shape, examples = self._served.data_shape, self._served.examples
        images = self._checked_batch(images, examples, data_shape, f"[batch, {', '.join(map(str, data_shape))}]")
        images = _checked(
            images,
            _require(tf.reduce_all(tf.math.is_finite(images)), f"{examples}: values must be finite (found NaN or Inf)"),
            _require(tf.reduce_all((images >= 0.0) & (images <= 1.0)),
                     f"{examples}: values must lie in [0, 1]; got min and max", tf.reduce_min(images),
                     tf.reduce_max(images)),
        )
        return tf.reshape(images, [-1, *data_shape])

    def _checked_labels(self, labels, batch_of):
        """labels: one int in [0, num_classes) per row of ``batch_of``; None for an unconditional model."""
        if labels is None:
            return None
        num_classes = self._served.num_classes
        return _checked(
            labels,
            _require(tf.size(labels) == tf.shape(batch_of)[0],
                     "labels: expected one label per example; got labels and examples", tf.size(labels),
                     tf.shape(batch_of)[0]),
            _require(tf.reduce_all((labels >= 0) & (labels < num_classes)),
                     f"labels: expected ints in [0, {num_classes}); got", labels),
        )

    # ------------------------------------------------------------ describing the export
    def signatures(self) -> dict:
        functions = {name: getattr(self, name) for name in SIGNATURES}
        return {**functions, "serving_default": functions[DEFAULT_SIGNATURE]}

    def signature_inputs(self) -> dict:
        """{signature: {input: {"dtype", "shape"}}}, the inputs each signature declares (-1: any size)."""
        described = {}
        for name, function in self.signatures().items():
            specs = function.input_signature
            described[name] = {spec.name: {"dtype": spec.dtype.name,
                                           "shape": [-1 if d is None else int(d) for d in spec.shape]}
                               for spec in specs}
        return described


def _signature_function(body, *specs: tf.TensorSpec):
    """tf.function of ``body`` called with the signature's inputs, in the order of ``specs`` (whose names the
    signature's inputs take)."""

    def call(*values):
        return body(*values)

    return tf.function(call, input_signature=list(specs))


def _posterior_outputs(posterior, names) -> dict:
    """q(z|x)'s location "loc" and, where closed-form, "scale" (per-dimension stddev), over all latent layers.

    A full-covariance Gaussian adds "scale_tril"; a hierarchy adds each
    layer's "loc_z_l" and "scale_z_l", the parameters of q(z_l | z_>l, x)
    with the layers above at their locations (the path
    ``sampling.posterior_location`` takes).
    """
    layers, location = latents.walk(posterior, lambda i, q, is_root: sampling.posterior_location(q))
    locations = latents.as_list(location)
    scales = [_stddev_if_closed_form(q).get("scale") for q in layers]
    outputs = {"loc": latents.as_vector(location)}
    if all(scale is not None for scale in scales):
        outputs["scale"] = tf.concat(scales, -1)
    if len(layers) == 1 and isinstance(getattr(posterior, "scale", None), tf.linalg.LinearOperatorLowerTriangular):
        outputs["scale_tril"] = posterior.scale.to_dense()
    if len(layers) > 1:
        for name, location_l, scale_l in zip(names, locations, scales, strict=True):
            outputs.update({f"loc_{name}": location_l, f"scale_{name}": scale_l})
    return outputs


def reference_metrics(module: ServingModule, images, description: str, labels=None, num_importance_samples: int = 1000,
                      seed: int = 0) -> dict:
    """Mean ELBO and IWAE bound (nats) of ``images`` through ``module``'s own log_likelihood signature.

    The images are sent in requests of at most ``max_batch_size`` examples
    and ``max_samples_per_request`` importance samples; each request uses
    the same ``seed``, as a client sending those requests would.
    """
    batch = min(module.max_batch_size, module.limits["max_samples_per_request"] // num_importance_samples)
    if batch < 1:
        raise ExportError(f"num_importance_samples {num_importance_samples} is more than max_samples_per_request "
                          f"{module.limits['max_samples_per_request']}")
    sums = {"elbo": 0.0, "iwae_bound": 0.0}
    for start in range(0, len(images), batch):
        inputs = [tf.constant(images[start:start + batch], tf.float32), tf.constant([num_importance_samples], tf.int32),
                  tf.constant([seed], tf.int64)]
        if labels is not None:
            inputs.append(tf.constant(labels[start:start + batch], tf.int32))
        outputs = module.log_likelihood(*inputs)
        for name in sums:
            sums[name] += float(tf.reduce_sum(tf.cast(outputs[name], tf.float64)))
    return {"images": description, "examples": len(images), "num_importance_samples": num_importance_samples,
            "seed": seed, "requests_of": batch, **{name: total / len(images) for name, total in sums.items()}}


def versions(export_dir: str) -> list[int]:
    """The versions of export_dir, ascending: its sub-folders named by digits only (as TF Serving reads them;
    ``2.bak`` or ``tmp`` are not versions)."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(int(name) for name in os.listdir(export_dir)
                  if re.fullmatch(r"[0-9]+", name) and os.path.isdir(os.path.join(export_dir, name)))


def next_version(export_dir: str) -> int:
    """1 + the largest integer version folder in export_dir (1 if none)."""
    return max(versions(export_dir), default=0) + 1


def export_model(
    model,
    export_dir: str,
    version: int | None = None,
    model_card: dict | None = None,
    extra_files: dict | None = None,
    max_batch_size: int = 1024,
    max_importance_samples: int = 10000,
    reference_data: dict | None = None,
    max_samples_per_request: int = MAX_SAMPLES_PER_REQUEST,
    max_abs_latent: float = MAX_ABS_LATENT,
) -> str:
    """Writes ``model`` as ``<export_dir>/<version>`` and returns that path.

    Args:
      model: a built ``tfvae.VAE``.
      export_dir: the model's base folder (TF Serving's --model_base_path).
      version: a positive int; default ``next_version(export_dir)``. An
        existing version raises ExportError and is left as it is.
      model_card: JSON-able facts written to ``assets.extra/model_card.json``
        (the model name -- export_dir's base name, as TF Serving's
        --model_name would usually be --, data shape, latent size, classes,
        each signature's inputs and the limits are added).
      extra_files: {file name: text} also written to ``assets.extra/``.
      max_batch_size, max_importance_samples, max_samples_per_request,
        max_abs_latent: the request limits (see ServingModule), recorded
        in the model card.
      reference_data: {"images", optional "labels", "description"}: the card
        then gets ``reference_metrics``, the mean ``elbo`` and ``iwae_bound``
        (k = 1000, seed 0) that the exported ``log_likelihood`` signature
        gives on these images, so a deployment can check it serves the same
        model (see ``reference_metrics``).
    """
    version = next_version(export_dir) if version is None else version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive int; got {version!r}")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final}: version {version} already exists; choose another --version or leave it unset")
    module = ServingModule(model, max_batch_size, max_importance_samples, max_samples_per_request, max_abs_latent)
    os.makedirs(export_dir, exist_ok=True)
    card = dict(model_card or {})
    card.update(
        model_name=os.path.basename(os.path.normpath(export_dir)),
        num_classes=int(model.num_classes),
        signature_inputs=module.signature_inputs(),
        data_shape=[int(d) for d in model.data_shape],
        data_name=data_name(model.data_shape),
        latent_dim=int(model.latent_dim),
        latent_dims=model.latent_dims,
        latent_names=model.latent_names,
        signatures=list(SIGNATURES),
        serving_default=DEFAULT_SIGNATURE,
        **module.limits,
        version=version,
    )
    if reference_data is not None:
        card["reference_metrics"] = reference_metrics(module, **reference_data)
    tmp = tempfile.mkdtemp(dir=export_dir, prefix=f".tmp-{version}-")
    try:
        os.chmod(tmp, 0o755)
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        extra = {MODEL_CARD: json.dumps(card, indent=1, sort_keys=True), **(extra_files or {})}
        for name, text in extra.items():
            files.write_atomic(os.path.join(tmp, "assets.extra", name), text)
        warmup.write_warmup_records(os.path.join(tmp, "assets.extra", warmup.WARMUP_FILE),
                                            warmup.warmup_inputs(module.signature_inputs()))
        os.rename(tmp, final)  # atomic; fails rather than replace if final appeared meanwhile
        files.fsync_directory(export_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
