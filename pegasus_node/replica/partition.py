"""One hosted partition replica: its storage engine and its write pipeline.

Writes are batched and group-committed: up to a few mutations are being made durable at once (see
log_writer.py); while that pipeline is full, new client writes queue, and when a slot frees, everything queued
(up to a cap) becomes the next mutation. A write is acknowledged only after its mutation is durable and
applied, so an acknowledged write survives ``kill -9``. A failed write or fsync puts the replica into ERROR:
it refuses writes from then on (the log's state is unknown), keeps serving reads, and comes back after the
node restarts and recovers.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet import defer, threads
from twisted.logger import Logger

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.replica.log_writer import PipelinedLogWriter
from pegasus_node.storage.engine import StorageEngine
from pegasus_node.storage.mutation import Mutation

log = Logger(namespace="pegasus.replica")

MAX_OPS_PER_MUTATION = 256
MAX_BYTES_PER_MUTATION = 4 * 1024 * 1024

OPENING, PRIMARY, INACTIVE, ERROR = "OPENING", "PRIMARY", "INACTIVE", "ERROR"


@dataclass
class PendingWrite:
    op: dict
    size: int
    deferred: defer.Deferred = field(default_factory=defer.Deferred)


def replica_dir(data_dir: str | Path, app_id: int, pidx: int) -> Path:
    return Path(data_dir) / "replica" / f"{app_id}.{pidx}"


def remove_replica_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def op_size(op: dict) -> int:
    return sum(len(v) for v in op.values() if isinstance(v, bytes)) + 32


class PartitionReplica:
    def __init__(self, gpid: tuple[int, int], directory: Path, *, fsync: bool, segment_max_bytes: int,
                 cluster_id: int, fail_points: FailPointRegistry, pipeline_depth: int = 1) -> None:
        self.gpid = gpid
        self.directory = directory
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self.cluster_id = cluster_id
        self.fail_points = fail_points
        self.pipeline_depth = pipeline_depth
        self.status = OPENING
        self.ballot = 0
        self.app_name = ""
        self.partition_count = 0
        self.engine: StorageEngine | None = None
        self.error_message = ""
        self._queue: list[PendingWrite] = []
        self._queued_bytes = 0
        self.log_writer: PipelinedLogWriter | None = None
        self._next_decree = 1
        self._checkpointing = False
        self._last_timestamp_us = 0
        self.checkpoint_decree = 0
        self.checkpointed_at = time.monotonic()

    # ----- lifecycle -----

    @defer.inlineCallbacks
    def open(self):
        """Recover the engine in a worker thread; a sole replica's durable log is all committed."""
        try:
            self.engine = yield threads.deferToThread(self._open_and_replay)
        except PegasusError as exc:
            self.status = ERROR
            self.error_message = exc.message
            log.error("replica {gpid} cannot open: {msg}", gpid=self.gpid, msg=exc.message)
            return
        report = self.engine.recovery
        self.checkpoint_decree = report.checkpoint_decree
        if report.torn_tail is not None:
            log.warn("replica {gpid}: cut a torn WAL tail: {tail}", gpid=self.gpid, tail=report.torn_tail)
        for warning in report.fallbacks:
            log.warn("replica {gpid}: {warning}", gpid=self.gpid, warning=warning)
        log.info("replica {gpid} opened at decree {d} (checkpoint {c}, replayed {n})", gpid=self.gpid,
                 d=self.engine.last_applied_decree, c=report.checkpoint_decree, n=len(self.engine.recovered_log))
        self.log_writer = PipelinedLogWriter(self.engine.wal, self.fail_points, self.pipeline_depth)
        self._next_decree = self.engine.last_applied_decree + 1
        if self.status == OPENING:
            self.status = INACTIVE

    def _open_and_replay(self) -> StorageEngine:
        engine = StorageEngine.open(self.directory, fsync=self.fsync, segment_max_bytes=self.segment_max_bytes,
                                    cluster_id=self.cluster_id)
        for mutation in engine.recovered_log:
            engine.apply(mutation)
            self._last_timestamp_us = max(self._last_timestamp_us, mutation.timestamp_us)
        return engine

    def close(self) -> None:
        self.status = INACTIVE
        self._fail_queue(PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} is closing"))
        if self.engine is not None and not self._writing and not self._checkpointing:
            self.engine.close()
            self.engine = None

    @property
    def _writing(self) -> bool:
        return self.log_writer is not None and self.log_writer.in_flight > 0

    @property
    def last_committed_decree(self) -> int:
        return self.engine.last_applied_decree if self.engine is not None else 0

    def report(self) -> dict:
        return {
            "gpid": list(self.gpid),
            "ballot": self.ballot,
            "status": self.status,
            "last_committed_decree": self.last_committed_decree,
            "last_durable_decree": self.last_committed_decree,
        }

    # ----- writes -----

    def submit(self, op: dict) -> defer.Deferred:
        if self.status != PRIMARY or self.engine is None:
            raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} is {self.status}, not PRIMARY")
        pending = PendingWrite(op, op_size(op))
        self._queue.append(pending)
        self._queued_bytes += pending.size
        self._flush()
        return pending.deferred

    def _next_timestamp_us(self) -> int:
        self._last_timestamp_us = max(time.time_ns() // 1000, self._last_timestamp_us + 1)
        return self._last_timestamp_us

    def _take_mutation_ops(self) -> list[PendingWrite]:
        taken, size = [], 0
        while self._queue and len(taken) < MAX_OPS_PER_MUTATION and (not taken or size < MAX_BYTES_PER_MUTATION):
            pending = self._queue.pop(0)
            taken.append(pending)
            size += pending.size
        self._queued_bytes -= size
        return taken

    def _flush(self) -> None:
        while self._queue and self.engine is not None and self.log_writer.has_room():
            taken = self._take_mutation_ops()
            decree = self._next_decree
            self._next_decree += 1
            mutation = Mutation(self.ballot, decree, decree - 1, self._next_timestamp_us(),
                                tuple(p.op for p in taken))
            d = self.log_writer.append(mutation)
            d.addCallbacks(self._on_durable, self._on_write_failed, callbackArgs=(taken,), errbackArgs=(taken,))

    def _on_durable(self, mutation: Mutation, taken: list[PendingWrite]) -> None:
        results = self.engine.apply(mutation)
        for pending, result in zip(taken, results):
            pending.deferred.callback({**result, "decree": mutation.decree})
        if self.status == INACTIVE and not self._writing:
            self.close()
        self._flush()

    def _on_write_failed(self, failure, taken: list[PendingWrite]) -> None:
        message = failure.value.message if isinstance(failure.value, PegasusError) else str(failure.value)
        if self.status != ERROR:
            self.status = ERROR
            self.error_message = message
            log.error("replica {gpid} is in ERROR: {msg}", gpid=self.gpid, msg=message)
        error = PegasusError(ErrorCode.ERR_DISK_IO, f"replica {self.gpid}: {message}; the write was not "
                             "acknowledged (free disk space on the replica server, then restart it)")
        for pending in taken:
            pending.deferred.errback(error)
        self._fail_queue(error)

    def _fail_queue(self, error: PegasusError) -> None:
        queue, self._queue, self._queued_bytes = self._queue, [], 0
        for pending in queue:
            pending.deferred.errback(error)

    # ----- reads -----

    def readable_engine(self) -> StorageEngine:
        if self.status not in (PRIMARY, ERROR) or self.engine is None:
            raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.gpid} is {self.status}, not PRIMARY")
        return self.engine

    # ----- checkpoints -----

    @defer.inlineCallbacks
    def checkpoint(self, force: bool = False):
        """Write a checkpoint at the last applied decree (if anything is new, or ``force``) and GC the WAL."""
        engine = self.engine
        if engine is None or self._checkpointing or self.status not in (PRIMARY, INACTIVE):
            return None
        if not force and engine.last_applied_decree == self.checkpoint_decree:
            return None
        self._checkpointing = True
        try:
            snapshot = engine.checkpoint_snapshot()
            yield threads.deferToThread(engine.write_checkpoint, snapshot)
            self.checkpoint_decree = snapshot.decree
            # Unlinking old segments is cheap; doing it here keeps it serial with the WAL writer thread.
            removed = engine.gc_wal()
            log.info("replica {gpid} checkpointed at decree {d}, removed {n} WAL segments", gpid=self.gpid,
                     d=snapshot.decree, n=len(removed or []))
            return snapshot.decree
        finally:
            self._checkpointing = False
