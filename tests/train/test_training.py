"""The training loop: learning on real data, exact resume, NaN safety, run directories."""

import glob
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_killed_run_resumes_exactly, checkpoint_weights, last_error_line, run_script

import tfvae
from tfvae import data
from tfvae.train import checkpoints, training

SMALL = dict(train_examples=3000, batch_size=50, hidden_units=(64,), latent_dim=8, validation_examples=500,
             steps_per_execution=10, checkpoint_every_steps=20)


def _snapshot(directory):
    """File name -> bytes of everything in a directory tree."""
    out = {}
    for path in glob.glob(os.path.join(directory, "**", "*"), recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def test_training_on_real_fashion_mnist_improves_held_out_elbo_widely(tmp_path, fashion_mnist_dir):
    config = tfvae.TrainConfig(epochs=3, **SMALL)
    untrained = tfvae.TrainConfig(epochs=1, **dict(SMALL, train_examples=50))
    before = training.train_and_evaluate(untrained, str(tmp_path / "untrained"), verbose=0)
    after = training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0)
    # An untrained decoder costs ~540 nats per binarized image; 3 short epochs reach about -300.
    assert before["elbo"] < -450
    assert after["elbo"] > before["elbo"] + 150
    assert after["step"] == 3 * 60 and after["epoch"] == 3
    model = tfvae.load_model(str(tmp_path / "run"))
    prepared = data.prepare_data(config)
    reloaded = tfvae.evaluation.elbo_metrics(model, prepared.test_images[:500])
    assert reloaded["elbo"] == pytest.approx(after["elbo"], abs=1e-3)


def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, fashion_mnist_dir):
    flags = ["--train_examples=1200", "--batch_size=40", "--hidden_units=64", "--latent_dim=8", "--epochs=4",
             "--validation_examples=200", "--steps_per_execution=7", "--checkpoint_every_steps=25", "--verbose=0"]
    full, resumed = assert_killed_run_resumes_exactly(tmp_path, flags, "ckpt-120")
    assert json.loads(resumed.stdout.strip().splitlines()[-1]) == json.loads(full.stdout.strip().splitlines()[-1])


@keras.saving.register_keras_serializable(package="tfvae_tests")
class DivergingDecoder(tfvae.BernoulliDecoder):
    """Returns NaN logits once it has been called more than ``healthy_calls`` times."""

    def __init__(self, data_shape, healthy_calls=0, **kwargs):
        super().__init__(data_shape, **kwargs)
        self.healthy_calls = healthy_calls

    def build(self, input_shape):
        super().build(input_shape)
        self.calls = self.add_weight(name="calls", shape=(), initializer="zeros", trainable=False)

    def call(self, z):
        self.calls.assign_add(1.0)
        dist = super().call(z)
        poison = tf.where(self.calls > self.healthy_calls, float("nan"), 0.0)
        return tfvae.decoders.tfd.Independent(
            tfvae.decoders.tfd.Bernoulli(logits=dist.distribution.logits + poison, dtype=tf.float32), 3)

    def get_config(self):
        return dict(super().get_config(), healthy_calls=self.healthy_calls)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, fashion_mnist_dir):
    config = tfvae.TrainConfig(epochs=5, **dict(SMALL, train_examples=1000))
    model = tfvae.VAE(
        encoder=tfvae.GaussianEncoder(8, hidden_units=[64]),
        decoder=DivergingDecoder((28, 28, 1), healthy_calls=45, hidden_units=[64]),
        prior=tfvae.StandardNormalPrior(8))
    model_dir = str(tmp_path / "run")
    with pytest.raises(training.NonFiniteLossError, match=r"non-finite loss \(nan\) at step (\d+)") as error:
        training.train_and_evaluate(config, model_dir, model=model, verbose=0)
    good_path, good_weights = checkpoint_weights(model_dir)
    good_step = int(good_path.rsplit("-", 1)[1])
    failed_step = int(str(error.value).split("at step ")[1].split("-")[0].split(";")[0])
    assert 0 < good_step < failed_step
    assert "the last good checkpoint" in str(error.value) and good_path in str(error.value)
    assert all(np.isfinite(w).all() for w in good_weights.values())
    assert "\n" not in str(error.value)


