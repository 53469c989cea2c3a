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
    assert not os.path.exists(model_dir)  # the run's lock removes the directory it created
    fixed = tfvae.TrainConfig(**TINY, data_dir=data_dir, init_from=source)  # the corrected command starts the run
    assert training.train_and_evaluate(fixed, model_dir, verbose=0)["step"] == 4


@pytest.mark.parametrize("source_has_flow", [False, True])
def test_a_network_with_more_or_fewer_weights_is_refused_naming_the_first_unmatched_one(
        tmp_path, source_run, source_has_flow):
    """A flow prior's weights come after the encoder's and decoder's: the first ones match, the count does not."""
    data_dir, source = source_run
    flow = dict(prior="flow", flow_steps=1, flow_hidden_units=(8,))
    if source_has_flow:
        source = str(tmp_path / "flow_source")
        tfvae.train_and_evaluate(tfvae.TrainConfig(**TINY, **flow, data_dir=data_dir), source, verbose=0)
        target, unmatched = tfvae.TrainConfig(**TINY, data_dir=data_dir, init_from=source), "its weight"
    else:
        target, unmatched = tfvae.TrainConfig(**TINY, **flow, data_dir=data_dir, init_from=source), "this run's weight"
    with pytest.raises(warm_start.InitFromError) as refused:
        training.train_and_evaluate(target, str(tmp_path / "tuned"), verbose=0)
    assert str(refused.value).startswith(f"init_from: {source}: {unmatched} ") and "has no counterpart" in str(refused.value)


def test_a_source_with_non_finite_weights_or_the_run_itself_is_refused(tmp_path, source_run):
    data_dir, source = source_run
    broken = tfvae.load_model(source)
    broken.weights[0].assign(np.full(broken.weights[0].shape, np.nan, np.float32))
    broken.save(tmp_path / "broken.keras")
    config = tfvae.TrainConfig(**TINY, data_dir=data_dir, init_from=str(tmp_path / "broken.keras"))
    with pytest.raises(warm_start.InitFromError, match="broken.keras: holds non-finite weights"):
        training.train_and_evaluate(config, str(tmp_path / "tuned"), verbose=0)
    own = str(tmp_path / "own")
    with pytest.raises(warm_start.InitFromError, match="is this run's own --model_dir"):
        training.train_and_evaluate(config.replace(init_from=own), own, verbose=0)


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
    with open(os.path.join(model_dir, "config.json")) as f:
        assert json.load(f)["init_from"] == source  # the source its weights came from, not the flag it ignored


def test_train_py_keeps_the_recorded_source_in_flags_txt_when_a_resume_ignores_another(tmp_path, source_run):
    data_dir, source = source_run
    model_dir = tmp_path / "tuned"
    _train_py_from(source, data_dir, model_dir)
    resumed = run_script("train.py", f"--flagfile={model_dir / 'flags.txt'}", "--epochs=2",
                         f"--init_from={tmp_path / 'moved_away'}", f"--model_dir={model_dir}", "--verbose=0")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "--init_from=" in resumed.stderr and "not read" in resumed.stderr
    flags = (model_dir / "flags.txt").read_text().splitlines()
    assert [line for line in flags if line.startswith("--init_from=")] == [f"--init_from={source}"]
    assert "--epochs=2" in flags


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


def _train_py_from(source, data_dir, model_dir, *flags):
    result = run_script("train.py", f"--data_dir={data_dir}", "--dataset=idx", "--hidden_units=16", "--latent_dim=2",
                        "--epochs=1", "--batch_size=16", "--learning_rate=0.01", f"--init_from={source}",
                        f"--model_dir={model_dir}", "--verbose=0", *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 4
    return _source_weights(model_dir)


def test_train_py_starts_every_mirrored_replica_from_the_source(tmp_path, source_run):
    """Each replica computes its half of the batch's gradient with its own copy of the weights: a copy left at its
    seed values would change the averaged gradients, so the mirrored run would end elsewhere than one device's."""
    data_dir, source = source_run
    one = _train_py_from(source, data_dir, tmp_path / "one")
    mirrored = _train_py_from(source, data_dir, tmp_path / "mirrored", "--strategy=mirrored",
                              "--logical_cpu_devices=2")
    start = _source_weights(source)
    assert max(np.abs(got - want).max() for got, want in zip(one, start, strict=True)) > 1e-3  # the steps moved them
    for got, want in zip(mirrored, one, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
