"""TF Serving requests (REST row/columnar, gRPC) decode back into inputs that the export answers correctly."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from builders import binary_batch
from conftest import LATENT_DIM, last_error_line, run_script, small_export, small_vae

from tfvae.serving import requests

INPUTS = {
    "encode": {"images": binary_batch(3, seed=1), "seed": 5},
    "decode": {"z": np.random.default_rng(2).normal(size=(3, LATENT_DIM))},
    "reconstruct": {"images": binary_batch(3, seed=1)},
    "serving_default": {"images": binary_batch(2, seed=4)},
    "sample": {"num_samples": 4, "seed": [9]},
    "log_likelihood": {"images": binary_batch(3, seed=1), "num_importance_samples": 30, "seed": 5},
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return small_export(small_vae(), tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported)


def call(loaded, signature, inputs):
    typed = requests._typed_inputs(signature, inputs)
    return {k: v.numpy() for k, v in loaded.signatures[signature](**typed).items()}


def assert_same(actual, expected):
    assert sorted(actual) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, err_msg=key)


@pytest.mark.parametrize("signature", sorted(INPUTS))
@pytest.mark.parametrize("row_format", [False, True])
def test_rest_request_decodes_to_inputs_that_give_the_direct_answer(loaded, signature, row_format):
    body = json.loads(json.dumps(requests.rest_request(signature, INPUTS[signature], row_format)))
    assert ("instances" in body) == row_format and body["signature_name"] == signature
    decoded_signature, decoded = requests.decode_rest_request(body)
    assert decoded_signature == signature
    assert_same(call(loaded, signature, decoded), call(loaded, signature, INPUTS[signature]))


def test_row_format_repeats_parameters_on_every_instance():
    body = requests.rest_request("log_likelihood", INPUTS["log_likelihood"], row_format=True)
    assert len(body["instances"]) == 3
    assert all(row["seed"] == 5 and row["num_importance_samples"] == 30 for row in body["instances"])
    assert np.asarray(body["instances"][0]["images"]).shape == (8, 8, 1)
    sample = requests.rest_request("sample", INPUTS["sample"], row_format=True)
    assert sample["instances"] == [{"num_samples": 4, "seed": 9}]


@pytest.mark.parametrize("signature", sorted(INPUTS))
def test_grpc_request_decodes_to_inputs_that_give_the_direct_answer(loaded, signature):
    request = requests.grpc_request("vae", signature, INPUTS[signature])
    assert request.model_spec.name == "vae"
    decoded_signature, decoded = requests.decode_grpc_request(request)
    assert decoded_signature == signature
    assert_same(call(loaded, signature, decoded), call(loaded, signature, INPUTS[signature]))


def test_requests_with_wrong_inputs_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"signature 'sample' takes inputs \['num_samples', 'seed'\]"):
        requests.rest_request("sample", {"num_samples": 3})
    with pytest.raises(ValueError, match="signature must be one of"):
        requests.rest_request("generate", {})


def test_client_dry_run_prints_a_request_the_export_answers(exported, loaded, tmp_path):
    images = binary_batch(2, seed=6)
    path = str(tmp_path / "images.npy")
    np.save(path, images)
    result = run_script("serving_client.py", f"--export_dir={exported}", "--signature=log_likelihood",
                        f"--images_npy={path}", "--format=row", "--num_importance_samples=20", "--seed=3", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    signature, decoded = requests.decode_rest_request(json.loads(result.stdout.strip().splitlines()[-1]))
    assert signature == "log_likelihood"
    np.testing.assert_array_equal(decoded["images"], images)
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in decoded.items()})
    assert outputs["iwae_bound"].shape == (2,) and np.all(np.isfinite(outputs["iwae_bound"]))


def test_client_takes_model_name_and_latent_size_from_the_model_card(exported):
    # the base folder (newest version) and the version folder give the same card
    result = run_script("serving_client.py", f"--export_dir={os.path.dirname(exported)}", "--signature=decode",
                        "--test_images=3", "--dry_run")
    assert result.returncode == 0, result.stderr[-2000:]
    _, decoded = requests.decode_rest_request(json.loads(result.stdout.strip().splitlines()[-1]))
    assert decoded["z"].shape == (3, LATENT_DIM)
    unreachable = run_script("serving_client.py", f"--export_dir={exported}", "--signature=sample",
                             "--server=127.0.0.1:9", "--timeout=5")
    assert unreachable.returncode == 1
    assert unreachable.stderr.strip().splitlines()[-1].startswith(
        "serving_client.py: error: flag --server: cannot reach http://127.0.0.1:9/v1/models/vae:predict")


def test_client_without_an_export_says_which_folder_it_read(tmp_path):
    result = run_script("serving_client.py", f"--export_dir={tmp_path}", "--dry_run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"serving_client.py: error: flag --export_dir: no tfvae export (assets.extra/model_card.json) in {tmp_path}")


def test_client_ignores_folders_that_are_not_versions_and_refuses_bad_npy_files_in_one_line(exported, tmp_path):
    base = tmp_path / "vae"
    shutil.copytree(exported, base / "1")
    (base / "2.bak" / "assets.extra").mkdir(parents=True)  # a stray copy: not a version (TF Serving skips it too)
    (base / "2.bak" / "assets.extra" / "model_card.json").write_text("{not json")
    ok = run_script("serving_client.py", f"--export_dir={base}", "--signature=decode", "--test_images=2", "--dry_run")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert requests.decode_rest_request(json.loads(ok.stdout.strip().splitlines()[-1]))[1]["z"].shape == (2, LATENT_DIM)

    objects, wide = tmp_path / "objects.npy", tmp_path / "wide.npy"
    np.save(objects, np.array([{"z": 1}, None], dtype=object), allow_pickle=True)
    np.save(wide, np.zeros((2, LATENT_DIM + 1)))
    for path, message in ((objects, f"cannot read {objects} as a .npy array (Array can't be memory-mapped: Python "
                                    "objects in dtype.)"),
                          (wide, f"{wide} has shape [2, {LATENT_DIM + 1}]; expected [batch, {LATENT_DIM}]")):
        result = run_script("serving_client.py", f"--export_dir={base}", "--signature=decode", f"--z_npy={path}",
                            "--dry_run")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert last_error_line(result).startswith(f"serving_client.py: error: flag --z_npy: {message}")
