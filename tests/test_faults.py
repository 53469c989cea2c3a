"""Faults a production job meets: a second trainer, a failed write, a damaged checkpoint, preemption, no network."""

import glob
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, checkpoint_weights, last_error_line, run_script, write_idx_dataset

import tfvae
from tfvae.train import checkpoints, preemption, runlock, training
from tfvae.train.rundir import RunDirectory


def _config(data_dir, **overrides):
    """8 steps per epoch, a checkpoint every 3 steps, one step per compiled block."""
    # hidden_units=256: a checkpoint data file of ~0.6 MB, while every other file of a run is < 100 kB
    values = dict(dataset="idx", data_dir=data_dir, epochs=2, batch_size=8, hidden_units=(256,), latent_dim=2,
                  steps_per_execution=1, checkpoint_every_steps=3, max_checkpoints=10, validation_examples=16)
    values.update(overrides)
    return tfvae.TrainConfig(**values)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_dataset(str(tmp_path_factory.mktemp("idx")), num_train=64, num_test=16)


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    """Checkpoint weights of the 2-epoch run trained without a fault."""
    model_dir = str(tmp_path_factory.mktemp("uninterrupted") / "run")
    training.train_and_evaluate(_config(data_dir), model_dir, verbose=0)
    return checkpoint_weights(model_dir)


def _assert_same_weights(model_dir, expected):
    path, weights = checkpoint_weights(model_dir)
    expected_path, expected_weights = expected
    assert os.path.basename(path) == os.path.basename(expected_path)
    assert weights.keys() == expected_weights.keys() and len(weights) >= 8
    for name, value in expected_weights.items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)


# ------------------------------------------------------------------- run lock
def test_a_second_trainer_on_a_locked_run_directory_exits_naming_the_holder(tmp_path, data_dir):
    model_dir = str(tmp_path / "run")
    training.train_and_evaluate(_config(data_dir, epochs=1), model_dir, verbose=0)
    run = RunDirectory(model_dir)
    before = sorted(glob.glob(os.path.join(model_dir, "checkpoints", "*")))
    with runlock.RunLock(run.lock_path):
        with open(run.lock_path) as f:
            holder = json.load(f)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
        with pytest.raises(runlock.RunLockError, match=f"in use by another training process \\(pid {os.getpid()}"):
            training.train_and_evaluate(_config(data_dir, epochs=2), model_dir, verbose=0)
        result = run_script("train.py", "--dataset=idx", f"--data_dir={data_dir}", "--epochs=2", "--batch_size=8",
                            "--hidden_units=256", "--latent_dim=2", "--steps_per_execution=1",
                            "--checkpoint_every_steps=3", "--max_checkpoints=10", "--validation_examples=16",
                            f"--model_dir={model_dir}", "--verbose=0")
    assert result.returncode == 2
    assert last_error_line(result) == (
        f"train.py: error: flag --model_dir: {model_dir} is in use by another training process (pid {os.getpid()} "
        f"on host {holder['host']}, started {holder['started']}); wait for it to finish or train into another "
        "model_dir")
    assert sorted(glob.glob(os.path.join(model_dir, "checkpoints", "*"))) == before
    assert not os.path.exists(run.lock_path)  # released by its holder
    assert training.train_and_evaluate(_config(data_dir, epochs=2), model_dir, verbose=0)["epoch"] == 2


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    path = str(tmp_path / "run.lock")
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead_pid = int(finished.stdout)
    with open(path, "w") as f:
        json.dump({"pid": dead_pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}, f)
    with runlock.RunLock(path):
        with open(path) as f:
            assert json.load(f)["pid"] == os.getpid()
    assert f"taking over the lock of a training process that is gone (pid {dead_pid} on host" in caplog.text
    assert not os.path.exists(path)


def test_a_lock_from_another_host_is_refused_with_the_file_to_delete(tmp_path):
    path = str(tmp_path / "run.lock")
    with open(path, "w") as f:
        json.dump({"pid": 1, "host": "some-other-host", "started": "2026-01-01T00:00:00+00:00"}, f)
    with pytest.raises(runlock.RunLockError, match=f"on another host .*if it is no longer running, delete {path}"):
        runlock.RunLock(path).acquire()
    assert os.path.exists(path)


