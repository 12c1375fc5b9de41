"""Errors raised by the storage engine.

Every one is a ``PegasusError`` so that the RPC layer can turn it into a typed reply. Messages name the file
and say what the operator should do next, because these errors usually reach a person through a log.
"""

from __future__ import annotations

from pathlib import Path

from pegasus_node.errors import ErrorCode, PegasusError

RESTORE_ADVICE = (
    "restore this replica from a checkpoint or from another replica "
    "(for example: move the replica directory aside and let the replica learn from the primary again)"
)


class StorageError(PegasusError):
    """A disk write, fsync or read failed, or the data on disk cannot be trusted."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_DISK_IO, message)


class WalCorruptionError(StorageError):
    """A bad record in the middle of the write-ahead log: recovery refuses to skip it."""

    def __init__(self, segment: Path, offset: int, reason: str) -> None:
        self.segment = segment
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"corrupt WAL record in {segment} at byte offset {offset} ({reason}), and it is not a torn tail "
            f"(valid records follow it, or it is not in the last segment), so it cannot be cut off without "
            f"losing acknowledged writes; {RESTORE_ADVICE}"
        )


class ApplyOrderError(PegasusError):
    """``apply`` was given a decree that does not follow the last applied one."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERR_INCONSISTENT_STATE, message)
