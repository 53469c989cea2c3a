"""Residual convolutional trunks: ``architecture="resnet"``.

  encoder: conv3x3(c_0) -> [ResidualBlock(c_0)] * B -> for each further level l:
           conv3x3 stride 2 (c_l) -> [ResidualBlock(c_l)] * B -> norm -> act -> Flatten
  decoder: Dense -> Reshape to the coarsest grid (c_L) -> [ResidualBlock(c_L)] * B -> for each lower
           level l: upsample x2 (nearest), crop to that level's size, conv3x3(c_l) -> [ResidualBlock(c_l)] * B
           -> norm -> act

with c_l = ``hidden_units[l]`` (channels per resolution, from the data's
resolution down) and B = ``blocks_per_level``. Each level after the first
halves the height and width (rounding up, so any H x W works: 28 -> 14 -> 7 ->
4, and the decoder crops 8 back to 7); the decoder retraces the encoder's sizes.

A residual block is pre-activation (He et al. 2016):

  y = x + conv3x3(act(norm(conv3x3(act(norm(x))))))

with its last convolution initialised to zero, so every block starts as the
identity and a deep stack trains as stably as a shallow one (Goyal et al.
2017; Zhang et al. 2019, Fixup).

Normalisation: "none", "layer" (over the channels of each pixel) or "group"
(GroupNorm, up to 8 groups). Batch normalisation is not offered: it makes an
example's output depend on the rest of its batch, so the objective would
change with the number of replicas and between training and evaluation.

References:
  He, Zhang, Ren & Sun (2016), Identity Mappings in Deep Residual Networks.
  Wu & He (2018), Group Normalization.
  Vahdat & Kautz (2020), NVAE; Child (2021), Very Deep VAEs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras

from tfvae.core import choices

__all__ = ["NORMALIZATIONS", "ResidualBlock", "level_sizes", "resnet_decoder_trunk", "resnet_encoder_trunk"]

NORMALIZATIONS = choices.register("normalization", ("none", "layer", "group"))


def _normalization(kind: str, channels: int, dtype=None) -> keras.layers.Layer:
    if kind == "layer":
        return keras.layers.LayerNormalization(axis=-1, dtype=dtype)
    if kind == "group":
        return keras.layers.GroupNormalization(groups=math.gcd(8, channels), axis=-1, dtype=dtype)
    return keras.layers.Identity(dtype=dtype)


@keras.saving.register_keras_serializable(package="tfvae")
class ResidualBlock(keras.layers.Layer):
    """x + conv3x3(act(norm(conv3x3(act(norm(x)))))), the last convolution initialised to zero.

    Args:
      channels: channels of the input and output.
      activation: a Keras activation name.
      normalization: one of NORMALIZATIONS.
    """

    def __init__(self, channels: int, activation: str = "relu", normalization: str = "none", **kwargs):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}; got {normalization!r}")
        self.channels, self.activation, self.normalization = int(channels), activation, normalization
        dtype = self.dtype_policy  # the block's sublayers compute in its precision
        self.norm_in = _normalization(normalization, self.channels, dtype)
        self.conv_in = keras.layers.Conv2D(self.channels, 3, padding="same", dtype=dtype)
        self.norm_out = _normalization(normalization, self.channels, dtype)
        self.conv_out = keras.layers.Conv2D(self.channels, 3, padding="same", kernel_initializer="zeros", dtype=dtype)
        self.act = keras.layers.Activation(activation, dtype=dtype)

    def build(self, input_shape):
        if input_shape[-1] != self.channels:
            raise ValueError(f"ResidualBlock({self.channels}) needs {self.channels} input channels; "
                             f"got shape {tuple(input_shape)}")
        for layer in (self.norm_in, self.conv_in, self.norm_out, self.conv_out):
            layer.build(input_shape)

    def call(self, x):
        h = self.conv_in(self.act(self.norm_in(x)))
        return x + self.conv_out(self.act(self.norm_out(h)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return dict(super().get_config(), channels=self.channels, activation=self.activation,
                    normalization=self.normalization)


def level_sizes(height: int, width: int, num_levels: int) -> list[tuple[int, int]]:
    """(height, width) at each level: the data's, then halved (rounding up) per level."""
    sizes = [(int(height), int(width))]
    for _ in range(num_levels - 1):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def _blocks(channels, blocks_per_level, activation, normalization, dtype):
    return [ResidualBlock(channels, activation, normalization, dtype=dtype) for _ in range(int(blocks_per_level))]


def resnet_encoder_trunk(hidden_units: Sequence[int], activation: str, name: str, blocks_per_level: int = 2,
                         normalization: str = "none", dtype=None) -> keras.Sequential:
    """x [B, H, W, C] -> features [B, ceil(H / 2^(L-1)) * ceil(W / 2^(L-1)) * c_L] (see the module docstring).

    ``dtype``: the dtype policy of every layer (the owning encoder's).
    """
    channels = [int(c) for c in hidden_units]
    layers = [keras.layers.Conv2D(channels[0], 3, padding="same", dtype=dtype)]
    for level, c in enumerate(channels):
        if level:
            layers.append(keras.layers.Conv2D(c, 3, strides=2, padding="same", dtype=dtype))
        layers += _blocks(c, blocks_per_level, activation, normalization, dtype)
    layers += [_normalization(normalization, channels[-1], dtype), keras.layers.Activation(activation, dtype=dtype),
               keras.layers.Flatten(dtype=dtype)]
    return keras.Sequential(layers, name=name)


def resnet_decoder_trunk(data_shape: Sequence[int], hidden_units: Sequence[int], activation: str, name: str,
                         blocks_per_level: int = 2, normalization: str = "none", dtype=None) -> keras.Sequential:
    """z [B, D] -> features [B, H, W, c_0] at the data's resolution (see the module docstring).

    ``dtype``: the dtype policy of every layer (the owning decoder's).
    """
    channels = [int(c) for c in hidden_units]
    sizes = level_sizes(data_shape[0], data_shape[1], len(channels))
    (h, w), top = sizes[-1], channels[-1]
    layers = [keras.layers.Dense(h * w * top, activation=activation, dtype=dtype),
              keras.layers.Reshape((h, w, top), dtype=dtype)]
    layers += _blocks(top, blocks_per_level, activation, normalization, dtype)
    for level in range(len(channels) - 2, -1, -1):
        (target_h, target_w), (h, w) = sizes[level], sizes[level + 1]
        layers.append(keras.layers.UpSampling2D(2, dtype=dtype))
        if (2 * h, 2 * w) != (target_h, target_w):
            layers.append(keras.layers.Cropping2D(((0, 2 * h - target_h), (0, 2 * w - target_w)), dtype=dtype))
        layers.append(keras.layers.Conv2D(channels[level], 3, padding="same", dtype=dtype))
        layers += _blocks(channels[level], blocks_per_level, activation, normalization, dtype)
    layers += [_normalization(normalization, channels[0], dtype), keras.layers.Activation(activation, dtype=dtype)]
    return keras.Sequential(layers, name=name)
