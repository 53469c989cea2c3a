"""Run directories and .keras files written by tfvae 0.3.0 load and evaluate to the figures 0.3.0 gave (the IWAE
bound's as recomputed when its importance samples' noise changed: tests/fixtures/v0_3_0/README.md)."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
from conftest import REPO, run_script

from tfvae import data, evaluation
from tfvae.train import loading

FIXTURES = os.path.join(REPO, "tests", "fixtures", "v0_3_0")
RUNS = ("conv_logistic_conditional", "hierarchical_flow_iwae", "mlp_vamp")
with open(os.path.join(FIXTURES, "figures.json")) as f:
    FIGURES = json.load(f)


def _test_images(config, root):
    prepared = data.prepare_data(config, os.path.join(root, "blobs.npz"))
    return prepared.test_split(config.test_binarization_seed, 20)


def _figures(model, images, labels):
    got = evaluation.evaluate_model(model, images, 10, 10, labels=labels)
    return {k: got[k] for k in ("elbo", "log_likelihood")}


@pytest.mark.parametrize("name", RUNS)
def test_a_0_3_0_run_and_keras_file_evaluate_to_their_figures(name, tmp_path):
    root = shutil.copytree(FIXTURES, tmp_path / "v0_3_0")
    run = os.path.join(root, name)
    config = loading.load_config(run)
    images, labels = _test_images(config, root)
    from_run = _figures(loading.load_model(run), images, labels)
    from_keras = _figures(keras.saving.load_model(os.path.join(root, name + ".keras")), images, labels)
    # Same weights, same seeds: equal up to the float32 rounding of another CPU's kernels.
    for key, expected in FIGURES[name]["run"].items():
        np.testing.assert_allclose(from_run[key], expected, rtol=1e-5, err_msg=key)
    for key, expected in FIGURES[name]["keras"].items():
        np.testing.assert_allclose(from_keras[key], expected, rtol=1e-5, err_msg=key)


def test_evaluate_script_reads_a_0_3_0_run(tmp_path):
    root = shutil.copytree(FIXTURES, tmp_path / "v0_3_0")
    result = run_script("evaluate.py", f"--model_dir={root}/hierarchical_flow_iwae",
                        f"--data_dir={root}/blobs.npz", "--max_examples=20", "--num_importance_samples=10",
                        "--batch_size=10")
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(metrics["log_likelihood"], FIGURES["hierarchical_flow_iwae"]["run"]["log_likelihood"],
                               rtol=1e-5)


def test_a_0_3_0_discretized_logistic_run_rebuilds_from_its_config_with_its_per_channel_likelihood(tmp_path):
    """config.json of 0.3.0 has no pixel_mixture: read as per_channel, so a resumed run builds the model it saved."""
    from tfvae.train import checkpoints, factory

    root = shutil.copytree(FIXTURES, tmp_path / "v0_3_0")
    run = os.path.join(root, "conv_logistic_conditional")
    config = loading.load_config(run)
    assert config.pixel_mixture == "per_channel"
    model = factory.build_model(config, (8, 8, 1), num_classes=3)
    model.build((None, 8, 8, 1))
    assert checkpoints.TrainingState(model, None, os.path.join(run, "checkpoints")).restore_latest(require=True)
    assert loading.load_config(os.path.join(root, "mlp_vamp")).pixel_mixture == "joint"  # not a mixture: the default
