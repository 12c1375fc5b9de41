"""Makes mutations durable with group commit: one WAL write and one fsync for everything that queued.

Mutations appended while a batch is being written and fsynced wait; when a slot frees, all of them go in
the next batch, with one fsync. ``depth`` batches may be in flight at once: their writes stay in order (each
waits its turn) while their fsyncs overlap. Durability is reported per batch and strictly in order, as the
tag of the batch's last mutation, so "tag t is durable" means every mutation appended up to t is durable.
That is exactly the replication core's ``on_log_durable(seq)``.

After a failed write or fsync the writer is failed for good: what reached the disk is unknown, so nothing
more may be acknowledged until the replica is reopened (its WAL recovery then decides).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer, threads

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.wal import WriteAheadLog

PENDING, DURABLE, FAILED = "pending", "durable", "failed"


@dataclass
class _Batch:
    last_tag: Any
    state: str = PENDING


@dataclass
class PipelinedLogWriter:
    wal: WriteAheadLog
    fail_points: FailPointRegistry
    on_durable: Callable[[Any], None]  # called with the last tag of each durable batch, in order
    on_failed: Callable[[PegasusError], None]  # called once, when the first write or fsync fails
    depth: int = 1
    failure: PegasusError | None = None
    _waiting_tag: Any = None
    _waiting: int = 0
    _batches: collections.deque = field(default_factory=collections.deque)
    _write_turn: defer.DeferredLock = field(default_factory=defer.DeferredLock)

    @property
    def busy(self) -> bool:
        return bool(self._batches) or self._waiting > 0

    def append(self, mutation: Mutation, tag: Any) -> None:
        if self.failure is not None:
            return
        self.wal.append(mutation)
        self._waiting += 1
        self._waiting_tag = tag
        self._start_batch()

    def _start_batch(self) -> None:
        if self.failure is not None or not self._waiting or len(self._batches) >= self.depth:
            return
        wal_batch = self.wal.take_batch()
        batch = _Batch(self._waiting_tag)
        self._waiting = 0
        self._batches.append(batch)
        d = self._write_turn.acquire()
        d.addCallback(lambda _: threads.deferToThread(self._write_then_sync, wal_batch))
        d.addCallbacks(self._batch_durable, self._batch_failed, callbackArgs=(batch,), errbackArgs=(batch,))

    def _write_then_sync(self, wal_batch) -> None:
        """In a worker thread: one thread hop per batch. The write turn passes to the next batch as soon as
        this one's bytes are written, so its fsync overlaps the next batch's write and fsync."""
        from twisted.internet import reactor

        try:
            segment = self.wal.write_batch(wal_batch, sync=False)
        finally:
            reactor.callFromThread(self._write_turn.release)
        self.fail_points.before_wal_write()
        self.wal.sync(segment)

    def _batch_durable(self, _, batch: _Batch) -> None:
        if batch.state == PENDING:
            batch.state = DURABLE
        while self._batches and self._batches[0].state != PENDING:
            done = self._batches.popleft()
            if done.state == DURABLE and self.failure is None:
                self.on_durable(done.last_tag)
        self._start_batch()

    def _batch_failed(self, failure, batch: _Batch) -> None:
        exc = failure.value
        message = exc.message if isinstance(exc, PegasusError) else repr(exc)
        batch.state = FAILED
        if self.failure is None:
            self.failure = PegasusError(ErrorCode.ERR_DISK_IO, f"WAL write failed: {message}")
            self.on_failed(self.failure)
