"""Test-set figures against hand-computed values: active units, bits/dim, KL per dimension."""

import io
import json
import math
import zipfile

import numpy as np
import pytest
from linear_gaussian import FixedLinearDecoder, FixedLinearEncoder

import tfvae
from tfvae import evaluation


def _linear_vae(weight, scale):
    """q(z|x) = N(x weight, diag(scale^2)) over x in R^2; a fixed linear decoder."""
    latent_dim = weight.shape[1]
    return tfvae.VAE(FixedLinearEncoder(weight, np.zeros(latent_dim), scale),
                     FixedLinearDecoder(np.ones((2, latent_dim)), np.zeros(2), 1.0),
                     tfvae.StandardNormalPrior(latent_dim))


def _unit_variance_data(n=1000, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 2))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)  # each column: variance exactly 1


def test_active_units_count_posterior_mean_variances_not_standard_deviations():
    """Dimension 0 has Var_x(E_q[z_0]) = 0.05^2 = 0.0025 (its standard deviation 0.05 is above the 0.01
    threshold, its variance is not); dimension 1 has variance 0.2^2 = 0.04; dimension 2 is constant."""
    weight = np.array([[0.05, 0.0, 0.0], [0.0, 0.2, 0.0]])
    model = _linear_vae(weight, np.ones(3))
    assert evaluation.active_units(model, _unit_variance_data(), batch_size=300) == 1
    wide = _linear_vae(np.array([[0.5, 0.0, 0.0], [0.0, 0.2, 0.0]]), np.ones(3))
    assert evaluation.active_units(wide, _unit_variance_data(), batch_size=300) == 2


def test_bits_per_dim_divides_nats_by_dimensions_times_log_two():
    assert evaluation.bits_per_dim(-784 * math.log(2.0), (28, 28, 1)) == pytest.approx(1.0, rel=1e-12)
    assert evaluation.bits_per_dim(-230.0, (28, 28, 1)) == pytest.approx(230.0 / (784 * 0.6931471805599453))
    assert evaluation.bits_per_dim(-100.0, (32, 32, 3)) == pytest.approx(100.0 / (3072 * math.log(2.0)))


def test_evaluate_model_reports_bits_per_dim_of_its_own_log_likelihood():
    model = _linear_vae(np.array([[0.3, 0.1], [0.0, 0.4]]), np.full(2, 0.7))
    x = _unit_variance_data(50)
    metrics = evaluation.evaluate_model(model, x, num_importance_samples=20, batch_size=25, jit_compile=False)
    assert metrics["bits_per_dim"] == pytest.approx(-metrics["log_likelihood"] / (2 * math.log(2.0)), rel=1e-9)
    assert metrics["num_examples"] == 50 and metrics["log_likelihood"] >= metrics["elbo"] - 0.05


def test_kl_per_dimension_is_the_mean_closed_form_kl_of_each_dimension():
    weight, scale = np.array([[0.5, 0.0], [0.0, 0.2]]), np.array([0.5, 2.0])
    model = _linear_vae(weight, scale)
    x = _unit_variance_data(400)
    loc = x.astype(np.float64) @ weight
    expected = np.mean(0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale), axis=0)
    np.testing.assert_allclose(evaluation.kl_per_dimension(model, x, batch_size=128), expected, rtol=1e-5)


