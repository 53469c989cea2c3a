"""Test log-likelihood of the standard model families for one training budget (a benchmark, not a test).

  python scripts/benchmark_families.py --workdir=/tmp/families
  python scripts/benchmark_families.py --workdir=/tmp/families --rows=gaussian,vamp --epochs=5

Each row trains scripts/configs/families.flags plus the row's flags (the same
networks, data, steps and optimizer for every row), then evaluates on the
first --eval_examples test images (the fixed binarization): the ELBO and the
IWAE bound with k = --num_importance_samples. It prints one table line per
row as soon as the row is done, with the equivalent train.py command, and
writes <workdir>/families.json. A row whose run directory holds a finished
run is evaluated again without retraining.
"""

import json
import os
import time

import _startup
from absl import flags

import tfvae
from tfvae import data, evaluation
from tfvae.core import files
from tfvae.train import cli, loading, training

ROWS = {
    "gaussian": "",
    "mixture": "--prior=mixture",
    "vamp": "--prior=vamp",
    "flow": "--prior=flow",
    "iaf": "--posterior=iaf",
    "iwae": "--objective=iwae --samples_per_example=5",
    "hierarchical": "--latent_dims=32,16 --kl_warmup_steps=10000 --gradient_spike_factor=10",
}
BASE_FLAGFILE = "scripts/configs/families.flags"

cli.define_config_flags()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the rows' run directories and families.json.")
_ROWS = flags.DEFINE_list("rows", list(ROWS), f"Rows to run, from {list(ROWS)}.")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_examples", 2000, "Test images evaluated per row.", lower_bound=1)
_NUM_SAMPLES = flags.DEFINE_integer("num_importance_samples", 5000, "k of the IWAE bound.", lower_bound=1)
flags.mark_flag_as_required("workdir")


def main(argv):
    del argv
    cli.quiet_logging()
    unknown = sorted(set(_ROWS.value) - set(ROWS))
    if unknown:
        cli.exit_with_error(f"flag --rows: unknown rows {unknown}; expected names from {list(ROWS)}")
    base = cli.config_from_flags()
    results_path = os.path.join(_WORKDIR.value, "families.json")
    results = {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = json.load(f)
    print("| row | flags | train s | test ELBO | test IWAE (k) | bits/dim | active units | eval s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in _ROWS.value:
        config = tfvae.TrainConfig(**{**base.__dict__, **_parse(ROWS[row], base)})
        model_dir = os.path.join(_WORKDIR.value, row)
        start = time.perf_counter()
        training.train_and_evaluate(config, model_dir, verbose=0)
        train_seconds = time.perf_counter() - start
        model = loading.load_model(model_dir)
        prepared = data.prepare_data(config)
        start = time.perf_counter()
        metrics = evaluation.evaluate_model(model, prepared.test_images[: _EVAL_EXAMPLES.value], _NUM_SAMPLES.value,
                                            jit_compile=training.xla_enabled(config))
        metrics.update(train_seconds=round(train_seconds, 1), eval_seconds=round(time.perf_counter() - start, 1),
                       flags=ROWS[row])
        results[row] = metrics
        files.write_atomic(results_path, json.dumps(results, indent=1))
        print(f"| {row} | `{ROWS[row] or '(base)'}` | {train_seconds:.0f} | {metrics['elbo']:.2f} | "
              f"{metrics['log_likelihood']:.2f} ({_NUM_SAMPLES.value}) | {metrics['bits_per_dim']:.3f} | "
              f"{metrics['active_units']}/{config.latent_dim} | {metrics['eval_seconds']:.0f} |", flush=True)


def _parse(row_flags: str, base) -> dict:
    """{field: typed value} for a row's "--name=value ..." flags."""
    values = {}
    for item in row_flags.split():
        name, value = item[2:].split("=", 1)
        default = getattr(base, name)
        if isinstance(default, bool):
            values[name] = value == "true"
        elif isinstance(default, tuple):  # a list flag, e.g. --latent_dims=32,16 (TrainConfig types its items)
            values[name] = tuple(value.split(","))
        else:
            values[name] = type(default)(value)
    return values


if __name__ == "__main__":
    _startup.run(main)
