"""The trainer's interfaces: Keras callbacks, TensorBoard diagnostics, the run directory, users' own parts."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import last_error_line, run_script

import tfvae
from tfvae import evaluation
from tfvae.train import rundir, training

tfd = tfp.distributions
TINY = dict(dataset="idx", hidden_units=(8,), latent_dim=2, batch_size=16, validation_examples=16,
            steps_per_execution=2, checkpoint_every_steps=4, summary_every_steps=2)


def _tensorboard(log_dir):
    """{tag: {step: value array}} of every summary under log_dir."""
    values = {}
    for path in sorted(os.listdir(log_dir)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, path)):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    values.setdefault(value.tag, {})[event.step] = tf.make_ndarray(value.tensor)
    return values


class Recorder(keras.callbacks.Callback):
    """Records every hook call; stops training at the end of epoch ``stop_at`` if given."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.calls, self.stop_at = [], stop_at

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", None))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))
        if epoch == self.stop_at:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", dict(logs)))


def test_callbacks_get_the_standard_hooks_with_training_and_validation_logs(tmp_path, tiny_idx_dir):
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, epochs=4, eval_every_epochs=2, **TINY)
    recorder = Recorder()
    csv_path = str(tmp_path / "log.csv")
    results = training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0,
                                          callbacks=[recorder, keras.callbacks.CSVLogger(csv_path)])
    kinds = [call[0] for call in recorder.calls]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert [c[1] for c in recorder.calls if c[0] == "epoch_begin"] == [0, 1, 2, 3]
    # 64 examples / batch 16 = 4 steps per epoch, blocks of 2 steps: batch_end after steps 2 and 4 (indices 1, 3).
    assert [c[1] for c in recorder.calls if c[0] == "batch_end"] == [1, 3] * 4
    assert all({"loss", "elbo", "rate", "distortion"} <= set(c[2]) for c in recorder.calls if c[0] == "batch_end")
    epoch_logs = [c[2] for c in recorder.calls if c[0] == "epoch_end"]
    # validated after epochs 2 and 4 only: the other epochs' logs carry no (stale) validation figures
    assert "val_loss" not in epoch_logs[0] and "val_loss" not in epoch_logs[2]
    assert epoch_logs[1]["val_loss"] == pytest.approx(-epoch_logs[1]["val_elbo"])
    assert epoch_logs[3]["val_elbo"] == pytest.approx(results["elbo"])
    assert 0 <= epoch_logs[3]["val_active_units"] <= 2
    rows = open(csv_path).read().strip().splitlines()
    assert len(rows) == 5 and "val_elbo" in rows[0]


def test_stop_training_from_a_callback_ends_the_run_after_that_epoch(tmp_path, tiny_idx_dir):
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, epochs=5, **TINY)
    results = training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0, callbacks=[Recorder(stop_at=1)])
    assert results["epoch"] == 2 and results["step"] == 8 and results["stopped_early"]
    assert json.load(open(tmp_path / "run" / "metrics.json"))["stopped_early"] is True


def test_early_stopping_flag_stops_when_the_validation_loss_stops_improving(tmp_path, tiny_idx_dir):
    """With a learning rate of 0 the validation loss never improves: patience 2 stops after epoch 3."""
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, epochs=10, learning_rate=1e-12, early_stopping_patience=2,
                               **TINY)
    results = training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0)
    assert results["epoch"] == 3 and results["stopped_early"]


def test_terminate_on_nan_and_the_trainer_both_stop_a_diverging_run(tmp_path, tiny_idx_dir):
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, epochs=2, learning_rate=1e30, **TINY)
    with pytest.raises(training.NonFiniteLossError):
        training.train_and_evaluate(config, str(tmp_path / "run"), verbose=0,
                                    callbacks=[keras.callbacks.TerminateOnNaN()])


