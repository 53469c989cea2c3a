"""Real colour photos to try tfvae on: square crops of scikit-image's sample photographs, as an image folder.

  write_photo_crops("photos", size=32)   ->   photos/train/*.png, photos/test/*.png

scikit-image ships these photographs in its wheel, so nothing is downloaded:
``PHOTOS`` names them (astronaut, the cat Chelsea, coffee, a rocket, the
Hubble deep field, a stained tissue section, a retina, a motorcycle). Each is
also reduced by 2 and 4 (means over 2x2 and 4x4 blocks), so the crops show
textures at full size and whole objects at a quarter. Crops are drawn at
random positions (``seed``); the test crops come from the right-most fifth
of each photo (at least ``size`` columns) and the training crops from the
rest, so no test pixel is seen in training. Files are named
``<index>_<photo>_<reduction>.png``, so in name order (the order an image
folder is read in) the photos alternate; ``crops.csv`` records where each
crop was cut (photo, reduction, top-left row and column). The folder is what
``--dataset=image_folder`` reads (scripts/configs/rgb32_photos.flags).

The crops are written into a new temporary folder beside ``out_dir`` and it
is renamed to ``out_dir`` at the end: an existing folder is never written
into, and an interrupted run leaves no half-written ``out_dir``.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile

import numpy as np

__all__ = [
    "MANIFEST",
    "PHOTOS",
    "REDUCTIONS",
    "held_out_columns",
    "histogram_bits_per_dim",
    "photo",
    "reduce",
    "write_photo_crops",
]

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "motorcycle")
REDUCTIONS = (1, 2, 4)  # each photo at full size and reduced by block means
MANIFEST = "crops.csv"  # split, file, photo, reduction, row, column of every crop (an image folder ignores it)
_TEST_FRACTION = 0.2


@functools.lru_cache(maxsize=len(PHOTOS))
def photo(name: str) -> np.ndarray:
    """scikit-image's sample photograph ``name`` (one of PHOTOS) as uint8 [H, W, 3] (read-only, cached)."""
    try:
        from skimage import data as samples  # noqa: PLC0415 - an optional dependency, needed only here
    except ImportError:
        raise ImportError("the sample photos need scikit-image: pip install scikit-image") from None
    if name not in PHOTOS:
        raise ValueError(f"photo must be one of {PHOTOS}; got {name!r}")
    image = samples.stereo_motorcycle()[0] if name == "motorcycle" else getattr(samples, name)()
    image = np.ascontiguousarray(image[..., :3], np.uint8)
    image.flags.writeable = False
    return image


def reduce(image: np.ndarray, factor: int) -> np.ndarray:
    """Means over factor x factor blocks, rounded to uint8 (the edge rows and columns that do not fill a block dropped)."""
    if factor == 1:
        return image
    height, width = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:height, :width].reshape(height // factor, factor, width // factor, factor, 3)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def held_out_columns(width: int, size: int) -> int:
    """Columns at the right of a photo of ``width`` that only test crops come from: a fifth, at least ``size``."""
    return max(int(np.ceil(_TEST_FRACTION * width)), size)


def _positions(image: np.ndarray, size: int, count: int, columns: tuple[int, int], rng) -> list[tuple[int, int]]:
    """``count`` random (row, column) corners of size x size crops lying within columns [columns[0], columns[1])."""
    first, end = columns
    if end - first < size or image.shape[0] < size:
        return []
    rows = rng.integers(0, image.shape[0] - size + 1, count)
    cols = rng.integers(first, end - size + 1, count)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def write_photo_crops(out_dir: str, size: int = 32, crops_per_image: int = 300, seed: int = 0) -> dict:
    """Writes ``out_dir``/train and ``out_dir``/test of size x size PNG crops; returns their counts.

    Args:
      out_dir: a folder that does not exist yet.
      size: crop side in pixels (4 to 256).
      crops_per_image: training crops per photo and reduction (test: a fifth of it, at least 1).
      seed: seed of the crop positions.

    Returns:
      {"train": training crops, "test": test crops, "histogram_bits_per_dim": of the training pixels
      (``histogram_bits_per_dim``): the figure a model of colour images must beat}.
    """
    if isinstance(size, bool) or int(size) != size or not 4 <= size <= 256:
        raise ValueError(f"size must be an int from 4 to 256; got {size!r}")
    if isinstance(crops_per_image, bool) or int(crops_per_image) != crops_per_image or crops_per_image < 1:
        raise ValueError(f"crops_per_image must be a positive int; got {crops_per_image!r}")
    if os.path.lexists(out_dir):
        raise ValueError(f"out_dir {out_dir} exists; give a new folder (nothing is written into an existing one)")
    import tensorflow as tf  # noqa: PLC0415 - the PNG encoder; imported only when crops are written

    rng = np.random.default_rng(seed)
    histograms = np.zeros((3, 256), np.int64)  # of the training pixels, per channel
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(os.path.abspath(out_dir))}.")
    counts, manifest = {"train": 0, "test": 0}, []
    try:
        for split in counts:
            os.mkdir(os.path.join(staging, split))
        for name in PHOTOS:
            full = photo(name)
            for factor in REDUCTIONS:
                image = reduce(full, factor)
                width = image.shape[1]
                held_out = held_out_columns(width, size)
                splits = {"train": ((0, width - held_out), crops_per_image),
                          "test": ((width - held_out, width), max(crops_per_image // 5, 1))}
                for split, (columns, count) in splits.items():
                    for i, (row, column) in enumerate(_positions(image, size, count, columns, rng)):
                        crop = image[row:row + size, column:column + size]
                        file = f"{i:04d}_{name}_{factor}.png"  # in name order the photos alternate
                        with open(os.path.join(staging, split, file), "xb") as f:
                            f.write(tf.io.encode_png(crop).numpy())
                        manifest.append(f"{split},{file},{name},{factor},{row},{column}")
                        counts[split] += 1
                        if split == "train":
                            for channel in range(3):
                                histograms[channel] += np.bincount(crop[..., channel].ravel(), minlength=256)
        with open(os.path.join(staging, MANIFEST), "x") as f:
            f.write("\n".join(["split,file,photo,reduction,row,column", *manifest]) + "\n")
        if not counts["train"] or not counts["test"]:
            raise ValueError(f"size {size} is larger than the photos allow; got {counts}")
        os.chmod(staging, 0o755)
        os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {**counts, "histogram_bits_per_dim": histogram_bits_per_dim(histograms)}


def histogram_bits_per_dim(histograms: np.ndarray) -> float:
    """Mean over channels of the entropy in bits of each channel's value histogram ([C, 256] counts).

    The bits/dim of the best model of each channel value on its own, the
    same for every pixel: a likelihood that learned only that stays at it.
    """
    p = histograms / histograms.sum(axis=1, keepdims=True)
    return float(-np.sum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0), axis=1).mean())
