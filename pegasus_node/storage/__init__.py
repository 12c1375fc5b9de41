"""The storage engine of one replica: memtable, write-ahead log, checkpoints and recovery.

Synchronous, blocking file I/O and no Twisted: the Twisted edge runs the blocking parts (``write_batch``,
``write_checkpoint``) in a thread, and the deterministic simulator may call everything directly.
"""

from .checkpoint import CheckpointDamaged, CheckpointSnapshot
from .engine import RecoveryReport, StorageEngine
from .errors import ApplyOrderError, StorageError, WalCorruptionError
from .memtable import Memtable, Record
from .mutation import Mutation
from .operations import (
    CheckType,
    cas_op,
    del_op,
    expire_ts_from_ttl,
    incr_expire_from_ttl,
    incr_op,
    is_error,
    multi_del_op,
    multi_put_op,
    put_op,
)
from .wal import TornTail, WalBatch, WriteAheadLog, resolve_log

__all__ = [
    "ApplyOrderError",
    "CheckType",
    "CheckpointDamaged",
    "CheckpointSnapshot",
    "Memtable",
    "Mutation",
    "Record",
    "RecoveryReport",
    "StorageEngine",
    "StorageError",
    "TornTail",
    "WalBatch",
    "WalCorruptionError",
    "WriteAheadLog",
    "cas_op",
    "del_op",
    "expire_ts_from_ttl",
    "incr_expire_from_ttl",
    "incr_op",
    "is_error",
    "multi_del_op",
    "multi_put_op",
    "put_op",
    "resolve_log",
]
