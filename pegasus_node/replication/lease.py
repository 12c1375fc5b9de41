"""Failure detection with leases (PacificA rule 3), both halves, pure.

A replica server sends a beacon every ``beacon_seconds``. When the meta server acknowledges a beacon, the
server's lease runs until the beacon's SEND time plus ``lease_seconds`` (``ReplicaLease``): measuring from
the send time, not from when the acknowledgement arrived, is what makes a delayed acknowledgement harmless.
The meta server counts a server alive while its last beacon ARRIVED less than ``grace_seconds`` ago
(``FailureDetector``). Since every acknowledged beacon arrived after it was sent, and ``grace > lease``,
when the meta server declares a server dead, that server's lease has already run out, so it has stopped
serving as primary before any replacement is appointed.

One caveat for the edge: the meta server acknowledges a beacon with the configurations it holds at that
moment. Apply them to the cores before extending the lease (``ReplicaCore.on_config``, then ``on_lease``),
so that a beacon delayed past the server's death cannot extend a primary role the meta has reassigned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseSettings:
    beacon_seconds: float = 1.0
    lease_seconds: float = 4.0
    grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.beacon_seconds < self.lease_seconds < self.grace_seconds:
            raise ValueError(f"need 0 < beacon ({self.beacon_seconds}s) < lease ({self.lease_seconds}s) < "
                             f"grace ({self.grace_seconds}s)")


class ReplicaLease:
    """The replica server's side: one lease for the whole server."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self.valid_until = -math.inf

    def on_beacon_acked(self, send_time: float) -> float:
        """The meta server acknowledged the beacon sent at ``send_time`` (our clock). Returns the new end."""
        self.valid_until = max(self.valid_until, send_time + self.lease_seconds)
        return self.valid_until

    def is_valid(self, now: float) -> bool:
        return now < self.valid_until

    def remaining(self, now: float) -> float:
        return max(0.0, self.valid_until - now)


class FailureDetector:
    """The meta server's side: which replica servers are alive, from beacon arrival times (meta's clock)."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.last_beacon: dict[str, float] = {}

    def on_beacon(self, address: str, now: float) -> None:
        self.last_beacon[address] = max(self.last_beacon.get(address, -math.inf), now)

    def expect(self, address: str, now: float) -> None:
        """Give a server we know of (from stored configurations) a full grace period, e.g. after the meta
        server starts, before counting it dead."""
        self.last_beacon.setdefault(address, now)

    def is_alive(self, address: str, now: float) -> bool:
        seen = self.last_beacon.get(address)
        return seen is not None and now - seen < self.grace_seconds

    def alive(self, now: float) -> frozenset[str]:
        return frozenset(a for a, seen in self.last_beacon.items() if now - seen < self.grace_seconds)

    def beacon_age(self, address: str, now: float) -> float:
        seen = self.last_beacon.get(address)
        return math.inf if seen is None else now - seen
