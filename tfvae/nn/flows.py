"""Keras 3 networks for normalising flows, and the TFP bijectors built on them.

TFP's ``AutoregressiveNetwork`` and ``tfp.layers`` are Keras 2 objects, so the
networks here are Keras 3 layers whose outputs feed TFP bijectors:

  * ``MADE``: a masked autoregressive network (Germain et al. 2015). For input
    z in R^D it returns (shift, log_scale), each in R^D, where output i depends
    only on z_1..z_{i-1} (and on an optional context vector, unmasked).
    Inside ``tfb.MaskedAutoregressiveFlow`` it gives

      MAF:  y_i = z_i * exp(log_scale_i(y_<i)) + shift_i(y_<i)
            (density evaluation in one pass, sampling in D passes);
      IAF = Invert(MAF): sampling in one pass (Kingma et al. 2016).

  * ``CouplingNetwork``: the network of a RealNVP affine coupling layer
    (Dinh et al. 2017): y_{d+1:D} = z_{d+1:D} * exp(log_scale(z_1:d)) + shift(z_1:d).

Log-scales are soft-clamped, log_scale = c * tanh(raw / c) with c = 3, and the
output layers start at zero, so every flow starts as the identity.

References:
  Germain et al. (2015), MADE: Masked Autoencoder for Distribution Estimation.
  Dinh, Sohl-Dickstein & Bengio (2017), Density estimation using Real NVP.
  Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow.
  Kingma et al. (2016), Improved Variational Inference with Inverse
  Autoregressive Flow.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.nn import networks

tfb = tfp.bijectors

__all__ = ["FLOWS", "CouplingNetwork", "MADE", "flow_chain"]

FLOWS = ("maf", "real_nvp", "iaf")
LOG_SCALE_CLAMP = 3.0


def _clamp(raw_log_scale: tf.Tensor) -> tf.Tensor:
    return LOG_SCALE_CLAMP * tf.tanh(raw_log_scale / LOG_SCALE_CLAMP)


def _validate_units(hidden_units: Sequence[int]) -> list[int]:
    units = [int(u) for u in hidden_units]
    if not units or min(units) <= 0:
        raise ValueError(f"flow hidden_units must be a non-empty list of positive ints; got {list(hidden_units)}")
    return units


def made_mask_tensors(event_size: int, hidden_units: Sequence[int]) -> list[tf.Tensor]:
    """Masks [inputs, outputs] of each MADE layer; the last one maps to event_size outputs.

    Input i has degree i (1..D); hidden unit j has degree 1 + j mod (D - 1);
    a connection is kept where the degree does not decrease, and an output of
    degree i sees only hidden units of degree < i. So output i depends on
    z_1..z_{i-1} only. Built in the graph from ranges of degrees, so a traced
    function (an exported signature) holds a few small ops, not [inputs,
    outputs] constants (256 x 256 floats per layer, per function).
    """
    inputs = tf.range(1, event_size + 1)
    degrees = [inputs]
    for units in hidden_units:
        degrees.append(tf.range(units) % max(1, event_size - 1) + 1 if event_size > 1 else tf.zeros([units], tf.int32))
    masks = [later[tf.newaxis, :] >= earlier[:, tf.newaxis]
             for earlier, later in zip(degrees[:-1], degrees[1:], strict=True)]
    masks.append(inputs[tf.newaxis, :] > degrees[-1][:, tf.newaxis])
    return [tf.cast(m, tf.float32) for m in masks]


def made_masks(event_size: int, hidden_units: Sequence[int]) -> list[np.ndarray]:
    """``made_mask_tensors`` as NumPy arrays."""
    return [np.asarray(m) for m in made_mask_tensors(event_size, hidden_units)]


@keras.saving.register_keras_serializable(package="tfvae")
class MADE(keras.layers.Layer):
    """Masked autoregressive network z -> (shift, log_scale), optionally conditioned on a context.

    Args:
      event_size: D, the size of z.
      hidden_units: widths of the masked hidden layers (default (256, 256)).
      activation: Keras activation name of the hidden layers.

    Call: ``made(z, context=None)`` with z of shape [..., D] and context of
    shape [..., C] broadcastable against it.
    """

    def __init__(self, event_size, hidden_units=(256, 256), activation="relu", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if int(event_size) <= 0:
            raise ValueError(f"event_size must be a positive int; got {event_size}")
        self.event_size = int(event_size)
        self.hidden_units = _validate_units(hidden_units)
        self.activation = activation
        self.context_layer = None

    def build(self, z_shape, context_shape=None):
        sizes = [self.event_size, *self.hidden_units, 2 * self.event_size]
        self.kernels, self.biases = [], []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            last = i == len(sizes) - 2
            init = "zeros" if last else "glorot_uniform"
            self.kernels.append(self.add_weight(name=f"kernel_{i}", shape=(fan_in, fan_out), initializer=init))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(fan_out,), initializer="zeros"))
        networks.track_for_checkpoint(self, "kernel", self.kernels)
        networks.track_for_checkpoint(self, "bias", self.biases)
        if context_shape is not None:
            self.context_layer = keras.layers.Dense(self.hidden_units[0], use_bias=False, name="context",
                                                    dtype=self.dtype_policy)
            self.context_layer.build(context_shape)

    def call(self, z, context=None):
        h = tf.cast(z, tf.float32)
        activation = keras.activations.get(self.activation)
        masks = made_mask_tensors(self.event_size, self.hidden_units)
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            mask = masks[i] if i < len(masks) - 1 else tf.tile(masks[-1], [1, 2])
            h = tf.tensordot(h, kernel * mask, [[-1], [0]]) + bias
            if i == 0 and context is not None:
                if self.context_layer is None:
                    raise ValueError("MADE was built without a context; call it once with context to build it")
                h = h + self.context_layer(tf.cast(context, tf.float32))
            if i < len(self.kernels) - 1:
                h = activation(h)
        shift, raw_log_scale = tf.split(h, 2, axis=-1)
        return shift, _clamp(raw_log_scale)

    def get_config(self):
        config = super().get_config()
        config.update(event_size=self.event_size, hidden_units=self.hidden_units, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfvae")
class CouplingNetwork(keras.layers.Layer):
    """The (shift, log_scale) network of a RealNVP coupling: z_1:d -> R^(D-d) x R^(D-d).

    Args:
      output_units: D - d, the number of transformed coordinates.
      hidden_units: widths of the dense hidden layers (default (256, 256)).
      activation: Keras activation name of the hidden layers.
    """

    def __init__(self, output_units, hidden_units=(256, 256), activation="relu", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.output_units = int(output_units)
        self.hidden_units = _validate_units(hidden_units)
        self.activation = activation
        self.hidden = [keras.layers.Dense(u, activation=activation, dtype=self.dtype_policy) for u in self.hidden_units]
        self.out = keras.layers.Dense(2 * self.output_units, kernel_initializer="zeros", dtype=self.dtype_policy)
        networks.track_for_checkpoint(self, "hidden", self.hidden)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.out.build(shape)

    def call(self, z):
        z = tf.cast(z, tf.float32)
        h = tf.reshape(z, [-1, tf.shape(z)[-1]])  # Dense layers take [N, d]; z may be [d] or [..., N, d]
        for layer in self.hidden:
            h = layer(h)
        out = tf.reshape(self.out(h), tf.concat([tf.shape(z)[:-1], [2 * self.output_units]], 0))
        shift, raw_log_scale = tf.split(out, 2, axis=-1)
        return shift, _clamp(raw_log_scale)

    def get_config(self):
        config = super().get_config()
        config.update(output_units=self.output_units, hidden_units=self.hidden_units, activation=self.activation)
        return config


def flow_chain(flow: str, networks: Sequence[keras.layers.Layer], event_size: int, context=None) -> tfb.Bijector:
    """The bijector z0 -> z_K of K flow steps, with the coordinates reversed between steps.

    Args:
      flow: "maf" (MADE networks, one-pass density), "iaf" (inverted MAF,
        one-pass sampling) or "real_nvp" (CouplingNetworks on the first
        event_size // 2 coordinates).
      networks: one network per step, applied in order to the base sample.
      event_size: D.
      context: optional tensor each MADE network is conditioned on (IAF
        posteriors pass features of x here).
    """
    if flow not in FLOWS:
        raise ValueError(f"flow must be one of {FLOWS}; got {flow!r}")
    reverse = tfb.Permute(permutation=list(reversed(range(event_size))))
    steps = []
    for i, network in enumerate(networks):
        if flow == "real_nvp":
            step = tfb.RealNVP(num_masked=event_size // 2,
                               shift_and_log_scale_fn=lambda z, output_units, net=network: net(z))
        else:
            # An IAF's inverse (MAF's forward: D sequential passes) is unrolled in Python: with a context, the
            # result takes the context's batch shape, which a tf.while_loop's fixed loop shape refuses (a VampPrior
            # of IAF posteriors evaluates each component's density at z broadcast against K pseudo-inputs).
            maf = tfb.MaskedAutoregressiveFlow(
                shift_and_log_scale_fn=lambda z, net=network: net(z, context=context), unroll_loop=flow == "iaf")
            step = tfb.Invert(maf) if flow == "iaf" else maf
        steps.append(step)
        if i < len(networks) - 1:
            steps.append(reverse)
    # tfb.Chain applies its list last-first.
    return tfb.Chain(list(reversed(steps)))