def test_checkpoint_refuses_non_finite_weights(tmp_path):
    model = tfvae.VAE(tfvae.GaussianEncoder(2, hidden_units=[4]), tfvae.BernoulliDecoder((4, 4, 1), hidden_units=[4]),
                      tfvae.StandardNormalPrior(2))
    model.build((None, 4, 4, 1))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    state = checkpoints.TrainingState(model, optimizer, str(tmp_path / "checkpoints"))
    state.save()
    model.encoder.head.bias.assign(np.full(4, np.nan, np.float32))
    with pytest.raises(FloatingPointError, match="refusing to checkpoint non-finite weights"):
        state.save()
    assert len(glob.glob(str(tmp_path / "checkpoints" / "*.index"))) == 1


def _train_in_process(data_dir, model_dir):
    """The run train.py makes with the base flags of the tests below (in-process: no second interpreter start)."""
    config = tfvae.TrainConfig(dataset="idx", data_dir=str(data_dir), hidden_units=(8,), latent_dim=2, batch_size=16,
                               epochs=1)
    training.train_and_evaluate(config, str(model_dir), verbose=0)


@pytest.mark.parametrize("flag, message", [
    ("--epochs=0", "flag --epochs must be > 0; got 0"),
    ("--learning_rate=-1", "flag --learning_rate must be > 0"),
    ("--hidden_units=4,x", "flag --hidden_units: expected comma-separated positive ints"),
    ("--likelihood=poisson", "flag --likelihood"),
])
def test_bad_flags_give_one_line_errors_and_keep_the_run_directory(tmp_path, tiny_idx_dir, flag, message):
    model_dir = tmp_path / "run"
    base = ["--dataset=idx", f"--data_dir={tiny_idx_dir}", "--hidden_units=8", "--latent_dim=2", "--batch_size=16",
            "--epochs=1", "--verbose=0", f"--model_dir={model_dir}"]
    _train_in_process(tiny_idx_dir, model_dir)
    before = _snapshot(str(model_dir))
    result = run_script("train.py", *base, flag)
    assert result.returncode != 0
    assert re.search(message, result.stderr), result.stderr[-1000:]
    assert _snapshot(str(model_dir)) == before


