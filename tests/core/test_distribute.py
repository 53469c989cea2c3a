"""tf.distribute: strategy construction, and the same training on 1, 2, 4 replicas and on two worker processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, last_error_line, run_script, write_idx_dataset

from tfvae.core import distribute

WORKER = os.path.join(REPO, "tests", "distributed_worker.py")


# ------------------------------------------------------------------ construction
def test_unknown_strategy_is_rejected_naming_the_choices():
    with pytest.raises(ValueError, match=r"strategy must be one of \('default', 'one_device', 'mirrored'"):
        distribute.make_strategy("horovod")


@pytest.mark.parametrize(
    "text, message",
    [(None, "TF_CONFIG is not set"), ("{not json", "TF_CONFIG is not valid JSON"),
     ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG has no "cluster"'),
     ('{"cluster": {"worker": ["127.0.0.1:1"]}}', 'TF_CONFIG has no "task"'),
     ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
      "TF_CONFIG task worker:1 is not in its cluster")],
)
def test_malformed_tf_config_gives_a_one_line_error(text, message):
    with pytest.raises(ValueError, match=message) as error:
        distribute.validate_tf_config(text)
    assert "\n" not in str(error.value)


def test_valid_tf_config_is_accepted():
    config = distribute.validate_tf_config(
        '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}')
    assert config["task"]["index"] == 1


def test_multi_worker_without_a_cluster_is_rejected(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG is not set"):
        distribute.make_strategy("multi_worker_mirrored")


# ------------------------------------------------------------------ equal results
def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(data_dir, model_dir, out, strategy="default", cpus=0, clip=0.0, epochs=2, tf_config=None, jit="on",
           overrides=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, WORKER, data_dir, model_dir, out, strategy, str(cpus), str(clip),
                             str(epochs), jit, json.dumps(overrides or {})], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(processes, timeout=300):
    """Waits for all processes (bounded); kills every one of them on any failure or time-out."""
    deadline = time.monotonic() + timeout
    try:
        for p in processes:
            _, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, stderr[-3000:]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


def _run(tmp_path, name, **kwargs):
    out = str(tmp_path / f"{name}.npz")
    _wait([_start(kwargs.pop("data_dir"), str(tmp_path / name), out, **kwargs)])
    return dict(np.load(out))


def _assert_same_training(a, b):
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=2e-5, atol=2e-5)
    weights = sorted(k for k in a if k.startswith("weight_"))
    assert weights and weights == sorted(k for k in b if k.startswith("weight_"))
    for k in weights:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_dataset(str(tmp_path_factory.mktemp("idx")), num_train=192, num_test=32)


@pytest.mark.parametrize("clip, jit", [(0.0, "on"), (0.5, "off")])
def test_mirrored_on_2_and_4_logical_cpus_matches_one_device(tmp_path, data_dir, clip, jit):
    one = _run(tmp_path, "one", data_dir=data_dir, clip=clip, jit=jit)
    assert len(one["loss"]) >= 6 and one["loss"][-1] < one["loss"][0]  # it trains
    for cpus in (2, 4) if jit == "on" else (2,):  # 4 replicas once: with XLA, the production path
        _assert_same_training(one, _run(tmp_path, f"mirrored{cpus}", data_dir=data_dir, strategy="mirrored",
                                         cpus=cpus, clip=clip, jit=jit))


@pytest.mark.parametrize("overrides", [
    {"prior": "mixture", "prior_components": 3, "posterior": "iaf", "flow_steps": 1, "flow_hidden_units": [8],
     "objective": "iwae", "samples_per_example": 2},
    {"prior": "vamp", "prior_components": 6, "free_bits": 0.2, "free_bits_group_size": 2, "kl_schedule": "cyclical",
     "kl_warmup_steps": 3, "kl_cycle_steps": 5},
    {"conditional": True, "prior": "flow", "flow_steps": 1, "flow_hidden_units": [8], "posterior": "full"},
    {"latent_dims": [6, 4, 2], "ladder_units": 8, "prior": "vamp", "prior_components": 4, "free_bits": 0.1,
     "free_bits_group_size": 2, "gradient_spike_factor": 3.0},
], ids=["mixture-iaf-iwae", "vamp-freebits-cyclical", "conditional-flow-full", "hierarchical-vamp-freebits-guard"])
def test_model_families_train_the_same_on_one_device_and_two_replicas(tmp_path, data_dir, overrides):
    # Without XLA: replica invariance is the families' maths, and XLA with replicas is the mirrored test's
    # (XLA compilation of these larger graphs took half of each run; test_factory compiles every family with XLA).
    one = _run(tmp_path, "one", data_dir=data_dir, overrides=overrides, jit="off")
    assert one["loss"][-1] < one["loss"][0]
    _assert_same_training(one, _run(tmp_path, "mirrored2", data_dir=data_dir, strategy="mirrored", cpus=2,
                                    overrides=overrides, jit="off"))


def test_per_example_noise_trains_the_same_on_one_device_with_xla_and_on_two_replicas_without(tmp_path, data_dir):
    # per_example noise (binarization and a two-layer posterior's) is a function of (seed, step, global example,
    # sample, element) only: neither the replicas nor XLA change it, so the runs differ by float rounding only. (With
    # global_batch noise XLA changes the stream, and these two runs' losses differ from the first step.)
    overrides = {"noise_scheme": "per_example", "latent_dims": [4, 2], "ladder_units": 8}
    one = _run(tmp_path, "one", data_dir=data_dir, overrides=overrides, jit="on")
    assert one["loss"][-1] < one["loss"][0]
    _assert_same_training(one, _run(tmp_path, "mirrored2", data_dir=data_dir, strategy="mirrored", cpus=2,
                                    overrides=overrides, jit="off"))


@pytest.fixture(scope="module")
def tfrecord_dir(tmp_path_factory, data_dir):
    """The same examples as data_dir, as 4 TFRecord training shards (labels kept)."""
    from tfvae.data import conversion

    folder = str(tmp_path_factory.mktemp("tfrecord") / "shards")
    conversion.write_tfrecords("idx", data_dir, folder, num_shards=4)
    return folder


def _streamed(tfrecord_dir, **overrides):
    return {"dataset": "tfrecord", "data_dir": tfrecord_dir, "input_mode": "stream", "shuffle_buffer": 40, **overrides}


def test_streamed_training_is_the_same_on_one_device_and_two_replicas(tmp_path, data_dir, tfrecord_dir):
    overrides = _streamed(tfrecord_dir, conditional=True)
    one = _run(tmp_path, "one", data_dir=data_dir, overrides=overrides, epochs=1)
    assert one["loss"][-1] < one["loss"][0]
    _assert_same_training(one, _run(tmp_path, "mirrored2", data_dir=data_dir, strategy="mirrored", cpus=2,
                                    overrides=overrides, epochs=1))


def _cluster(ports):
    workers = [f"127.0.0.1:{p}" for p in ports]
    return [{"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}} for i in range(len(workers))]


def test_two_workers_on_loopback_end_equal_to_each_other_and_to_two_local_replicas(tmp_path, data_dir):
    mirrored = _run(tmp_path, "mirrored", data_dir=data_dir, strategy="mirrored", cpus=2)
    model_dir = str(tmp_path / "multi")
    outs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    _wait([_start(data_dir, model_dir, outs[i], "multi_worker_mirrored", tf_config=config)
           for i, config in enumerate(_cluster(_free_ports(2)))])
    chief, other = (dict(np.load(o)) for o in outs)
    for k in chief:
        if k.startswith("weight_"):
            np.testing.assert_array_equal(chief[k], other[k], err_msg=k)
    _assert_same_training(mirrored, chief)
    assert not os.path.exists(os.path.join(model_dir, ".worker-1"))  # the other worker's scratch copy is gone


def test_two_streaming_workers_on_loopback_train_on_their_own_shards_and_end_equal(tmp_path, data_dir,
                                                                                tfrecord_dir):
    model_dir = str(tmp_path / "multi")
    outs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    _wait([_start(data_dir, model_dir, outs[i], "multi_worker_mirrored", tf_config=config, epochs=1,
                  overrides=_streamed(tfrecord_dir)) for i, config in enumerate(_cluster(_free_ports(2)))])
    chief, other = (dict(np.load(o)) for o in outs)
    assert chief["loss"][-1] < chief["loss"][0]
    for k in chief:
        if k.startswith("weight_"):
            np.testing.assert_array_equal(chief[k], other[k], err_msg=k)


def _checkpoints(model_dir):
    folder = os.path.join(model_dir, "checkpoints")
    return sorted(f for f in os.listdir(folder) if f.endswith(".index")) if os.path.isdir(folder) else []


PREEMPTION_EPOCHS = 4


@pytest.fixture(scope="module")
def uninterrupted_two_worker_run(tmp_path_factory, data_dir):
    folder = tmp_path_factory.mktemp("uninterrupted")
    outs = [str(folder / f"worker{i}.npz") for i in range(2)]
    _wait([_start(data_dir, str(folder / "run"), outs[i], "multi_worker_mirrored", epochs=PREEMPTION_EPOCHS,
                  tf_config=c) for i, c in enumerate(_cluster(_free_ports(2)))])
    return dict(np.load(outs[0]))


@pytest.mark.parametrize("kill_signal", [signal.SIGTERM, signal.SIGKILL])
def test_preempted_job_restarted_from_checkpoints_ends_like_an_uninterrupted_one(
        tmp_path, data_dir, uninterrupted_two_worker_run, kill_signal):
    model_dir = str(tmp_path / "preempted")
    outs = [str(tmp_path / f"part{i}.npz") for i in range(2)]

    def start_job():
        return [_start(data_dir, model_dir, outs[i], "multi_worker_mirrored", epochs=PREEMPTION_EPOCHS, tf_config=c)
                for i, c in enumerate(_cluster(_free_ports(2)))]

    workers = start_job()
    try:
        deadline = time.monotonic() + 240
        while not _checkpoints(model_dir) and time.monotonic() < deadline:
            assert all(w.poll() is None for w in workers), "a worker finished before its first checkpoint"
            time.sleep(0.05)
        assert _checkpoints(model_dir), "no checkpoint within 240 s"
        workers[1].send_signal(kill_signal)  # one worker is preempted; the cluster manager restarts the job
        workers[0].kill()
    finally:
        for w in workers:
            w.kill()
            w.communicate()
    assert not os.path.exists(outs[0]), "the job finished before it was preempted; the test proved nothing"
    _wait(start_job())
    resumed = dict(np.load(outs[0]))
    for k in uninterrupted_two_worker_run:
        if k.startswith("weight_"):
            np.testing.assert_allclose(resumed[k], uninterrupted_two_worker_run[k], rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.parametrize(
    "args, tf_config, message",
    [(["--strategy=multi_worker_mirrored"], "{not json", "train.py: error: TF_CONFIG is not valid JSON"),
     (["--strategy=multi_worker_mirrored"], '{"task": {"type": "worker", "index": 0}}',
      'train.py: error: TF_CONFIG has no "cluster"'),
     (["--strategy=mirrored", "--logical_cpu_devices=4", "--batch_size=30"], None,
      "train.py: error: flag --batch_size (30) must be divisible by the number of replicas (4)"),
     # No GPU (the suite hides them) and one CPU device: refused, not a silent one-device CPU run.
     (["--strategy=mirrored"], None, "train.py: error: flag --strategy mirrored: no GPU is visible and the CPU is one device")],
)
def test_train_script_reports_bad_distribution_settings_in_one_line(tmp_path, data_dir, args, tf_config, message):
    env = {"TF_CONFIG": tf_config} if tf_config else {}
    model_dir = str(tmp_path / "run")
    result = run_script("train.py", "--dataset=idx", f"--data_dir={data_dir}", f"--model_dir={model_dir}",
                        "--epochs=1", "--hidden_units=8", *args, env=env, timeout=300)
    assert result.returncode != 0
    assert last_error_line(result) == message or last_error_line(result).startswith(message), result.stderr[-1500:]
    assert not os.path.exists(os.path.join(model_dir, "checkpoints"))
