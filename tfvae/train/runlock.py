"""An exclusive lock on a run directory: one training process per ``model_dir``.

The lock is ``<model_dir>/run.lock``, held with ``fcntl.flock`` for the life
of the training process and holding its owner as JSON (pid, host, start
time). The kernel releases a flock when its process dies, however it dies,
so taking it is atomic and a crashed trainer never blocks the next one:

  * held by a live process -> ``RunLockError`` naming the holder;
  * left by a process that is gone (same host: its flock is free) -> taken
    over, with a warning naming the previous holder;
  * written by a process on another host whose flock is not visible here
    (e.g. some network file systems) -> ``RunLockError``: tfvae cannot tell
    whether it still runs, so the message says which file to delete if not.

Only the training chief takes the lock; evaluation, sampling and export read
the newest complete checkpoint and need none.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket

from absl import logging

from tfvae.train.rundir import RunDirectoryError

__all__ = ["RunLock", "RunLockError"]


class RunLockError(RunDirectoryError):
    """The run directory is in use by another training process."""


class RunLock:
    """The lock file ``path`` of a run directory; use as a context manager or acquire()/release().

    Example:
      with RunLock(RunDirectory("runs/a").lock_path):
          ...  # train; a second trainer on runs/a gets RunLockError
    """

    def __init__(self, path: str):
        self.path = path
        self.directory = os.path.dirname(path) or "."
        self._fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        for _ in range(10):  # the file can be released and removed between open and flock: take the new one
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLockError(f"{self.directory} is in use by another training process ({_describe(holder)}); "
                                   "wait for it to finish or train into another model_dir") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)
        else:
            raise RunLockError(f"{self.path}: could not take the lock (the file kept changing)")
        previous = _read_holder(fd)
        if previous and previous.get("host") != socket.gethostname():
            os.close(fd)
            raise RunLockError(
                f"{self.directory} is locked by a training process on another host ({_describe(previous)}); "
                f"if it is no longer running, delete {self.path}")
        if previous:
            logging.warning("%s: taking over the lock of a training process that is gone (%s)", self.path,
                            _describe(previous))
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.path)  # before unlocking, so no one takes a lock on a file about to vanish
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_holder(fd: int) -> dict | None:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode() or "null")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) or holder is None else {}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"