# -------------------------------------------------------------- write failures
def _limit_file_size(limit_bytes):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))  # writes beyond it fail (EFBIG)

    return preexec


def test_a_checkpoint_write_that_fails_keeps_the_previous_one_and_a_rerun_resumes_exactly(
        tmp_path, data_dir, uninterrupted):
    model_dir = str(tmp_path / "run")
    training.train_and_evaluate(_config(data_dir, epochs=1), model_dir, verbose=0)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    before = {name: os.path.getsize(name) for name in glob.glob(os.path.join(checkpoint_dir, "*"))}
    with open(os.path.join(checkpoint_dir, "checkpoint")) as f:
        index_before = f.read()

    flags = ["--dataset=idx", f"--data_dir={data_dir}", "--epochs=2", "--batch_size=8", "--hidden_units=256",
             "--latent_dim=2", "--steps_per_execution=1", "--checkpoint_every_steps=3", "--max_checkpoints=10",
             "--validation_examples=16", f"--model_dir={model_dir}", "--verbose=0"]
    failed = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "train.py"), *flags], cwd=REPO,
                            capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size(300_000),
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert failed.returncode == 1, failed.stderr[-2000:]
    line = last_error_line(failed)
    assert line.startswith(f"train.py: error: {checkpoint_dir}/ckpt-9: cannot write the checkpoint of step 9 (")
    assert "File too large" in line and f"the previous checkpoint {checkpoint_dir}/ckpt-8 is kept" in line
    after = {name: os.path.getsize(name) for name in glob.glob(os.path.join(checkpoint_dir, "*"))}
    assert after == before  # nothing partial left, nothing old removed
    with open(os.path.join(checkpoint_dir, "checkpoint")) as f:
        assert f.read() == index_before

    resumed = training.train_and_evaluate(_config(data_dir), model_dir, verbose=0)
    assert resumed["epoch"] == 2
    _assert_same_weights(model_dir, uninterrupted)


# --------------------------------------------------------- damaged checkpoints
def _damage(path):
    with open(path + ".data-00000-of-00001", "r+b") as f:
        f.seek(100)
        f.write(b"\xff" * 64)  # corrupt bytes in the middle: the tensors' checksums no longer match


