"""Feed-forward networks used inside encoders and decoders.

Encoders and decoders own the mapping from network outputs to distribution
parameters; this module only builds the deterministic trunks:

  * ``mlp_trunk``: Flatten -> [Dense(units, activation)] * len(hidden_units).
  * ``conv_encoder_trunk``: strided 3x3 convolutions that halve the spatial
    size, then Flatten.
  * ``conv_decoder_trunk``: Dense -> Reshape to a coarse grid -> transposed
    convolutions that double it back to the data's height and width.
  * ``architecture="resnet"``: residual blocks per resolution (``tfvae.resnet``).

``encoder_trunk`` and ``decoder_trunk`` build the trunk an architecture names;
``OneChannelConv2D`` is the conv decoders' likelihood head; ``PlanarHead`` (a
1x1 convolution with channels-first output) is the pixel mixture's.

Each builder takes the owning layer's dtype policy (``dtype=self.dtype_policy``)
and gives it to every layer it makes, so a trunk computes in its encoder's or
decoder's precision however the global policy is set when that layer is
built or deserialised (``tfvae.load_model``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from tfvae.core import choices
from tfvae.nn import resnet

__all__ = [
    "ARCHITECTURES",
    "CONVOLUTIONAL",
    "OneChannelConv2D",
    "PlanarHead",
    "conv_decoder_trunk",
    "conv_encoder_trunk",
    "decoder_trunk",
    "encoder_trunk",
    "track_for_checkpoint",
    "mlp_trunk",
    "validate_architecture",
]

ARCHITECTURES = choices.register("architecture", ("mlp", "conv", "resnet"))
CONVOLUTIONAL = ("conv", "resnet")  # image-shaped trunks: a convolutional likelihood head


def validate_architecture(architecture: str, hidden_units: Sequence[int], blocks_per_level: int = 2,
                          normalization: str = "none") -> None:
    """Raises a one-line ValueError for an unknown architecture or bad sizes."""
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {ARCHITECTURES}; got {architecture!r}"
        )
    if not hidden_units or any(int(u) <= 0 for u in hidden_units):
        raise ValueError(
            f"hidden_units must be a non-empty list of positive ints; got {list(hidden_units)}"
        )
    if isinstance(blocks_per_level, bool) or int(blocks_per_level) != blocks_per_level or blocks_per_level < 0:
        raise ValueError(f"blocks_per_level must be an int >= 0; got {blocks_per_level!r}")
    if normalization not in resnet.NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {resnet.NORMALIZATIONS}; got {normalization!r}")


def encoder_trunk(architecture: str, hidden_units: Sequence[int], activation: str, name: str,
                  blocks_per_level: int = 2, normalization: str = "none", dtype=None) -> keras.Sequential:
    """x -> flat features, by ``architecture`` (blocks_per_level and normalization: resnet only)."""
    if architecture == "mlp":
        return mlp_trunk(hidden_units, activation, name, dtype)
    if architecture == "conv":
        return conv_encoder_trunk(hidden_units, activation, name, dtype)
    return resnet.resnet_encoder_trunk(hidden_units, activation, name, blocks_per_level, normalization, dtype)


def decoder_trunk(architecture: str, data_shape: Sequence[int], hidden_units: Sequence[int], activation: str,
                  name: str, blocks_per_level: int = 2, normalization: str = "none", dtype=None) -> keras.Sequential:
    """z -> features: flat for mlp (widths reversed), [B, H, W, c] for the convolutional architectures."""
    if architecture == "mlp":
        return mlp_trunk(list(reversed(hidden_units)), activation, name, dtype)
    if architecture == "conv":
        return conv_decoder_trunk(data_shape, hidden_units, activation, name, dtype)
    return resnet.resnet_decoder_trunk(data_shape, hidden_units, activation, name, blocks_per_level, normalization,
                                       dtype)


def mlp_trunk(hidden_units: Sequence[int], activation: str, name: str, dtype=None) -> keras.Sequential:
    """Flatten followed by fully connected layers."""
    layers = [keras.layers.Flatten(dtype=dtype)]
    layers += [keras.layers.Dense(int(u), activation=activation, dtype=dtype) for u in hidden_units]
    return keras.Sequential(layers, name=name)


def conv_encoder_trunk(hidden_units: Sequence[int], activation: str, name: str, dtype=None) -> keras.Sequential:
    """Stride-2 3x3 convolutions with ``hidden_units`` filters each, then Flatten."""
    layers = [keras.layers.Conv2D(int(u), 3, strides=2, padding="same", activation=activation, dtype=dtype)
              for u in hidden_units]
    layers.append(keras.layers.Flatten(dtype=dtype))
    return keras.Sequential(layers, name=name)


def conv_decoder_trunk(data_shape: Sequence[int], hidden_units: Sequence[int], activation: str, name: str,
                       dtype=None) -> keras.Sequential:
    """Mirror of ``conv_encoder_trunk``: Dense to a coarse grid, then upsampling.

    The data height and width must be divisible by ``2 ** len(hidden_units)``;
    the output has ``hidden_units[0]`` channels at the data's resolution.
    """
    height, width = int(data_shape[0]), int(data_shape[1])
    factor = 2 ** len(hidden_units)
    if height % factor or width % factor:
        raise ValueError(
            f"conv decoder needs data height and width divisible by {factor} "
            f"(2 ** len(hidden_units)); got data_shape {list(data_shape)}"
        )
    reversed_units = [int(u) for u in reversed(hidden_units)]
    layers = [
        keras.layers.Dense((height // factor) * (width // factor) * reversed_units[0], activation=activation,
                           dtype=dtype),
        keras.layers.Reshape((height // factor, width // factor, reversed_units[0]), dtype=dtype),
    ]
    layers += [keras.layers.Conv2DTranspose(u, 3, strides=2, padding="same", activation=activation, dtype=dtype)
               for u in reversed_units]
    return keras.Sequential(layers, name=name)


@keras.saving.register_keras_serializable(package="tfvae")
class OneChannelConv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` that computes a single output channel as a depthwise convolution.

    y[b, i, j] = bias + sum_c sum_{u, v} kernel[u, v, c, 0] x[b, i + u, j + v, c]
    (offsets centred for ``padding="same"``) is a depthwise convolution of
    each input channel c with kernel[:, :, c, 0], summed over c: the same
    sums as ``Conv2D``, in another order (float32 results agree to about
    1e-6 relative). TensorFlow's CPU kernels (oneDNN) vectorise a
    convolution over its output channels, so with one of them (a grey
    image's Bernoulli logits) they run at a fraction of their throughput;
    the depthwise form vectorises over the input channels
    (``scripts/benchmark.py`` prints the two forms' times; docs/performance.md
    has the measured figures). Weights, config
    and checkpoints are those of ``Conv2D``. With more than one output
    channel, strides, dilation or groups it is plain ``Conv2D``, which is
    the faster form there.
    """

    def _computes_depthwise(self) -> bool:
        return (self.filters == 1 and self.groups == 1 and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and self.data_format == "channels_last")

    def call(self, inputs):
        if not self._computes_depthwise():
            return super().call(inputs)
        outputs = keras.ops.sum(
            keras.ops.depthwise_conv(inputs, self.kernel, strides=1, padding=self.padding), axis=-1, keepdims=True)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)


