"""The run's summary and warnings, and the defaults fitted to the data, as scripts/train.py shows them."""

import json
import os
import re

import numpy as np
import pytest
from builders import factor_table, write_table
from conftest import run_script

from tfvae.train import run_summary
from tfvae.train.config import TrainConfig

TINY = ["--hidden_units=8", "--latent_dim=2", "--steps_per_execution=4", "--epochs=2"]


def _summary(result):
    return result.stderr[result.stderr.index("run summary"):]


def test_integer_data_far_below_255_are_warned_of_and_max_value_reads_them_on_their_scale(tmp_path):
    digits = np.random.default_rng(0).integers(0, 17, (60, 8)).astype(np.float64)
    path = write_table(tmp_path / "digits.csv", digits)
    common = ["--dataset=csv", f"--data_dir={path}", "--batch_size=16", *TINY]
    squashed = run_script("train.py", f"--model_dir={tmp_path / 'a'}", *common)
    assert squashed.returncode == 0, squashed.stderr[-2000:]
    assert ("integer data in [0, 16] are read as 8-bit values, x / 255, so they lie in [0, 0.063]; if 16 is their "
            "full scale, pass --max_value=16") in squashed.stderr
    scaled = run_script("train.py", f"--model_dir={tmp_path / 'b'}", *common, "--max_value=16")
    assert scaled.returncode == 0, scaled.stderr[-2000:]
    assert "--max_value=16" not in scaled.stderr.replace("value / 16", "") and "integers read as value / 16" in \
        _summary(scaled)


def test_a_small_real_valued_table_gets_a_batch_it_has_and_a_gaussian_said_and_replayed(tmp_path):
    path = write_table(tmp_path / "table.csv", factor_table(40)[0])
    run = tmp_path / "run"
    command = ["--dataset=csv", f"--data_dir={path}", f"--model_dir={run}", *TINY]
    first = run_script("train.py", *command)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = _summary(first)
    assert "batch 36, not the default 128: the training split has 36 examples; 1 steps per epoch" in summary
    assert ("likelihood gaussian, not the default bernoulli: the table holds real values (floats not all 0 or 1), "
            "with a learned scale per column (--gaussian_scale=per_pixel)") in summary
    assert "a density on [0, 1]^D" in summary
    config = json.loads((run / "config.json").read_text())
    assert (config["batch_size"], config["likelihood"], config["gaussian_scale"]) == (36, "gaussian", "per_pixel")
    flags = (run / "flags.txt").read_text().splitlines()
    assert {"--batch_size=36", "--likelihood=gaussian", "--gaussian_scale=per_pixel"} <= set(flags)
    resumed = run_script("train.py", *command, "--epochs=3")  # the same command resumes: nothing refused
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == 3


def test_settings_given_on_the_command_line_are_kept_whatever_the_data(tmp_path):
    path = write_table(tmp_path / "table.csv", factor_table(40)[0])
    chosen = run_script("train.py", "--dataset=csv", f"--data_dir={path}", f"--model_dir={tmp_path / 'run'}", *TINY,
                        "--likelihood=bernoulli", "--batch_size=64")
    assert chosen.returncode == 2
    assert "flag --batch_size (64) must not exceed the number of training examples (36)" in chosen.stderr


def test_a_labelled_table_trains_conditionally_on_its_label_column_and_samples_name_the_class(tmp_path):
    values, labels = factor_table(60)
    path = write_table(tmp_path / "table.csv", values, labels, label_name="target")
    run = tmp_path / "run"
    missing = run_script("train.py", "--dataset=csv", f"--data_dir={path}", f"--model_dir={run}", "--conditional",
                         *TINY)
    assert missing.returncode == 1
    assert re.search(r"table.csv: no column named 'label' \(--label_column\) to give labels; a conditional VAE "
                     r"\(--conditional\) needs a header row .* its header names \['f1', .*'target'\]$",
                     missing.stderr.strip().splitlines()[-1])
    trained = run_script("train.py", "--dataset=csv", f"--data_dir={path}", f"--model_dir={run}", "--conditional",
                         "--label_column=target", *TINY)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "labels of 3 classes (0-2)" in _summary(trained)
    sampled = run_script("sample.py", f"--model_dir={run}", "--num_samples=5")
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    with open(run / "samples" / "prior_samples.csv") as f:
        assert f.readline().strip() == "target," + ",".join(f"f{i}" for i in range(1, 7))
        assert [int(line.split(",")[0]) for line in f] == [0, 1, 2, 0, 1]


