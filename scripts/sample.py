"""Writes PNG grids of what a trained VAE learned.

  python scripts/sample.py --model_dir=runs/mlp [--output_dir=runs/mlp/samples]

Files: prior_samples.png (means of p(x|z), z ~ p(z)), reconstructions.png
(columns alternate test input and reconstruction), latent_traversal.png (one
row per latent dimension, z_i swept over [-3, 3] around a test image's code).
A model of vectors (tabular data, examples [D]) writes arrays instead:
prior_samples.npy/.csv [num_samples, D] and reconstructions.npy/.csv
[num_samples, D] (of the first test examples, in order).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

from tfvae import data
from tfvae.evaluation import images
from tfvae.train import cli, rundir

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Training run directory.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write the PNGs (default <model_dir>/samples).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 64, "Prior samples and reconstructions to draw.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the prior samples.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    cli.quiet_logging()
    config, model = cli.load_run_or_exit(_MODEL_DIR.value)
    try:
        prepared = data.prepare_data(config)
    except data.DataError as e:
        cli.exit_with_error(str(e), code=1)
    output_dir = _OUTPUT_DIR.value or rundir.RunDirectory(_MODEL_DIR.value).samples_dir
    count = _NUM_SAMPLES.value
    x = prepared.test_images[:count]
    labels = None if prepared.test_labels is None else prepared.test_labels[:count]
    # A conditional model draws its prior samples class by class: label i % num_classes for sample i.
    sample_labels = np.arange(count) % model.num_classes if model.num_classes else None
    if len(model.data_shape) != 3:
        arrays = {"prior_samples": model.sample(count, seed=_SEED.value, labels=sample_labels).numpy(),
                  "reconstructions": model.reconstruct(x, labels=labels).numpy()}
        for name, values in arrays.items():
            for path in images.write_array(os.path.join(output_dir, name), values):
                print(path)
        return
    grids = {
        "prior_samples.png": images.image_grid(model.sample(count, seed=_SEED.value, labels=sample_labels)),
        "reconstructions.png": images.image_grid(images.side_by_side(x, model.reconstruct(x, labels=labels)), 16),
        "latent_traversal.png": images.image_grid(images.latent_traversal(model, x, labels=labels), 9),
    }
    for name, grid in grids.items():
        images.write_png(os.path.join(output_dir, name), grid)
        print(os.path.join(output_dir, name))


if __name__ == "__main__":
    app.run(main)
