"""A loss-scaled step is applied or skipped by every replica and worker together (core/optimizer_step.py)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

WORKER = os.path.join(REPO, "tests", "loss_scale_worker.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_skipped_then_applied(report):
    for weight_before, weight_marked, weight_clean in zip(report["before"], report["after_marked"],
                                                          report["after_clean"], strict=True):
        for replica_before, replica_marked in zip(weight_before, weight_marked, strict=True):
            # Skipped on every replica: each copy of each weight is what it was, and finite.
            np.testing.assert_array_equal(replica_marked, replica_before)
            assert np.all(np.isfinite(replica_marked))
        # The clean step is applied, to the same values on every replica.
        assert not np.array_equal(weight_clean[0], weight_before[0])
        for replica_clean in weight_clean[1:]:
            np.testing.assert_array_equal(replica_clean, weight_clean[0])
    assert report["scale_after_marked"] == report["scale_before"] / 2
    # A skipped step counts: the step (seeds, schedules, checkpoints) follows the data.
    assert report["iterations_after_marked"] == 1 and report["iterations_after_clean"] == 2
    assert all(skipped == 1.0 for skipped in report["skipped"])


def _mirrored_report(mode, tmp_path):
    """The JSON report of tests/loss_scale_worker.py run in ``mode`` on two logical CPU devices."""
    out = tmp_path / f"{mode}.json"
    result = subprocess.run([sys.executable, WORKER, mode, str(out)], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_an_overflow_on_one_of_two_replicas_is_skipped_by_both(tmp_path):
    report = _mirrored_report("mirrored", tmp_path)
    assert len(report["before"][0]) == 2  # two replicas' copies
    _check_skipped_then_applied(report)


def test_an_overflow_on_one_of_two_workers_is_skipped_by_both_without_a_hang(tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, WORKER, "multi_worker", str(tmp_path / f"worker{index}.json")],
            env=dict(os.environ, TF_CONFIG=tf_config, TF_CPP_MIN_LOG_LEVEL="3"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outputs = [p.communicate(timeout=240) for p in processes]
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        pytest.fail("the workers did not finish within 240 s: their collectives no longer matched (a hang)")
    for p, (_, stderr) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
    reports = [json.loads((tmp_path / f"worker{index}.json").read_text()) for index in range(2)]
    for report in reports:
        _check_skipped_then_applied(report)
    np.testing.assert_array_equal(np.array(reports[0]["after_clean"][0][0]), np.array(reports[1]["after_clean"][0][0]))


def test_a_spike_from_one_of_two_replicas_is_clipped_alike_on_both_and_counted_once_per_step(tmp_path):
    """The guard judges the all-replica, unscaled gradient: both replicas clip to factor * level and count it."""
    report = _mirrored_report("mirrored_spike", tmp_path)
    assert report["copies_equal"]
    for change in report["change_norms"]:  # SGD(0.1): the update is 0.1 * the clipped gradient, 2 x the level
        np.testing.assert_allclose(change, 0.1 * 2.0 * report["level"], rtol=1e-4)
    assert report["spikes"] == [0.5, 0.5] and report["skipped"] == [0.0, 0.0]  # 1 of the 2 steps, on each replica
    assert report["guard_updates"] == [2.0, 2.0] and report["guard_means"][0] == report["guard_means"][1]


def test_a_clipped_loss_scaled_step_on_two_replicas_takes_one_all_reduce_and_equals_one_replica(tmp_path):
    """The summed gradient is applied from a cross-replica context: no second all-reduce in the optimizer, the
    same weights as one replica taking the whole batch, and the loss scale's bookkeeping as Keras keeps it."""
    report = _mirrored_report("one_reduce", tmp_path)
    one, two = report["1"], report["2"]
    assert two["all_reduces_per_replica"] == 1  # tfvae's sum only, traced once per replica
    for weight_one, weight_two in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_array_equal(weight_two[1], weight_two[0])  # both copies updated alike
        np.testing.assert_allclose(weight_two[0], weight_one[0], rtol=1e-5, atol=1e-6)
    # dynamic_growth_steps=2 from 2^15: doubled after steps 2 (counter 0), then counter 1 after step 3.
    assert one["scale"] == two["scale"] == 2.0**16
    assert one["step_counter"] == two["step_counter"] == 1
    assert one["iterations"] == two["iterations"] == 3


# ------------------------------------------------------------ one device: unscaled clipping, the guard
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvae.core import gradient_guard, optimizer_step  # noqa: E402


def _variables():
    return [tf.Variable([1.0, -2.0]), tf.Variable([[0.5]])]


