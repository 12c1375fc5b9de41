"""Operations per second of each node, from the running totals that ``replica.status`` reports."""

from __future__ import annotations

import collections
from dataclasses import dataclass


@dataclass
class _Last:
    total: int
    at: float


class OpsRates:
    """Turns ``counters: {reads, writes}`` totals into ops/s between refreshes, with a short history."""

    def __init__(self, history: int = 60) -> None:
        self._last: dict[str, _Last] = {}
        self._history: dict[str, collections.deque[float]] = {}
        self._size = history

    def update(self, address: str, counters: dict | None, now: float) -> float | None:
        """Record this refresh's totals (None: the node did not answer) and return ops/s, if known."""
        history = self._history.setdefault(address, collections.deque(maxlen=self._size))
        if not isinstance(counters, dict):
            self._last.pop(address, None)  # its counters restart from 0 when it comes back
            history.append(0.0)
            return None
        # reads and writes are the operations; other counters (follower_reads) count some of them again
        total = sum(counters.get(kind, 0) for kind in ("reads", "writes") if isinstance(counters.get(kind, 0), int))
        last = self._last.get(address)
        self._last[address] = _Last(total, now)
        if last is None or now <= last.at or total < last.total:  # first sample, or the process restarted
            return None
        rate = (total - last.total) / (now - last.at)
        history.append(rate)
        return rate

    def history(self, address: str) -> tuple[float, ...]:
        return tuple(self._history.get(address, ()))
