"""What a trained VAE has learned, written as pictures (images) or tables (vectors): ``write_samples``.

Images [H, W, C], as PNG grids enlarged to at least 256 pixels (``images.upscale``):
  prior_samples.png     means of p(x|z), z ~ p(z) (a conditional VAE: class i % num_classes for sample i)
  latent_traversal.png  a row per coordinate of the (top) latent layer swept over [-3, 3] around the code of
                        the first test example, or of p(z) without data (``latent_views.latent_traversal``)
  layer_samples.png     a hierarchical VAE only: a row per draw of the top layer, the lower layers drawn
                        afresh in every column (``latent_views.layer_samples``)
  reconstructions.png   with test data: columns alternate test example and reconstruction
Vectors [D] (tabular data), as .npy and .csv (a header row, with the table's column names when known; a
conditional model's class first):
  prior_samples.{npy,csv}     [num_samples, D]
  reconstructions.{npy,csv}   with test data: of the first num_samples test examples, in order
"""

from __future__ import annotations

import os

import numpy as np

from tfvae.evaluation import images, latent_views

__all__ = ["write_samples"]


def write_samples(model, output_dir: str, num_samples: int = 64, seed: int = 0, test_data=None,
                  label_name: str = "label", column_names=None) -> list[str]:
    """Writes the files above into ``output_dir`` (atomically, each); returns their paths.

    Args:
      model: a trained ``tfvae.VAE``.
      num_samples: prior samples, and test examples reconstructed.
      seed: seed of the prior samples.
      test_data: (test examples [N, *data_shape] in [0, 1], their labels or None), or None: no reconstructions.
      label_name: the header of a conditional model's class column in the vector tables.
      column_names: the header of their feature columns (default x_1, ..., x_D).
    """
    sample_labels = np.arange(num_samples) % model.num_classes if model.num_classes else None
    samples = model.sample(num_samples, seed=seed, labels=sample_labels)
    x = labels = None
    if test_data is not None:
        x, labels = test_data[0][:num_samples], None if test_data[1] is None else test_data[1][:num_samples]
    if len(model.data_shape) != 3:
        if column_names is not None and len(column_names) != model.data_shape[0]:
            column_names = None  # a header that does not describe these vectors
        written = images.write_array(os.path.join(output_dir, "prior_samples"), samples.numpy(), sample_labels,
                                     label_name, column_names)
        if x is not None:
            written += images.write_array(os.path.join(output_dir, "reconstructions"),
                                          model.reconstruct(x, labels=labels).numpy(), labels, label_name,
                                          column_names)
        return written
    grids = {
        "prior_samples.png": images.image_grid(samples),
        "latent_traversal.png": images.image_grid(latent_views.latent_traversal(model, x, labels), 9),
    }
    if len(model.latent_dims) > 1:
        grids["layer_samples.png"] = images.image_grid(latent_views.layer_samples(model, seed=seed), 8)
    if x is not None:
        grids["reconstructions.png"] = images.image_grid(
            images.side_by_side(x, model.reconstruct(x, labels=labels)), 16)
    written = []
    for name, grid in grids.items():
        path = os.path.join(output_dir, name)
        images.write_png(path, images.upscale(grid))
        written.append(path)
    return written