@pytest.mark.parametrize("clip", [None, 0.1])
def test_clipping_acts_on_the_true_gradient_whatever_the_loss_scale(clip):
    true_grads = [tf.constant([3.0, -4.0]), tf.constant([[12.0]])]  # global norm 13
    plain, scaled = _variables(), _variables()
    optimizer_step.apply_step(keras.optimizers.SGD(1.0), true_grads, plain, clip)
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1.0), initial_scale=2.0**15)
    lso.build(scaled)
    report = optimizer_step.apply_step(lso, [g * 2.0**15 for g in true_grads], scaled, clip)
    for a, b in zip(plain, scaled, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    expected_step = 1.0 if clip is None else clip / 13.0
    np.testing.assert_allclose(plain[0].numpy(), [1.0 - 3.0 * expected_step, -2.0 + 4.0 * expected_step], rtol=1e-6)
    assert float(report["norm"]) == pytest.approx(13.0)


def test_a_non_finite_norm_is_never_a_spike_and_leaves_the_guards_level_alone():
    guard = gradient_guard.GradientSpikeGuard(factor=2.0, warmup_steps=1)
    lso = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=4.0)
    variables = _variables()
    lso.build(variables)
    optimizer_step.apply_step(lso, [tf.constant([4.0, 0.0]), tf.constant([[0.0]])], variables, guard=guard)
    level = float(guard.norm_mean.numpy())
    before = [v.numpy() for v in variables]
    report = optimizer_step.apply_step(lso, [tf.constant([np.inf, 0.0]), tf.constant([[0.0]])], variables,
                                       guard=guard)
    assert not bool(report["finite"]) and not bool(report["spike"])
    assert float(guard.norm_mean.numpy()) == level
    for b, v in zip(before, variables, strict=True):
        np.testing.assert_array_equal(b, v.numpy())
    assert int(lso.iterations.numpy()) == 2
    report = optimizer_step.apply_step(lso, [tf.constant([400.0, 0.0]), tf.constant([[0.0]])], variables, guard=guard)
    assert bool(report["spike"]) and bool(report["finite"])  # 100 (unscaled) > 2 x the level of 1


# ------------------------------------------------------------ OptimizerStep: the rules and their accounting
def _loss_scaled(learning_rate, variables):
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(learning_rate), initial_scale=2.0**15)
    optimizer.build(variables)
    return optimizer


def test_optimizer_step_clips_the_unscaled_gradient_and_reports_the_trackers_its_settings_need():
    variables = _variables()
    step = optimizer_step.OptimizerStep(clip_global_norm=1.3)
    optimizer = _loss_scaled(1.0, variables)
    applied = step.apply(optimizer, [tf.constant([3.0, -4.0]) * 2.0**15, tf.constant([[12.0]]) * 2.0**15], variables)
    assert bool(applied)
    # norm 13 clipped to 1.3: the update is a tenth of the true gradient, whatever the loss scale
    np.testing.assert_allclose(variables[0].numpy(), [1.0 - 0.3, -2.0 + 0.4], rtol=1e-6)
    np.testing.assert_allclose(variables[1].numpy(), [[0.5 - 1.2]], rtol=1e-6)
    assert [m.name for m in step.metrics(optimizer)] == ["skipped_steps"]
    assert step.metrics(keras.optimizers.SGD(1.0)) == []
    guarded = optimizer_step.OptimizerStep(gradient_spike_factor=3.0)
    assert [m.name for m in guarded.metrics(optimizer)] == ["gradient_spikes", "skipped_steps"]
    assert guarded.gradient_spike_factor == 3.0 and guarded.clip_global_norm is None


def test_optimizer_step_counts_a_skipped_step_and_says_it_was_not_applied():
    variables = _variables()
    step = optimizer_step.OptimizerStep()
    optimizer = _loss_scaled(0.1, variables)
    before = [v.numpy() for v in variables]
    assert not bool(step.apply(optimizer, [tf.constant([np.nan, 0.0]), tf.constant([[1.0]])], variables))
    for b, v in zip(before, variables, strict=True):
        np.testing.assert_array_equal(b, v.numpy())
    assert bool(step.apply(optimizer, [tf.constant([1.0, 0.0]), tf.constant([[1.0]])], variables))
    assert float(step.skip_tracker.result()) == 0.5
    assert step.apply(keras.optimizers.SGD(0.1), [tf.constant([1.0, 0.0]), tf.constant([[1.0]])], variables) is None


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"clip_global_norm": 0.0}, "clip_global_norm must be > 0 or None; got 0.0"),
    ({"gradient_spike_factor": 1.0}, "gradient_spike_factor must be > 1; got 1.0"),
])
def test_optimizer_step_refuses_bad_settings_in_one_line(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        optimizer_step.OptimizerStep(**kwargs)
