"""SavedModel export for TensorFlow Serving: one signature per VAE job.

The export is a ``tf.Module`` holding only the model's variables and five
``tf.function`` signatures of standard TF ops (no py_func, no tfvae or TFP
objects), so a stock ``tensorflow_model_server`` and ``tf.saved_model.load``
run it without this package:

  signature        inputs                                       outputs
  encode           images, seed                                 loc, scale*, z ~ q(z|x)
  decode           z                                            probs|mean, logits|scale*
  reconstruct      images                                       reconstruction = mean of p(x | z = E_q[z])
  sample           num_samples, seed                            images = mean of p(x|z), z ~ p(z)
  log_likelihood   images, num_importance_samples, seed         elbo, iwae_bound   (nats per example)
  serving_default  = reconstruct

``loc`` is E_q[z] (for an IAF posterior, the flow of its base mean); the
outputs marked * exist where the distribution has a closed-form standard
deviation (not for IAF posteriors or discretized logistic likelihoods).
Conditional VAEs are not exported (their signatures would need labels).

``images`` are float32 [batch, H, W, C] in [0, 1]; ``z`` float32
[batch, latent_dim]. Request-level parameters (``seed``, ``num_samples``,
``num_importance_samples``) are int vectors whose elements must all be equal:
one value in the columnar ("inputs") format, the value repeated on every
instance in the row ("instances") format. Seeds are stateless: the same seed
gives the same output on every call and after every reload, and equals the
in-process ``model.sample(n, seed=s)``, ``model.encoder(x).sample(seed=...)``
and ``model.log_likelihood(x, k, seed=s)``.

Every input is checked in the graph; a bad one fails the request with an
``InvalidArgumentError`` whose message starts with the input's name (TF
Serving answers 400 with it): wrong shape, NaN/Inf, values outside [0, 1], a
batch over ``max_batch_size``, unequal or out-of-range parameters.

Layout (TF Serving's): ``<export_dir>/<version>/saved_model.pb``,
``variables/``, ``assets.extra/{model_card.json, flags.txt}``. A version is
written under a temporary name and renamed; an existing version is never
touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from tfvae import decoders, files, sampling

__all__ = [
    "DEFAULT_SIGNATURE",
    "ExportError",
    "SIGNATURES",
    "ServingModule",
    "export_model",
    "next_version",
]

SIGNATURES = ("encode", "decode", "reconstruct", "sample", "log_likelihood")
DEFAULT_SIGNATURE = "reconstruct"
MODEL_CARD = "model_card.json"


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


def _request_parameter(values: tf.Tensor, name: str, low: int, high: int) -> tf.Tensor:
    """The one value of a request-level parameter vector (all elements equal, in [low, high])."""
    values = _checked(values, _require(tf.size(values) > 0, f"{name}: expected at least one value"))
    first = values[0]
    return _checked(
        first,
        _require(tf.reduce_all(tf.equal(values, first)), f"{name}: all values must be equal; got", values),
        _require((first >= low) & (first <= high), f"{name}: expected a value in [{low}, {high}]; got", first),
    )


def _stddev_if_closed_form(distribution) -> dict:
    """{"scale": distribution.stddev()} where TFP has it in closed form, else {}."""
    try:
        return {"scale": distribution.stddev()}
    except NotImplementedError:
        return {}


class ServingModule(tf.Module):
    """The exportable form of a trained ``VAE``: variables plus signature functions.

    Args:
      model: a built, unconditional ``tfvae.VAE``.
      max_batch_size: largest batch a request may send (default 1024); also
        the largest ``num_samples`` of ``sample``.
      max_importance_samples: largest ``num_importance_samples`` (default 10000).
    """

    def __init__(self, model, max_batch_size: int = 1024, max_importance_samples: int = 10000):
        super().__init__(name="tfvae_serving")
        if model.num_classes:
            raise ExportError(f"conditional VAEs (num_classes={model.num_classes}) cannot be exported yet: the "
                              "signatures take no labels")
        if int(max_batch_size) < 1 or int(max_importance_samples) < 1:
            raise ExportError(
                f"max_batch_size and max_importance_samples must be positive; got {max_batch_size}, "
                f"{max_importance_samples}"
            )
        # The tf.Variables themselves: tracking Keras 3 variable wrappers saves copies that a
        # TF1-style (TF Serving) load restores while the functions read the uninitialised originals.
        self.model_variables = [v.value for v in model.variables]
        data_shape = [int(d) for d in model.data_shape]
        latent_dim = model.latent_dim
        bernoulli = isinstance(model.decoder, decoders.BernoulliDecoder)
        max_batch = int(max_batch_size)
        shape_text = f"[batch, {', '.join(map(str, data_shape))}]"

        def check_images(images):
            images = _checked(
                images,
                _require(_has_shape(images, data_shape), f"images: expected shape {shape_text}; got", tf.shape(images)),
                _require(tf.shape(images)[0] <= max_batch,
                         f"images: batch larger than the maximum of {max_batch} examples; got", tf.shape(images)[0]),
            )
            images = _checked(
                images,
                _require(tf.reduce_all(tf.math.is_finite(images)), "images: values must be finite (found NaN or Inf)"),
                _require(tf.reduce_all((images >= 0.0) & (images <= 1.0)),
                         "images: values must lie in [0, 1]; got min and max", tf.reduce_min(images),
                         tf.reduce_max(images)),
            )
            return tf.reshape(images, [-1, *data_shape])

        def likelihood_outputs(likelihood):
            if bernoulli:
                return {"probs": likelihood.mean(), "logits": likelihood.distribution.logits}
            return {"mean": likelihood.mean(), **_stddev_if_closed_form(likelihood)}

        images_spec = tf.TensorSpec([None, None, None, None], tf.float32, name="images")
        seed_spec = tf.TensorSpec([None], tf.int64, name="seed")

        @tf.function(input_signature=[images_spec, seed_spec])
        def encode(images, seed):
            seed = _request_parameter(seed, "seed", 0, 2**62)
            posterior = model.encoder(check_images(images))
            return {"loc": sampling.posterior_location(posterior), **_stddev_if_closed_form(posterior),
                    "z": posterior.sample(seed=sampling.as_seed(seed))}

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="z")])
        def decode(z):
            z = _checked(
                z,
                _require(_has_shape(z, [latent_dim]), f"z: expected shape [batch, {latent_dim}]; got", tf.shape(z)),
                _require(tf.shape(z)[0] <= max_batch,
                         f"z: batch larger than the maximum of {max_batch} examples; got", tf.shape(z)[0]),
            )
            z = _checked(z, _require(tf.reduce_all(tf.math.is_finite(z)), "z: values must be finite (found NaN or Inf)"))
            return likelihood_outputs(model.decoder(tf.reshape(z, [-1, latent_dim])))

        @tf.function(input_signature=[images_spec])
        def reconstruct(images):
            return {"reconstruction": model.reconstruct(check_images(images))}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="num_samples"), seed_spec])
        def sample(num_samples, seed):
            num_samples = _request_parameter(num_samples, "num_samples", 1, max_batch)
            seed = _request_parameter(seed, "seed", 0, 2**62)
            z = model.prior.sample(num_samples, seed=sampling.as_seed(seed))
            return {"images": model.decoder(z).mean()}

        @tf.function(input_signature=[images_spec, tf.TensorSpec([None], tf.int32, name="num_importance_samples"),
                                      seed_spec])
        def log_likelihood(images, num_importance_samples, seed):
            k = _request_parameter(num_importance_samples, "num_importance_samples", 1, int(max_importance_samples))
            seed = sampling.as_seed(_request_parameter(seed, "seed", 0, 2**62))
            x = check_images(images)
            return {"elbo": model.elbo(x, seed), "iwae_bound": model.iwae_bound(x, k, seed)}

        self.encode, self.decode, self.reconstruct = encode, decode, reconstruct
        self.sample, self.log_likelihood = sample, log_likelihood

    def signatures(self) -> dict:
        functions = {name: getattr(self, name) for name in SIGNATURES}
        return {**functions, "serving_default": functions[DEFAULT_SIGNATURE]}


def next_version(export_dir: str) -> int:
    """1 + the largest integer version folder in export_dir (1 if none)."""
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(name) for name in os.listdir(export_dir) if re.fullmatch(r"\d+", name)]
    return max(versions, default=0) + 1


def export_model(
    model,
    export_dir: str,
    version: int | None = None,
    model_card: dict | None = None,
    extra_files: dict | None = None,
    max_batch_size: int = 1024,
    max_importance_samples: int = 10000,
) -> str:
    """Writes ``model`` as ``<export_dir>/<version>`` and returns that path.

    Args:
      model: a built ``tfvae.VAE``.
      export_dir: the model's base folder (TF Serving's --model_base_path).
      version: a positive int; default ``next_version(export_dir)``. An
        existing version raises ExportError and is left as it is.
      model_card: JSON-able facts written to ``assets.extra/model_card.json``
        (data shape, latent size, signatures and limits are added).
      extra_files: {file name: text} also written to ``assets.extra/``.
      max_batch_size, max_importance_samples: the request limits (see ServingModule).
    """
    version = next_version(export_dir) if version is None else version
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be a positive int; got {version!r}")
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise ExportError(f"{final}: version {version} already exists; choose another --version or leave it unset")
    module = ServingModule(model, max_batch_size, max_importance_samples)
    os.makedirs(export_dir, exist_ok=True)
    card = dict(model_card or {})
    card.update(
        data_shape=[int(d) for d in model.data_shape],
        latent_dim=int(model.latent_dim),
        signatures=list(SIGNATURES),
        serving_default=DEFAULT_SIGNATURE,
        max_batch_size=int(max_batch_size),
        max_importance_samples=int(max_importance_samples),
        version=version,
    )
    tmp = tempfile.mkdtemp(dir=export_dir, prefix=f".tmp-{version}-")
    try:
        os.chmod(tmp, 0o755)
        tf.saved_model.save(module, tmp, signatures=module.signatures())
        extra = {MODEL_CARD: json.dumps(card, indent=1, sort_keys=True), **(extra_files or {})}
        for name, text in extra.items():
            files.write_atomic(os.path.join(tmp, "assets.extra", name), text)
        os.rename(tmp, final)  # atomic; fails rather than replace if final appeared meanwhile
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