def test_batch_larger_than_the_data_is_rejected_before_training(tmp_path, tiny_idx_dir):
    result = run_script("train.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", "--batch_size=100000",
                        f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert "batch_size (100000) must not exceed the number of training examples (64)" in last_error_line(result)
    assert not glob.glob(str(tmp_path / "run" / "checkpoints" / "*"))


@pytest.mark.parametrize("damage, message", [
    ("truncate", "train-images-idx3-ubyte.gz: cannot read IDX file"),
    ("labels", "t10k-labels-idx1-ubyte.gz: 3 labels for 16 images"),
    ("missing", "no file matching"),
])
def test_bad_data_gives_one_line_error_before_training_and_keeps_the_run(tmp_path, tiny_idx_dir, damage, message):
    from conftest import write_idx

    model_dir = tmp_path / "run"
    base = ["--dataset=idx", f"--data_dir={tiny_idx_dir}", "--hidden_units=8", "--latent_dim=2", "--batch_size=16",
            "--verbose=0", f"--model_dir={model_dir}"]
    _train_in_process(tiny_idx_dir, model_dir)
    before = _snapshot(str(model_dir))
    images = os.path.join(tiny_idx_dir, "train-images-idx3-ubyte.gz")
    if damage == "truncate":
        with open(images, "r+b") as f:
            f.truncate(40)
    elif damage == "labels":
        write_idx(os.path.join(tiny_idx_dir, "t10k-labels-idx1-ubyte.gz"), np.zeros(3))
    else:
        os.remove(images)
    result = run_script("train.py", *base, "--epochs=2")
    assert result.returncode == 1
    assert message in last_error_line(result) and last_error_line(result).startswith("train.py: error:")
    assert _snapshot(str(model_dir)) == before  # nothing is written before the data has loaded


def test_changing_the_model_in_an_existing_run_directory_is_refused(tmp_path, tiny_idx_dir):
    model_dir = tmp_path / "run"
    base = ["--dataset=idx", f"--data_dir={tiny_idx_dir}", "--hidden_units=8", "--batch_size=16", "--verbose=0",
            f"--model_dir={model_dir}", "--epochs=1"]
    _train_in_process(tiny_idx_dir, model_dir)
    before = _snapshot(str(model_dir))
    result = run_script("train.py", *base, "--latent_dim=3")
    assert result.returncode == 2
    assert "holds a run with latent_dim=2, not 3" in last_error_line(result)
    assert _snapshot(str(model_dir)) == before


def test_flags_file_replays_the_run_into_a_new_directory_and_evaluate_prints_json(tmp_path, tiny_idx_dir):
    model_dir = tmp_path / "run"
    result = run_script("train.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", "--hidden_units=8",
                        "--latent_dim=2", "--batch_size=16", "--epochs=2", "--verbose=0", f"--model_dir={model_dir}")
    assert result.returncode == 0, result.stderr[-2000:]
    flags_text = (model_dir / "flags.txt").read_text()
    assert "--latent_dim=2" in flags_text and f"--data_dir={tiny_idx_dir}" in flags_text
    replay = run_script("train.py", f"--flagfile={model_dir / 'flags.txt'}", f"--model_dir={tmp_path / 'replay'}")
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert json.loads(replay.stdout.splitlines()[-1]) == json.loads(result.stdout.splitlines()[-1])
    _, original_weights = checkpoint_weights(str(model_dir))
    _, replayed_weights = checkpoint_weights(str(tmp_path / "replay"))
    for name, value in original_weights.items():
        np.testing.assert_array_equal(replayed_weights[name], value, err_msg=name)

    evaluation = run_script("evaluate.py", f"--model_dir={model_dir}", "--num_importance_samples=50")
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    metrics = json.loads(evaluation.stdout.strip().splitlines()[-1])
    for key in ("elbo", "rate", "distortion", "log_likelihood", "num_importance_samples", "bits_per_dim",
                "active_units", "num_examples"):
        assert key in metrics
    assert metrics["num_examples"] == 16 and metrics["num_importance_samples"] == 50
    assert metrics["log_likelihood"] >= metrics["elbo"] - 1.0  # 16 images, k=50: a one-sided sanity band
    assert metrics["bits_per_dim"] == pytest.approx(-metrics["log_likelihood"] / (64 * np.log(2)), rel=1e-6)

    pictures = run_script("sample.py", f"--model_dir={model_dir}", f"--output_dir={tmp_path / 'png'}")
    assert pictures.returncode == 0, pictures.stderr[-2000:]
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "png" / "reconstructions.png")))
    assert grid.shape[-1] == 1 and grid.shape[0] > 8


def test_evaluate_reports_a_missing_run_in_one_line(tmp_path):
    result = run_script("evaluate.py", f"--model_dir={tmp_path}")
    assert result.returncode == 1
    assert last_error_line(result).startswith("evaluate.py: error: flag --model_dir:")


def test_evaluate_continues_from_its_bounds_file_and_refuses_another_evaluations(tmp_path, tiny_idx_dir):
    model_dir, bounds = tmp_path / "run", tmp_path / "bounds.npz"
    _train_in_process(tiny_idx_dir, model_dir)
    args = [f"--model_dir={model_dir}", "--num_importance_samples=20", "--batch_size=4", f"--bounds_file={bounds}"]
    first = run_script("evaluate.py", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    with np.load(bounds) as saved:
        all_bounds, settings = saved["bounds"], str(saved["settings"])
    assert len(all_bounds) == 16 and json.loads(settings)["checkpoint"].startswith("ckpt-")
    metrics = json.loads(first.stdout.splitlines()[-1])
    assert metrics["log_likelihood"] == pytest.approx(all_bounds.mean(), abs=1e-9)
    # As if interrupted after two batches, with those bounds marked: the rerun keeps them and computes the rest.
    np.savez(bounds, bounds=np.full(8, -1.0), settings=settings)
    continued = run_script("evaluate.py", *args)
    assert continued.returncode == 0, continued.stderr[-2000:]
    expected = np.concatenate([np.full(8, -1.0), all_bounds[8:]]).mean()
    assert json.loads(continued.stdout.splitlines()[-1])["log_likelihood"] == pytest.approx(expected, abs=1e-9)
    before = bounds.read_bytes()
    other = run_script("evaluate.py", *args[:1], "--num_importance_samples=50", *args[2:])
    assert other.returncode == 2
    assert last_error_line(other).startswith(f"evaluate.py: error: flag --bounds_file: {bounds} holds another "
                                             "evaluation's bounds (num_importance_samples 20, not 50)")
    assert bounds.read_bytes() == before
