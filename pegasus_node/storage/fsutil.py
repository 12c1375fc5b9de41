"""Small durable-filesystem helpers shared by the WAL, the shared log and the checkpoints."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import StorageError


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (files created, renamed or removed in it) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (pwrite may write less than asked), one system call in the usual case."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def lock_directory(directory: Path, holder: str) -> int:
    """Hold ``directory/LOCK`` (until the returned fd is closed), so that two processes never share it."""
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StorageError(f"the storage directory {directory} is in use by another {holder} (its LOCK file "
                           "is held): stop that process, or give this one another data directory") from None
    return fd
