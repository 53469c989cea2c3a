"""The variational autoencoder: a keras.Model composed of encoder, decoder, prior and objective.

  q(z|x)  = encoder(x)             a tfd.Distribution, batch [B], event [latent_dim]
  p(x|z)  = decoder(z)             a tfd.Distribution, batch [B], event = data shape
  p(z)    = prior.distribution()   a tfd.Distribution, event [latent_dim]

The model holds the probabilistic model and its bounds, in nats per example:

  distortion = -log p(x|z),  z ~ q(z|x) reparameterised
  rate       = KL(q(z|x) || p(z))   (analytic where TFP registers it, else Monte Carlo)
  elbo       = E_q[log p(x|z)] - KL(q(z|x) || p(z)) = -(distortion + rate) <= log p(x)
  IWAE_k     = log (1/k) sum_j p(x, z_j) / q(z_j|x)  (``log_likelihood``)

What it is trained on is a separate part, ``objective`` (``tfvae.ELBO``,
``tfvae.IWAE``: beta, KL schedules, free bits, k). How a step applies the
gradients (replica reduction, loss scaling, clipping, the spike guard) is
``core.optimizer_step.OptimizerStep``, which ``compile`` builds from its
arguments; the model computes the loss and its gradients and reports its terms. A conditional VAE (num_classes > 0) feeds one-hot
labels y to the encoder and decoder: q(z|x, y), p(x|z, y), p(z).

What the model needs from its parts, in one place:
  * encoder: a Keras layer mapping x [B, *data_shape] to a distribution with
    batch shape [B] and event shape [latent_dim];
  * decoder: a Keras layer mapping z [N, latent_dim] to a distribution with
    batch shape [N] and event shape = data shape. The model folds any
    sample dimensions of z into N before calling it and restores them
    (``tfd.BatchReshape``), so a decoder never sees more than rank-2 input.
    A decoder whose class sets ``accepts_sample_dimensions = True`` (tfvae's
    own do) maps z [..., N, latent_dim] to batch shape [..., N] itself and is
    called on z as it is: its log_prob then broadcasts x over the samples
    without a copy of x per sample;
  * prior: a layer with ``distribution()`` returning p(z) with empty batch
    shape; latent_dim is the prior's ``latent_dim`` or its event size;
  * data shape: from the first batch the model is built on (``build``);
  * conditional parts (num_classes > 0): also take ``condition=`` one-hot
    labels [B, num_classes] and have ``condition_dim == num_classes``.

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
  Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders.
  Sohn, Lee & Yan (2015), conditional VAE.
"""

from __future__ import annotations

import collections

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import objectives
from tfvae.core import distribute, latents, optimizer_step, sampling, xla
from tfvae.models import moved_arguments
from tfvae.objectives import losses

tfd = tfp.distributions

__all__ = ["VAE", "LatentSample"]

LatentSample = collections.namedtuple("LatentSample", ["approx_posterior", "prior", "z", "log_likelihood", "rate",
                                                       "layer_rates"])
LatentSample.__doc__ = """k posterior samples of a batch: q, p(z), z [k, B, D], log p(x|z_j) [k, B], the rate [B]
and ``layer_rates``, the list of each latent layer's rate [B] (one for a flat latent; their sum is the rate).

For a hierarchical VAE z is the list of layers [k, B, D_l] in the joint's order (``core.latents``)."""

def _features(data):
    """The images of a batch that may be x, (x,), (x, y) or {"image": x}."""
    if isinstance(data, dict):
        return data["image"]
    if isinstance(data, (tuple, list)):
        return data[0]
    return data


def _labels(data):
    """The labels of a batch (x, y) or {"image": x, "label": y}; None if it has none."""
    if isinstance(data, dict):
        return data.get("label")
    if isinstance(data, (tuple, list)) and len(data) > 1:
        return data[1]
    return None


