"""Shared fixtures: quiet TensorFlow, small data sets written to disk, script runner."""

import gzip
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite's tests are CPU tests: hide any GPU (from this process and the scripts it starts), so the suite runs the
# same on a GPU host. TFVAE_TEST_GPU=1 keeps the GPUs for the GPU-only tests (-m gpu -n 0).
if os.environ.get("TFVAE_TEST_GPU") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array, gzipped=True):
    """Writes ``array`` (uint8) in IDX format, gzipped when ``gzipped``."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if gzipped else payload)


def write_idx_dataset(directory, num_train=64, num_test=16, shape=(8, 8), seed=0, gzipped=True):
    """A small MNIST-format data set of random images and labels."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    suffix = ".gz" if gzipped else ""
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}"),
                  rng.integers(0, 256, (n, *shape)), gzipped)
        write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}"), rng.integers(0, 10, n), gzipped)
    return directory


@pytest.fixture
def tiny_idx_dir(tmp_path):
    return write_idx_dataset(str(tmp_path / "idx"))


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    if not os.path.exists(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"{FASHION_MNIST_DIR} is missing: apt-get install -y dataset-fashion-mnist (see README)")
    return FASHION_MNIST_DIR


def run_script(name, *args, timeout=600, env=None):
    """Runs scripts/<name> in a fresh Python process; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", name), *args],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=REPO,
    )


def checkpoint_weights(model_dir):
    """(newest checkpoint path, {variable name: value}) of a run: weights, optimizer state, input position."""
    import tensorflow as tf

    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    # Model weights are stored once, under the optimizer's references to them.
    names = sorted(n for n in reader.get_variable_to_shape_map()
                   if n.startswith(("optimizer/", "model/", "epoch", "step_in_epoch")))
    return path, {n: reader.get_tensor(n) for n in names}


def train_killed_after_first_checkpoint(model_dir, flags, timeout=300):
    """Starts train.py with ``flags`` in ``model_dir`` and SIGKILLs it as soon as its first checkpoint exists."""
    import signal
    import time

    import tensorflow as tf

    process = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "train.py"), f"--model_dir={model_dir}",
                                *flags], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while not tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")):
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, f"no checkpoint within {timeout} s"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_killed_run_resumes_exactly(tmp_path, flags, final_checkpoint):
    """train.py with ``flags`` run whole, and run again SIGKILLed at its first checkpoint then rerun from its
    flags.txt: both end at ``final_checkpoint`` with bitwise-equal variables. Returns (whole, resumed) results."""
    whole = run_script("train.py", f"--model_dir={tmp_path / 'full'}", *flags)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    train_killed_after_first_checkpoint(str(killed_dir), flags)
    interrupted_at, _ = checkpoint_weights(str(killed_dir))
    assert not interrupted_at.endswith(final_checkpoint), "the run finished before it was killed"
    resumed = run_script("train.py", f"--flagfile={killed_dir / 'flags.txt'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_final_checkpoint(killed_dir, tmp_path / "full", final_checkpoint)
    return whole, resumed


def assert_same_final_checkpoint(model_dir, reference_dir, name):
    """Both runs' newest checkpoint is ``name`` and every saved variable is bitwise equal."""
    import numpy as np

    path, weights = checkpoint_weights(str(model_dir))
    reference_path, reference = checkpoint_weights(str(reference_dir))
    assert os.path.basename(path) == os.path.basename(reference_path) == name
    assert weights.keys() == reference.keys() and len(reference) >= 8
    for variable in reference:
        np.testing.assert_array_equal(weights[variable], reference[variable], err_msg=variable)


def run_serving_probe(mode, exported, inputs, tmp_path):
    """Outputs of tests/serving_probe.py (a fresh process without tfvae or TFP) for the requests ``inputs``."""
    inputs_path, outputs_path = str(tmp_path / "in.npz"), str(tmp_path / "out.npz")
    np.savez(inputs_path, **inputs)
    probe = os.path.join(REPO, "tests", "serving_probe.py")
    result = subprocess.run([sys.executable, probe, mode, exported, inputs_path, outputs_path],
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(outputs_path) as f:
        return dict(f)


def read_idx_images(path):
    """IDX images [N, H, W, 1] of a gzipped file with numpy alone (independent of tfvae's loader)."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count, height, width = (int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, height, width, 1)


def last_error_line(result):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


LATENT_DIM = 3  # of small_vae
MAX_BATCH = 6  # of small_export
MAX_SAMPLES = 1000  # of small_export: batch * num_importance_samples of a log_likelihood request


def small_vae():
    """A built 8x8x1 MLP VAE with latent size 3 and fixed initial weights."""
    import keras
    from builders import DATA_SHAPE, make_model

    keras.utils.set_random_seed(0)
    vae = make_model(latent_dim=LATENT_DIM)
    vae.build((None, *DATA_SHAPE))
    return vae


def small_export(model, tmp_path_factory):
    """model exported as version 1 with max_batch_size=6, max_importance_samples=500, max_samples_per_request=1000;
    returns its path."""
    from tfvae.serving import export

    base = str(tmp_path_factory.mktemp("saved_models") / "vae")
    return export.export_model(model, base, model_card={"note": "test"}, max_batch_size=MAX_BATCH,
                               max_importance_samples=500, max_samples_per_request=MAX_SAMPLES)
