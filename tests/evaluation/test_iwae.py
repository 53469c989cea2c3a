"""The IWAE evaluation's bounds (evaluation/iwae.py) against a closed form of the documented draws, whatever the
chunks, the pieces of the batch, the retries after running out of memory or the number of replicas."""

import json
import logging
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from builders import binary_batch, make_model
from conftest import REPO, run_script
from linear_gaussian import FixedLinearDecoder, FixedLinearEncoder
from scipy.special import logsumexp

import tfvae
from tfvae import evaluation
from tfvae.core import sampling

WORKER = os.path.join(REPO, "tests", "evaluation", "sharded_iwae_worker.py")
LATENT, DATA = 2, 3
ENCODER = dict(weight=np.array([[0.6, -0.2], [0.1, 0.5], [-0.3, 0.4]]), bias=np.array([0.2, -0.1]),
               scale=np.array([0.7, 1.3]))  # q(z|x) = N(x A + c, diag(s^2)), not the posterior: the noise matters
DECODER = dict(weight=np.array([[1.0, -0.5], [0.3, 0.8], [-0.7, 0.2]]), bias=np.array([0.1, 0.0, -0.2]), sigma=0.6)


def _linear_vae():
    return tfvae.VAE(FixedLinearEncoder(ENCODER["weight"], ENCODER["bias"], ENCODER["scale"]),
                     FixedLinearDecoder(DECODER["weight"], DECODER["bias"], DECODER["sigma"]),
                     tfvae.StandardNormalPrior(LATENT))


def _data(n=5):
    return np.random.default_rng(1).normal(size=(n, DATA)).astype(np.float32)


