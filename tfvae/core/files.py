"""Writing files without ever leaving a half-written or clobbered one, and without following planted links.

The one rule for every file tfvae writes: the contents go to a new file with
a unique name in the target's own folder, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (``tempfile.mkstemp``), so two writers never
share a temporary and a link planted under a predictable name is never
followed; the finished file is flushed to disk, renamed over the target
(``rename`` replaces a link at the target, it does not write through it) and
the folder is flushed so that the rename survives a power loss.

  write_atomic(path, contents)            bytes or text
  with replacing(path) as temporary: ...  a writer that needs a path (tf.io.TFRecordWriter)
  new_temporary(path) / commit(temporary, path) / discard(temporary)
                                          several files renamed together (records.write_splits)
"""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["commit", "discard", "fsync_directory", "new_temporary", "replacing", "write_atomic"]

_MODE = 0o644  # mkstemp's 0600 would hide exports and data from a server running as another user


def new_temporary(path: str) -> str:
    """Creates an empty file with a unique name next to ``path`` (``.<name>.<random>.tmp``) and returns its name.

    The file is created with O_EXCL and O_NOFOLLOW: it is always a new file
    of this process, never an existing file or a link. The folder is made if
    missing.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    return temporary


def commit(temporary: str, path: str) -> None:
    """Flushes ``temporary`` to disk, renames it to ``path`` (replacing any file or link there) and flushes the
    folder."""
    fd = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
        os.fchmod(fd, _MODE)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_directory(os.path.dirname(os.path.abspath(path)))


def discard(temporary: str) -> None:
    """Removes a temporary that will not be committed (nothing if it is gone already)."""
    try:
        os.remove(temporary)
    except FileNotFoundError:
        pass


def fsync_directory(folder: str) -> None:
    """Flushes ``folder``'s entries (a rename in it) to disk."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path: str):
    """Yields a new temporary name next to ``path``; committed to ``path`` if the block ends normally, removed if
    it raises.

    Example:
      with files.replacing("out/train.tfrecord") as temporary:
          with tf.io.TFRecordWriter(temporary) as writer:
              writer.write(record)
    """
    temporary = new_temporary(path)
    try:
        yield temporary
        commit(temporary, path)
    except BaseException:
        discard(temporary)
        raise


def write_atomic(path: str, contents: bytes | str) -> None:
    """Writes ``contents`` (text is UTF-8 encoded) to ``path`` through a unique temporary (see the module
    docstring)."""
    data = contents.encode() if isinstance(contents, str) else contents
    with replacing(path) as temporary:
        fd = os.open(temporary, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
