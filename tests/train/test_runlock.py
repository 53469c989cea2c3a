"""The run lock in a shared directory: no link followed, no foreign file written, no empty folder left behind."""

import os

import pytest

from tfvae.train import runlock


def _victim(tmp_path):
    victim = tmp_path / "elsewhere" / "notes.txt"
    victim.parent.mkdir()
    victim.write_bytes(b"someone else's file\n")
    return victim, victim.read_bytes()


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_that_is_a_symbolic_link_is_refused_and_its_target_left_as_it_is(tmp_path, dangling):
    victim, contents = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    target = tmp_path / "elsewhere" / "missing.txt" if dangling else victim
    (run / "run.lock").symlink_to(target)
    with pytest.raises(runlock.RunLockError, match=f"^{run}/run.lock is a symbolic link; the lock is taken only in a regular "
                                                   "file of this user .*, never through a link, and this one is left "
                                                   "as it is: remove it"):
        runlock.RunLock(str(run / "run.lock")).acquire()
    assert victim.read_bytes() == contents and not (tmp_path / "elsewhere" / "missing.txt").exists()
    assert (run / "run.lock").is_symlink()  # left as it is


def test_a_lock_that_is_not_a_regular_file_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "run.lock").mkdir(parents=True)
    with pytest.raises(runlock.RunLockError, match="run.lock is not openable"):
        runlock.RunLock(str(run / "run.lock")).acquire()
    fifo = tmp_path / "fifo_run"
    fifo.mkdir()
    os.mkfifo(fifo / "run.lock")
    with pytest.raises(runlock.RunLockError, match="run.lock is not a regular file; the lock is taken only"):
        runlock.RunLock(str(fifo / "run.lock")).acquire()


def test_a_lock_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "run.lock"
    path.write_text("")
    owner = path.stat().st_uid
    monkeypatch.setattr(os, "getuid", lambda: owner + 1)  # as seen by another user
    with pytest.raises(runlock.RunLockError, match=f"run.lock is owned by uid {owner}; the lock is taken only in a "
                                                   f"regular file of this user \\(uid {owner + 1}\\)"):
        runlock.RunLock(str(path)).acquire()
    assert path.read_text() == ""


def test_folders_the_lock_created_are_removed_if_the_run_left_them_empty(tmp_path):
    model_dir = tmp_path / "new" / "deeper" / "run"
    lock = runlock.RunLock(str(model_dir / "run.lock"))
    lock.acquire()
    assert (model_dir / "run.lock").exists()
    lock.release()  # a run refused before it wrote anything
    assert not (tmp_path / "new").exists()


def test_folders_that_existed_or_hold_files_are_never_removed(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    with runlock.RunLock(str(existing / "run.lock")):
        pass
    assert existing.is_dir() and os.listdir(existing) == []

    model_dir = tmp_path / "parent" / "run"
    with runlock.RunLock(str(model_dir / "run.lock")):
        (model_dir / "config.json").write_text("{}")  # the run wrote something
    assert (model_dir / "config.json").read_text() == "{}"

    sibling = tmp_path / "shared" / "run"
    with runlock.RunLock(str(sibling / "run.lock")):
        (tmp_path / "shared" / "other_run").mkdir()  # another process's folder next to it
    assert not sibling.exists() and (tmp_path / "shared" / "other_run").is_dir()


def test_a_refused_lock_removes_the_folders_it_created(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock.RunLock, "_open", lambda self: (_ for _ in ()).throw(runlock.RunLockError("no")))
    with pytest.raises(runlock.RunLockError):
        runlock.RunLock(str(tmp_path / "a" / "run" / "run.lock")).acquire()
    assert os.listdir(tmp_path) == []