def test_tensorboard_gets_learning_rate_kl_weight_kl_per_dimension_active_units_and_hparams(tmp_path, tiny_idx_dir):
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, epochs=2, kl_warmup_steps=6, learning_rate_decay="cosine",
                               **TINY)
    run = rundir.RunDirectory(str(tmp_path / "run"))
    training.train_and_evaluate(config, run.path, verbose=0)
    train, validation = _tensorboard(run.train_log_dir), _tensorboard(run.validation_log_dir)
    assert train["kl_weight"][2] == pytest.approx(2 / 6) and train["kl_weight"][8] == pytest.approx(1.0)
    decay = keras.optimizers.schedules.CosineDecay(1e-3, 8, alpha=0.01)
    assert train["learning_rate"][4] == pytest.approx(float(decay(4)), rel=1e-5)
    assert set(validation["active_units"]) == {4, 8} and 0 <= validation["active_units"][8] <= 2
    model = tfvae.load_model(run.path)
    expected = evaluation.kl_per_dimension(model, tfvae.data.prepare_data(config).test_images[:16])
    histogram = validation["kl_per_dimension"][8]  # rows of (left edge, right edge, count)
    assert histogram[:, 2].sum() == 2 and histogram[0, 0] == pytest.approx(expected.min(), rel=1e-4, abs=1e-4)
    plugins = set()
    for path in os.listdir(run.train_log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(run.train_log_dir, path)):
            plugins |= {v.metadata.plugin_data.plugin_name for v in event.summary.value}
    assert "hparams" in plugins


def test_a_run_directory_of_the_previous_layout_names_the_version_that_wrote_it(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(tfvae.TrainConfig().to_json())  # 0.2 wrote the bare config
    with pytest.raises(rundir.RunDirectoryError, match=r"written by tfvae 0.2.0 or earlier, whose run layout tfvae 0.3"):
        tfvae.load_model(str(old))
    result = run_script("evaluate.py", f"--model_dir={old}")
    assert result.returncode == 1 and "written by tfvae 0.2.0 or earlier" in last_error_line(result)
    result = run_script("train.py", f"--model_dir={old}", "--epochs=1")
    assert result.returncode == 2 and "written by tfvae 0.2.0 or earlier" in last_error_line(result)


# ------------------------------------------------------------ users' parts
@keras.saving.register_keras_serializable(package="tfvae_tests")
class HandWrittenEncoder(keras.layers.Layer):
    """Flatten -> Dense -> (loc, softplus scale): what a user writes first."""

    def __init__(self, latent_dim=2, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.params = keras.layers.Dense(2 * latent_dim)

    def call(self, x):
        h = self.hidden(keras.ops.reshape(x, (-1, 64)))
        loc, raw_scale = tf.split(self.params(h), 2, axis=-1)
        return tfd.MultivariateNormalDiag(loc, tf.nn.softplus(raw_scale) + 1e-4)

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


@keras.saving.register_keras_serializable(package="tfvae_tests")
class HandWrittenDecoder(keras.layers.Layer):
    """Dense layers, a reshape to 8x8x1 and a Bernoulli on the logits; it never sees sample dimensions."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.logits = keras.layers.Dense(64)

    def call(self, z):
        logits = tf.reshape(self.logits(self.hidden(z)), [-1, 8, 8, 1])
        return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=3)


def test_hand_written_parts_train_evaluate_sample_and_export(tmp_path, tiny_idx_dir):
    model = tfvae.VAE(HandWrittenEncoder(2), HandWrittenDecoder(), tfvae.StandardNormalPrior(2))
    config = tfvae.TrainConfig(data_dir=tiny_idx_dir, epochs=2, **TINY)
    results = training.train_and_evaluate(config, str(tmp_path / "run"), model=model, verbose=0)
    assert np.isfinite(results["elbo"])
    reloaded = tfvae.load_model(str(tmp_path / "run"))
    x = tfvae.data.prepare_data(config).test_images[:4]
    assert reloaded.sample(5, seed=1).shape == (5, 8, 8, 1)  # decoder built on rank-2 z, sampled on [5, 2]
    likelihood = reloaded.likelihood(reloaded.posterior(x).sample(3, seed=(1, 2)))
    assert likelihood.batch_shape == [3, 4]  # the sample dimension restored around the user's decoder
    iwae = reloaded.log_likelihood(x, num_samples=50, seed=3).numpy()
    assert iwae.shape == (4,) and np.isfinite(iwae).all()
    # log p(x|z) through the model equals the user's decoder on each sample separately.
    z = reloaded.posterior(x).sample(3, seed=(4, 5))
    by_sample = np.stack([reloaded.decoder(z[j]).log_prob(x).numpy() for j in range(3)])
    np.testing.assert_allclose(reloaded.data_log_prob(x, z).numpy(), by_sample, rtol=1e-5)
    path = tfvae.export.export_model(reloaded, str(tmp_path / "export"))
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["reconstruct"](images=tf.constant(x))["reconstruction"]
    np.testing.assert_allclose(out.numpy(), reloaded.reconstruct(x).numpy(), rtol=1e-5, atol=1e-6)
