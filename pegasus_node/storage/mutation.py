"""A mutation: the unit that the WAL logs and that PacificA prepares, commits and applies.

A mutation carries one or more write operations (concurrent client writes folded together) under one
``(ballot, decree)``. ``timestamp_us`` is assigned once by the primary, so every replica computes the same
expiry times and timetags when it applies the mutation. ``last_committed`` is the primary's commit point when
it prepared the mutation; it lets a recovering replica know which logged decrees were certainly committed.

Write operations are plain msgpack-able dicts (see ``pegasus_node/storage/operations.py`` for the kinds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack


@dataclass(frozen=True, slots=True)
class Mutation:
    ballot: int
    decree: int
    last_committed: int
    timestamp_us: int
    writes: tuple = field(default_factory=tuple)
    # The encoding, once known: a mutation is encoded for the WAL, for every Prepare that carries it and to size
    # learn responses, and a decoded one is logged again by the receiver. Not part of the value.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self) -> bytes:
        encoded = self._encoded
        if encoded is None:
            encoded = msgpack.packb(
                [self.ballot, self.decree, self.last_committed, self.timestamp_us, list(self.writes)],
                use_bin_type=True,
            )
            object.__setattr__(self, "_encoded", encoded)
        return encoded

    @classmethod
    def decode(cls, payload: bytes) -> "Mutation":
        ballot, decree, last_committed, timestamp_us, writes = msgpack.unpackb(
            payload, raw=False, strict_map_key=False
        )
        mutation = cls(ballot, decree, last_committed, timestamp_us, tuple(writes))
        if type(payload) is bytes:  # immutable, so it can stand for the encoding
            object.__setattr__(mutation, "_encoded", payload)
        return mutation
