"""Exports a trained VAE as a SavedModel that TF Serving loads as it is.

  python scripts/export.py --model_dir=runs/mlp --export_dir=saved_models/mlp

writes saved_models/mlp/<next version>/ (saved_model.pb, variables/,
assets.extra/{model_card.json, flags.txt}) from the run's latest checkpoint
and prints the version's path. Signatures: encode, decode, reconstruct,
sample, log_likelihood; serving_default = reconstruct (see tfvae/serving/export.py
and the README).
"""

import json
import os
import shutil
import tempfile

import _startup
import tensorflow as tf
from absl import flags

import tfvae
from tfvae import data
from tfvae.core import distribute, files
from tfvae.serving import export
from tfvae.train import cli, loading, rundir

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Training run directory to export (latest checkpoint).")
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "Base folder of the exported model; versions are its numbered subfolders.")
_VERSION = flags.DEFINE_integer("version", None, "Version to write (default: the next free number).", lower_bound=1)
_MAX_BATCH = flags.DEFINE_integer("max_batch_size", 1024, "Largest batch a request may send.", lower_bound=1)
_MAX_K = flags.DEFINE_integer(
    "max_importance_samples", 10000, "Largest num_importance_samples a log_likelihood request may ask.", lower_bound=1)
_MAX_SAMPLES = flags.DEFINE_integer(
    "max_samples_per_request", export.MAX_SAMPLES_PER_REQUEST, "Largest batch * num_importance_samples of a "
    "log_likelihood request (its cost: that many decoder passes).", lower_bound=1)
_MAX_ABS_LATENT = flags.DEFINE_float(
    "max_abs_latent", export.MAX_ABS_LATENT, "Largest |z| a decode request may send.", lower_bound=1e-6)
_REFERENCE_EXAMPLES = flags.DEFINE_integer(
    "reference_examples", 0, "If > 0, the model card gets the mean ELBO and IWAE bound (k=1000, seed 0) that the "
    "export's log_likelihood signature gives on the first N test images of the run's data set.", lower_bound=0)
_KERAS_FILE = flags.DEFINE_string(
    "keras_file", None, "Also save the model as this .keras file (for tfvae.load_model and Keras users); an existing "
    "file is not overwritten.")
_TEST_METRICS = flags.DEFINE_string(
    "test_metrics", None, "A file holding the JSON line evaluate.py printed for this run (its last stdout line): "
    "recorded in the model card as test_metrics.")
_REPRODUCE = flags.DEFINE_multi_string(
    "reproduce", [], "A command that reproduces the model or its figures, recorded in the model card in order "
    "(repeat the flag for each).")
flags.mark_flag_as_required("model_dir")
flags.mark_flag_as_required("export_dir")


def read_test_metrics(path: str) -> dict:
    """evaluate.py's JSON object of figures from ``path`` (a small file: at most 64 KiB, names to numbers)."""
    try:
        with open(path, "rb") as f:
            text = f.read(2**16 + 1)
    except OSError as e:
        cli.exit_with_error(f"flag --test_metrics: cannot read {path} ({e.strerror})", code=1)
    lines = text.decode(errors="replace").strip().splitlines()
    try:
        if len(text) > 2**16 or not lines:
            raise ValueError("expected one JSON line of at most 64 KiB")
        metrics = json.loads(lines[-1])
        if not isinstance(metrics, dict) or "log_likelihood" not in metrics:
            raise ValueError("expected evaluate.py's JSON object, with log_likelihood")
    except ValueError as e:
        cli.exit_with_error(f"flag --test_metrics: {path}: not evaluate.py's output ({str(e).splitlines()[0]})", code=1)
    return metrics


def save_keras_file(model, path: str) -> None:
    """``model`` as a new .keras file at ``path``, written under a unique temporary name and renamed; an existing
    file is left alone (exit 1)."""
    if not path.endswith(".keras"):
        cli.exit_with_error(f"flag --keras_file: must end with .keras; got {path!r}", code=1)
    if os.path.lexists(path):
        cli.exit_with_error(f"flag --keras_file: {path} exists; it is not overwritten (choose a new name)", code=1)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".keras_file.", dir=folder)
    try:
        model.save(os.path.join(staging, "model.keras"))
        files.commit(os.path.join(staging, "model.keras"), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def model_card(model_dir, model, config) -> dict:
    """Facts a serving client needs: shapes, likelihood, prior, metrics at export, and how the model was made."""
    run = rundir.RunDirectory(model_dir)
    latest = loading.latest_checkpoint(model_dir)
    made = {}
    if _TEST_METRICS.value:
        made["test_metrics"] = read_test_metrics(_TEST_METRICS.value)
    if _REPRODUCE.value:
        made["reproduce"] = list(_REPRODUCE.value)
    return made | {
        "data_range": [0.0, 1.0],
        "likelihood": config.likelihood,
        "gaussian_scale": config.gaussian_scale if config.likelihood == "gaussian" else None,
        "prior": type(model.prior_layer).__name__,
        "architecture": config.architecture,
        "hidden_units": list(config.hidden_units),
        "dataset": config.dataset,
        "checkpoint": latest,
        "validation_metrics_at_export": run.read_metrics(),
        "tfvae_version": tfvae.__version__,
        "tensorflow_version": tf.__version__,
    }


def reference_data(config, count):
    """The first ``count`` test images (and labels) of the run, as evaluation sees them, with how they were made."""
    prepared = data.prepare_data(config)
    description = f"the first {count} test images of {config.dataset} in [0, 1]"
    if prepared.binarize:
        description += (f", binarized once as in evaluation: numpy.random.default_rng({config.test_binarization_seed})"
                        ".random(all_test_images.shape, dtype=numpy.float32) < all_test_images / 255")
    labels = None if prepared.test_labels is None or not config.conditional else prepared.test_labels[:count]
    return {"images": prepared.test_images[:count], "labels": labels, "description": description}


def main(argv):
    del argv
    cli.quiet_logging()
    distribute.disable_tensor_float_32()  # reported figures in float32 on Ampere and newer GPUs too
    config, model = cli.load_run_or_exit(_MODEL_DIR.value)
    flags_text = rundir.RunDirectory(_MODEL_DIR.value).read_flags()
    reference = None
    if _REFERENCE_EXAMPLES.value:
        if config.dataset == data.PYTHON_DATASET:
            cli.exit_with_error("flag --reference_examples: this run's data was given from Python, so there is no "
                                "test data to read; leave --reference_examples at 0", code=1)
        try:
            reference = reference_data(config, _REFERENCE_EXAMPLES.value)
        except data.DataError as e:
            cli.exit_with_error(f"flag --reference_examples: needs the run's test data, which cannot be read ({e})",
                                code=1)
    try:
        path = export.export_model(
            model, _EXPORT_DIR.value, _VERSION.value,
            model_card=model_card(_MODEL_DIR.value, model, config),
            extra_files={"flags.txt": flags_text} if flags_text else None,
            max_batch_size=_MAX_BATCH.value, max_importance_samples=_MAX_K.value,
            max_samples_per_request=_MAX_SAMPLES.value, max_abs_latent=_MAX_ABS_LATENT.value,
            reference_data=reference,
        )
    except export.ExportError as e:
        cli.exit_with_error(f"flag --export_dir/--version: {e}", code=1)
    except OSError as e:
        cli.exit_with_error(f"flag --export_dir: cannot write {_EXPORT_DIR.value} ({e.strerror})", code=1)
    if _KERAS_FILE.value:
        save_keras_file(model, _KERAS_FILE.value)
        print(_KERAS_FILE.value)
    print(path)


if __name__ == "__main__":
    _startup.run(main)
