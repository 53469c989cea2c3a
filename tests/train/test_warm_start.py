"""--init_from: a new run starts from another model's weights, with a fresh optimizer, step and schedule."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import last_error_line, run_script, write_idx_dataset

import tfvae
from tfvae.train import training, warm_start

TINY = dict(dataset="idx", hidden_units=(16,), latent_dim=2, epochs=1, batch_size=16, steps_per_execution=2)


class _WeightsAtStart(keras.callbacks.Callback):
    """Records the model's weights and the optimizer's step when training begins."""

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]
        self.step = int(self.model.optimizer.iterations.numpy())


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A trained tiny run (two epochs: 8 steps) and its data."""
    root = tmp_path_factory.mktemp("warm_start")
    data_dir = write_idx_dataset(str(root / "idx"), num_train=64, num_test=16)
    model_dir = str(root / "source")
    tfvae.train_and_evaluate(tfvae.TrainConfig(**dict(TINY, epochs=2), data_dir=data_dir), model_dir, verbose=0)
    return data_dir, model_dir


def _source_weights(path):
    return [np.array(w) for w in tfvae.load_model(path).get_weights()]


@pytest.mark.parametrize("kind", ["run_directory", "keras_file"])
def test_a_run_begins_with_the_sources_weights_and_a_fresh_optimizer(tmp_path, source_run, kind):
    data_dir, source = source_run
    if kind == "keras_file":
        source_file = str(tmp_path / "source.keras")
        tfvae.load_model(source).save(source_file)
        source = source_file
    expected = _source_weights(source)
    started, fresh = _WeightsAtStart(), _WeightsAtStart()
    config = tfvae.TrainConfig(**TINY, data_dir=data_dir, init_from=source, objective="iwae", samples_per_example=3)
    result = training.train_and_evaluate(config, str(tmp_path / "tuned"), callbacks=[started], verbose=0)
    training.train_and_evaluate(tfvae.TrainConfig(**TINY, data_dir=data_dir), str(tmp_path / "scratch"),
                                callbacks=[fresh], verbose=0)

    assert started.step == 0 and result["step"] == 4  # one epoch of 64 / 16: the source's 8 steps are not counted
    assert len(started.weights) == len(expected) > 0
    for got, want in zip(started.weights, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    # without --init_from the same settings start elsewhere: the comparison above can fail
    assert any(not np.array_equal(got, want) for got, want in zip(fresh.weights, expected, strict=True))
    with open(tmp_path / "tuned" / "config.json") as f:
        assert json.load(f)["init_from"] == source


def test_a_network_of_other_shapes_is_refused_in_one_line_and_leaves_no_run_behind(tmp_path, source_run):
    data_dir, source = source_run
    model_dir = str(tmp_path / "tuned")
    other = tfvae.TrainConfig(**dict(TINY, latent_dim=3), data_dir=data_dir, init_from=source)
    with pytest.raises(warm_start.InitFromError) as refused:
        training.train_and_evaluate(other, model_dir, verbose=0)
    message = str(refused.value)
    assert message.startswith(f"init_from: {source}: weight ") and "shape [" in message and "\n" not in message
    assert not os.path.exists(os.path.join(model_dir, "config.json"))
    fixed = tfvae.TrainConfig(**TINY, data_dir=data_dir, init_from=source)  # the corrected command starts the run
    assert training.train_and_evaluate(fixed, model_dir, verbose=0)["step"] == 4


def test_a_resumed_run_keeps_its_own_weights_and_ignores_the_source(tmp_path, source_run):
    data_dir, source = source_run
    model_dir = str(tmp_path / "tuned")
    training.train_and_evaluate(tfvae.TrainConfig(**TINY, data_dir=data_dir, init_from=source), model_dir, verbose=0)
    own = _source_weights(model_dir)
    resumed = _WeightsAtStart()
    more = tfvae.TrainConfig(**dict(TINY, epochs=2), data_dir=data_dir, init_from=str(tmp_path / "moved_away"))
    result = training.train_and_evaluate(more, model_dir, callbacks=[resumed], verbose=0)
    assert resumed.step == 4 and result["step"] == 8
    for got, want in zip(resumed.weights, own, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("make_source, message", [
    (lambda root: str(root / "missing"), "no such run directory or .keras file"),
    (lambda root: (root / "notes.txt").write_text("x") and str(root / "notes.txt"),
     "expected a tfvae run directory or a .keras file"),
    (lambda root: (root / "empty").mkdir() or str(root / "empty"), "config.json"),
])
def test_train_py_names_the_flag_for_a_source_it_cannot_use(tmp_path, source_run, make_source, message):
    data_dir, _ = source_run
    source = make_source(tmp_path)
    result = run_script("train.py", f"--data_dir={data_dir}", "--dataset=idx", "--hidden_units=16", "--latent_dim=2",
                        "--epochs=1", "--batch_size=16", f"--init_from={source}", f"--model_dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    line = last_error_line(result)
    assert line.startswith(f"train.py: error: flag --init_from: {source}") and message in line
    assert not os.path.exists(tmp_path / "run" / "config.json")


def test_train_py_starts_mirrored_replicas_from_the_source(tmp_path, source_run):
    data_dir, source = source_run
    model_dir = str(tmp_path / "tuned")
    # a learning rate of 1e-12 keeps the weights where they started, to within 1e-9 after 4 Adam steps
    result = run_script("train.py", f"--data_dir={data_dir}", "--dataset=idx", "--hidden_units=16", "--latent_dim=2",
                        "--epochs=1", "--batch_size=16", "--learning_rate=1e-12", "--strategy=mirrored",
                        "--logical_cpu_devices=2", f"--init_from={source}", f"--model_dir={model_dir}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 4
    for got, want in zip(_source_weights(model_dir), _source_weights(source), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-8)
