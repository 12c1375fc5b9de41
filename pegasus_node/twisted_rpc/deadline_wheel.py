"""Coarse deadlines for many short-lived items, at the cost of one reactor timer per tick instead of per item.

A reactor timer per RPC call (callLater + cancel) halves the client's throughput on the asyncio reactor:
each one re-arms the event loop's timer and leaves a cancelled entry in two heaps. Calls are instead put
in buckets of ``tick`` seconds; a bucket's single timer expires whatever is still in it. An item expires
no earlier than its deadline and at most one tick later.
"""

from __future__ import annotations

from typing import Any, Protocol


class Expirable(Protocol):
    def expire(self) -> None: ...


Bucket = dict[Any, None]


class DeadlineWheel:
    def __init__(self, reactor: Any, tick: float = 0.005) -> None:
        self._reactor = reactor
        self._tick = tick
        self._buckets: dict[int, Bucket] = {}
        self._timers: dict[int, Any] = {}

    def add(self, item: Expirable, deadline: float) -> Bucket:
        """Schedule ``item.expire()`` at ``deadline`` (reactor time). Returns the bucket: ``bucket.pop(item,
        None)`` unschedules it."""
        slot = int(deadline / self._tick) + 1
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = {}
            delay = slot * self._tick - self._reactor.seconds()
            self._timers[slot] = self._reactor.callLater(delay if delay > 0 else 0, self._fire, slot)
        bucket[item] = None
        return bucket

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def clear(self) -> None:
        """Forget every item and cancel the timers (items are not expired)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._buckets.clear()

    def _fire(self, slot: int) -> None:
        self._timers.pop(slot, None)
        bucket = self._buckets.pop(slot, None)
        if bucket:
            # expire() removes the item from the bucket, so walk a copy.
            for item in list(bucket):
                item.expire()