def test_a_damaged_newest_checkpoint_is_moved_aside_and_training_resumes_exactly_from_the_previous(
        tmp_path, data_dir, uninterrupted, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_dir = "run"  # relative, as users pass it
    training.train_and_evaluate(_config(data_dir, epochs=1), model_dir, verbose=0)
    checkpoint_dir = RunDirectory(model_dir).checkpoint_dir
    newest = tf.train.latest_checkpoint(checkpoint_dir)
    assert newest.endswith("ckpt-8")
    _damage(newest)

    # A reader (no lock) falls back too, and moves nothing.
    assert tfvae.load_model(model_dir) is not None
    assert os.path.exists(newest + ".index")

    training.train_and_evaluate(_config(data_dir), model_dir, verbose=0)
    assert "ckpt-8: checkpoint is unreadable or does not match the model" in caplog.text
    assert "resuming from" in caplog.text and "ckpt-6 instead of the newer damaged ckpt-8" in caplog.text
    damaged = sorted(os.path.basename(p) for p in glob.glob(os.path.join(checkpoint_dir, "damaged", "*")))
    assert damaged == ["ckpt-8.data-00000-of-00001", "ckpt-8.index"]
    _assert_same_weights(model_dir, uninterrupted)


def test_when_no_checkpoint_is_readable_the_error_names_the_newest(tmp_path, data_dir):
    model_dir = str(tmp_path / "run")
    training.train_and_evaluate(_config(data_dir, epochs=1), model_dir, verbose=0)
    checkpoint_dir = RunDirectory(model_dir).checkpoint_dir
    for index in glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")):
        _damage(index[: -len(".index")])
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"ckpt-8: checkpoint is unreadable .*; no older checkpoint in .* is readable either"):
        training.train_and_evaluate(_config(data_dir), model_dir, verbose=0)
    assert len(glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index"))) == 3  # nothing moved when nothing restored


# ----------------------------------------------------------------- preemption
class _SignalAtBatch(keras.callbacks.Callback):
    """Sends ``signal_number`` to this process at the end of block ``batch`` of epoch ``epoch``."""

    def __init__(self, epoch, batch, signal_number):
        super().__init__()
        self.target, self.signal_number, self.epoch = (epoch, batch), signal_number, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.target:
            os.kill(os.getpid(), self.signal_number)


def test_sigint_mid_epoch_checkpoints_that_step_and_the_rerun_matches_an_uninterrupted_run(
        tmp_path, data_dir, uninterrupted):
    model_dir = str(tmp_path / "run")
    previous_handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(preemption.TrainingPreempted) as stopped:
        training.train_and_evaluate(_config(data_dir), model_dir, verbose=0,
                                    callbacks=[_SignalAtBatch(epoch=1, batch=3, signal_number=signal.SIGINT)])
    assert stopped.value.exit_code == 130
    assert str(stopped.value).startswith("training stopped by SIGINT at step 12 (epoch 2, 4 steps into it); "
                                         "checkpoint ")
    assert signal.getsignal(signal.SIGINT) is previous_handler  # handlers restored
    path, weights = checkpoint_weights(model_dir)
    assert path.endswith("ckpt-12") and int(weights["step_in_epoch/.ATTRIBUTES/VARIABLE_VALUE"]) == 4
    assert not os.path.exists(RunDirectory(model_dir).lock_path)

    training.train_and_evaluate(_config(data_dir), model_dir, verbose=0)
    _assert_same_weights(model_dir, uninterrupted)


def test_sigterm_stops_train_py_promptly_with_exit_code_143_after_a_checkpoint(tmp_path, data_dir):
    model_dir = tmp_path / "run"
    flags = ["--dataset=idx", f"--data_dir={data_dir}", "--epochs=100000", "--batch_size=8", "--hidden_units=256",
             "--latent_dim=2", "--steps_per_execution=1", "--checkpoint_every_steps=3", "--eval_every_epochs=1000",
             f"--model_dir={model_dir}", "--verbose=0"]
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts", "train.py"), *flags], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        deadline = time.monotonic() + 300
        while not tf.train.latest_checkpoint(str(model_dir / "checkpoints")):
            assert process.poll() is None, process.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr[-2000:]
    assert time.monotonic() - signalled < 30
    line = [line for line in stderr.splitlines() if line.strip()][-1]
    assert line.startswith("train.py: stopped: training stopped by SIGTERM at step ")
    step = int(line.split(" at step ")[1].split()[0])
    assert f"checkpoint {model_dir}/checkpoints/ckpt-{step} written; rerun the same command to resume" in line
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith(f"ckpt-{step}")


def test_checkpoint_every_seconds_adds_checkpoints_between_the_step_interval(tmp_path, data_dir):
    timed = str(tmp_path / "timed")
    training.train_and_evaluate(_config(data_dir, epochs=1, checkpoint_every_steps=1000,
                                        checkpoint_every_seconds=1e-6), timed, verbose=0)
    steps = sorted(int(p.split("-")[-1].split(".")[0]) for p in glob.glob(os.path.join(timed, "checkpoints",
                                                                                      "ckpt-*.index")))
    assert steps == list(range(1, 9))  # after every block
    untimed = str(tmp_path / "untimed")
    training.train_and_evaluate(_config(data_dir, epochs=1, checkpoint_every_steps=1000), untimed, verbose=0)
    assert [os.path.basename(p) for p in glob.glob(os.path.join(untimed, "checkpoints", "ckpt-*.index"))] == [
        "ckpt-8.index"]


# --------------------------------------------------------------- no network
def test_an_offline_download_fallback_is_a_one_line_data_error(tmp_path):
    offline = dict(KERAS_HOME=str(tmp_path / "keras"), https_proxy="http://127.0.0.1:9",
                   http_proxy="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    result = run_script("train.py", "--dataset=mnist", f"--model_dir={tmp_path / 'run'}", "--epochs=1",
                        env=offline, timeout=300)
    assert result.returncode == 1
    line = last_error_line(result)
    assert line.startswith("train.py: error: dataset 'mnist': no local copy in /usr/share/datasets/mnist and the "
                           "keras.datasets.mnist download failed (URL fetch failure on https://")
    assert line.endswith("put the four IDX files (train-images-idx3-ubyte.gz, ...) in a directory and pass "
                         "--data_dir=DIR, or a Keras .npz with --dataset=npz --data_dir=FILE")
