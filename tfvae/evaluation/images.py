"""Image grids as PNG files and TensorBoard summaries (no plotting dependency); vector samples as .npy/.csv."""

from __future__ import annotations

import io
import math

import numpy as np
import tensorflow as tf

from tfvae.core import files

__all__ = ["image_grid", "side_by_side", "upscale", "write_array", "write_png"]


def image_grid(images, columns: int | None = None) -> tf.Tensor:
    """[N, H, W, C] floats in [0, 1] -> one uint8 [rows * H, columns * W, C] grid.

    Missing cells of the last row stay black; a 1-pixel gap separates cells.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    padded = tf.pad(images, [[0, rows * columns - count], [0, 1], [0, 1], [0, 0]])
    grid = tf.reshape(padded, [rows, columns, height + 1, width + 1, channels])
    grid = tf.reshape(tf.transpose(grid, [0, 2, 1, 3, 4]), [rows * (height + 1), columns * (width + 1), channels])
    return tf.cast(tf.round(tf.clip_by_value(grid, 0.0, 1.0) * 255.0), tf.uint8)


def write_array(path_stem: str, values: np.ndarray, labels=None, label_name: str = "label",
                column_names=None) -> list[str]:
    """Writes ``values`` [N, D] as ``path_stem``.npy and ``path_stem``.csv (atomically); returns both paths.

    The CSV has a header row: ``label_name`` first when ``labels`` (one int
    per row, e.g. the class a conditional model drew the row for) are given,
    then ``column_names`` (default x_1, ..., x_D), so it reads back as a
    table (``--dataset=csv`` with ``--label_column=label_name``). The .npy
    holds ``values`` only.
    """
    values = np.asarray(values)
    flat = values.reshape(len(values), -1)
    names = list(column_names) if column_names is not None else [f"x_{i + 1}" for i in range(flat.shape[1])]
    if len(names) != flat.shape[1]:
        raise ValueError(f"column_names must name the {flat.shape[1]} columns; got {len(names)}")
    text = io.StringIO()
    if labels is not None:
        table = np.concatenate([np.asarray(labels).reshape(-1, 1).astype(np.float64), flat], axis=1)
        np.savetxt(text, table, delimiter=",", fmt=["%d"] + ["%.6g"] * flat.shape[1], comments="",
                   header=",".join([label_name, *names]))
    else:
        np.savetxt(text, flat, delimiter=",", fmt="%.6g", comments="", header=",".join(names))
    buffer = io.BytesIO()
    np.save(buffer, values)
    files.write_atomic(path_stem + ".npy", buffer.getvalue())
    files.write_atomic(path_stem + ".csv", text.getvalue())
    return [path_stem + ".npy", path_stem + ".csv"]


def upscale(grid, min_size: int = 256) -> tf.Tensor:
    """``grid`` [H, W, C] enlarged by the smallest integer factor k (nearest neighbour: each pixel becomes a
    k x k block) that makes its longer side at least ``min_size`` pixels; unchanged if it already is."""
    grid = tf.convert_to_tensor(grid)
    factor = max(1, math.ceil(min_size / max(int(grid.shape[0]), int(grid.shape[1]))))
    return tf.repeat(tf.repeat(grid, factor, axis=0), factor, axis=1)


def write_png(path: str, grid: tf.Tensor) -> None:
    """Writes a uint8 [H, W, C] image to ``path`` atomically (temporary name, then rename)."""
    files.write_atomic(path, tf.io.encode_png(grid).numpy())


def side_by_side(inputs, reconstructions) -> tf.Tensor:
    """Interleaves inputs and their reconstructions: columns alternate x, x_hat."""
    stacked = tf.stack([tf.convert_to_tensor(inputs, tf.float32), reconstructions], axis=1)
    return tf.reshape(stacked, [-1, *stacked.shape[2:]])


def latent_traversal(model, x, num_dims: int = 10, steps: int = 9, span: float = 3.0, labels=None) -> tf.Tensor:
    """``latent_views.latent_traversal`` (kept here for tfvae 0.3.0 callers)."""
    from tfvae.evaluation import latent_views

    return latent_views.latent_traversal(model, x, labels, num_dims, steps, span)
