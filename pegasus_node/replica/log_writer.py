"""Group commit for every replica on a server: one fsync per cycle for all of them, on one log thread.

Each hosted replica gets a ``ReplicaLog`` (``ServerLogWriter.attach``). Its ``append`` only queues the
mutation in the replica's WAL. At the end of the reactor turn the writer hands every replica's queued batch
to the server's log thread. The thread drains whatever has been handed over since its last cycle, writes
each batch to its replica's WAL without an fsync, then the redo records of those writes to the server's
shared log (storage/shared_log.py), with one fsync. Back on the reactor each replica hears
``on_durable(tag)`` with the tag of its last mutation in the cycle, so "tag t is durable" means every
mutation it appended up to t is durable (the replication core's ``on_log_durable(seq)``).

A dedicated thread, not the reactor's pool: while it fsyncs, the next turns' batches pile up for its next
cycle, instead of each cycle waiting for the reactor to start it (which cost more than the fsync itself).

Without fsync (``--no-fsync``) there is no shared log, and a cycle only writes the WALs.

After a failed write a replica's log is failed for good: what reached its disk is unknown, so nothing more
may be acknowledged until it is reopened (its WAL recovery then decides). A failed shared-log append fails
the writer and every replica on the server: a later record must never become durable after a lost one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from pegasus_node.base.turn import call_from_thread, call_soon
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.fail_points import FailPointRegistry
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.shared_log import SharedLog, redo_entry
from pegasus_node.storage.wal import WalBatch, WriteAheadLog

log = Logger(namespace="pegasus.log_writer")


class ReplicaLog:
    """One replica's way into the server's group commit."""

    def __init__(self, writer: "ServerLogWriter", gpid: tuple[int, int], wal: WriteAheadLog,
                 on_durable: Callable[[Any], None], on_failed: Callable[[PegasusError], None]) -> None:
        self.writer = writer
        self.gpid = gpid
        self.wal = wal
        self.on_durable = on_durable  # called with the last tag of each durable batch, in order
        self.on_failed = on_failed  # called once, when a write of this replica's log fails
        self.failure: PegasusError | None = None
        self.in_flight = 0  # batches handed to the log thread and not yet reported back
        self._tag: Any = None
        self._queued = 0

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or self._queued > 0

    def append(self, mutation: Mutation, tag: Any) -> None:
        if self.failure is not None:
            return
        self.wal.append(mutation)
        self._queued += 1
        self._tag = tag
        self.writer.queued(self)

    def take(self) -> tuple[WalBatch | None, Any]:
        batch, tag = self.wal.take_batch(), self._tag
        self._queued = 0
        return batch, tag

    def fail(self, error: PegasusError) -> None:
        if self.failure is None:
            self.failure = error
            self.on_failed(error)

    def detach(self) -> None:
        """The replica closed its engine (and with it the WAL, which fsynced itself)."""
        self.writer.detach(self)


class ServerLogWriter:
    def __init__(self, shared_log: SharedLog | None, fail_points: FailPointRegistry, reactor) -> None:
        self.shared_log = shared_log
        self.fail_points = fail_points
        self.reactor = reactor
        self.failure: PegasusError | None = None  # set on the reactor thread
        self.cycles = 0
        self.batches = 0  # replica batches written, several per cycle
        self.mutations = 0
        self._logs: set[ReplicaLog] = set()
        self._open_wals: tuple[WriteAheadLog, ...] = ()  # of self._logs, for the log thread's GC; rebuilt on change
        self._queued: dict[ReplicaLog, None] = {}  # insertion-ordered set
        self._hand_over_scheduled = False
        self._gc_blocked = ""
        self._handed: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_failure: PegasusError | None = None  # set on the log thread; it then writes nothing more

    def attach(self, gpid: tuple[int, int], wal: WriteAheadLog, on_durable: Callable[[Any], None],
               on_failed: Callable[[PegasusError], None]) -> ReplicaLog:
        replica_log = ReplicaLog(self, gpid, wal, on_durable, on_failed)
        self._logs.add(replica_log)
        self._open_wals_changed()
        return replica_log

    def _open_wals_changed(self) -> None:
        self._open_wals = tuple(attached.wal for attached in self._logs)

    def stats(self) -> dict:
        return {"cycles": self.cycles, "batches": self.batches, "mutations": self.mutations,
                "shared_log": self.shared_log is not None, "failed": self.failure.message if self.failure else "",
                "gc_blocked": self._gc_blocked}

    def detach(self, replica_log: ReplicaLog) -> None:
        self._logs.discard(replica_log)
        self._open_wals_changed()
        self._queued.pop(replica_log, None)
        if replica_log.wal.close_sync_failed and not self._gc_blocked:
            # Its last writes are durable only in the shared log now, so the shared log must keep them.
            self._gc_blocked = f"the WAL of replica {replica_log.gpid} could not be fsynced when it closed"
            log.error("shared log GC stopped: {why}; restart the replica server to repair it", why=self._gc_blocked)

    def stop(self) -> None:
        """The log thread finishes what it was handed (one cycle at most), then exits."""
        if self._thread is not None:
            self._handed.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    # ----- the reactor's side -----

    def queued(self, replica_log: ReplicaLog) -> None:
        if self.failure is not None:
            replica_log.fail(self.failure)
            return
        self._queued[replica_log] = None
        if not self._hand_over_scheduled:
            # Wait for the end of the reactor turn, so that everything appended in it goes in one cycle.
            self._hand_over_scheduled = True
            call_soon(self.reactor, self._hand_over)

    def _hand_over(self) -> None:
        self._hand_over_scheduled = False
        if self.failure is not None:
            return
        work = []
        for replica_log in self._queued:
            batch, tag = replica_log.take()
            if batch is not None:
                replica_log.in_flight += 1
                work.append((replica_log, batch, tag))
        self._queued.clear()
        if not work:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pegasus-log-writer", daemon=True)
            self._thread.start()
        self._handed.put((work, self._open_wals))

    def _cycle_done(self, outcomes: list, cycle_error: PegasusError | None) -> None:
        self.cycles += 1
        self.batches += len(outcomes)
        if cycle_error is not None and self.failure is None:
            self.failure = PegasusError(ErrorCode.ERR_DISK_IO, f"WAL write failed: {cycle_error.message}")
        for replica_log, batch, tag, error in outcomes:
            replica_log.in_flight -= 1
            self.mutations += len(batch.mutations)
            if error is not None:
                replica_log.fail(PegasusError(ErrorCode.ERR_DISK_IO, f"WAL write failed: {error.message}"))
            elif replica_log.failure is None:
                replica_log.on_durable(tag)
        if self.failure is not None:
            for replica_log in list(self._logs):
                replica_log.fail(self.failure)

    # ----- the log thread -----

    def _run(self) -> None:
        stopping = False
        while not stopping:
            handed = [self._handed.get()]
            while True:  # everything handed over while the last cycle ran goes in this one
                try:
                    handed.append(self._handed.get_nowait())
                except queue.Empty:
                    break
            if None in handed:
                stopping = True
                handed = handed[:handed.index(None)]
            if not handed:
                continue
            work = [item for items, _ in handed for item in items]
            try:
                outcomes, cycle_error = self._write_cycle(work, handed[-1][1])
            except Exception as exc:  # a bug, not a disk error: fail the writes rather than leave them hanging
                log.failure("log writer cycle crashed")
                cycle_error = PegasusError(ErrorCode.ERR_DISK_IO, f"log writer crashed: {exc!r}")
                self._thread_failure = cycle_error
                outcomes = [(replica_log, batch, tag, cycle_error) for replica_log, batch, tag in work]
            call_from_thread(self.reactor, self._cycle_done, outcomes, cycle_error)

    def _write_cycle(self, work: list, open_wals: tuple[WriteAheadLog, ...]) -> tuple[list, PegasusError | None]:
        """Returns (replica log, batch, tag, error or None) for each batch, and the cycle's own error (the
        shared log's append failed: the whole writer fails)."""
        if self._thread_failure is not None:
            return [(replica_log, batch, tag, self._thread_failure) for replica_log, batch, tag in work], None
        outcomes, redo, written = [], [], []
        for replica_log, batch, tag in work:
            try:
                segment = replica_log.wal.write_batch(batch, sync=False)
            except PegasusError as exc:
                outcomes.append((replica_log, batch, tag, exc))
                continue
            if self.shared_log is not None:
                offset = segment.size - len(batch.data)  # only this thread writes WALs
                redo.append(redo_entry(replica_log.gpid, replica_log.wal.incarnation, segment.path.name, offset,
                                       batch.data))
            written.append((replica_log, batch, tag))
        cycle_error = None
        try:
            self.fail_points.before_wal_write()
            if self.shared_log is not None and redo:
                self.shared_log.append(redo)
        except PegasusError as exc:
            cycle_error = exc
            if self.shared_log is not None:
                self._thread_failure = exc
        outcomes.extend((replica_log, batch, tag, cycle_error) for replica_log, batch, tag in written)
        if cycle_error is None:
            self._collect_garbage(open_wals)
        return outcomes, (cycle_error if self.shared_log is not None else None)

    def _collect_garbage(self, open_wals: tuple[WriteAheadLog, ...]) -> None:
        """Drop shared-log segments once every WAL holds their writes durably on its own."""
        shared = self.shared_log
        if shared is None or shared.active_bytes < shared.rotate_bytes or self._gc_blocked:
            return
        closed = shared.rotate()
        try:
            for wal in open_wals:
                wal.sync_all()
            shared.remove_upto(closed)
        except (PegasusError, OSError) as exc:
            # Keeping the old segments is always safe; the next rotation tries again.
            log.warn("shared log GC failed, old segments kept: {err}", err=exc)