@keras.saving.register_keras_serializable(package="tfvae")
class PlanarHead(keras.layers.Dense):
    """A 1x1 convolution whose output puts each output channel in a contiguous plane: [..., F] -> [units, ...].

    y[p, ...] = bias[p] + sum_f kernel[f, p] x[..., f]: ``keras.layers.Dense``
    at every position (same weights and config), computed as one matrix
    product kernel^T x^T, so the output needs no reordering: the pixel
    mixture likelihood reads its parameters plane by plane
    (``DiscretizedLogisticPixelMixture``).
    """

    def call(self, inputs):
        flat = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]])
        # Transposed copies and a plain product: measured faster on CPU than the transpose flags of matmul.
        outputs = tf.linalg.matmul(tf.transpose(self.kernel), tf.transpose(flat))
        if self.use_bias:
            outputs = outputs + self.bias[:, None]
        outputs = tf.reshape(outputs, tf.concat([[self.units], tf.shape(inputs)[:-1]], 0))
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return (self.units, *input_shape[:-1])


def track_for_checkpoint(layer: keras.layers.Layer, prefix: str, items) -> None:
    """Gives each element of a list of layers or variables an attribute of ``layer`` of its own.

    ``tf.train.Checkpoint`` does not see into Keras 3's list attributes, so
    without this a checkpoint reaches their weights only through the
    optimizer, and a model restored without one (``tfvae.load_model``) keeps
    its initial values. Keras tracks each object once either way.
    """
    for i, item in enumerate(items):
        setattr(layer, f"{prefix}_{i}", item)
