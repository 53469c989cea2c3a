"""A run directory from elsewhere: what its config.json and model.json claim is checked before anything is built."""

import json
import os
import resource
import shutil

import pytest
from conftest import REPO, last_error_line, run_script

from tfvae.train import loading, rundir
from tfvae.train.rundir import RunDirectoryError

FIXTURE = os.path.join(REPO, "tests", "fixtures", "v0_3_0", "mlp_vamp")  # 8x8x1, latent 3, hidden [16]


@pytest.fixture
def run(tmp_path):
    return shutil.copytree(FIXTURE, tmp_path / "run")


def _edit(path, change):
    with open(path) as f:
        values = json.load(f)
    change(values)
    with open(path, "w") as f:
        json.dump(values, f)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def change(values):
        for key in keys[:-1]:
            values = values[key]
        values[keys[-1]] = value

    return change


BAD_CONFIGS = [
    (_set("latent_dim", 1e10), "latent_dim must be an int; got 10000000000.0"),
    (_set("latent_dim", "3"), "latent_dim must be an int; got '3'"),
    (_set("conditional", 1), "conditional must be true or false; got 1"),
    (_set("learning_rate", float("nan")), "learning_rate must be a finite number; got nan"),
    (_set("hidden_units", [16, "x"]), "hidden_units must be a list of ints; got [16, 'x']"),
    (_set("data_dir", ["a"]), "data_dir must be a string or null; got ['a']"),
    (_set("batch_size", -5), "batch_size must be > 0; got -5"),
    (_set("likelihood", "poisson"), "likelihood must be one of"),
    (_set("surprise", 1), "has unknown fields ['surprise']"),
]


@pytest.mark.parametrize("change, message", BAD_CONFIGS)
def test_a_config_json_of_wrong_types_or_ranges_is_one_line_naming_the_file_and_field(run, change, message):
    path = os.path.join(run, "config.json")
    _edit(path, change)
    with pytest.raises(RunDirectoryError) as error:
        loading.load_config(str(run))
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_config_json_that_is_not_an_object_is_one_line(run):
    path = os.path.join(run, "config.json")
    with open(path, "w") as f:
        f.write("[1, 2]")
    with pytest.raises(RunDirectoryError, match=f"^{path}: expected a JSON object of settings; got list$"):
        loading.load_config(str(run))


BAD_MODELS = [
    ("not json {", "model.json: unreadable (Expecting value"),
    ("[]", "model.json: expected a JSON object (a Keras model config); got list"),
    (lambda values: values.update(class_name="NoSuchModel", registered_name="tfvae>NoSuchModel"),
     "model.json: cannot rebuild the model ("),
    (_set("registered_name", "keras>Dense"), "model.json: cannot rebuild the model ("),
    ('{"module": "keras.layers", "class_name": "Dense", "config": {"units": 2}, "registered_name": null, '
     '"build_config": {"input_shape": [null, 4]}}', "model.json: describes a Dense, not a tfvae VAE"),
    (_set("config", "encoder", "config", "latent_dim", "three"), "model.json: cannot rebuild the model ("),
    (_set("config", "encoder", "config", "hidden_units", {"a": 1}), "model.json: cannot rebuild the model ("),
    (_set("build_config", "input_shape", [None, 8, 8, -1]), "build_config.input_shape must be [null, sizes...]"),
    (_set("build_config", "input_shape", [None, 2**13, 2**13, 1]), "claims 67108864 values per example"),
    (_set("build_config", "input_shape", [None, 8.0, 8, 1]), "build_config.input_shape must be"),
    (_set("build_config", 7), "holds no data shape (build_config)"),
]


@pytest.mark.parametrize("change, message", BAD_MODELS)
def test_a_broken_model_json_is_one_line_naming_the_file(run, change, message):
    path = os.path.join(run, "model.json")
    if isinstance(change, str):
        with open(path, "w") as f:
            f.write(change)
    else:
        _edit(path, change)
    with pytest.raises(RunDirectoryError) as error:
        loading.load_model(str(run))
    print(error.value)
    assert message in str(error.value) and str(error.value).startswith(path) and "\n" not in str(error.value)


@pytest.mark.parametrize("field, value", [("latent_dim", 10**10), ("hidden_units", [400]), ("hidden_units", [2**40])])
def test_a_model_json_claiming_more_weights_than_its_checkpoint_holds_is_refused_before_building(run, field, value):
    _edit(os.path.join(run, "model.json"), _set("config", "encoder", "config", field, value))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(RunDirectoryError, match=r"model.json: describes a model of \d+ weights, more than its "
                                                r"checkpoints can hold \(9\d\d\d\); it is not the model of this run"):
        loading.load_model(str(run))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing of that size made


def test_the_fixture_itself_still_loads(run):
    model = loading.load_model(str(run))
    assert model.latent_dim == 3 and sum(int(v.numpy().size) for v in model.weights) == 2550


def test_evaluate_on_a_broken_model_json_prints_one_line(run):
    _edit(os.path.join(run, "model.json"), _set("config", "encoder", "config", "latent_dim", 10**10))
    result = run_script("evaluate.py", f"--model_dir={run}")
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert last_error_line(result).startswith(f"evaluate.py: error: flag --model_dir: {run}/model.json: describes a "
                                              "model of ")


def test_max_data_values_and_bytes_per_weight_are_what_the_docs_state():
    with open(os.path.join(REPO, "docs", "reliability.md")) as f:
        text = f.read()
    assert rundir.MAX_DATA_VALUES == 2**24 and "2^24 values per example" in text
    assert rundir.BYTES_PER_WEIGHT == 4 and "4 bytes per weight" in text
