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

The lock file is opened with ``O_NOFOLLOW``: a ``run.lock`` that is a
symbolic link (planted in a shared directory such as /tmp), or anything but
a regular file owned by this user, is refused with ``RunLockError`` and
left as it is, so the lock never writes into another file. A model_dir the
lock had to create is removed again on release if the run left it empty
(a run refused for bad data writes nothing); nothing else is ever removed.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import stat

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
        self._created: list[str] = []  # folders acquire() made, deepest first

    def acquire(self) -> None:
        self._created = _missing_folders(self.directory)
        os.makedirs(self.directory, exist_ok=True)
        try:
            self._lock()
        except BaseException:
            self._remove_created_if_empty()
            raise

    def _lock(self) -> None:
        for _ in range(10):  # the file can be released and removed between open and flock: take the new one
            fd = self._open()
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

    def _open(self) -> int:
        """The lock file, opened (or created) without following a link; a regular file owned by this user."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
        except OSError as e:
            self._refuse("a symbolic link" if os.path.islink(self.path) else f"not openable ({e.strerror})")
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            os.close(fd)
            self._refuse("not a regular file" if not stat.S_ISREG(info.st_mode) else f"owned by uid {info.st_uid}")
        return fd

    def _refuse(self, what: str):
        raise RunLockError(f"{self.path} is {what}; the lock is taken only in a regular file of this user (uid "
                           f"{os.getuid()}), never through a link, and this one is left as it is: remove it (or train "
                           "into another model_dir)") from None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.remove(self.path)  # before unlocking, so no one takes a lock on a file about to vanish
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None
        self._remove_created_if_empty()

    def _remove_created_if_empty(self) -> None:
        """Removes the folders acquire() created, deepest first, while they are empty (rmdir removes no content)."""
        for folder in self._created:
            try:
                os.rmdir(folder)
            except OSError:
                break
        self._created = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def _missing_folders(directory: str) -> list[str]:
    """``directory`` and those of its parents that do not exist yet, deepest first."""
    missing, folder = [], os.path.abspath(directory)
    while not os.path.lexists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def _same_file(fd: int, path: str) -> bool:
    try:
        opened, named = os.fstat(fd), os.lstat(path)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


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
