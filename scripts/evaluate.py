"""Evaluates a trained VAE on test data; the last stdout line is one JSON object.

  python scripts/evaluate.py --model_dir=runs/mlp

Reports elbo, rate, distortion, log_likelihood (the IWAE bound with
--num_importance_samples, nats per example) and log_likelihood_stderr (the
standard error of that mean over the evaluated examples: with --max_examples,
how far the full test set's figure may lie), bits_per_dim, active_units (a
hierarchical VAE's also per layer, with its rate per layer), num_examples,
density (true for a gaussian or continuous Bernoulli likelihood, a density
on [0, 1]^D: its log_likelihood can be positive and bits_per_dim negative;
a note on stderr says so) and seconds. The test data is the run's own (from its config.json), or the
data named by --dataset/--data_dir; Bernoulli models get the test set
binarized once with the run's --test_binarization_seed. A run that streamed
its training split (--input_mode) streams the test split too, in batches, so
any size evaluates in bounded memory.

--bounds_file=PATH.npz keeps each test example's IWAE bound as it is
computed (saved after every batch, by a rename); rerunning the same command
after an interruption continues where it stopped and prints the figures an
uninterrupted run would. A file from another checkpoint, k, batch size or
test set is refused in one line and left as it is.

The IWAE pass (k importance samples per example) is the long part. Each
batch of --batch_size examples is split over the replicas of --strategy
(mirrored: all local GPUs, --devices, or the CPU split by
--logical_cpu_devices), and each replica draws its k samples a chunk at a
time: --chunk_size samples, or as many as --chunk_memory_mib allows, the
memory of one (example, sample) pair estimated from the model's graph. A
device that runs out of memory halves the chunk (then the examples per
replica) and computes the batch again, with a warning. The figures are the
same, to float rounding, for any strategy, chunk or retry.

  python scripts/evaluate.py --model_dir=runs/conv --strategy=mirrored   # every local GPU
"""

import dataclasses
import json
import os
import time

import _startup
from absl import flags

from tfvae import data, evaluation
from tfvae.core import distribute
from tfvae.train import cli, loading, training

EVALUATION_STRATEGIES = ("default", "one_device", "mirrored")

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Training run directory to evaluate.")
_DATASET = cli.define_dataset_flag(None, "Data set to evaluate on (default: the run's)")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Data location (default: the run's).")
_NUM_SAMPLES = flags.DEFINE_integer("num_importance_samples", 5000, "k of the IWAE bound on log p(x).", lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Test examples per IWAE batch, split over the replicas.",
                                   lower_bound=1)
_CHUNK_SIZE = flags.DEFINE_integer(
    "chunk_size", 0, "Importance samples per chunk of the IWAE pass (0 = as many as --chunk_memory_mib allows).",
    lower_bound=0)
_CHUNK_MEMORY_MIB = flags.DEFINE_integer(
    "chunk_memory_mib", 0, "Memory per device (MiB) for one chunk's activations, estimated from the model's graph "
    "(0 = half a GPU's free memory when TensorFlow knows its limit, else 4096 MiB on a GPU and 1024 MiB on a CPU).",
    lower_bound=0)
_DISTRIBUTION = cli.define_config_flags(names=("strategy", "devices", "logical_cpu_devices"))
flags.register_validator("strategy", lambda name: name in EVALUATION_STRATEGIES,
                         f"evaluate.py takes the strategies whose replicas run in this process: {EVALUATION_STRATEGIES}")
_MAX_EXAMPLES = flags.DEFINE_integer("max_examples", 0, "Evaluate on the first N test examples (0 = all).", lower_bound=0)
_BOUNDS_FILE = flags.DEFINE_string(
    "bounds_file", None, "An .npz file keeping the per-example IWAE bounds as they are computed: rerun with the "
    "same file to continue an interrupted evaluation.")


flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    cli.quiet_logging()
    distribute.disable_tensor_float_32()  # reported figures in float32 on Ampere and newer GPUs too
    try:
        strategy = distribute.make_strategy(_DISTRIBUTION["strategy"].value, _DISTRIBUTION["devices"].value,
                                            _DISTRIBUTION["logical_cpu_devices"].value)
    except ValueError as e:
        cli.exit_with_error(cli.flag_error(e))
    with strategy.scope():  # the weights mirrored on every replica's device
        config, model = cli.load_run_or_exit(_MODEL_DIR.value)
    if _DATASET.value:
        config = dataclasses.replace(config, dataset=_DATASET.value)
    try:
        prepared = data.prepare_data(config, _DATA_DIR.value)
    except data.DataError as e:
        cli.exit_with_error(str(e), code=1)
    test_images, test_labels = prepared.test_split(config.test_binarization_seed, _MAX_EXAMPLES.value)
    if tuple(test_images.shape[1:]) != tuple(model.data_shape):
        cli.exit_with_error(
            f"flag --data_dir: test images have shape {list(test_images.shape[1:])}, the model expects "
            f"{list(model.data_shape)}", code=1)
    bounds_file = None
    if _BOUNDS_FILE.value:
        bounds_file = evaluation.BoundsFile(_BOUNDS_FILE.value, {
            "model_dir": os.path.realpath(_MODEL_DIR.value), "checkpoint": loading.latest_checkpoint(_MODEL_DIR.value),
            "dataset": config.dataset, "data_dir": _DATA_DIR.value or config.data_dir,
            "test_binarization_seed": config.test_binarization_seed, "num_examples": len(test_images),
            "num_importance_samples": _NUM_SAMPLES.value, "batch_size": _BATCH_SIZE.value})
    start = time.perf_counter()
    try:
        metrics = evaluation.evaluate_model(
            model, test_images, _NUM_SAMPLES.value, _BATCH_SIZE.value, jit_compile=training.xla_enabled(config),
            labels=test_labels, bounds_file=bounds_file, strategy=strategy, chunk_size=_CHUNK_SIZE.value or None,
            memory_budget=(_CHUNK_MEMORY_MIB.value << 20) or None)
    except evaluation.EvaluationMemoryError as e:
        cli.exit_with_error(str(e), code=1)
    except evaluation.BoundsFileError as e:
        cli.exit_with_error(f"flag --bounds_file: {e}")
    except OSError as e:
        cli.exit_with_error(f"flag --bounds_file: cannot write {e.filename or _BOUNDS_FILE.value} ({e.strerror})",
                            code=1)
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    if metrics["density"]:
        cli.print_note(f"the {config.likelihood} likelihood is a density on [0, 1]^D: log_likelihood is a "
                       "log-density (it can be positive, and bits_per_dim negative), comparable only with other "
                       "densities of data on the same scale, not with a discrete likelihood's")
    print(json.dumps(metrics))


if __name__ == "__main__":
    _startup.run(main)
