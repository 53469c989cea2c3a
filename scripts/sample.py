"""Writes pictures (or tables) of what a trained VAE learned.

  python scripts/sample.py --model_dir=runs/mlp [--output_dir=runs/mlp/samples]

Files (tfvae/evaluation/samples.py): prior_samples.png (means of p(x|z),
z ~ p(z)), latent_traversal.png (one row per coordinate of the (top) latent
layer, swept over [-3, 3] around a test example's code), layer_samples.png
(a hierarchical VAE: a row per top-layer draw, the lower layers drawn afresh
in every column) and reconstructions.png (columns alternate test input and
reconstruction). A model of vectors (tabular data, examples [D]) writes
tables instead: prior_samples.npy/.csv and reconstructions.npy/.csv
[num_samples, D] (of the first test examples, in order; the CSVs have a
header row, the table's own column names if it had them, and a conditional
model's class first).

Only the reconstructions need data: the run's own (from its config.json) or
the one --dataset/--data_dir name. A run whose data was given from Python,
or whose data cannot be read, gets the other files and a one-line note.
"""

import dataclasses

import _startup
from absl import flags

from tfvae import data
from tfvae.data import tables
from tfvae.evaluation import samples
from tfvae.train import cli, rundir

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Training run directory.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write the files (default <model_dir>/samples).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 64, "Prior samples and reconstructions to draw.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the prior samples.")
_DATASET = cli.define_dataset_flag(None, "Data set of the reconstructions (default: the run's)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where that data is (default: the run's).")
flags.mark_flag_as_required("model_dir")


def test_data(config, model):
    """(test examples, labels or None) for the reconstructions, or None with a note when there is no data."""
    asked = bool(_DATASET.value or _DATA_DIR.value)
    if _DATASET.value:
        config = dataclasses.replace(config, dataset=_DATASET.value)
    if config.dataset == data.PYTHON_DATASET and not asked:
        cli.print_note("no reconstructions: this run's data was given from Python; pass --dataset and --data_dir "
                       "to reconstruct test data read from files")
        return None
    try:
        prepared = data.prepare_data(config, _DATA_DIR.value)
    except (data.DataError, ValueError) as e:
        if asked:
            cli.exit_with_error(f"flag --dataset/--data_dir: {e}", code=1)
        cli.print_note(f"no reconstructions: the run's data cannot be read ({e}); pass --dataset and --data_dir")
        return None
    if tuple(prepared.data_shape) != tuple(model.data_shape):
        cli.exit_with_error(f"flag --data_dir: its examples have shape {list(prepared.data_shape)}, the model "
                            f"takes {list(model.data_shape)}", code=1)
    return prepared.test_images, prepared.test_labels


def main(argv):
    del argv
    cli.quiet_logging()
    config, model = cli.load_run_or_exit(_MODEL_DIR.value)
    output_dir = _OUTPUT_DIR.value or rundir.RunDirectory(_MODEL_DIR.value).samples_dir
    table = _DATA_DIR.value or config.data_dir
    is_table = (_DATASET.value or config.dataset) == "csv" and table
    columns = tables.feature_names(table, config.label_column) if is_table else None
    written = samples.write_samples(model, output_dir, _NUM_SAMPLES.value, _SEED.value, test_data(config, model),
                                    label_name=config.label_column, column_names=columns)
    for path in written:
        print(path)


if __name__ == "__main__":
    _startup.run(main)