def _normal_log_prob(v, loc, scale):
    return np.sum(-0.5 * ((v - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), axis=-1)


def _reference_bounds(x, seed, k):
    """IWAE_k of each row of x in float64, from the draws the docstrings promise: sample j of row n is
    loc_n + s * eps_jn with eps_jn = row (j mod G, n) of stateless_normal([G, B, latent], fold_in(seed, j // G))."""
    block = sampling.IMPORTANCE_NOISE_BLOCK
    blocks = [tf.random.stateless_normal([block, len(x), LATENT], alg="philox",
                                         seed=tf.cast(tf.random.experimental.stateless_fold_in(seed, b), tf.int32))
              for b in range(math.ceil(k / block))]
    eps = np.concatenate([b.numpy() for b in blocks]).astype(np.float64)[:k]
    x = x.astype(np.float64)
    loc = x @ ENCODER["weight"] + ENCODER["bias"]
    z = loc + ENCODER["scale"] * eps
    log_weights = (_normal_log_prob(x, z @ DECODER["weight"].T + DECODER["bias"], DECODER["sigma"])
                   + _normal_log_prob(z, 0.0, 1.0) - _normal_log_prob(z, loc, ENCODER["scale"]))
    return logsumexp(log_weights, axis=0) - np.log(k)


@pytest.mark.parametrize("chunk_size", [1, 5, 16, 37, 100])
def test_bounds_for_any_chunk_are_the_closed_form_bounds_of_the_documented_draws(chunk_size):
    x, seed = _data(), sampling.step_seed(3, 4, salt=3)
    expected = _reference_bounds(x, seed, 100)
    np.testing.assert_allclose(_linear_vae().log_likelihood(x, 100, seed, chunk_size=chunk_size).numpy(), expected,
                               rtol=2e-6)
    np.testing.assert_allclose(evaluation.IwaeEvaluator(_linear_vae(), 100, chunk_size=chunk_size)(x, None, seed),
                               expected, rtol=2e-6)


def test_a_batch_computed_in_pieces_has_the_whole_batchs_bounds():
    x, seed, model = _data(), sampling.step_seed(3, 0, salt=3), _linear_vae()
    pieces = [model.iwae_bound(tf.constant(x[lo:hi]), 60, seed, 7, rows=(lo, len(x))).numpy()
              for lo, hi in ((0, 2), (2, 3), (3, 5))]
    np.testing.assert_allclose(np.concatenate(pieces), _reference_bounds(x, seed, 60), rtol=2e-6)


class _OutOfMemoryAbove:
    """The model, but its IWAE bound raises ResourceExhaustedError (as a device that runs out of memory does) for
    a chunk of more than ``max_chunk`` samples or a call of more than ``max_rows`` rows."""

    def __init__(self, model, max_chunk, max_rows):
        self.model, self.max_chunk, self.max_rows = model, max_chunk, max_rows
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def log_likelihood(self, x, num_samples=5000, seed=None, chunk_size=None, labels=None, rows=None):
        self.calls.append((chunk_size, int(x.shape[0])))
        if chunk_size > self.max_chunk or x.shape[0] > self.max_rows:
            raise tf.errors.ResourceExhaustedError(None, None, f"injected: {x.shape[0]} rows, chunk {chunk_size}")
        return self.model.log_likelihood(x, num_samples, seed, chunk_size, labels, rows)


def test_running_out_of_memory_halves_the_chunk_then_the_rows_and_gives_the_unretried_bounds(caplog):
    model = make_model()
    x = binary_batch(6)
    model.build(x.shape)
    expected = evaluation.iwae_log_likelihoods(model, x, 200, batch_size=6, chunk_size=64)
    failing = _OutOfMemoryAbove(model, max_chunk=8, max_rows=2)
    with caplog.at_level(logging.WARNING):
        bounds = evaluation.iwae_log_likelihoods(failing, x, 200, batch_size=6, chunk_size=64)
    np.testing.assert_allclose(bounds, expected, rtol=1e-6)
    # The chunk first (64 -> 32 -> ... -> 1 sample), then the examples at a time (6 -> 3 -> 1): one line each.
    warnings = [r.getMessage() for r in caplog.records if "ran out of device memory" in r.getMessage()]
    assert [(w.split(" importance")[0].split()[-1], w.split(" examples")[0].split()[-1]) for w in warnings] == [
        ("32", "6"), ("16", "6"), ("8", "6"), ("4", "6"), ("2", "6"), ("1", "6"), ("1", "3"), ("1", "1")]
    assert failing.calls[-6:] == [(1, 1)] * 6


def test_running_out_of_memory_in_a_later_batch_keeps_every_batchs_seed():
    """A retry in batch 1 recomputes batch 1 with batch 1's seed; later batches keep the smaller sizes."""
    model = make_model()
    x = binary_batch(8)
    model.build(x.shape)
    expected = evaluation.iwae_log_likelihoods(model, x, 50, batch_size=3, chunk_size=50)
    failing = _OutOfMemoryAbove(model, max_chunk=50, max_rows=3)
    evaluate = evaluation.IwaeEvaluator(failing, 50, chunk_size=50)
    first = evaluate(x[:3], None, sampling.step_seed(3, 0, salt=3))
    failing.max_chunk = 20  # the device fills up
    rest = [evaluate(x[lo : lo + 3], None, sampling.step_seed(3, step, salt=3)) for step, lo in ((1, 3), (2, 6))]
    np.testing.assert_allclose(np.concatenate([first, *rest]), expected, rtol=1e-6)
    assert evaluate.chunk == 12


def test_running_out_of_memory_at_one_sample_and_one_example_stops_with_one_line_naming_batch_size():
    model = make_model()
    model.build((None, 8, 8, 1))
    with pytest.raises(evaluation.EvaluationMemoryError, match=r"^[^\n]*lower --batch_size[^\n]*$"):
        evaluation.iwae_log_likelihoods(_OutOfMemoryAbove(model, 0, 0), binary_batch(4), 10, batch_size=4,
                                        chunk_size=4)


@pytest.mark.parametrize("name, kwargs", [("chunk_size", dict(chunk_size=0)), ("memory_budget", dict(memory_budget=-1)),
                                          ("num_samples", dict(num_samples=2.5))])
def test_the_evaluator_refuses_a_bad_size_by_name(name, kwargs):
    with pytest.raises(ValueError, match=f"^{name} must be a positive int"):
        evaluation.IwaeEvaluator(_linear_vae(), **{"num_samples": 10, **kwargs})


@pytest.fixture(scope="module")
def sharded_report(tmp_path_factory):
    """The JSON report of tests/evaluation/sharded_iwae_worker.py on two logical CPU devices."""
    out = tmp_path_factory.mktemp("sharded") / "report.json"
    result = subprocess.run([sys.executable, WORKER, str(out)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", ["hierarchical_batch_7", "hierarchical_batch_8", "hierarchical_one_example",
                                  "conditional_batch_5", "retried_batch_7"])
def test_bounds_split_over_two_replicas_equal_the_one_device_bounds(sharded_report, case):
    assert sharded_report["num_replicas"] == 2
    np.testing.assert_allclose(sharded_report[case]["sharded"], sharded_report[case]["one_device"], rtol=1e-5)


def test_evaluate_script_on_two_replicas_with_small_chunks_prints_the_one_device_figures(tmp_path):
    fixtures = shutil.copytree(os.path.join(REPO, "tests", "fixtures", "v0_3_0"), tmp_path / "v0_3_0")
    common = [f"--model_dir={fixtures}/hierarchical_flow_iwae", f"--data_dir={fixtures}/blobs.npz",
              "--max_examples=20", "--num_importance_samples=30", "--batch_size=7"]
    one = run_script("evaluate.py", *common)
    sharded = run_script("evaluate.py", *common, "--strategy=mirrored", "--logical_cpu_devices=2", "--chunk_size=4")
    for result in (one, sharded):
        assert result.returncode == 0, result.stderr[-2000:]
    one, sharded = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (one, sharded))
    np.testing.assert_allclose(sharded["log_likelihood"], one["log_likelihood"], rtol=1e-5)
    assert sharded["log_likelihood_stderr"] == pytest.approx(one["log_likelihood_stderr"], rel=1e-4)


def test_evaluate_script_refuses_a_strategy_whose_replicas_run_elsewhere():
    result = run_script("evaluate.py", "--model_dir=unused", "--strategy=tpu")
    assert result.returncode != 0
    assert "evaluate.py takes the strategies whose replicas run in this process" in result.stderr