def test_elbo_metrics_traced_once_give_the_closed_form_rate_at_every_call():
    """rate = mean_x KL(N(x W, diag(s^2)) || N(0, I)) in closed form; calls after the first reuse the trace."""
    weight, scale = np.array([[0.5, 0.0], [0.0, 0.2]]), np.array([0.5, 2.0])
    model = _linear_vae(weight, scale)
    x = _unit_variance_data(250)
    loc = x.astype(np.float64) @ weight
    closed_form_rate = np.mean(np.sum(0.5 * (loc**2 + scale**2 - 1.0) - np.log(scale), axis=1))
    traces, elbo_terms = [], model.elbo_terms

    def traced_elbo_terms(*args, **kwargs):  # Python runs it only while tracing
        traces.append(1)
        return elbo_terms(*args, **kwargs)

    model.elbo_terms = traced_elbo_terms
    validate = evaluation.ElboMetrics(model, jit_compile=False)
    first = validate(x, batch_size=100)  # batches of 100, 100 and 50: two traces at most
    assert len(traces) in (1, 2)
    for _ in range(3):
        assert validate(x, batch_size=100) == first
    assert len(traces) <= 2
    assert first["rate"] == pytest.approx(closed_form_rate, rel=1e-5)
    assert first["elbo"] == pytest.approx(-(first["rate"] + first["distortion"]), rel=1e-6)
    assert evaluation.elbo_metrics(model, x, batch_size=100, jit_compile=False) == first


# --------------------------------------------------------------- continuing an interrupted IWAE pass
def _bernoulli_vae_and_images():
    from builders import DATA_SHAPE
    from conftest import small_vae

    images = (np.random.default_rng(0).uniform(size=(12, *DATA_SHAPE)) > 0.5).astype(np.float32)
    return small_vae(), images


def test_an_iwae_pass_continued_from_saved_bounds_equals_an_uninterrupted_one(tmp_path):
    model, images = _bernoulli_vae_and_images()
    full = evaluation.iwae_log_likelihoods(model, images, num_samples=7, batch_size=4)
    saved = []
    evaluation.iwae_log_likelihoods(model, images[:8], num_samples=7, batch_size=4, on_batch=saved.append)
    assert [len(b) for b in saved] == [4, 8]  # the bounds so far after each batch
    continued = evaluation.iwae_log_likelihoods(model, images, num_samples=7, batch_size=4, done=saved[0])
    np.testing.assert_array_equal(continued, full)  # batch b's noise comes from (seed, b), not from the pass's start
    marked = evaluation.iwae_log_likelihoods(model, images, num_samples=7, batch_size=4, done=np.full(8, -1.0))
    np.testing.assert_array_equal(marked, np.concatenate([np.full(8, -1.0), full[8:]]))  # done batches not recomputed
    with pytest.raises(ValueError, match="multiple of batch_size 4"):
        evaluation.iwae_log_likelihoods(model, images, num_samples=7, batch_size=4, done=full[:5])


def test_a_bounds_file_continues_its_own_evaluation_and_refuses_another(tmp_path):
    model, images = _bernoulli_vae_and_images()
    settings = {"checkpoint": "ckpt-3", "num_importance_samples": 7, "batch_size": 4, "num_examples": 12}
    path = str(tmp_path / "bounds.npz")
    assert evaluation.BoundsFile(path, settings).load() is None
    first = evaluation.evaluate_model(model, images, 7, 4, jit_compile=False,
                                      bounds_file=evaluation.BoundsFile(path, settings))
    saved = evaluation.BoundsFile(path, settings).load()
    assert len(saved) == 12 and np.mean(saved) == pytest.approx(first["log_likelihood"], abs=1e-9)
    evaluation.BoundsFile(path, settings).save(saved[:4])  # as an evaluation interrupted after its first batch
    again = evaluation.evaluate_model(model, images, 7, 4, jit_compile=False,
                                      bounds_file=evaluation.BoundsFile(path, settings))
    assert again["log_likelihood"] == first["log_likelihood"]
    np.testing.assert_array_equal(evaluation.BoundsFile(path, settings).load(), saved)
    before = open(path, "rb").read()
    with pytest.raises(evaluation.BoundsFileError, match=r"another evaluation's bounds \(checkpoint 'ckpt-3', not 'ckpt-4'\)"):
        evaluation.evaluate_model(model, images, 7, 4, jit_compile=False,
                                  bounds_file=evaluation.BoundsFile(path, {**settings, "checkpoint": "ckpt-4"}))
    assert open(path, "rb").read() == before
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(evaluation.BoundsFileError, match="junk.npz: not a bounds file"):
        evaluation.BoundsFile(str(tmp_path / "junk.npz"), settings).load()


