"""Image grids as PNG files and TensorBoard summaries (no plotting dependency); vector samples as .npy/.csv."""

from __future__ import annotations

import io
import math

import numpy as np
import tensorflow as tf

from tfvae.core import files, sampling

__all__ = ["image_grid", "write_array", "write_png"]


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


def write_array(path_stem: str, values: np.ndarray) -> list[str]:
    """Writes ``values`` [N, D] as ``path_stem``.npy and ``path_stem``.csv (atomically); returns both paths."""
    buffer = io.BytesIO()
    np.save(buffer, values)
    text = io.StringIO()
    np.savetxt(text, np.asarray(values).reshape(len(values), -1), delimiter=",", fmt="%.6g")
    files.write_atomic(path_stem + ".npy", buffer.getvalue())
    files.write_atomic(path_stem + ".csv", text.getvalue())
    return [path_stem + ".npy", path_stem + ".csv"]


def write_png(path: str, grid: tf.Tensor) -> None:
    """Writes a uint8 [H, W, C] image to ``path`` atomically (temporary name, then rename)."""
    files.write_atomic(path, tf.io.encode_png(grid).numpy())


def side_by_side(inputs, reconstructions) -> tf.Tensor:
    """Interleaves inputs and their reconstructions: columns alternate x, x_hat."""
    stacked = tf.stack([tf.convert_to_tensor(inputs, tf.float32), reconstructions], axis=1)
    return tf.reshape(stacked, [-1, *stacked.shape[2:]])


def latent_traversal(model, x, num_dims: int = 10, steps: int = 9, span: float = 3.0, labels=None) -> tf.Tensor:
    """Decoder means along z_i in [-span, span] for the first ``num_dims`` dims of the location of q(z|x).

    The location is E_q[z] (for a flow posterior, the flow of its base mean);
    a conditional VAE decodes with the label of x[0]. Returns
    [num_dims * steps, H, W, C]: one row per latent dimension.
    """
    first_label = None if labels is None else labels[:1]
    z0 = sampling.posterior_location(model.posterior(x[:1], first_label))[0]
    num_dims = min(num_dims, int(z0.shape[0]))
    values = tf.linspace(-span, span, steps)
    rows = []
    for i in range(num_dims):
        z = tf.tile(z0[tf.newaxis], [steps, 1])
        z = tf.tensor_scatter_nd_update(z, [[j, i] for j in range(steps)], values)
        rows.append(model.likelihood(z, None if labels is None else tf.repeat(first_label, steps)).mean())
    return tf.concat(rows, axis=0)
