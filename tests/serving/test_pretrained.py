"""What a pretrained model ships with: a .keras file beside the SavedModel, and a model card saying how it was made.

``scripts/export.py --keras_file=... --test_metrics=... --reproduce=...`` on a tiny run; ``tfvae.load_model`` on a
.keras file, and its refusals of files it did not write.
"""

import json
import os
import zipfile

import keras
import numpy as np
import pytest
from conftest import last_error_line, run_script, write_idx_dataset

import tfvae
from tfvae.train import loading
from tfvae.train.rundir import RunDirectoryError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    data_dir = write_idx_dataset(str(root / "idx"), num_train=64, num_test=16)
    model_dir = str(root / "run")
    config = tfvae.TrainConfig(dataset="idx", data_dir=data_dir, hidden_units=(16,), latent_dim=2, epochs=1,
                               batch_size=16, steps_per_execution=2)
    tfvae.train_and_evaluate(config, model_dir, verbose=0)
    return root, model_dir


def _posterior_means(model, images):
    return np.asarray(model.posterior(images).mean())


def test_export_saves_a_keras_file_and_a_card_that_says_how_the_model_was_made(tiny_run):
    root, model_dir = tiny_run
    evaluated = run_script("evaluate.py", f"--model_dir={model_dir}", "--num_importance_samples=10")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics_path = root / "test_metrics.json"
    metrics_path.write_text(evaluated.stdout)
    keras_path = str(root / "shipped" / "model.keras")

    result = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={root / 'shipped'}",
                        f"--keras_file={keras_path}", f"--test_metrics={metrics_path}",
                        "--reproduce=python scripts/train.py --flagfile=a.flags", "--reproduce=python scripts/evaluate.py")
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(root / "shipped" / "1", "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["test_metrics"] == json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert card["reproduce"] == ["python scripts/train.py --flagfile=a.flags", "python scripts/evaluate.py"]
    assert sorted(os.listdir(root / "shipped")) == ["1", "model.keras"]  # no staging folder left behind

    from_run, from_file = tfvae.load_model(model_dir), tfvae.load_model(keras_path)
    images = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(_posterior_means(from_file, images), _posterior_means(from_run, images))
    assert from_file.get_config() == from_run.get_config()

    before = open(keras_path, "rb").read()
    again = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={root / 'other'}",
                       f"--keras_file={keras_path}")
    assert again.returncode == 1
    assert "flag --keras_file:" in last_error_line(again) and "not overwritten" in last_error_line(again)
    assert open(keras_path, "rb").read() == before


def test_export_refuses_a_test_metrics_file_that_is_not_evaluate_output(tiny_run):
    root, model_dir = tiny_run
    bad = root / "not_metrics.json"
    bad.write_text('["a list"]\n')
    result = run_script("export.py", f"--model_dir={model_dir}", f"--export_dir={root / 'refused'}",
                        f"--test_metrics={bad}")
    assert result.returncode == 1
    assert last_error_line(result).startswith("export.py: error: flag --test_metrics:")
    assert not os.path.exists(root / "refused")


def _rezip(source, target, replace):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in replace:
                if replace[info.filename] is not None:
                    new.writestr(info.filename, replace[info.filename])
            else:
                new.writestr(info, old.read(info.filename))


def test_load_model_refuses_keras_files_it_cannot_trust_in_one_line(tiny_run, tmp_path):
    _, model_dir = tiny_run
    good = str(tmp_path / "good.keras")
    tfvae.load_model(model_dir).save(good)
    with zipfile.ZipFile(good) as f:
        config = json.loads(f.read("config.json"))

    huge = json.loads(json.dumps(config))
    huge["config"]["encoder"]["config"]["latent_dim"] = 10**7  # ~10^8 weights claimed; the file holds ~10^3
    _rezip(good, tmp_path / "huge.keras", {"config.json": json.dumps(huge)})
    with pytest.raises(RunDirectoryError, match=r"huge.keras: describes a model of \d+ weights, more than"):
        tfvae.load_model(str(tmp_path / "huge.keras"))

    _rezip(good, tmp_path / "no_weights.keras", {"model.weights.h5": None})
    with pytest.raises(RunDirectoryError, match="no_weights.keras: not a Keras model file"):
        tfvae.load_model(str(tmp_path / "no_weights.keras"))

    (tmp_path / "text.keras").write_text("not a zip")
    with pytest.raises(RunDirectoryError, match="text.keras: not a readable .keras file"):
        tfvae.load_model(str(tmp_path / "text.keras"))

    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dense.save(tmp_path / "dense.keras")
    with pytest.raises(RunDirectoryError, match="dense.keras: .*not a tfvae VAE"):
        tfvae.load_model(str(tmp_path / "dense.keras"))

    with pytest.raises(ValueError, match="checkpoint must be None"):
        tfvae.load_model(good, checkpoint="ckpt-1")
    assert isinstance(loading.load_keras_file(good), tfvae.VAE)
