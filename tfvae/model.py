"""The variational autoencoder: a keras.Model composed of encoder, decoder, prior.

  q(z|x)  = encoder(x)          a tfd.Distribution, batch [B], event [latent_dim]
  p(x|z)  = decoder(z)          a tfd.Distribution, batch [B], event data shape
  p(z)    = prior.distribution()

Training maximises the evidence lower bound per example,

  ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) = -(distortion + rate),

with k = num_samples reparameterised samples z_j = b(eps_j), eps_j ~ N(0, I).
The training loss per example is, for objective="elbo",

  distortion + w_t * rate      (rate replaced by sum_g max(free_bits, KL_g)
                                when free_bits > 0),

and for objective="iwae",

  -log (1/k) sum_j exp(log p(x|z_j) - w_t (log q(z_j|x) - log p(z_j))),

the negative IWAE bound (w_t = 1) with the same KL weight; w_t follows the
KL schedule (objectives.kl_weight). A conditional VAE (num_classes > 0) feeds
one-hot labels y to the encoder and decoder: q(z|x, y), p(x|z, y), p(z).

References:
  Kingma & Welling (2014), Auto-Encoding Variational Bayes.
  Burda, Grosse & Salakhutdinov (2015), Importance Weighted Autoencoders.
  Higgins et al. (2017), beta-VAE.
  Kingma et al. (2016), Improved Variational Inference with Inverse
  Autoregressive Flow (free bits).
  Fu et al. (2019), Cyclical Annealing Schedule.
  Sohn, Lee & Yan (2015), conditional VAE.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import objectives, sampling

tfd = tfp.distributions

__all__ = ["OBJECTIVES", "VAE"]

OBJECTIVES = ("elbo", "iwae")


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


def _as_seed(seed) -> tf.Tensor:
    """An int, a [2] int tensor or None (fresh randomness) -> a [2] int32 stateless seed."""
    if seed is None:
        return tfp.random.sanitize_seed(None)
    if isinstance(seed, int):
        return tf.constant([seed & 0x7FFFFFFF, 0], tf.int32)
    return tf.cast(seed, tf.int32)


@keras.saving.register_keras_serializable(package="tfvae")
class VAE(keras.Model):
    """Variational autoencoder with pluggable encoder, decoder and prior.

    Args:
      encoder: layer mapping x to q(z|x) (e.g. ``tfvae.GaussianEncoder``).
      decoder: layer mapping z to p(x|z) (e.g. ``tfvae.BernoulliDecoder``).
      prior: layer whose ``distribution()`` is p(z) (e.g. ``tfvae.StandardNormalPrior``).
      beta: weight of the rate in the training loss (default 1.0, the ELBO).
      kl_warmup_steps: warm-up of the rate weight from 0 to beta over this
        many optimizer steps (default 0: no warm-up).
      kl_schedule: "linear" (one warm-up) or "cyclical" (a warm-up at the
        start of every ``kl_cycle_steps`` steps).
      kl_cycle_steps: cycle length of the cyclical schedule.
      free_bits: KL floor in nats per group of latent dimensions (0: none).
      free_bits_group_size: latent dimensions per free-bits group (default 1:
        per dimension, which needs diagonal Gaussian posterior and prior).
      objective: "elbo" or "iwae" (the importance weighted bound).
      num_samples: k, posterior samples per example in training (default 1).
      num_classes: > 0 makes a conditional VAE on integer labels 0..num_classes-1
        (the encoder and decoder need ``condition_dim=num_classes``).
      kl_method: "auto" (analytic where TFP registers it, else Monte Carlo),
        "analytic" or "monte_carlo".
      clip_global_norm: if set, the all-replica gradient is clipped to this
        global norm before the update, so it means the same on 1 or N replicas.
      seed: int from which all training noise is derived as (seed, step).

    Example:
      model = tfvae.VAE(
          encoder=tfvae.GaussianEncoder(latent_dim=20, hidden_units=[400]),
          decoder=tfvae.BernoulliDecoder(data_shape=(28, 28, 1), hidden_units=[400]),
          prior=tfvae.StandardNormalPrior(latent_dim=20))
      q = model.encoder(x)                        # tfd.MultivariateNormalDiag
      elbo = model.elbo(x)                        # [B] nats
      log_px = model.log_likelihood(x, num_samples=5000)
    """

    def __init__(
        self,
        encoder,
        decoder,
        prior,
        beta=1.0,
        kl_warmup_steps=0,
        kl_method="auto",
        clip_global_norm=None,
        seed=0,
        kl_schedule="linear",
        kl_cycle_steps=0,
        free_bits=0.0,
        free_bits_group_size=1,
        objective="elbo",
        num_samples=1,
        num_classes=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0; got {beta}")
        if int(kl_warmup_steps) < 0:
            raise ValueError(f"kl_warmup_steps must be >= 0; got {kl_warmup_steps}")
        if kl_method not in objectives.KL_METHODS:
            raise ValueError(f"kl_method must be one of {objectives.KL_METHODS}; got {kl_method!r}")
        if clip_global_norm is not None and not clip_global_norm > 0:
            raise ValueError(f"clip_global_norm must be > 0 or None; got {clip_global_norm}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be a positive int; got {num_samples}")
        if not free_bits >= 0:
            raise ValueError(f"free_bits must be >= 0; got {free_bits}")
        if free_bits and objective == "iwae":
            raise ValueError("free_bits applies to the elbo objective; got objective='iwae' with free_bits > 0")
        if free_bits and prior.latent_dim % int(free_bits_group_size):
            raise ValueError(f"free_bits_group_size must divide latent_dim ({prior.latent_dim}); "
                             f"got {free_bits_group_size}")
        objectives.kl_weight(0, beta, int(kl_warmup_steps), kl_schedule, int(kl_cycle_steps))  # validates
        if int(num_classes) < 0:
            raise ValueError(f"num_classes must be >= 0; got {num_classes}")
        if num_classes and getattr(prior, "uses_encoder", False):
            raise ValueError(f"a conditional VAE cannot use {type(prior).__name__}: its prior p(z) does not "
                             "depend on the labels")
        for part in (encoder, decoder):
            if int(getattr(part, "condition_dim", num_classes)) != int(num_classes):
                raise ValueError(f"{type(part).__name__}.condition_dim must equal num_classes ({num_classes}); "
                                 f"got {part.condition_dim}")
        self.kl_schedule = kl_schedule
        self.kl_cycle_steps = int(kl_cycle_steps)
        self.free_bits = float(free_bits)
        self.free_bits_group_size = int(free_bits_group_size)
        self.objective = objective
        self.num_samples = int(num_samples)
        self.num_classes = int(num_classes)
        self.encoder = encoder
        self.decoder = decoder
        self.prior_layer = prior
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.kl_method = kl_method
        self.clip_global_norm = None if clip_global_norm is None else float(clip_global_norm)
        self.seed = int(seed)
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
        return int(self.prior.event_shape[-1])

    def build(self, input_shape):
        if isinstance(input_shape, (tuple, list)) and input_shape and isinstance(input_shape[0], (tuple, list)):
            input_shape = input_shape[0]  # ((images), (labels))
        if not self.encoder.built:
            self.encoder.build(input_shape)
        if not self.decoder.built:
            self.decoder.build((input_shape[0], self.prior_layer.latent_dim))
        if not self.prior_layer.built:
            self.prior_layer.build(None)
        self.built = True

    def call(self, x, training=False):
        """The reconstruction: mean of p(x | z = mean of q(z|x))."""
        return self.reconstruct(x)

    # ------------------------------------------------------------ objectives
    def condition(self, labels):
        """One-hot [B, num_classes] float32 labels for a conditional VAE; None for an unconditional one."""
        if not self.num_classes:
            if labels is not None:
                raise ValueError("labels were given to an unconditional VAE (num_classes=0)")
            return None
        if labels is None:
            raise ValueError(f"this VAE is conditional (num_classes={self.num_classes}); pass labels")
        return tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), self.num_classes, dtype=tf.float32)

    def posterior(self, x, labels=None) -> tfd.Distribution:
        """q(z|x) (q(z|x, y) for a conditional VAE)."""
        x = tf.convert_to_tensor(x, tf.float32)
        condition = self.condition(labels)
        return self.encoder(x) if condition is None else self.encoder(x, condition=condition)

    def likelihood(self, z, labels=None) -> tfd.Distribution:
        """p(x|z) (p(x|z, y) for a conditional VAE); z may have leading sample dimensions."""
        condition = self.condition(labels)
        return self.decoder(z) if condition is None else self.decoder(z, condition=condition)

    def _sampled_terms(self, x, seed, num_samples, labels):
        """q, p(z), z [k, B, D], log p(x|z_j) [k, B] and rate [B] from k reparameterised samples."""
        x = tf.convert_to_tensor(x, tf.float32)
        approx_posterior, prior = self.posterior(x, labels), self.prior  # a VampPrior runs the encoder: once
        z = sampling.sample_posterior(approx_posterior, _as_seed(seed), num_samples)
        log_likelihood = self.likelihood(z, labels).log_prob(x)
        rate = objectives.rate(approx_posterior, prior, z, self.kl_method)
        return approx_posterior, prior, z, log_likelihood, rate

    def elbo_terms(self, x, seed=None, num_samples: int = 1, labels=None) -> dict:
        """Per-example ``distortion``, ``rate`` and ``elbo`` (nats, shape [B]).

        distortion = -mean_j log p(x | z_j), z_j ~ q(z|x) reparameterised;
        rate = KL(q(z|x) || p(z)), analytic or Monte Carlo per ``kl_method``;
        elbo = -(distortion + rate).
        """
        _, _, _, log_likelihood, rate = self._sampled_terms(x, seed, num_samples, labels)
        distortion = -tf.reduce_mean(log_likelihood, axis=0)
        return {"distortion": distortion, "rate": rate, "elbo": -(distortion + rate)}

    def training_terms(self, x, seed, kl_weight, labels=None) -> tuple[dict, tf.Tensor]:
        """(elbo terms, per-example training loss [B]) for this model's objective.

        elbo:  distortion + w * rate, or distortion + w * sum_g max(free_bits, KL_g);
        iwae:  -logmeanexp_j(log p(x|z_j) - w (log q(z_j|x) - log p(z_j))).
        """
        approx_posterior, prior, z, log_likelihood, rate = self._sampled_terms(x, seed, self.num_samples, labels)
        distortion = -tf.reduce_mean(log_likelihood, axis=0)
        terms = {"distortion": distortion, "rate": rate, "elbo": -(distortion + rate)}
        if self.objective == "iwae":
            log_ratio = approx_posterior.log_prob(z) - prior.log_prob(z)
            return terms, -objectives.iwae_bound(log_likelihood - kl_weight * log_ratio)
        if self.free_bits:
            rate = objectives.free_bits_rate(approx_posterior, prior, rate, self.free_bits,
                                             self.free_bits_group_size)
        return terms, distortion + kl_weight * rate

    def elbo(self, x, seed=None, labels=None) -> tf.Tensor:
        """Single-sample ELBO estimate per example, [B] nats."""
        return self.elbo_terms(x, seed, labels=labels)["elbo"]

    def rate(self, x, seed=None, labels=None) -> tf.Tensor:
        """KL(q(z|x) || p(z)) per example, [B] nats."""
        return self.elbo_terms(x, seed, labels=labels)["rate"]

    def distortion(self, x, seed=None, labels=None) -> tf.Tensor:
        """-log p(x|z), z ~ q(z|x), per example, [B] nats."""
        return self.elbo_terms(x, seed, labels=labels)["distortion"]

    def log_likelihood(self, x, num_samples: int = 5000, seed=None, chunk_size=None, labels=None) -> tf.Tensor:
        """Importance-weighted bound on log p(x) with k = num_samples, [B] nats.

        IWAE_k(x) = logsumexp_j(log p(x|z_j) + log p(z_j) - log q(z_j|x)) - log k,
        z_j ~ q(z|x). The k samples are drawn ``chunk_size`` at a time (by
        default so that chunk * B * data_size <= 2**24) and combined with a
        running logsumexp, so memory does not grow with k
        (see ``objectives.chunked_iwae_bound``). k=1 is the ELBO estimator.
        For a conditional VAE it bounds log p(x|y).
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int; got {num_samples!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
        x = tf.convert_to_tensor(x, tf.float32)
        chunk = tf.constant(-1 if chunk_size is None else chunk_size, tf.int32)
        labels = None if labels is None else tf.convert_to_tensor(labels)
        return self._log_likelihood_graph(x, tf.constant(num_samples, tf.int32), _as_seed(seed), chunk, labels)

    @tf.function(reduce_retracing=True)
    def _log_likelihood_graph(self, x, num_samples, seed, chunk_size, labels=None):
        chunk = tf.where(chunk_size > 0, chunk_size, objectives.default_chunk_size(x))
        return objectives.chunked_iwae_bound(x, self.posterior(x, labels), self.prior,
                                             lambda z: self.likelihood(z, labels), num_samples, seed, chunk)

    # --------------------------------------------------------------- helpers
    def sample(self, num_samples: int, seed=None, labels=None) -> tf.Tensor:
        """Mean of p(x|z) for z ~ p(z): [num_samples, *data_shape] images.

        A conditional VAE needs ``labels``: one per sample ([num_samples]), or
        a single label for all of them.
        """
        z = self.prior.sample(int(num_samples), seed=_as_seed(seed))
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
    @property
    def metrics(self):
        return [self.loss_tracker, self.elbo_tracker, self.rate_tracker, self.distortion_tracker]

    def _update_trackers(self, terms, loss):
        self.loss_tracker.update_state(loss)
        for tracker in (self.elbo_tracker, self.rate_tracker, self.distortion_tracker):
            tracker.update_state(terms[tracker.name])

    def train_step(self, data):
        """One gradient step on the global-batch mean of the training loss (see ``training_terms``).

        Each replica divides its sum by the *global* batch size; the optimizer
        sums gradients over replicas, giving the global mean. Noise comes from
        (seed, step), so a resumed run repeats the same draws.
        """
        terms, loss, grads = self.compute_loss_and_gradients(_features(data), self._data_labels(data))
        self.apply_gradients_across_replicas(terms, loss, grads)
        return {m.name: m.result() for m in self.metrics}

    def _data_labels(self, data):
        """The labels of a batch for a conditional VAE; an unconditional one ignores any (as Keras passes y)."""
        return _labels(data) if self.num_classes else None

    def fit(self, *args, **kwargs):
        """keras.Model.fit, on one machine; multi-worker training goes through tfvae.train_and_evaluate."""
        strategy = tf.distribute.get_strategy()
        resolver = getattr(strategy, "cluster_resolver", None)
        num_tasks = sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values()) if resolver else 0
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and num_tasks > 1:
            raise NotImplementedError(
                "VAE.fit does not support MultiWorkerMirroredStrategy (Keras metric reduction fails across "
                "workers, keras-team/keras#20585); use tfvae.train_and_evaluate (scripts/train.py "
                "--strategy=multi_worker_mirrored)"
            )
        return super().fit(*args, **kwargs)

    def compute_loss_and_gradients(self, x, labels=None):
        """This replica's part of a step, with no cross-replica communication.

        loss = sum_i loss_i / global_batch over this replica's examples i
        (loss_i from ``training_terms``); returns (terms, loss, gradients of the
        optimizer-scaled loss). Being replica-local, it can be XLA-compiled
        on its own under any tf.distribute strategy.
        """
        x = tf.cast(x, tf.float32)
        step = self.optimizer.iterations
        _, num_replicas = sampling.replica_position()
        global_batch = tf.cast(tf.shape(x)[0] * num_replicas, tf.float32)
        with tf.GradientTape() as tape:
            weight = objectives.kl_weight(step, self.beta, self.kl_warmup_steps, self.kl_schedule,
                                          self.kl_cycle_steps)
            terms, per_example_loss = self.training_terms(x, sampling.step_seed(self.seed, step), weight, labels)
            loss = tf.reduce_sum(per_example_loss) / global_batch
            scaled_loss = self.optimizer.scale_loss(loss)
        return terms, loss, tape.gradient(scaled_loss, self.trainable_variables)

    def apply_gradients_across_replicas(self, terms, loss, grads):
        """Sums the replicas' gradients (clipping the sum if asked), applies them, updates the metrics."""
        _, num_replicas = sampling.replica_position()
        if self.clip_global_norm is not None:
            grads = self._clip_reduced_gradients(grads, num_replicas)
        self.optimizer.apply(grads, self.trainable_variables)
        self._update_trackers(terms, loss * tf.cast(num_replicas, tf.float32))

    def _clip_reduced_gradients(self, grads, num_replicas):
        """Clips the all-replica gradient sum by global norm.

        The optimizer sums what each replica passes it, so each replica passes
        clipped_sum / num_replicas.
        """
        if num_replicas > 1:
            grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)
        grads, _ = tf.clip_by_global_norm(grads, self.clip_global_norm)
        if num_replicas > 1:
            grads = [g / num_replicas for g in grads]
        return grads

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
            "beta": self.beta,
            "kl_warmup_steps": self.kl_warmup_steps,
            "kl_method": self.kl_method,
            "clip_global_norm": self.clip_global_norm,
            "seed": self.seed,
            "kl_schedule": self.kl_schedule,
            "kl_cycle_steps": self.kl_cycle_steps,
            "free_bits": self.free_bits,
            "free_bits_group_size": self.free_bits_group_size,
            "objective": self.objective,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for part in ("encoder", "decoder", "prior"):
            config[part] = keras.saving.deserialize_keras_object(config[part])
        return cls(**config)
