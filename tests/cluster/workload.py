"""A client workload for failure tests: shared keys recorded for the linearizability checker, plus unique
keys whose acknowledged writes must all be readable afterwards.

Writes to shared keys go through check_and_set (CT_NO_CHECK for a plain set), because the client never
retries it blindly: a set retried after an ambiguous failure could apply twice, at two points in time, which
a real client may do but a history cannot describe. Any error is recorded as an unknown outcome, which is
always sound for the checker.
"""

from __future__ import annotations

import random
import time

from twisted.internet import defer, reactor, task

from pegasus_node.checker import KvModel, Recorder, Verdict, check, kv_cas, kv_get, kv_set
from pegasus_node.client import CheckType, PegasusError

SORT_KEY = b"s"


def sleep(seconds: float) -> defer.Deferred:
    return task.deferLater(reactor, seconds, lambda: None)


class FailoverWorkload:
    def __init__(self, table, workers: int = 8, shared_keys: int = 6, seed: int = 1, follower_table=None) -> None:
        self.table = table
        self.follower_table = follower_table  # given: half the gets are follower reads, checked just the same
        self.workers = workers
        self.shared = [f"shared{i}".encode() for i in range(shared_keys)]
        self.recorder = Recorder()
        self.acked: dict[bytes, bytes] = {}
        self.write_acks: list[float] = []  # monotonic times of acknowledged unique writes
        self.errors: dict[str, int] = {}
        self._rng = random.Random(seed)
        self._stop = False
        self._running: list[defer.Deferred] = []

    def start(self) -> None:
        self._running = [defer.ensureDeferred(self._worker(w)) for w in range(self.workers)]

    async def stop(self) -> None:
        self._stop = True
        await defer.gatherResults(self._running)

    def acks_between(self, start: float, end: float) -> int:
        return sum(1 for t in self.write_acks if start <= t < end)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start] + [t for t in self.write_acks if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:]))

    def _count(self, error: PegasusError) -> None:
        self.errors[error.code.name] = self.errors.get(error.code.name, 0) + 1

    async def _worker(self, worker: int) -> None:
        n = 0
        while not self._stop:
            n += 1
            choice = self._rng.random()
            if choice < 0.4:
                await self._unique_set(worker, n)
            elif choice < 0.65:
                await self._shared_get(worker)
            elif choice < 0.85:
                await self._shared_set(worker, n)
            else:
                await self._shared_cas(worker, n)

    async def _unique_set(self, worker: int, n: int) -> None:
        key, value = f"w{worker}-{n}".encode(), f"value-{worker}-{n}".encode()
        try:
            await self.table.set(key, SORT_KEY, value, timeout=10.0)
        except PegasusError as exc:
            self._count(exc)
            await sleep(0.05)
            return
        self.acked[key] = value
        self.write_acks.append(time.monotonic())

    async def _shared_get(self, worker: int) -> None:
        key = self._rng.choice(self.shared)
        table = self.table
        if self.follower_table is not None and self._rng.random() < 0.5:
            table = self.follower_table
        token = self.recorder.invoke(worker, kv_get(key))
        try:
            value = await table.get(key, SORT_KEY, timeout=10.0)
        except PegasusError as exc:
            self._count(exc)
            self.recorder.unknown(token)
            return
        self.recorder.complete(token, value)

    async def _shared_set(self, worker: int, n: int) -> None:
        key, value = self._rng.choice(self.shared), f"v{worker}.{n}".encode()
        token = self.recorder.invoke(worker, kv_set(key, value))
        try:
            await self.table.check_and_set(key, SORT_KEY, CheckType.CT_NO_CHECK, b"", SORT_KEY, value, timeout=10.0)
        except PegasusError as exc:
            self._count(exc)
            self.recorder.unknown(token)
            return
        self.recorder.complete(token, None)

    async def _shared_cas(self, worker: int, n: int) -> None:
        key = self._rng.choice(self.shared)
        expected = self._rng.choice([None, f"v{self._rng.randrange(self.workers)}.{max(1, n - 1)}".encode()])
        value = f"c{worker}.{n}".encode()
        token = self.recorder.invoke(worker, kv_cas(key, expected, value))
        check_type = CheckType.CT_VALUE_NOT_EXIST if expected is None else CheckType.CT_VALUE_BYTES_EQUAL
        try:
            result = await self.table.check_and_set(key, SORT_KEY, check_type, expected or b"", SORT_KEY, value,
                                                    timeout=10.0)
        except PegasusError as exc:
            self._count(exc)
            self.recorder.unknown(token)
            return
        self.recorder.complete(token, result.set_succeed)

    async def missing_acked_writes(self) -> list[bytes]:
        missing = []
        for key, value in self.acked.items():
            if await self.table.get(key, SORT_KEY, timeout=15.0) != value:
                missing.append(key)
        return missing

    def check_linearizable(self):
        return check(self.recorder.history(), KvModel(), timeout=120)

    async def assert_nothing_lost_and_linearizable(self, min_operations: int = 200) -> None:
        """After ``stop``: every acknowledged write reads back, and the recorded history is linearizable."""
        missing = await self.missing_acked_writes()
        assert missing == [], f"{len(missing)} of {len(self.acked)} acknowledged writes lost: {missing[:5]}"
        assert len(self.recorder.history()) > min_operations, "too few operations to say anything"
        result = self.check_linearizable()
        assert result.verdict == Verdict.OK, result
