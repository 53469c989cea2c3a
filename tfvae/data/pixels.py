"""Pixel conversions of images held in NumPy: to [0, 1], and the one fixed binarization of a test set."""

from __future__ import annotations

import numpy as np

__all__ = ["Binarizer", "binarize", "to_unit_interval"]


def to_unit_interval(images: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]; float32 input is returned as is."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32, copy=False)


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
    """Fixed binarization x_b ~ Bernoulli(x / 255), float32 in {0, 1}, from ``seed``."""
    return Binarizer(seed)(images)


class Binarizer:
    """``binarize`` of a data set given in consecutive chunks: the chunks' results concatenated equal
    ``binarize`` of the whole (the uniforms are drawn in order from one generator)."""

    def __init__(self, seed: int):
        self.generator = np.random.default_rng(seed)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        probs = to_unit_interval(images)
        return (self.generator.random(probs.shape, dtype=np.float32) < probs).astype(np.float32)
