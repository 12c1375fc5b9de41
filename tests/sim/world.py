"""The simulated world: a fake clock with an event queue, a seeded random source, and a faulty network.

Everything that happens in a run is an event in one heap ordered by (time, sequence number), so a seed
fully determines the run. Each event names the node it runs on (its "owner"), so that the invariant
checks after every step know what changed.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable


class World:
    def __init__(self, seed: int, trace_limit: int | None = 300) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self._queue: list[tuple[float, int, str | None, Callable, tuple]] = []
        self._seq = 0
        self.steps = 0
        self.trace: deque[tuple[float, str | None, str]] = deque(maxlen=trace_limit)

    def at(self, time: float, owner: str | None, fn: Callable, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(time, self.now), self._seq, owner, fn, args))

    def after(self, delay: float, owner: str | None, fn: Callable, *args: Any) -> None:
        self.at(self.now + delay, owner, fn, *args)

    def note(self, owner: str | None, text: str) -> None:
        self.trace.append((self.now, owner, text))

    def run_until(self, end: float, after_step: Callable[[str | None], None]) -> None:
        queue = self._queue
        while queue and queue[0][0] <= end:
            time, _, owner, fn, args = heapq.heappop(queue)
            self.now = time
            self.steps += 1
            fn(*args)
            after_step(owner)
        self.now = max(self.now, end)


@dataclass
class NetworkFaults:
    drop: float = 0.0  # probability a message is lost
    duplicate: float = 0.0  # probability it is delivered twice
    min_delay: float = 0.0005
    max_delay: float = 0.004
    spike: float = 0.0  # probability of a long delay (which reorders)
    spike_delay: float = 0.08


@dataclass
class Network:
    world: World
    faults: NetworkFaults = field(default_factory=NetworkFaults)
    handlers: dict[str, Callable[[str, Any], None]] = field(default_factory=dict)
    blocked: dict[tuple[str, str], int] = field(default_factory=dict)  # cut (src, dst) pairs, by how many cuts
    slow: dict[tuple[str, str], float] = field(default_factory=dict)  # extra delay on a directed link
    sent: int = 0

    def register(self, address: str, handler: Callable[[str, Any], None]) -> None:
        self.handlers[address] = handler

    def unregister(self, address: str) -> None:
        self.handlers.pop(address, None)

    def cut(self, a: str, b: str) -> None:
        for pair in ((a, b), (b, a)):
            self.blocked[pair] = self.blocked.get(pair, 0) + 1

    def uncut(self, a: str, b: str) -> None:
        for pair in ((a, b), (b, a)):
            left = self.blocked.get(pair, 0) - 1
            if left > 0:
                self.blocked[pair] = left
            else:
                self.blocked.pop(pair, None)

    def heal_all(self) -> None:
        self.blocked.clear()
        self.slow.clear()

    def send(self, src: str, dst: str, payload: Any, may_duplicate: bool = True) -> None:
        """``may_duplicate=False`` for client requests and answers: a client's RPC connection (TCP) never
        delivers a request twice, so a duplicate would model a client bug, not a network fault."""
        self.sent += 1
        if (src, dst) in self.blocked:
            return
        rng, faults = self.world.rng, self.faults
        if faults.drop and rng.random() < faults.drop:
            return
        copies = 2 if may_duplicate and faults.duplicate and rng.random() < faults.duplicate else 1
        for _ in range(copies):
            delay = rng.uniform(faults.min_delay, faults.max_delay)
            if faults.spike and rng.random() < faults.spike:
                delay += rng.uniform(0, faults.spike_delay)
            if self.slow:
                delay += self.slow.get((src, dst), 0.0)
            self.world.after(delay, dst, self._deliver, src, dst, payload)

    def _deliver(self, src: str, dst: str, payload: Any) -> None:
        if (src, dst) in self.blocked:
            return  # the partition began while the message was in flight
        handler = self.handlers.get(dst)
        if handler is not None:
            handler(src, payload)
