"""Every script on every model family the package trains, with tiny settings, as a user runs them.

A module-scoped fixture trains one tiny run per family through scripts/train.py (an MLP, a conv net, a
hierarchy, a conditional VAE, a table of real values) and one from Python; each test then runs
evaluate.py, sample.py, export.py or serving_client.py (--dry_run) on every run.
"""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
from builders import factor_table, write_table
from conftest import run_script, write_idx_dataset

import tfvae

COMMON = ["--batch_size=16", "--epochs=2", "--steps_per_execution=2", "--seed=0"]
IMAGES = ["--dataset=idx", "--data_dir={idx}"]
FAMILIES = {
    "mlp": [*IMAGES, "--hidden_units=16", "--latent_dim=3"],
    "conv": [*IMAGES, "--architecture=conv", "--hidden_units=4,8", "--latent_dim=3"],
    "hierarchical": [*IMAGES, "--hidden_units=16", "--latent_dims=3,2", "--ladder_units=8"],
    "conditional": [*IMAGES, "--hidden_units=16", "--latent_dim=3", "--conditional"],
    "table": ["--dataset=csv", "--data_dir={table}", "--hidden_units=16", "--latent_dim=2"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """trained(family) -> (run directory, train.py's CompletedProcess), trained on first use in this process.

    (Tests are ordered family by family, so each pytest-xdist worker trains only the families it is given.)
    """
    root = tmp_path_factory.mktemp("families")
    paths = {"idx": write_idx_dataset(str(root / "idx"), num_train=64, num_test=16),
             "table": write_table(root / "table.csv", factor_table(80)[0])}
    runs = {}

    def train(family):
        if family not in runs:
            model_dir = str(root / family)
            flags = (f.format(**paths) for f in FAMILIES[family])
            result = run_script("train.py", f"--model_dir={model_dir}", *COMMON, *flags)
            assert result.returncode == 0, (family, result.stderr[-3000:])
            runs[family] = (model_dir, result)
        return runs[family]

    train.paths = paths
    return train


def _png_shape(path):
    return tuple(tf.io.decode_png(tf.io.read_file(path)).shape)


def check_train_prints_the_run_summary_and_one_plain_line_per_epoch(trained, family, tmp_path):
    _, result = trained(family)
    summary = result.stderr[result.stderr.index("run summary"):]
    assert re.search(r"data: .*: \d+ training \+ \d+ test examples, (images \[8, 8, 1\]|vectors \[6\])", summary)
    assert re.search(r"training: batch 16; \d+ steps per epoch x 2 epochs = \d+ steps", summary)
    assert "validation: all " in summary and "(--validation_examples=2000 asks for more)" in summary
    assert "\x1b[" not in result.stdout and "\b" not in result.stdout  # not a terminal: Keras' verbose=2 lines
    epochs = [line for line in result.stdout.splitlines() if re.match(r"^\s*\d+/\d+ - ", line)]
    assert len(epochs) == 2, result.stdout
    assert "this run is only" in result.stderr and "raise --epochs" in result.stderr


def check_evaluate_prints_the_figures(trained, family, tmp_path):
    model_dir, _ = trained(family)
    result = run_script("evaluate.py", f"--model_dir={model_dir}", "--num_importance_samples=4", "--max_examples=6")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["num_examples"] == 6 and np.isfinite(metrics["log_likelihood"])
    assert metrics["density"] == (family == "table")  # the table's likelihood was fitted: gaussian
    assert ("is a density" in result.stderr) == (family == "table")


def check_sample_draws_every_picture(trained, family, tmp_path):
    model_dir, _ = trained(family)
    result = run_script("sample.py", f"--model_dir={model_dir}", f"--output_dir={tmp_path}", "--num_samples=10")
    assert result.returncode == 0, result.stderr[-2000:]
    written = sorted(os.listdir(tmp_path))
    if family == "table":
        assert written == ["prior_samples.csv", "prior_samples.npy", "reconstructions.csv", "reconstructions.npy"]
        with open(tmp_path / "prior_samples.csv") as f:
            assert f.readline().strip() == ",".join(f"f{i}" for i in range(1, 7))  # the table's own names
        assert np.loadtxt(tmp_path / "reconstructions.csv", delimiter=",", skiprows=1).shape == (8, 6)  # 8 test rows
        return
    expected = ["latent_traversal.png", "prior_samples.png", "reconstructions.png"]
    assert written == sorted(expected + (["layer_samples.png"] if family == "hierarchical" else []))
    for name in written:
        assert max(_png_shape(str(tmp_path / name))[:2]) >= 256, name  # 8x8 cells enlarged to be seen
    rows = 2 if family == "hierarchical" else 3  # the traversal sweeps the (top) layer: a row per coordinate
    height, width, _ = _png_shape(str(tmp_path / "latent_traversal.png"))
    assert height * 9 == rows * width  # 9 columns of equal square cells


def check_export_and_the_serving_client_name_the_input_by_the_kind_of_data(trained, family, tmp_path):
    model_dir, _ = trained(family)
    exported = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'export'}")
    assert exported.returncode == 0, exported.stderr[-2000:]
    name = "vectors" if family == "table" else "images"
    shape = (3, 6) if family == "table" else (3, 8, 8, 1)
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    served = tf.saved_model.load(str(tmp_path / "export" / "1"))
    inputs = {name: tf.constant(x)}
    if family == "conditional":
        inputs["labels"] = tf.constant([0, 1, 2], tf.int32)
    assert served.signatures["reconstruct"](**inputs)["reconstruction"].shape == shape
    client = run_script("serving_client.py", f"--export_dir={tmp_path / 'export'}", "--signature=reconstruct",
                        f"--images_npy={tmp_path / 'x.npy'}", "--dry_run",
                        *(["--labels=0,1,2"] if family == "conditional" else []))
    assert client.returncode == 0, client.stderr[-2000:]
    assert list(json.loads(client.stdout.strip().splitlines()[-1])["inputs"]) == [name] + (
        ["labels"] if family == "conditional" else [])


CHECKS = {
    "train.py": check_train_prints_the_run_summary_and_one_plain_line_per_epoch,
    "evaluate.py": check_evaluate_prints_the_figures,
    "sample.py": check_sample_draws_every_picture,
    "export.py and serving_client.py": check_export_and_the_serving_client_name_the_input_by_the_kind_of_data,
}


@pytest.mark.parametrize("family, script", [(family, script) for family in FAMILIES for script in CHECKS])
def test_every_script_runs_on_every_family(trained, family, script, tmp_path):
    CHECKS[script](trained, family, tmp_path)


def test_sample_on_a_run_trained_from_python_draws_without_data_and_says_so(trained, tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (48, 8, 8, 1), np.uint8)
    config = tfvae.TrainConfig(hidden_units=(16,), latent_dim=3, batch_size=16, epochs=1, steps_per_execution=2)
    model_dir = str(tmp_path / "python")
    tfvae.train_and_evaluate(config, model_dir, train_data=images, verbose=0)
    result = run_script("sample.py", f"--model_dir={model_dir}", f"--output_dir={tmp_path / 'a'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "a")) == ["latent_traversal.png", "prior_samples.png"]
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert notes == ["sample.py: note: no reconstructions: this run's data was given from Python; pass --dataset "
                     "and --data_dir to reconstruct test data read from files"]
    # following the advice works: the flags exist
    result = run_script("sample.py", f"--model_dir={model_dir}", f"--output_dir={tmp_path / 'b'}", "--dataset=idx",
                        f"--data_dir={trained.paths['idx']}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reconstructions.png" in os.listdir(tmp_path / "b")
