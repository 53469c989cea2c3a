"""Hierarchical VAEs with top-down inference (LVAE/NVAE style), as TFP joint distributions.

L stochastic layers z_1 (next to x) ... z_L (top) of sizes latent_dims = [D_1, ..., D_L]:

  p(z)   = p(z_L) prod_{l<L} p(z_l | z_>l),        p(z_l | z_>l)    = N(m_l, s_l)
  q(z|x) = q(z_L|x) prod_{l<L} q(z_l | z_>l, x),   q(z_l | z_>l, x) = N(m_l + dm_l, s'_l)

  t_{L-1} = g_{L-1}(z_L),  t_l = g_l([z_{l+1}, t_{l+1}])   top-down state, shared by p and q
  d_1 = f_1(h(x)),         d_l = f_l(d_{l-1})               bottom-up features, h the encoder trunk
  (m_l, a_l)  = prior_head_l(t_l),          s_l  = softplus(a_l) + floor
  (dm_l, da_l) = posterior_head_l([t_l, d_l]), s'_l = softplus(a_l + da_l) + floor

so the posterior is parameterised relative to the prior (a shift of its mean
and of its scale's pre-activation; Vahdat & Kautz 2020). The top posterior is
q(z_L|x) = N(loc(d_L), softplus(raw(d_L)) + floor) and p(z_L) is any tfvae
prior (``HierarchicalPrior`` wraps it; a VampPrior mixes q(z_L|u_k)).

Both p(z) and q(z|x) are ``tfd.JointDistributionCoroutine``s over the latents
in sampling order, top first: (z_L, ..., z_1), each named "z_l"; their
``sample`` and ``log_prob`` are exact. Every conditional calls the same Keras
layers, so users can compose them with their own TFP code. The decoder sees
the latents concatenated in that order (``concat_latents``): p(x|z) =
decoder([z_L, ..., z_1]), a vector of sum(latent_dims).

The rate KL(q(z|x) || p(z)) = E_q[sum_l KL(q(z_l|z_>l, x) || p(z_l|z_>l))]
is estimated at the sampled z_>l, analytically within each layer
(``objectives.layer_rates``).

References:
  Sønderby et al. (2016), Ladder Variational Autoencoders.
  Kingma et al. (2016), Improved Variational Inference with Inverse Autoregressive Flow (top-down inference).
  Vahdat & Kautz (2020), NVAE: A Deep Hierarchical Variational Autoencoder.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.core.latents import concat_latents, layer_names
from tfvae.nn import networks

tfd = tfp.distributions
Root = tfd.JointDistributionCoroutine.Root

__all__ = ["HierarchicalPrior", "TopDownEncoder", "concat_latents", "layer_names"]


def _gaussian(params, scale_floor: float, name: str) -> tfd.Distribution:
    params = tf.cast(params, tf.float32)
    loc, raw_scale = tf.split(params, 2, axis=-1)
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.nn.softplus(raw_scale) + scale_floor, name=name)


def _apply(layer, inputs):
    """layer(inputs), also for a single unbatched vector [D] (which Dense refuses), e.g. one draw of p(z_L)."""
    if inputs.shape.rank == 1:
        return layer(inputs[tf.newaxis])[0]
    return layer(inputs)


def _broadcast_like(features, state):
    """features [B, H] broadcast to the leading (sample and batch) dimensions of state [..., B, H']."""
    shape = tf.concat([tf.shape(state)[:-1], tf.shape(features)[-1:]], 0)
    return tf.broadcast_to(tf.cast(features, state.dtype), shape)


@keras.saving.register_keras_serializable(package="tfvae")
class TopDownEncoder(keras.layers.Layer):
    """x -> q(z_L, ..., z_1 | x), a ``tfd.JointDistributionCoroutine`` with top-down inference.

    It also holds the top-down path of the prior (the two share it), so
    ``joint_prior(p_top)`` builds p(z) from the same layers.

    Args:
      latent_dims: sizes of the stochastic layers, bottom (next to x) to top,
        e.g. [32, 16]; at least two.
      architecture, hidden_units, activation, blocks_per_level, normalization:
        the encoder trunk h(x), as for ``GaussianEncoder``.
      ladder_units: width of the bottom-up layers f_l and top-down layers g_l.
      scale_floor: lower bound added to every softplus scale.

    Example:
      encoder = TopDownEncoder(latent_dims=[32, 16], hidden_units=[512, 256])
      q = encoder(x)                          # JointDistributionCoroutine over (z_2, z_1)
      z = q.sample(seed=[1, 2])               # StructTuple(z_2=[B, 16], z_1=[B, 32])
      q.log_prob(z)                           # [B] = log q(z_2|x) + log q(z_1|z_2, x)
    """

    condition_dim = 0

    def __init__(self, latent_dims, architecture="mlp", hidden_units=(400,), activation="relu", ladder_units=256,
                 scale_floor=1e-4, blocks_per_level=2, normalization="none", **kwargs):
        super().__init__(**kwargs)
        self.latent_dims = [int(d) for d in latent_dims]
        if len(self.latent_dims) < 2 or min(self.latent_dims) <= 0:
            raise ValueError(f"latent_dims must list at least two positive sizes; got {list(latent_dims)}")
        if isinstance(ladder_units, bool) or int(ladder_units) != ladder_units or ladder_units <= 0:
            raise ValueError(f"ladder_units must be a positive int; got {ladder_units!r}")
        if not scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0; got {scale_floor}")
        networks.validate_architecture(architecture, hidden_units, blocks_per_level, normalization)
        self.architecture, self.hidden_units = architecture, [int(u) for u in hidden_units]
        self.activation, self.ladder_units, self.scale_floor = activation, int(ladder_units), float(scale_floor)
        self.blocks_per_level, self.normalization = int(blocks_per_level), normalization
        self.trunk = networks.encoder_trunk(architecture, self.hidden_units, activation, "encoder_trunk",
                                            self.blocks_per_level, normalization, dtype=self.dtype_policy)
        levels = range(len(self.latent_dims))
        dense = keras.layers.Dense
        policy = self.dtype_policy  # the ladder computes in the encoder's precision; the heads in float32
        self.bottom_up = [dense(self.ladder_units, activation=activation, dtype=policy, name=f"bottom_up_{level + 1}")
                          for level in levels]
        self.top_down = [dense(self.ladder_units, activation=activation, dtype=policy, name=f"top_down_{level + 1}")
                         for level in levels[:-1]]
        self.prior_heads = [dense(2 * self.latent_dims[level], dtype="float32", name=f"prior_params_{level + 1}")
                            for level in levels[:-1]]
        self.posterior_heads = [dense(2 * self.latent_dims[level], dtype="float32", name=f"posterior_params_{level + 1}")
                                for level in levels]
        for name in ("bottom_up", "top_down", "prior_heads", "posterior_heads"):
            networks.track_for_checkpoint(self, name, getattr(self, name))

    @property
    def latent_dim(self) -> int:
        return sum(self.latent_dims)

    def build(self, input_shape):
        self.trunk.build(input_shape)
        width = self.trunk.compute_output_shape(input_shape)[-1]
        units, dims = self.ladder_units, self.latent_dims
        for level, layer in enumerate(self.bottom_up):
            layer.build((None, width if level == 0 else units))
        for level, layer in enumerate(self.top_down):
            above = dims[level + 1] + (units if level + 1 < len(self.top_down) else 0)
            layer.build((None, above))
            self.prior_heads[level].build((None, units))
            self.posterior_heads[level].build((None, 2 * units))
        self.posterior_heads[-1].build((None, units))

    def bottom_up_features(self, x) -> list:
        """[d_1, ..., d_L], each [B, ladder_units]."""
        features, d = self.trunk(x), []
        for layer in self.bottom_up:
            features = layer(features)
            d.append(features)
        return d

    def top_posterior(self, x) -> tfd.Distribution:
        """q(z_L|x), the first factor of the joint posterior (a VampPrior on z_L mixes these)."""
        return self._top_posterior(self.bottom_up_features(x))

    def _top_posterior(self, features) -> tfd.Distribution:
        return _gaussian(self.posterior_heads[-1](features[-1]), self.scale_floor, layer_names(self.latent_dims)[0])

    def conditionals(self, level: int, z_above, t_above=None, features=None):
        """(p(z_l | z_>l), q(z_l | z_>l, x) or None, t_l) for layer ``level`` (0-based: 0 is z_1) below z_{l+1}.

        ``z_above`` is z_{l+1}, ``t_above`` the state t_{l+1} (None under the
        top layer), ``features`` the bottom-up list [d_1, ..., d_L] (None:
        the prior only).
        """
        inputs = z_above if t_above is None else tf.concat([tf.cast(z_above, t_above.dtype), t_above], -1)
        t = _apply(self.top_down[level], inputs)
        prior_params = tf.cast(_apply(self.prior_heads[level], t), tf.float32)
        name = f"z_{level + 1}"
        prior = _gaussian(prior_params, self.scale_floor, name)
        if features is None:
            return prior, None, t
        delta = _apply(self.posterior_heads[level], tf.concat([t, _broadcast_like(features[level], t)], -1))
        return prior, _gaussian(prior_params + tf.cast(delta, tf.float32), self.scale_floor, name), t

    def _joint(self, top: tfd.Distribution, features=None) -> tfd.JointDistributionCoroutine:
        top = top.copy(name=layer_names(self.latent_dims)[0])  # the prior's top as well: samples are named z_L, ...

        def model():
            z = yield Root(top)
            t = None
            for level in reversed(range(len(self.latent_dims) - 1)):
                prior, posterior, t = self.conditionals(level, z, t, features)
                z = yield (prior if posterior is None else posterior)

        return tfd.JointDistributionCoroutine(model, name="joint")

    def joint_prior(self, top_prior: tfd.Distribution) -> tfd.JointDistributionCoroutine:
        """p(z_L, ..., z_1) = top_prior(z_L) prod_l p(z_l | z_>l)."""
        return self._joint(top_prior)

    def call(self, x, condition=None):
        if condition is not None:
            raise ValueError("TopDownEncoder is unconditional (a hierarchical VAE does not take labels)")
        features = self.bottom_up_features(x)
        return self._joint(self._top_posterior(features), features)

    def get_config(self):
        config = super().get_config()
        config.update(latent_dims=self.latent_dims, architecture=self.architecture, hidden_units=self.hidden_units,
                      activation=self.activation, ladder_units=self.ladder_units, scale_floor=self.scale_floor,
                      blocks_per_level=self.blocks_per_level, normalization=self.normalization)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class HierarchicalPrior(keras.layers.Layer):
    """p(z_L, ..., z_1) = top(z_L) prod_l p(z_l | z_>l), through a ``TopDownEncoder``'s shared top-down path.

    Args:
      top: the prior layer of z_L (any tfvae prior with latent_dim = D_L; a
        VampPrior mixes the encoder's q(z_L | u_k)).
      latent_dims: the layer sizes, bottom to top (the encoder's).
    """

    uses_encoder = True  # the conditionals are the encoder's top-down layers

    def __init__(self, top, latent_dims, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.latent_dims = [int(d) for d in latent_dims]
        if int(getattr(top, "latent_dim", self.latent_dims[-1])) != self.latent_dims[-1]:
            raise ValueError(f"the top prior's latent_dim must be the top layer's size {self.latent_dims[-1]}; "
                             f"got {top.latent_dim}")
        self.top = top

    @property
    def latent_dim(self) -> int:
        return sum(self.latent_dims)

    def build(self, input_shape=None):
        if not self.top.built:
            self.top.build(None)

    def distribution(self, encoder=None) -> tfd.Distribution:
        if not isinstance(encoder, TopDownEncoder):
            raise ValueError("HierarchicalPrior.distribution needs the model's TopDownEncoder, whose top-down "
                             "path it shares; use VAE.prior")
        if getattr(self.top, "uses_encoder", False):
            return encoder.joint_prior(self.top.distribution(encoder=encoder.top_posterior))
        return encoder.joint_prior(self.top.distribution())

    def call(self, inputs=None):
        raise TypeError("HierarchicalPrior is called through VAE.prior (it needs the encoder)")

    def get_config(self):
        config = super().get_config()
        config.update(top=keras.saving.serialize_keras_object(self.top), latent_dims=self.latent_dims)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["top"] = keras.saving.deserialize_keras_object(config["top"])
        return cls(**config)
