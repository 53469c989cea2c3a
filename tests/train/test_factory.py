"""Every model family is selectable from the flags, trains, reloads and resumes."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import last_error_line, run_script

import tfvae
from tfvae import data, evaluation
from tfvae.models import priors
from tfvae.nn import flows
from tfvae.objectives import schedules
from tfvae.train import factory, training

tfd = tfvae.decoders.tfd
BASE = dict(dataset="idx", hidden_units=(8,), latent_dim=2, batch_size=16, epochs=1, validation_examples=16,
            steps_per_execution=2, checkpoint_every_steps=4, summary_every_steps=2)

FAMILIES = {
    "mixture prior": ({"prior": "mixture", "prior_components": 3}, lambda m: isinstance(m.prior, tfd.MixtureSameFamily)),
    "vamp prior": ({"prior": "vamp", "prior_components": 4},
                   lambda m: isinstance(m.prior_layer, priors.VampPrior) and m.prior_layer.num_pseudo_inputs == 4),
    "maf prior": ({"prior": "flow", "flow_steps": 2, "flow_hidden_units": (8,)},
                  lambda m: isinstance(m.prior_layer.networks[0], flows.MADE)),
    "real_nvp prior": ({"prior": "flow", "flow": "real_nvp", "flow_hidden_units": (8,)},
                       lambda m: isinstance(m.prior_layer.networks[0], flows.CouplingNetwork)),
    "full posterior": ({"posterior": "full"}, lambda m: m.encoder.covariance == "full"),
    "iaf posterior": ({"posterior": "iaf", "flow_steps": 2, "flow_hidden_units": (8,)},
                      lambda m: isinstance(m.encoder, tfvae.IAFEncoder) and m.encoder.num_flows == 2),
    "continuous bernoulli": ({"likelihood": "continuous_bernoulli"},
                             lambda m: isinstance(m.decoder, tfvae.ContinuousBernoulliDecoder)),
    "discretized logistic": ({"likelihood": "discretized_logistic", "mixture_components": 2},
                             lambda m: m.decoder.num_components == 2),
    "categorical": ({"likelihood": "categorical"}, lambda m: isinstance(m.decoder, tfvae.CategoricalDecoder)),
    "iwae objective": ({"objective": "iwae", "samples_per_example": 3},
                       lambda m: m.objective == tfvae.IWAE(num_samples=3)),
    "free bits": ({"free_bits": 0.5, "kl_schedule": "cyclical", "kl_warmup_steps": 2, "kl_cycle_steps": 3},
                  lambda m: m.objective == tfvae.ELBO(free_bits=0.5, kl_weight=schedules.Cyclical(3, 2))),
    "conditional": ({"conditional": True}, lambda m: m.num_classes == 10 and m.encoder.condition_dim == 10),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_flag_builds_its_parts_trains_and_reloads(tmp_path, tiny_idx_dir, name):
    overrides, has_parts = FAMILIES[name]
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, **BASE, **overrides)
    model_dir = str(tmp_path / "run")
    results = training.train_and_evaluate(config, model_dir, verbose=0)
    assert np.isfinite(results["elbo"]) and results["step"] == 4
    model = tfvae.load_model(model_dir)
    assert has_parts(model)
    prepared = data.prepare_data(config)
    labels = prepared.test_labels
    reloaded = evaluation.elbo_metrics(model, prepared.test_images, labels)
    assert reloaded["elbo"] == pytest.approx(results["elbo"], rel=1e-4, abs=1e-3)
    # E[IWAE_20] >= ELBO: 25 independent estimates of each per test image, compared within standard errors.
    x = np.tile(prepared.test_images, [25, 1, 1, 1])
    y = None if labels is None else np.tile(labels, 25)
    gap = (model.log_likelihood(x, num_samples=20, seed=2, labels=y) - model.elbo(x, seed=1, labels=y)).numpy()
    assert gap.mean() > -4 * gap.std() / np.sqrt(len(gap)), (gap.mean(), gap.std())


def test_resumed_run_continues_the_kl_schedule_and_learned_prior_where_it_stopped(tmp_path, tiny_idx_dir):
    """4 steps per epoch; a cyclical schedule of 7 steps (warm-up 5) is mid-ramp at the epoch-1 checkpoint."""
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, **dict(BASE, epochs=3), prior="mixture", prior_components=3,
                               kl_schedule="cyclical", kl_warmup_steps=5, kl_cycle_steps=7, free_bits=0.1,
                               free_bits_group_size=2)
    schedule = schedules.Cyclical(cycle_steps=7, warmup_steps=5)
    assert 0 < float(schedule(4)) < 1
    straight = training.train_and_evaluate(config, str(tmp_path / "straight"), verbose=0)
    resumed_dir = str(tmp_path / "resumed")
    first = tfvae.TrainConfig(**{**config.__dict__, "epochs": 1})
    training.train_and_evaluate(first, resumed_dir, verbose=0)
    resumed = training.train_and_evaluate(config, resumed_dir, verbose=0)
    assert resumed == straight
    logged = _scalars(str(tmp_path / "straight" / "train"), "kl_weight")
    assert logged and all(value == pytest.approx(float(schedule(step)))
                          for step, value in logged.items())
    assert len(set(logged.values())) > 1  # the schedule moved
    a, b = tfvae.load_model(str(tmp_path / "straight")), tfvae.load_model(resumed_dir)
    for x, y in zip(a.prior_layer.get_weights(), b.prior_layer.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


def _scalars(log_dir, tag):
    """{step: value} of a TensorBoard scalar."""
    values = {}
    for path in sorted(os.listdir(log_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, path)):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_conditional_model_samples_the_requested_classes(tmp_path, tiny_idx_dir):
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, **BASE, conditional=True)
    model = factory.build_model(config, (8, 8, 1), num_classes=10)
    model.build((None, 8, 8, 1))
    samples = [model.sample(3, seed=1, labels=label).numpy() for label in (0, 1)]
    assert samples[0].shape == (3, 8, 8, 1)
    assert np.abs(samples[0] - samples[1]).max() > 1e-4  # same z, different class
    per_sample = model.sample(2, seed=1, labels=[0, 1]).numpy()
    np.testing.assert_allclose(per_sample[0], samples[0][0], rtol=1e-5)
    with pytest.raises(ValueError, match="this VAE is conditional"):
        model.sample(3, seed=1)
    with pytest.raises(ValueError, match="labels were given to an unconditional VAE"):
        factory.build_model(tfvae.TrainConfig(**BASE), (8, 8, 1)).condition([1])


def test_conditional_training_needs_labels_and_says_so_in_one_line(tmp_path, tiny_idx_dir):
    for name in os.listdir(tiny_idx_dir):
        if "labels" in name:
            os.remove(os.path.join(tiny_idx_dir, name))
    result = run_script("train.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", "--conditional", "--epochs=1",
                        "--hidden_units=8", "--batch_size=16", f"--model_dir={tmp_path / 'run'}", "--verbose=0")
    assert result.returncode != 0
    assert "no labels for both splits; a conditional VAE (--conditional) needs them" in last_error_line(result)


def test_conditional_run_evaluates_and_draws_pictures_through_the_scripts(tmp_path, tiny_idx_dir):
    model_dir = tmp_path / "run"
    result = run_script("train.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", "--conditional", "--epochs=1",
                        "--hidden_units=8", "--latent_dim=2", "--batch_size=16", f"--model_dir={model_dir}",
                        "--verbose=0")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluation_run = run_script("evaluate.py", f"--model_dir={model_dir}", "--num_importance_samples=10")
    assert evaluation_run.returncode == 0, evaluation_run.stderr[-2000:]
    pictures = run_script("sample.py", f"--model_dir={model_dir}", f"--output_dir={tmp_path / 'png'}",
                          "--num_samples=20")
    assert pictures.returncode == 0, pictures.stderr[-2000:]
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "png" / "prior_samples.png"))).shape[-1] == 1


@pytest.mark.parametrize("flags, message", [
    (["--prior=vamp", "--conditional"], "flag --prior must not be vamp with conditional"),
    (["--free_bits=0.5", "--posterior=full"], "flag --free_bits_group_size must be at least the (top) latent size 20 unless"),
    (["--kl_schedule=cyclical", "--kl_warmup_steps=10", "--kl_cycle_steps=5"], "flag --kl_cycle_steps must be >="),
    (["--objective=iwae", "--free_bits=1"], "flag --free_bits must be 0 with objective=iwae"),
    (["--flow_hidden_units=8,x"], "flag --flow_hidden_units: expected comma-separated positive ints"),
    (["--latent_dims=8,a"], "flag --latent_dims: expected comma-separated positive ints; got 8,a"),
    (["--latent_dims=8,4", "--posterior=iaf"], "flag --posterior must be diagonal with several --latent_dims"),
])
def test_bad_family_flags_give_one_line_errors(tmp_path, tiny_idx_dir, flags, message):
    result = run_script("train.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", f"--model_dir={tmp_path / 'run'}",
                        *flags)
    assert result.returncode == 2
    assert message in last_error_line(result)
    assert not os.path.exists(tmp_path / "run")

