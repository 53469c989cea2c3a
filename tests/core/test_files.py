"""Atomic writes: unique temporaries in the target's folder, no planted link followed, the folder flushed."""

import os
import threading

import numpy as np
import pytest
from builders import png

from tfvae.core import files
from tfvae.data import records


def _outside(tmp_path, contents=b"not yours\n"):
    """A file outside the folder being written, and its bytes."""
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_bytes(contents)
    return victim, contents


def test_write_atomic_replaces_a_link_at_the_target_instead_of_writing_through_it(tmp_path):
    victim, contents = _outside(tmp_path)
    target = tmp_path / "run" / "metrics.json"
    target.parent.mkdir()
    target.symlink_to(victim)
    files.write_atomic(str(target), "{}")
    assert victim.read_bytes() == contents
    assert not target.is_symlink() and target.read_text() == "{}"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(os.listdir(target.parent)) == ["metrics.json"]  # no temporary left


def test_a_link_planted_at_the_old_fixed_temporary_name_is_not_followed(tmp_path):
    victim, contents = _outside(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".metrics.json.tmp").symlink_to(victim)  # the name a fixed-temporary writer would use
    files.write_atomic(str(folder / "metrics.json"), "{}")
    assert victim.read_bytes() == contents and (folder / "metrics.json").read_text() == "{}"


def test_temporaries_are_new_unique_files_in_the_target_folder(tmp_path):
    target = str(tmp_path / "a" / "b.txt")
    first, second = files.new_temporary(target), files.new_temporary(target)
    assert first != second
    for name in (first, second):
        assert os.path.dirname(name) == os.path.dirname(target) and os.path.basename(name).startswith(".b.txt.")
        assert os.path.getsize(name) == 0 and not os.path.islink(name)
    files.discard(first)
    files.discard(first)  # twice: nothing left to remove is not an error
    assert not os.path.exists(first)


def test_concurrent_writers_never_mix_their_contents(tmp_path):
    target = str(tmp_path / "shared.bin")
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    errors = []

    def write(payload):
        try:
            for _ in range(5):
                files.write_atomic(target, payload)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with open(target, "rb") as f:
        assert f.read() in payloads  # one writer's whole file, never a mix or a truncation
    assert os.listdir(tmp_path) == ["shared.bin"]


def test_commit_flushes_the_file_and_then_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    files.write_atomic(str(tmp_path / "x.json"), "1")
    assert len(synced) == 2 and ".x.json." in synced[0] and synced[1] == str(tmp_path)


def test_a_failed_write_leaves_no_temporary_and_the_old_file(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with files.replacing(str(target)) as temporary:
            with open(temporary, "w") as f:
                f.write("half")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]


def test_record_shards_are_written_through_unique_temporaries_not_a_planted_link(tmp_path):
    victim, contents = _outside(tmp_path)
    output = tmp_path / "shards"
    output.mkdir()
    (output / ".train-00000-of-00001.tfrecord.tmp").symlink_to(victim)  # the fixed name records.py used
    image = png(np.zeros((4, 4, 1), np.uint8))
    paths = records.write_splits(str(output), {"train": (iter([(image, 0)] * 3), 3, 1)})
    assert victim.read_bytes() == contents
    assert records.count_records(paths["train"][0])[0] == 3
    assert sorted(os.listdir(output)) == [".train-00000-of-00001.tfrecord.tmp", "train-00000-of-00001.tfrecord"]