def test_a_run_whose_rate_collapsed_is_warned_of_naming_the_flags(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (64, 4, 4, 1), np.uint8)  # nothing to encode
    np.savez(tmp_path / "noise.npz", x_train=noise, x_test=noise[:16])
    result = run_script("train.py", "--dataset=npz", f"--data_dir={tmp_path / 'noise.npz'}",
                        f"--model_dir={tmp_path / 'run'}", "--batch_size=16", "--learning_rate=0.02", *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    rate = json.loads(result.stdout.strip().splitlines()[-1])["rate"]
    assert rate < np.log(2)
    assert (f"the rate KL(q(z|x) || p(z)) ended at {rate:.3g} nats per example, under one bit: the posterior has "
            "collapsed") in result.stderr
    assert "--kl_warmup_steps" in result.stderr and "--free_bits" in result.stderr


@pytest.mark.parametrize("rate, warned", [(0.0, True), (0.69, True), (0.7, False), (12.0, False)])
def test_the_collapse_warning_fires_below_one_bit(rate, warned):
    assert (run_summary.collapse_warning(rate) is not None) == warned


def test_a_run_of_thousands_of_steps_is_not_called_short():
    from tfvae.data.summary import DataDescription

    described = DataDescription("x", (28, 28, 1), "uint8", (0, 255), 60000, 10000, 10)
    assert run_summary.start_warnings(TrainConfig(), described, 468, frozenset()) == []
    short = run_summary.start_warnings(TrainConfig(epochs=1), described, 468, frozenset())
    assert len(short) == 1 and "--epochs=5 gives 2340 steps" in short[0]
    assert os.sep not in short[0]


def test_from_python_defaults_are_fitted_unless_changed_or_a_model_is_given(tmp_path, caplog):
    import logging

    from absl import logging as absl_logging

    import tfvae

    caplog.set_level(logging.INFO)
    # As docs/usage.md tells Python users; other code in this process may have set absl's level (saving a model does).
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    values = factor_table(40)[0].astype(np.float32)
    small = dict(epochs=1, hidden_units=(8,), latent_dim=2)
    tfvae.train_and_evaluate(TrainConfig(**small), str(tmp_path / "a"), train_data=values, verbose=0)
    fitted = tfvae.load_config(str(tmp_path / "a"))
    assert (fitted.batch_size, fitted.likelihood, fitted.gaussian_scale) == (36, "gaussian", "per_pixel")
    chosen = TrainConfig(likelihood="continuous_bernoulli", **small)
    tfvae.train_and_evaluate(chosen, str(tmp_path / "b"), train_data=values, verbose=0)
    assert tfvae.load_config(str(tmp_path / "b")).likelihood == "continuous_bernoulli"
    model = tfvae.VAE(tfvae.GaussianEncoder(2, hidden_units=[8]), tfvae.BernoulliDecoder((6,), hidden_units=[8]),
                      tfvae.StandardNormalPrior(2))
    caplog.clear()
    tfvae.train_and_evaluate(TrainConfig(**small), str(tmp_path / "c"), model=model, train_data=values, verbose=0)
    assert tfvae.load_config(str(tmp_path / "c")).likelihood == "bernoulli"  # the given model's, not fitted
    absl_logging.set_verbosity(previous)
    assert "model: given from Python (GaussianEncoder, BernoulliDecoder, StandardNormalPrior)" in caplog.text
