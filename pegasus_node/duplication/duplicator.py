"""A partition primary's duplicator: ships its committed writes, after the confirmed decree, to the remote cluster.

A full duplication starts with ``confirmed`` -1: the duplicator first ships a snapshot of the replica's
records, each with its stored timetag, then the log after the snapshot's decree.

It loads the committed mutations after ``confirmed`` (from the core's log in memory, else from the WAL on a
worker thread), turns their writes into shippable ops, each carrying the source timetag (the mutation's
timestamp and this cluster's id), and sends them through the normal client to the same table on the remote
cluster, which routes each by its hash key (partition counts may differ). Once a batch is acknowledged,
``confirmed`` moves to its last decree; the replica server reports it to the meta server in its beacons.

Order: the ops bound for one remote partition go in chunks (one RPC each, applied in order there), one chunk
after the other; different partitions at once. So the ops of a hash key arrive in decree order. The remote
side applies a shipped op only over an older timetag, so a batch shipped twice (after a failover, or a retry)
changes nothing, and a put never lands after a later delete of the same key.

Not shipped: writes that arrived here by duplication (they carry a timetag: shipping them back would loop
between two clusters), and incr and check_and_set, which are not idempotent (counted as
``non_idempotent_skipped``; Pegasus does the same).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer, task, threads
from twisted.logger import Logger

from pegasus_node.base.keys import decode_key, partition_index
from pegasus_node.base.timetag import make_timetag
from pegasus_node.duplication.entry import FAIL_FAST, FAIL_SKIP, SHIPPABLE_OPS, SKIP_AFTER_FAILURES
from pegasus_node.errors import ErrorCode, PegasusError

log = Logger(namespace="pegasus.duplication")

MAX_BATCH_MUTATIONS = 256
MAX_SHIPMENT_OPS = 512
MAX_SHIPMENT_BYTES = 1 << 20
IDLE_POLL_SECONDS = 0.05
RETRY_SECONDS = 1.0


def shippable_ops(mutation: Any, cluster_id: int) -> tuple[list[dict], int]:
    """The ops of a committed mutation to ship, with the source timetag; and how many were left out as not
    idempotent. Ops that came here by duplication are left out without counting."""
    timetag = make_timetag(mutation.timestamp_us, cluster_id)
    ops, non_idempotent = [], 0
    for op in mutation.writes:
        if "timetag" in op:
            continue
        if op.get("op") not in SHIPPABLE_OPS:
            non_idempotent += 1
            continue
        ops.append({**op, "timetag": timetag})
    return ops, non_idempotent


def _committed_from_wal(wal: Any, start: int, end: int) -> list:
    """On a worker thread: decrees ``start..end`` (at most a batch) from the WAL, or StorageError."""
    from pegasus_node.storage.errors import StorageError

    found = []
    for mutation in wal.read_from(start):
        if mutation.decree > end or len(found) >= MAX_BATCH_MUTATIONS:
            break
        found.append(mutation)
    if not found or found[0].decree != start:
        raise StorageError(f"decree {start} is no longer in the WAL (garbage-collected): the writes from there "
                           "cannot be shipped; remove this duplication and add it again")
    return found


class PartitionDuplicator:
    """``replica``: the PartitionReplica (its core, engine and status); ``open_remote_table``: the remote
    cluster's table, opened through the normal client."""

    def __init__(self, replica: Any, dupid: int, confirmed: int, fail_mode: str, cluster_id: int,
                 open_remote_table: Callable[[], Awaitable[Any]], reactor: Any, *,
                 lagging_threshold_ms: int = 10_000) -> None:
        self.replica = replica
        self.dupid = dupid
        self.confirmed = confirmed
        self.fail_mode = fail_mode
        self.cluster_id = cluster_id
        self.lagging_threshold_ms = lagging_threshold_ms
        self._open_remote_table = open_remote_table
        self._reactor = reactor
        self._stopped = False
        self._table: Any = None  # the remote table, opened at the first shipment
        self.failed = ""  # FAIL_FAST stopped it: why
        self.last_error = ""
        self.counters = {"shipped_ops": 0, "failed_shipping_ops": 0, "skipped_batches": 0, "skipped_ops": 0,
                         "non_idempotent_skipped": 0, "load_failed": 0, "lagging_writes": 0}
        self.last_shipped_timestamp_us = 0

    def start(self) -> None:
        running = defer.ensureDeferred(self._run())
        running.addErrback(lambda f: log.failure("duplicator of {gpid} crashed", f, gpid=self.replica.gpid))

    def stop(self) -> None:
        self._stopped = True

    def status(self) -> dict:
        committed = self.replica.last_committed_decree
        lag_ms = 0
        if self.confirmed < committed and self.last_shipped_timestamp_us:
            lag_ms = max(0, int(time.time() * 1000 - self.last_shipped_timestamp_us / 1000))
        return {"dupid": self.dupid, "gpid": list(self.replica.gpid), "confirmed_decree": self.confirmed,
                "last_committed_decree": committed, "pending_mutations": max(0, committed - max(self.confirmed, 0)),
                "copying_data": self.confirmed < 0,
                "time_lag_ms": lag_ms, "fail_mode": self.fail_mode, "failed": self.failed,
                "last_error": self.last_error, **self.counters}

    def _sleep(self, seconds: float) -> defer.Deferred:
        return task.deferLater(self._reactor, seconds, lambda: None)

    async def _run(self) -> None:
        self._table = None
        if self.confirmed < 0 and not await self._copy_data():
            return
        while not self._stopped:
            committed = self.replica.last_committed_decree
            if self.confirmed >= committed:
                await self._sleep(IDLE_POLL_SECONDS)
                continue
            try:
                mutations = await self._load(self.confirmed + 1, committed)
            except PegasusError as exc:
                self.counters["load_failed"] += 1
                self._note_error(f"cannot load mutations: {exc.message}")
                await self._sleep(RETRY_SECONDS)
                continue
            ops = []
            for mutation in mutations:
                shippable, non_idempotent = shippable_ops(mutation, self.cluster_id)
                ops += shippable
                self.counters["non_idempotent_skipped"] += non_idempotent
            if not await self._ship_as_the_fail_mode_says(ops):
                return
            acknowledged_us = time.time() * 1e6
            self.counters["lagging_writes"] += sum(
                len(m.writes) for m in mutations
                if acknowledged_us - m.timestamp_us > self.lagging_threshold_ms * 1000)
            self.confirmed = mutations[-1].decree
            self.last_shipped_timestamp_us = mutations[-1].timestamp_us

    async def _copy_data(self) -> bool:
        """Full duplication's first step (``confirmed`` < 0): ship every record of a snapshot of the replica,
        with its stored timetag, then the log from the snapshot's decree on. False: stopped meanwhile."""
        engine = self.replica.engine
        if engine is None:
            return False
        snapshot = engine.checkpoint_snapshot()  # a copy at the applied decree, taken between two applies
        now = time.time()
        batch: list[dict] = []
        for key, record in snapshot.items:
            if self._stopped:
                return False
            if record.expire_ts and record.expire_ts <= now:
                continue
            hash_key, sort_key = decode_key(key)
            batch.append({"op": "put", "hk": hash_key, "sk": sort_key, "v": record.value,
                          "expire": record.expire_ts, "timetag": record.timetag})
            if len(batch) >= MAX_SHIPMENT_OPS:
                if not await self._ship_as_the_fail_mode_says(batch):
                    return False
                batch = []
        if batch and not await self._ship_as_the_fail_mode_says(batch):
            return False
        self.confirmed = snapshot.decree
        log.info("duplication {dupid} of {gpid}: copied {n} records at decree {d}; shipping the log from there",
                 dupid=self.dupid, gpid=self.replica.gpid, n=len(snapshot.items), d=snapshot.decree)
        return True

    async def _ship_as_the_fail_mode_says(self, ops: list[dict]) -> bool:
        """Ship ``ops``, retrying while the fail mode says so. True once shipped (or skipped, FAIL_SKIP);
        False when the duplicator stops (FAIL_FAST, or ``stop``)."""
        failures = 0
        while not self._stopped:
            try:
                if self._table is None:
                    self._table = await self._open_remote_table()
                await self._ship(self._table, ops)
            except PegasusError as exc:
                failures += 1
                self.counters["failed_shipping_ops"] += len(ops)
                self._note_error(f"shipping {len(ops)} writes failed ({failures} in a row): {exc.message}")
                if self.fail_mode == FAIL_FAST:
                    self.failed = self.last_error
                    log.error("duplication {dupid} of {gpid} stopped (FAIL_FAST): {err}", dupid=self.dupid,
                              gpid=self.replica.gpid, err=exc.message)
                    return False
                if self.fail_mode != FAIL_SKIP or failures < SKIP_AFTER_FAILURES:
                    await self._sleep(RETRY_SECONDS)
                    continue
                self.counters["skipped_batches"] += 1
                self.counters["skipped_ops"] += len(ops)
                log.warn("duplication {dupid} of {gpid} skipped {n} writes (FAIL_SKIP)", dupid=self.dupid,
                         gpid=self.replica.gpid, n=len(ops))
                return True
            self.counters["shipped_ops"] += len(ops)
            return True
        return False

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warn("duplication {dupid} of {gpid}: {msg}", dupid=self.dupid, gpid=self.replica.gpid, msg=message)
        self.last_error = message

    async def _load(self, start: int, committed: int) -> list:
        end = min(committed, start + MAX_BATCH_MUTATIONS - 1)
        core, engine = self.replica.core, self.replica.engine
        if core is None or engine is None:
            raise PegasusError(ErrorCode.ERR_INVALID_STATE, f"replica {self.replica.gpid} is closed")
        in_memory = core.log.range(start, end)
        if in_memory is not None:
            return in_memory
        try:
            return await threads.deferToThread(_committed_from_wal, engine.wal, start, end)
        except PegasusError:
            raise
        except OSError as exc:
            raise PegasusError(ErrorCode.ERR_DISK_IO, f"cannot read the WAL: {exc}") from None

    async def _ship(self, table: Any, ops: list[dict]) -> None:
        """One RPC per remote partition and chunk, the partitions at once, a partition's chunks in order
        (so a hash key's ops stay in order); raises the first failure."""
        by_partition: dict[int, list[dict]] = {}
        for op in ops:
            by_partition.setdefault(partition_index(op["hk"], table.partition_count), []).append(op)

        async def in_order(partition_ops: list[dict]) -> None:
            for chunk in _chunks(partition_ops):
                await table.duplicate(chunk)

        results = await defer.DeferredList([defer.ensureDeferred(in_order(o)) for o in by_partition.values()],
                                           consumeErrors=True)
        for ok, result in results:
            if not ok:
                error = result.value
                raise error if isinstance(error, PegasusError) else PegasusError(ErrorCode.ERR_UNKNOWN, repr(error))


def _chunks(ops: list[dict]) -> list[list[dict]]:
    """Runs of at most MAX_SHIPMENT_OPS ops and about MAX_SHIPMENT_BYTES of values: well inside a frame."""
    chunks, current, size = [], [], 0
    for op in ops:
        op_size = len(op.get("v", b"")) + sum(len(pair[1]) for pair in op.get("kvs", ()))
        if current and (len(current) >= MAX_SHIPMENT_OPS or size + op_size > MAX_SHIPMENT_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(op)
        size += op_size
    if current:
        chunks.append(current)
    return chunks