def _has_own_build(layer) -> bool:
    return type(layer).build is not keras.layers.Layer.build


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(keras.Model):
    """Variational autoencoder with pluggable encoder, decoder, prior and objective.

    Args:
      encoder: layer mapping x to q(z|x) (e.g. ``tfvae.GaussianEncoder``).
      decoder: layer mapping z to p(x|z) (e.g. ``tfvae.BernoulliDecoder``).
      prior: layer whose ``distribution()`` is p(z) (e.g. ``tfvae.StandardNormalPrior``).
      objective: what ``train_step`` minimises: ``tfvae.ELBO(...)`` (default
        ``ELBO()``), ``tfvae.IWAE(num_samples=k)`` or the name "elbo"/"iwae".
      num_classes: > 0 makes a conditional VAE on integer labels
        0..num_classes-1 (the encoder and decoder need ``condition_dim=num_classes``).

    Example:
      model = tfvae.VAE(
          encoder=tfvae.GaussianEncoder(latent_dim=20, hidden_units=[400]),
          decoder=tfvae.BernoulliDecoder(data_shape=(28, 28, 1), hidden_units=[400]),
          prior=tfvae.StandardNormalPrior(latent_dim=20),
          objective=tfvae.ELBO(kl_weight=tfvae.schedules.Linear(warmup_steps=10_000)))
      model.compile(optimizer="adam", seed=0)
      model.fit(x_train, epochs=10, batch_size=128)
      q = model.encoder(x)                        # tfd.MultivariateNormalDiag
      elbo = model.elbo(x)                        # [B] nats
      log_px = model.log_likelihood(x, num_samples=5000)
    """

    def __init__(self, encoder, decoder, prior, objective=None, num_classes=0, **kwargs):
        moved_arguments.refuse(kwargs)
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0; got {num_classes!r}")
        if num_classes and getattr(prior, "uses_encoder", False):
            raise ValueError(f"a conditional VAE (num_classes > 0; --conditional) cannot use {type(prior).__name__}: "
                             "its prior p(z) does not depend on the labels")
        for part in (encoder, decoder):
            if int(getattr(part, "condition_dim", 0)) != int(num_classes):
                raise ValueError(f"{type(part).__name__}.condition_dim must equal num_classes ({num_classes}); "
                                 f"got {getattr(part, 'condition_dim', 0)}")
        self.encoder = encoder
        self.decoder = decoder
        self.prior_layer = prior
        self.objective = losses.get(objective)
        self.num_classes = int(num_classes)
        for size in getattr(prior, "latent_dims", [getattr(prior, "latent_dim", None)]):
            if size is not None:
                self.objective.check_latent_dim(int(size))
        self.data_shape = None
        self.seed = 0
        self.noise_scheme = "global_batch"
        self.optimizer_step = optimizer_step.OptimizerStep()  # compile's arguments replace it
        self.elbo_tracker = keras.metrics.Mean(name="elbo")
        self.rate_tracker = keras.metrics.Mean(name="rate")
        self.distortion_tracker = keras.metrics.Mean(name="distortion")
        self.loss_tracker = keras.metrics.Mean(name="loss")

    # ----------------------------------------------------------------- parts
    @property
    def prior(self) -> tfd.Distribution:
        """p(z), built from the prior layer's current weights (a VampPrior's from the encoder's)."""
        if getattr(self.prior_layer, "uses_encoder", False):
            return self.prior_layer.distribution(encoder=self.encoder)
        return self.prior_layer.distribution()

    @property
    def latent_dim(self) -> int:
        if hasattr(self.prior_layer, "latent_dim"):
            return int(self.prior_layer.latent_dim)
        return int(self.prior.event_shape[-1])

    @property
    def latent_dims(self) -> list[int]:
        """The sizes of the stochastic layers, bottom to top ([latent_dim] for a single-layer VAE)."""
        return [int(d) for d in getattr(self.prior_layer, "latent_dims", [self.latent_dim])]

    @property
    def latent_names(self) -> list[str]:
        """The latents' names in the joint's order, top first (["z"] for a single-layer VAE)."""
        return latents.names(self.latent_dims)

    def build(self, input_shape):
        """Builds the parts for data of shape input_shape[1:] (a user's layer by one call on zeros)."""
        if isinstance(input_shape, (tuple, list)) and input_shape and isinstance(input_shape[0], (tuple, list)):
            input_shape = input_shape[0]  # ((images), (labels))
        self.data_shape = tuple(int(d) for d in input_shape[1:])
        if not self.prior_layer.built:
            self.prior_layer.build(None)
        for size in self.latent_dims:
            self.objective.check_latent_dim(size)
        condition = tf.zeros([1, self.num_classes]) if self.num_classes else None
        for part, shape in ((self.encoder, (None, *self.data_shape)), (self.decoder, (None, self.latent_dim))):
            if part.built:
                continue
            if _has_own_build(part):
                part.build(shape)
            else:
                dummy = tf.zeros([1, *shape[1:]])
                part(dummy) if condition is None else part(dummy, condition=condition)
        self.built = True

    def call(self, x, training=False):
        """The reconstruction: mean of p(x | z = mean of q(z|x))."""
        return self.reconstruct(x)

    # ------------------------------------------------------------ the model
    def condition(self, labels):
        """One-hot [B, num_classes] float32 labels for a conditional VAE; None for an unconditional one.

        Labels outside [0, num_classes) raise InvalidArgumentError, eagerly and
        inside a ``tf.function`` alike (tf.one_hot would map them to zeros);
        not in code tfvae compiles with XLA (``core.xla``), whose labels are
        the run's data, checked when read.
        """
        if not self.num_classes:
            if labels is not None:
                raise ValueError("labels were given to an unconditional VAE (num_classes=0)")
            return None
        if labels is None:
            raise ValueError(f"this VAE is conditional (num_classes={self.num_classes}); pass labels")
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        if not xla.tracing_for_xla():  # XLA would drop the checks, with a warning each (see core/xla.py)
            message = f"labels must be ints in [0, {self.num_classes}) (num_classes)"
            with tf.control_dependencies([tf.debugging.assert_non_negative(labels, message=message),
                                          tf.debugging.assert_less(labels, self.num_classes, message=message)]):
                labels = tf.identity(labels)
        return tf.one_hot(labels, self.num_classes, dtype=tf.float32)

    def posterior(self, x, labels=None) -> tfd.Distribution:
        """q(z|x) (q(z|x, y) for a conditional VAE), batch shape [B]."""
        x = tf.convert_to_tensor(x, tf.float32)
        condition = self.condition(labels)
        return self.encoder(x) if condition is None else self.encoder(x, condition=condition)

    def _decodes_sample_dimensions(self) -> bool:
        return bool(getattr(self.decoder, "accepts_sample_dimensions", False))

    def _decode_folded(self, z, labels):
        """(p(x|z) over the N = prod(leading dims) latents of z, leading shape of z)."""
        z = tf.convert_to_tensor(latents.as_vector(z), tf.float32)
        leading = tf.shape(z)[:-1]
        flat_z = tf.reshape(z, [-1, self.latent_dim])
        condition = self.condition(labels)
        if condition is None:
            return self.decoder(flat_z), leading
        condition = tf.reshape(tf.broadcast_to(condition, tf.concat([leading, [self.num_classes]], 0)),
                               [-1, self.num_classes])
        return self.decoder(flat_z, condition=condition), leading

    def likelihood(self, z, labels=None) -> tfd.Distribution:
        """p(x|z) (p(x|z, y) for a conditional VAE); z [..., B, latent_dim] gives batch shape [..., B].

        With sample dimensions the decoder's distribution is wrapped in
        ``tfd.BatchReshape``; its ``log_prob`` then takes x broadcast to the
        full batch shape (``data_log_prob`` does that for you). A hierarchical
        VAE's z is the list of its layers (concatenated for the decoder).
        """
        z = tf.convert_to_tensor(latents.as_vector(z), tf.float32)
        if self._decodes_sample_dimensions():
            condition = self.condition(labels)
            return self.decoder(z) if condition is None else self.decoder(z, condition=condition)
        distribution, leading = self._decode_folded(z, labels)
        if z.shape.rank == 2:
            return distribution
        return tfd.BatchReshape(distribution, leading)

    def data_log_prob(self, x, z, labels=None) -> tf.Tensor:
        """log p(x|z) for z [..., B, latent_dim] and x [B, *data_shape]: a [..., B] tensor in nats."""
        x = tf.convert_to_tensor(x, tf.float32)
        if self._decodes_sample_dimensions():
            return self.likelihood(z, labels).log_prob(x)
        distribution, leading = self._decode_folded(z, labels)
        data_shape = tf.shape(x)[1:]
        x = tf.reshape(tf.broadcast_to(x, tf.concat([leading, data_shape], 0)), tf.concat([[-1], data_shape], 0))
        return tf.reshape(distribution.log_prob(x), leading)

    def sample_terms(self, x, seed, num_samples: int = 1, labels=None, kl_method: str = "auto") -> LatentSample:
        """k reparameterised posterior samples of x and what the bounds need (see ``LatentSample``).

        The noise of global example i depends only on (seed, i)
        (``sampling.sample_posterior``), so it is replica-invariant; a
        ``sampling.PerExampleSeed`` (what ``compute_loss_and_gradients`` passes
        under ``compile(noise_scheme="per_example")``) draws each replica's
        examples' noise only.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        approx_posterior, prior = self.posterior(x, labels), self.prior  # a VampPrior runs the encoder: once
        z = sampling.sample_posterior(approx_posterior, seed, num_samples)
        log_likelihood = self.data_log_prob(x, z, labels)
        layer_rates = objectives.layer_rates(approx_posterior, prior, z, kl_method)
        return LatentSample(approx_posterior, prior, z, log_likelihood, tf.add_n(layer_rates), layer_rates)

    def elbo_terms(self, x, seed=None, num_samples: int = 1, labels=None, kl_method: str = "auto") -> dict:
        """Per-example ``distortion``, ``rate`` and ``elbo`` (nats, shape [B]).

        distortion = -mean_j log p(x | z_j), z_j ~ q(z|x) reparameterised;
        rate = KL(q(z|x) || p(z)), analytic or Monte Carlo per ``kl_method``;
        elbo = -(distortion + rate). A hierarchical VAE adds each layer's
        rate as ``rate_z_l`` (their sum is ``rate``).
        """
        sample = self.sample_terms(x, seed, num_samples, labels, kl_method)
        distortion = -tf.reduce_mean(sample.log_likelihood, axis=0)
        terms = {"distortion": distortion, "rate": sample.rate, "elbo": -(distortion + sample.rate)}
        if len(sample.layer_rates) > 1:
            terms.update({f"rate_{name}": layer_rate
                          for name, layer_rate in zip(self.latent_names, sample.layer_rates, strict=True)})
        return terms

    def elbo(self, x, seed=None, labels=None) -> tf.Tensor:
        """Single-sample ELBO estimate per example, [B] nats."""
        return self.elbo_terms(x, seed, labels=labels)["elbo"]

    def rate(self, x, seed=None, labels=None) -> tf.Tensor:
        """KL(q(z|x) || p(z)) per example, [B] nats."""
        return self.elbo_terms(x, seed, labels=labels)["rate"]

    def distortion(self, x, seed=None, labels=None) -> tf.Tensor:
        """-log p(x|z), z ~ q(z|x), per example, [B] nats."""
        return self.elbo_terms(x, seed, labels=labels)["distortion"]

    def log_likelihood(self, x, num_samples: int = 5000, seed=None, chunk_size=None, labels=None,
                       rows=None) -> tf.Tensor:
        """Importance-weighted bound on log p(x) with k = num_samples, [B] nats.

        IWAE_k(x) = logsumexp_j(log p(x|z_j) + log p(z_j) - log q(z_j|x)) - log k,
        z_j ~ q(z|x). The k samples are drawn ``chunk_size`` at a time (by
        default so that chunk * B * data_size <= 2**24; ``tfvae.evaluation``
        sizes chunks by the device's memory instead) and combined with a
        running logsumexp, so memory does not grow with k
        (see ``objectives.chunked_iwae_bound``). Sample j's noise depends on
        (seed, j, row) only, so the bound does not depend on chunk_size beyond
        float rounding. ``rows = (first_row, num_rows)``: x is rows first_row
        .. first_row + B - 1 of a batch of num_rows, and gets those rows'
        bounds of the whole batch. k=1 is the ELBO estimator. For a
        conditional VAE it bounds log p(x|y).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int; got {num_samples!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
        x = tf.convert_to_tensor(x, tf.float32)
        if rows is not None:
            if (not isinstance(rows, (tuple, list)) or len(rows) != 2 or any(isinstance(r, bool) for r in rows)
                    or not all(isinstance(r, int) for r in rows) or rows[0] < 0
                    or rows[0] + int(x.shape[0]) > rows[1]):
                raise ValueError(f"rows must be (first_row, num_rows) ints with 0 <= first_row and first_row + "
                                 f"{int(x.shape[0])} (the rows of x) <= num_rows; got {rows!r}")
            rows = (tf.constant(rows[0], tf.int32), tf.constant(rows[1], tf.int32))
        return self._log_likelihood_function(x, tf.constant(num_samples, tf.int32), sampling.as_seed(seed),
                                             tf.constant(chunk_size or -1, tf.int32),
                                             None if labels is None else tf.convert_to_tensor(labels), rows)

    @tf.function(reduce_retracing=True)
    def _log_likelihood_function(self, x, num_samples, seed, chunk_size, labels, rows=None):
        return self.iwae_bound(x, num_samples, seed, chunk_size, labels, rows)

    def iwae_bound(self, x, num_samples, seed, chunk_size=-1, labels=None, rows=None) -> tf.Tensor:
        """``log_likelihood`` for tensors inside a graph (e.g. a serving signature), unchecked, [B] nats.

        ``num_samples`` and ``chunk_size`` may be int32 scalar tensors; a
        chunk_size <= 0 takes the default; ``seed`` is a [2] stateless seed.
        ``rows = (first_row, num_rows)``: x is rows first_row .. of a batch of
        num_rows, whose bounds are those of the whole batch's (default: this
        replica's share of the global batch; see ``sampling.sample_importance``).
        """
        chunk_size = tf.convert_to_tensor(chunk_size, tf.int32)
        chunk = tf.where(chunk_size > 0, chunk_size, objectives.default_chunk_size(x))
        return objectives.chunked_iwae_bound(x, self.posterior(x, labels), self.prior,
                                             lambda z: self.data_log_prob(x, z, labels), num_samples, seed, chunk,
                                             rows)

    def iwae_log_weights(self, x, seed, first_sample, num_samples, labels=None, rows=None) -> tf.Tensor:
        """log w_j = log p(x|z_j) + log p(z_j) - log q(z_j|x) of samples j = first_sample .. + num_samples - 1, [n, B].

        The work of one chunk of ``iwae_bound`` (its memory is what
        ``tfvae.evaluation`` sizes chunks by); ``rows`` as in ``iwae_bound``.
        """
        x = tf.convert_to_tensor(x, tf.float32)
        return objectives.importance_log_weights(self.posterior(x, labels), self.prior,
                                                 lambda z: self.data_log_prob(x, z, labels), seed, first_sample,
                                                 num_samples, rows)

    def sample(self, num_samples: int, seed=None, labels=None) -> tf.Tensor:
        """Mean of p(x|z) for z ~ p(z): [num_samples, *data_shape].

        A conditional VAE needs ``labels``: one per sample ([num_samples]), or
        a single label for all of them.
        """
        z = self.prior.sample(int(num_samples), seed=sampling.as_seed(seed))
        if labels is not None:
            labels = tf.broadcast_to(tf.reshape(tf.convert_to_tensor(labels), [-1]), [int(num_samples)])
        return self.likelihood(z, labels).mean()

    def reconstruct(self, x, labels=None) -> tf.Tensor:
        """Mean of p(x | z = z_q(x)): the deterministic reconstruction of x.

        z_q(x) is E_q[z] where q has a closed-form mean (Gaussians), else the
        image of the base distribution's mean under the flow (IAF).
        """
        z = sampling.posterior_location(self.posterior(x, labels))
        return self.likelihood(z, labels).mean()

    # -------------------------------------------------------------- training
    def compile(self, optimizer="adam", seed: int = 0, clip_global_norm: float | None = None,
                gradient_spike_factor: float | None = None, noise_scheme: str = "global_batch", **kwargs):
        """keras.Model.compile, plus the training settings that do not change the model.

        Args:
          optimizer: as for Keras.
          seed: int from which all training noise (posterior samples) is
            derived as (seed, step), so a resumed run repeats the same draws.
          clip_global_norm: if set (> 0), clip the all-replica, unscaled
            gradient to this global norm (the same on 1 or N replicas, unlike
            Keras' ``global_clipnorm``). Default None.
          gradient_spike_factor: if set (> 1), clip an update whose gradient
            norm exceeds factor times the running mean of recent ones to that
            level and count it (the ``gradient_spikes`` metric; the guard's
            state, ``model.gradient_guard``, is checkpointed with the model).
            Default None.
          noise_scheme: how a training step draws its posterior noise
            (``sampling.NOISE_SCHEMES``): "global_batch" (default; every
            replica draws the global batch's noise and keeps its rows, the
            stream of tfvae 0.3) or "per_example" (each replica draws only
            its examples' noise, by counter: the same on any number of
            replicas and with or without XLA). Evaluation (``test_step``,
            ``elbo_terms``) keeps global_batch noise either way.
          **kwargs: the rest of keras.Model.compile (not ``loss``: the
            objective is the model's ``objective``).

        The two gradient settings build ``model.optimizer_step``
        (``core.optimizer_step.OptimizerStep``: the rules and their maths),
        which applies every training step's gradients.
        """
        if kwargs.get("loss") is not None:
            raise ValueError("VAE.compile takes no loss; pass objective=tfvae.ELBO(...) or tfvae.IWAE(...) to VAE")
        self.optimizer_step = optimizer_step.OptimizerStep(clip_global_norm, gradient_spike_factor)
        if self.optimizer_step.guard is not None:
            self.gradient_guard = self.optimizer_step.guard  # tracked here: its checkpoint key since tfvae 0.3.0
        self.seed = int(seed)
        self.noise_scheme = sampling.check_noise_scheme(noise_scheme)
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def clip_global_norm(self) -> float | None:
        return self.optimizer_step.clip_global_norm

    @property
    def gradient_spike_factor(self) -> float | None:
        return self.optimizer_step.gradient_spike_factor

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config.update(seed=self.seed, clip_global_norm=self.clip_global_norm,
                          gradient_spike_factor=self.gradient_spike_factor, noise_scheme=self.noise_scheme)
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.elbo_tracker, self.rate_tracker, self.distortion_tracker]
        return trackers + self.optimizer_step.metrics(getattr(self, "optimizer", None))

    def _update_trackers(self, terms, loss, weight=None):
        self.loss_tracker.update_state(loss, sample_weight=weight)
        for tracker in (self.elbo_tracker, self.rate_tracker, self.distortion_tracker):
            tracker.update_state(terms[tracker.name], sample_weight=None if weight is None else
                                 tf.broadcast_to(weight, tf.shape(terms[tracker.name])))

    def train_step(self, data):
        """One gradient step on the global-batch mean of the objective's loss.

        Each replica divides its sum by the *global* batch size; the optimizer
        sums gradients over replicas, giving the global mean. Noise comes from
        (seed, step) by the compiled ``noise_scheme``, so a resumed run repeats the same draws.
        """
        terms, loss, grads = self.compute_loss_and_gradients(_features(data), self._data_labels(data))
        self.apply_gradients_across_replicas(terms, loss, grads)
        return {m.name: m.result() for m in self.metrics}

    def _data_labels(self, data):
        """The labels of a batch for a conditional VAE; an unconditional one ignores any (as Keras passes y)."""
        return _labels(data) if self.num_classes else None

    def fit(self, *args, **kwargs):
        """keras.Model.fit, on one machine; multi-worker training goes through tfvae.train_and_evaluate."""
        if distribute.num_workers(tf.distribute.get_strategy()) > 1:
            raise NotImplementedError(
                "VAE.fit does not support MultiWorkerMirroredStrategy (Keras metric reduction fails across "
                "workers, keras-team/keras#20585); use tfvae.train_and_evaluate (scripts/train.py "
                "--strategy=multi_worker_mirrored)"
            )
        return super().fit(*args, **kwargs)

    def compute_loss_and_gradients(self, x, labels=None):
        """This replica's part of a step, with no cross-replica communication.

        loss = sum_i loss_i / global_batch over this replica's examples i
        (loss_i from ``objective.loss``); returns (terms, loss, gradients of
        the optimizer-scaled loss). Being replica-local, it can be
        XLA-compiled on its own under any tf.distribute strategy.
        """
        x = tf.cast(x, tf.float32)
        step = self.optimizer.iterations
        with tf.GradientTape() as tape:
            seed = sampling.training_seed(self.seed, step, self.noise_scheme)
            terms, per_example_loss = self.objective.loss(self, x, seed, step, labels)
            loss = tf.reduce_sum(per_example_loss) / distribute.global_batch_size(x)
            scaled_loss = self.optimizer.scale_loss(loss)
        return terms, loss, tape.gradient(scaled_loss, self.trainable_variables)

    def apply_gradients_across_replicas(self, terms, loss, grads):
        """Applies the step by ``model.optimizer_step`` (every replica alike) and updates the metrics.

        ``loss`` is this replica's share (its sum over the global batch), so
        ``loss * num_replicas`` is what the replicas' metric mean averages to
        the global mean. Under loss scaling a skipped step's (non-finite)
        figures are left out of the metrics.
        """
        applied = self.optimizer_step.apply(self.optimizer, grads, self.trainable_variables)
        _, num_replicas = sampling.replica_position()
        loss = loss * tf.cast(num_replicas, tf.float32)
        if applied is None:
            self._update_trackers(terms, loss)
            return
        self._update_trackers({k: tf.where(applied, v, tf.zeros_like(v)) for k, v in terms.items()},
                              tf.where(applied, loss, 0.0), tf.cast(applied, tf.float32))

    def test_step(self, data):
        x = tf.cast(_features(data), tf.float32)
        terms = self.elbo_terms(x, sampling.step_seed(self.seed, 0, salt=1), labels=self._data_labels(data))
        self._update_trackers(terms, -terms["elbo"])
        return {m.name: m.result() for m in self.metrics}

    # ----------------------------------------------------------- serialising
    def get_config(self):
        return {
            "name": self.name,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "prior": keras.saving.serialize_keras_object(self.prior_layer),
            "objective": keras.saving.serialize_keras_object(self.objective),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in ("encoder", "decoder", "prior"):
            config[part] = keras.saving.deserialize_keras_object(config[part])
        config["objective"] = losses.get(config.get("objective"))
        return cls(**config)
