"""What only a GPU can show; run on a GPU machine with TFVAE_TEST_GPU=1 python -m pytest -n 0 -m gpu tests.

On a machine without a visible GPU (and always in the default suite, whose conftest hides GPUs) these are skipped
with that reason: docs/training_at_scale.md lists which behaviours have been seen on real GPUs.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not tf.config.list_physical_devices("GPU"),
                       reason="needs a visible GPU (TFVAE_TEST_GPU=1 python -m pytest -n 0 -m gpu tests)"),
]


@pytest.fixture(autouse=True, scope="module")
def _memory_growth():
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)


def test_float32_log_likelihood_on_the_gpu_matches_the_cpu_with_tf32_off():
    from builders import binary_batch, make_model

    from tfvae.core import distribute

    distribute.disable_tensor_float_32()
    model = make_model("conv")
    x = binary_batch(8)
    model.build((None, *x.shape[1:]))
    with tf.device("/GPU:0"):
        on_gpu = model.log_likelihood(x, num_samples=64, seed=0).numpy()
    with tf.device("/CPU:0"):
        on_cpu = model.log_likelihood(x, num_samples=64, seed=0).numpy()
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5)


def test_the_gpu_check_runs_in_full_and_every_check_passes():
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "gpu_check.py")], capture_output=True,
                            text=True, timeout=900, env=dict(os.environ, TF_FORCE_GPU_ALLOW_GROWTH="true"))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if " | GPU | " in line]
    assert rows and not [row for row in rows if "FAILED" in row or "DIFFERENT" in row or "NOT FINITE" in row]
