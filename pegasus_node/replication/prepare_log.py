"""The replica's log as the core sees it: a contiguous run of mutations in memory, from ``floor + 1`` to
``last``, each with the sequence number of the append that wrote it, and how far it is durable.

Decrees at or below ``floor`` are not in memory (they are in a checkpoint, or were dropped after being
applied); the edge still has them in its WAL or checkpoint. Appends only ever extend the run or replace
its tail (``append`` at decree d drops d and everything after it), so sequence numbers grow with decrees
and "durable up to append seq" is the same as "durable up to some decree".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import msgpack

from pegasus_node.replication.config import Gpid
from pegasus_node.replication.effects import AppendLog
from pegasus_node.storage.mutation import Mutation


def same_content(a: Mutation, b: Mutation) -> bool:
    """True when two copies of a decree are the same proposal (ballots may differ: a new primary
    re-proposes under its own ballot). Writes are compared as msgpack, where lists and tuples agree."""
    if a.decree != b.decree or a.timestamp_us != b.timestamp_us or a.last_committed != b.last_committed:
        return False
    if a.writes == b.writes:
        return True
    return msgpack.packb(list(a.writes), use_bin_type=True) == msgpack.packb(list(b.writes), use_bin_type=True)


@dataclass(slots=True)
class _Entry:
    mutation: Mutation
    seq: int


class PrepareLog:
    def __init__(self, gpid: Gpid, floor: int, mutations: Iterable[Mutation] = ()) -> None:
        self.gpid = gpid
        self.floor = floor
        self.last = floor
        self._entries: dict[int, _Entry] = {}
        for mutation in mutations:
            if mutation.decree != self.last + 1:
                raise ValueError(f"replica {gpid}: the recovered log must be contiguous after decree {floor}; "
                                 f"found decree {mutation.decree} after {self.last}")
            self._entries[mutation.decree] = _Entry(mutation, 0)
            self.last = mutation.decree
        self._seq = 0
        self.durable_seq = 0
        self.durable_end = self.last  # what was recovered is on disk

    def get(self, decree: int) -> Mutation | None:
        entry = self._entries.get(decree)
        return entry.mutation if entry is not None else None

    def __contains__(self, decree: int) -> bool:
        return decree in self._entries

    def append(self, mutation: Mutation) -> AppendLog:
        decree = mutation.decree
        if not self.floor < decree <= self.last + 1:
            raise AssertionError(f"replica {self.gpid}: append of decree {decree} outside ({self.floor}, "
                                 f"{self.last + 1}]")
        for stale in range(decree, self.last + 1):
            del self._entries[stale]
        self._seq += 1
        self._entries[decree] = _Entry(mutation, self._seq)
        self.last = decree
        self.durable_end = min(self.durable_end, decree - 1)
        return AppendLog(self.gpid, mutation, self._seq)

    def mark_durable(self, seq: int) -> bool:
        """Every append up to ``seq`` is on disk. Returns whether ``durable_end`` moved."""
        if seq <= self.durable_seq:
            return False
        self.durable_seq = min(seq, self._seq)
        before = self.durable_end
        while True:
            entry = self._entries.get(self.durable_end + 1)
            if entry is None or entry.seq > self.durable_seq:
                break
            self.durable_end += 1
        return self.durable_end != before

    def range(self, start: int, end: int) -> list[Mutation] | None:
        """Decrees ``start..end`` (inclusive), or None when some of them are not in memory."""
        if start > end:
            return []
        if start <= self.floor or end > self.last:
            return None
        return [self._entries[d].mutation for d in range(start, end + 1)]

    def reset(self, decree: int) -> None:
        """A checkpoint at ``decree`` replaced the state: the log restarts after it."""
        self._entries.clear()
        self.floor = self.last = self.durable_end = decree

    def forget_upto(self, decree: int) -> None:
        """Drop decrees up to ``decree`` from memory (they stay in the edge's WAL)."""
        decree = min(decree, self.durable_end)
        for d in range(self.floor + 1, decree + 1):
            del self._entries[d]
        self.floor = max(self.floor, decree)

    @property
    def last_timestamp_us(self) -> int:
        return max((e.mutation.timestamp_us for e in self._entries.values()), default=0)
