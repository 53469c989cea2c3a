"""What only shows from outside the process: files outside the run directory stay byte-identical, nothing is left
behind by a refused run, every failure is one line and an exit code (never a signal)."""

import glob
import os

import pytest
import tensorflow as tf
from conftest import last_error_line, run_script, write_idx_dataset

import tfvae
from tfvae.train import loading, training


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_idx_dataset(str(tmp_path_factory.mktemp("idx")), num_train=64, num_test=16)


def _flags(data_dir, model_dir, *extra):
    return ["--dataset=idx", f"--data_dir={data_dir}", "--batch_size=16", "--hidden_units=16", "--latent_dim=2",
            "--steps_per_execution=1", "--checkpoint_every_steps=2", "--max_checkpoints=2", "--validation_examples=16",
            f"--model_dir={model_dir}", "--verbose=0", *extra]


def _tree(folder):
    """{relative path: bytes} of every file under ``folder`` (links as their target's name)."""
    tree = {}
    for name in glob.glob(os.path.join(folder, "**"), recursive=True):
        if os.path.islink(name):
            tree[os.path.relpath(name, folder)] = "-> " + os.readlink(name)
        elif os.path.isfile(name):
            with open(name, "rb") as f:
                tree[os.path.relpath(name, folder)] = f.read()
    return tree


def _assert_one_line_exit(result, code, start):
    assert result.returncode == code, result.stderr[-2000:]  # a code: never a signal (a negative returncode)
    assert "Traceback" not in result.stderr
    assert last_error_line(result).startswith(start), last_error_line(result)


def test_a_run_lock_linked_to_another_file_is_refused_and_that_file_is_untouched(tmp_path, data_dir):
    outside = tmp_path / "home" / ".bashrc"
    outside.parent.mkdir()
    outside.write_bytes(b"export PATH=$HOME/bin:$PATH\n")
    before = _tree(outside.parent)
    model_dir = tmp_path / "shared_tmp" / "a"
    model_dir.mkdir(parents=True)
    (model_dir / "run.lock").symlink_to(outside)  # planted by another user of /tmp
    result = run_script("train.py", *_flags(data_dir, model_dir, "--epochs=1"))
    _assert_one_line_exit(result, 2, f"train.py: error: flag --model_dir: {model_dir}/run.lock is a symbolic link; ")
    assert _tree(outside.parent) == before
    assert sorted(os.listdir(model_dir)) == ["run.lock"]


def test_a_checkpoint_index_naming_outside_files_leaves_them_untouched_and_keeps_the_good_checkpoints(
        tmp_path, data_dir):
    model_dir = tmp_path / "run"
    config = tfvae.TrainConfig(dataset="idx", data_dir=data_dir, batch_size=16, hidden_units=(16,), latent_dim=2,
                               steps_per_execution=1, checkpoint_every_steps=2, max_checkpoints=2,
                               validation_examples=16, epochs=1)
    training.train_and_evaluate(config, str(model_dir), verbose=0)
    checkpoint_dir = model_dir / "checkpoints"
    good = [str(checkpoint_dir / "ckpt-2"), str(checkpoint_dir / "ckpt-4")]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001", "ckpt-99.index", "ckpt-99.data-00000-of-00001"):
        (outside / name).write_bytes(b"someone's data " + name.encode())
    before = _tree(outside)
    # Newest and oldest entries outside, with timestamps, as tf.train.CheckpointManager writes an index: its
    # rotation would delete the oldest, and a failed restore of the newest used to move it into checkpoints/damaged.
    entries = [str(outside / "ckpt-1"), *good, str(outside / "ckpt-99")]
    (checkpoint_dir / "checkpoint").write_text(
        f'model_checkpoint_path: "{entries[-1]}"\n'
        + "".join(f'all_model_checkpoint_paths: "{entry}"\n' for entry in entries)
        + "".join(f"all_model_checkpoint_timestamps: {1000.0 + i}\n" for i in range(len(entries)))
        + "last_preserved_timestamp: 1.0\n")

    result = run_script("train.py", *_flags(data_dir, model_dir, "--epochs=2"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert _tree(outside) == before
    assert not os.path.exists(checkpoint_dir / "damaged")
    index = tf.train.get_checkpoint_state(str(checkpoint_dir))
    assert list(index.all_model_checkpoint_paths) == [str(checkpoint_dir / "ckpt-6"), str(checkpoint_dir / "ckpt-8")]
    assert loading.latest_checkpoint(str(model_dir)) == "ckpt-8"


def test_a_diverging_learning_rate_is_one_line_and_exit_code_1_keeping_the_last_good_checkpoint(tmp_path, data_dir):
    model_dir = tmp_path / "run"
    result = run_script("train.py", *_flags(data_dir, model_dir, "--epochs=1", "--learning_rate=1e6",
                                            "--checkpoint_every_steps=1"))
    _assert_one_line_exit(result, 1, "train.py: error: refusing to checkpoint non-finite weights at step ")
    line = last_error_line(result)
    assert "(training diverged: a smaller learning rate or gradient clipping may help)" in line
    kept = line.rsplit("the last good checkpoint ", 1)[1].removesuffix(" is kept")
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")) == kept


def test_a_run_refused_for_bad_data_leaves_no_new_model_dir_behind(tmp_path, data_dir):
    bad_data = tmp_path / "bad_idx"
    bad_data.mkdir()
    for name in os.listdir(data_dir):
        (bad_data / name).write_bytes(open(os.path.join(data_dir, name), "rb").read())
    (bad_data / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    model_dir = tmp_path / "runs" / "new" / "a"
    result = run_script("train.py", *_flags(bad_data, model_dir, "--epochs=1"))
    _assert_one_line_exit(result, 1, "train.py: error: ")
    assert "train-labels-idx1-ubyte.gz" in last_error_line(result)
    assert os.listdir(tmp_path) == ["bad_idx"]  # neither runs/ nor runs/new/ nor runs/new/a (an existing folder
    # would be kept: tests/train/test_runlock.py)