_BOUNDS_SETTINGS = {"checkpoint": "ckpt-3", "num_importance_samples": 7, "batch_size": 4, "num_examples": 12}


def _npz_bytes(**members):
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    return buffer.getvalue()


def _bounds_npz(bounds, settings=None, **extra):
    return _npz_bytes(bounds=bounds, settings=json.dumps(settings or _BOUNDS_SETTINGS, sort_keys=True), **extra)


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _huge_claim():
    """A 1 kB zip whose bounds.npy member claims 2^32 - 1 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("settings.npy", _npy_bytes(np.array(json.dumps(_BOUNDS_SETTINGS))))
        archive.writestr("bounds.npy", _npy_bytes(np.zeros(8)))
    data = bytearray(buffer.getvalue())
    entry = data.rindex(b"PK\x01\x02", 0, data.rindex(b"bounds.npy"))  # the bounds member's central directory entry
    data[entry + 24: entry + 28] = (2**32 - 1).to_bytes(4, "little")  # its uncompressed size
    return bytes(data)


HOSTILE_BOUNDS_FILES = [
    (_bounds_npz(np.full(16, -90.0)), "holds 16 bounds for 12 examples"),  # 300 bounds for 200 examples, smaller
    (_bounds_npz(np.full(5, -90.0)), "holds 5 bounds, not whole batches of 4 nor all 12 examples"),
    (_bounds_npz(np.full((2, 4), -90.0)), "bounds must be a 1-D float array; got float64 of shape [2, 4]"),
    (_bounds_npz(np.arange(8)), "bounds must be a 1-D float array; got int64 of shape [8]"),
    (_bounds_npz(np.array([-90.0, np.nan, -91.0, -92.0])), "bounds must be finite; found NaN or Inf"),
    (_bounds_npz(np.array([-90.0, np.inf, -91.0, -92.0])), "bounds must be finite; found NaN or Inf"),
    (_bounds_npz(np.array([{"a": 1}] * 4, dtype=object)), "Object arrays cannot be loaded when allow_pickle=False"),
    (_bounds_npz(np.full(4, -90.0), extra=np.zeros(1)), "members ['bounds.npy', 'extra.npy', 'settings.npy']"),
    (_npz_bytes(bounds=np.full(4, -90.0), settings=np.array([1, 2])), "settings must be a JSON string"),
    (_npz_bytes(bounds=np.full(4, -90.0), settings="[1, 2]"), "settings must be a JSON object"),
    (_huge_claim(), "bounds claims 4294967295 bytes, more than the 4192 its settings allow"),
    (b"PK\x05\x06" + bytes(18), "members [], not ['bounds', 'settings']"),
]


@pytest.mark.parametrize("contents, message", HOSTILE_BOUNDS_FILES)
def test_a_bounds_file_of_the_wrong_shape_type_or_size_is_refused_in_one_line_and_left_as_it_is(
        tmp_path, contents, message):
    path = tmp_path / "bounds.npz"
    path.write_bytes(contents)
    with pytest.raises(evaluation.BoundsFileError) as error:
        evaluation.BoundsFile(str(path), _BOUNDS_SETTINGS).load()
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value) and "\n" not in str(error.value)
    assert str(error.value).endswith("pass another file or remove it")
    assert path.read_bytes() == contents


def test_a_bounds_file_of_whole_batches_or_all_examples_is_accepted(tmp_path):
    for count in (0, 4, 8, 12):
        path = str(tmp_path / f"bounds_{count}.npz")
        evaluation.BoundsFile(path, _BOUNDS_SETTINGS).save(np.full(count, -90.0))
        np.testing.assert_array_equal(evaluation.BoundsFile(path, _BOUNDS_SETTINGS).load(), np.full(count, -90.0))
