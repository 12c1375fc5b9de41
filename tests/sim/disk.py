"""Simulated disks that lose unsynced writes on a crash, and the replicas' in-memory state machine.

A replica server's disk keeps, per partition: the persisted ballot and the checkpoint (both written
durably at once, as the edge does with a small synchronous write and an atomic rename), and the WAL as a
list of appended records of which a prefix is synced. A crash cuts the WAL back to its synced prefix.

The WAL's meaning is the supersede rule of ``AppendLog``: a record at decree d drops every earlier record at
d or beyond. Recovery also replays the records with ``pegasus_node.storage.wal.resolve_log`` (the real WAL's
rule: a higher ballot truncates) and the two must agree; that is the core's promise to the real WAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pegasus_node.base.keys import encode_key
from pegasus_node.base.timetag import make_timetag
from pegasus_node.storage.memtable import Memtable, Record
from pegasus_node.storage.mutation import Mutation
from pegasus_node.storage.operations import apply_writes
from pegasus_node.storage.wal import resolve_log

CLUSTER_ID = 1


def resolve_superseding(records: list[Mutation]) -> dict[int, Mutation]:
    log: dict[int, Mutation] = {}
    last = 0
    for m in records:
        for d in range(m.decree, last + 1):
            log.pop(d, None)
        log[m.decree] = m
        last = m.decree
    return log


@dataclass
class PartitionDisk:
    ballot: int = 0
    checkpoint: tuple | None = None  # (decree, snapshot)
    records: list[Mutation] = field(default_factory=list)
    synced: int = 0
    durable: dict[int, Mutation] = field(default_factory=dict)  # the synced records' log, kept incrementally
    durable_last: int = 0
    # called with (decree, mutation or None) for every durable entry replaced or dropped
    on_durable_loss: Callable[[int, Mutation | None], None] | None = None

    @property
    def checkpoint_decree(self) -> int:
        return self.checkpoint[0] if self.checkpoint else 0

    def sync(self, upto: int) -> None:
        for m in self.records[self.synced:upto]:
            for d in range(m.decree, self.durable_last + 1):
                old = self.durable.pop(d, None)
                if old is not None and self.on_durable_loss is not None:
                    self.on_durable_loss(d, m if d == m.decree else None)
            self.durable[m.decree] = m
            self.durable_last = m.decree
        self.synced = max(self.synced, upto)

    def crash(self) -> None:
        del self.records[self.synced:]

    def log_view(self) -> list[Mutation]:
        """Every record's log (synced or not), as the running server reads its own WAL."""
        log = resolve_superseding(self.records)
        return [log[d] for d in sorted(log)]

    def recover(self) -> list[Mutation]:
        """The log after a restart, above the checkpoint; checks the core's supersede promise."""
        ours = self.log_view()
        theirs = resolve_log(self.records)
        if [(m.ballot, m.decree) for m in ours] != [(m.ballot, m.decree) for m in theirs]:
            raise AssertionError(f"WAL replay rules disagree: supersede gives {[(m.ballot, m.decree) for m in ours]}, "
                                 f"resolve_log gives {[(m.ballot, m.decree) for m in theirs]}")
        return [m for m in ours if m.decree > self.checkpoint_decree]

    def take_checkpoint(self, decree: int, snapshot: tuple) -> None:
        """Write a checkpoint, then drop the WAL below it (only when nothing is unsynced, for simplicity)."""
        self.checkpoint = (decree, snapshot)
        if self.synced == len(self.records):
            self.records = [m for m in self.log_view() if m.decree > decree]
            self.synced = len(self.records)
            for d in [d for d in self.durable if d <= decree]:
                del self.durable[d]


class StateMachine:
    """The storage engine's apply path (StorageEngine.apply) on a plain memtable, plus a get."""

    def __init__(self, snapshot: tuple | list | None = None) -> None:
        if snapshot is None:
            self.decree, self.clock_us, items = 0, 0, []
        else:
            self.decree, self.clock_us, items = snapshot
        self.table = Memtable((key, Record(*rest)) for key, *rest in items)

    def apply(self, mutation: Mutation) -> list[dict]:
        if mutation.decree != self.decree + 1:
            raise AssertionError(f"apply out of order: decree {mutation.decree} after {self.decree}")
        self.clock_us = max(self.clock_us, mutation.timestamp_us)
        now_s = self.clock_us // 1_000_000
        results = apply_writes(self.table, mutation.writes, now_s=now_s,
                               timetag=make_timetag(mutation.timestamp_us, CLUSTER_ID))
        self.decree = mutation.decree
        return results

    def get(self, hash_key: bytes, sort_key: bytes) -> bytes | None:
        record = self.table.get_live(encode_key(hash_key, sort_key), self.clock_us // 1_000_000)
        return None if record is None else record.value

    def snapshot(self) -> tuple:
        return (self.decree, self.clock_us, [[k, r.value, r.expire_ts, r.timetag] for k, r in self.table.items()])
