"""Checkpoints whose index names files outside checkpoints/: never read, moved or deleted; no good one dropped."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae.train import checkpoints


def _state(directory, max_to_keep=10):
    keras.utils.set_random_seed(0)
    model = tfvae.VAE(tfvae.GaussianEncoder(2, hidden_units=[4]), tfvae.BernoulliDecoder((4, 4, 1), hidden_units=[4]),
                      tfvae.StandardNormalPrior(2))
    model.build((None, 4, 4, 1))
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    return checkpoints.TrainingState(model, optimizer, str(directory), max_to_keep=max_to_keep)


def _save_at(state, *steps):
    for step in steps:
        state.optimizer.iterations.assign(step)
        state.save()


def _snapshot(folder):
    return {name: open(name, "rb").read() for name in glob.glob(os.path.join(folder, "**"), recursive=True)
            if os.path.isfile(name)}


@pytest.fixture
def planted(tmp_path):
    """A checkpoint folder with ckpt-1..3 whose index also names files outside it (and a misnamed one inside).

    Returns (checkpoint folder, outside folder, snapshot of the outside files).
    """
    directory = tmp_path / "run" / "checkpoints"
    _save_at(_state(directory), 1, 2, 3)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("ckpt-9.index", "ckpt-9.data-00000-of-00001", "ckpt-0.index", "precious.index"):
        (outside / name).write_bytes(b"not a checkpoint: someone's file " + name.encode())
    (directory / "notes.index").write_bytes(b"mine, not a checkpoint")
    entries = [str(outside / "ckpt-0"), str(directory / "ckpt-1"), str(directory / "ckpt-2"),
               str(directory / "ckpt-3"), "../../outside/precious", "notes", "damaged/ckpt-7", str(outside / "ckpt-9")]
    with open(directory / "checkpoint", "w") as f:  # with timestamps, as CheckpointManager writes them
        f.write(f'model_checkpoint_path: "{entries[-1]}"\n')
        f.writelines(f'all_model_checkpoint_paths: "{entry}"\n' for entry in entries)
        f.writelines(f"all_model_checkpoint_timestamps: {1000.0 + i}\n" for i in range(len(entries)))
        f.write("last_preserved_timestamp: 1.0\n")
    return directory, outside, _snapshot(outside)


def test_only_ckpt_n_inside_the_folder_are_candidates(planted, caplog):
    directory, _, _ = planted
    assert checkpoints.checkpoint_paths(str(directory)) == [str(directory / f"ckpt-{n}") for n in (3, 2, 1)]
    assert "ignoring index entries that are not checkpoints in that folder" in caplog.text
    assert "outside/ckpt-9" in caplog.text


def test_a_restore_reads_and_moves_nothing_outside_and_saves_never_delete_it(planted):
    directory, outside, before = planted
    state = _state(directory, max_to_keep=3)
    assert state.restore_latest(move_aside_damaged=True) == str(directory / "ckpt-3")
    assert not os.path.exists(directory / checkpoints.DAMAGED_DIR)
    _save_at(state, 4, 5, 6, 7)  # rotation: the manager deletes the oldest entries of its index
    assert _snapshot(outside) == before
    assert (directory / "notes.index").read_bytes() == b"mine, not a checkpoint"
    index = tf.train.get_checkpoint_state(str(directory))
    assert list(index.all_model_checkpoint_paths) == [str(directory / f"ckpt-{n}") for n in (5, 6, 7)]


def test_a_damaged_checkpoint_is_moved_aside_and_every_good_one_stays_in_the_index(planted):
    directory, outside, before = planted
    with open(directory / "ckpt-3.data-00000-of-00001", "r+b") as f:
        f.seek(20)
        f.write(b"\xff" * 64)
    state = _state(directory)
    assert state.restore_latest(move_aside_damaged=True) == str(directory / "ckpt-2")
    assert sorted(os.listdir(directory / checkpoints.DAMAGED_DIR)) == ["ckpt-3.data-00000-of-00001", "ckpt-3.index"]
    assert _snapshot(outside) == before
    index = tf.train.get_checkpoint_state(str(directory))
    assert list(index.all_model_checkpoint_paths) == [str(directory / "ckpt-1"), str(directory / "ckpt-2")]
    assert index.model_checkpoint_path == str(directory / "ckpt-2")
    _save_at(state, 4)
    index = tf.train.get_checkpoint_state(str(directory))  # the older good ones stay in the index
    assert list(index.all_model_checkpoint_paths) == [str(directory / f"ckpt-{n}") for n in (1, 2, 4)]
    assert _snapshot(outside) == before


def test_an_index_naming_only_outside_files_falls_back_to_the_checkpoints_on_disk(tmp_path):
    directory = tmp_path / "checkpoints"
    state = _state(directory, max_to_keep=2)
    _save_at(state, 1, 2)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "ckpt-5.index").write_bytes(b"x")
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "{outside}/ckpt-5"\n'
                                          f'all_model_checkpoint_paths: "{outside}/ckpt-5"\n')
    restored = _state(directory, max_to_keep=2)
    assert restored.restore_latest(move_aside_damaged=True) == str(directory / "ckpt-2")
    np.testing.assert_array_equal(restored.model.weights[0].numpy(), state.model.weights[0].numpy())
    _save_at(restored, 3, 4, 5)
    assert (outside / "ckpt-5.index").read_bytes() == b"x"


def test_non_finite_weights_are_a_checkpoint_error_naming_the_step(tmp_path):
    state = _state(tmp_path / "checkpoints")
    _save_at(state, 1)
    state.optimizer.iterations.assign(2)
    state.model.encoder.head.bias.assign(np.full(4, np.inf, np.float32))
    with pytest.raises(checkpoints.CheckpointError, match=r"refusing to checkpoint non-finite weights at step 2 "
                                                          r"\(training diverged: .*\); the last good checkpoint "
                                                          r".*ckpt-1 is kept"):
        state.save()
