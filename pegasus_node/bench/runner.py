"""The one loop runner behind every workload: C concurrent loops share a budget of N operations.

An operation is ``op(i) -> Deferred`` for ``i`` in ``0..N-1``. It fires with None (ok) or ``"not_found"`` (ok,
but the key was absent), or fails: a ``PegasusError`` is counted under its code's name, a
:class:`BenchFailure` under its label (a wrong value, say), anything else under its type name. Latencies of
successful operations go into an HDR histogram.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import LoopingCall

from pegasus_node.bench.histogram import LatencyRecorder
from pegasus_node.errors import PegasusError

NOT_FOUND = "not_found"
Operation = Callable[[int], Deferred]
ProgressCallback = Callable[["LoopProgress"], None]


class BenchFailure(Exception):
    """An operation that completed but produced a wrong result."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label


def error_label(error: BaseException) -> str:
    if isinstance(error, PegasusError):
        return error.code.name
    if isinstance(error, BenchFailure):
        return error.label
    return type(error).__name__


@dataclass
class LoopProgress:
    total_ops: int
    done: int = 0
    ok: int = 0
    not_found: int = 0
    errors: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def elapsed_seconds(self) -> float:
        return (self.finished if self.finished is not None else time.perf_counter()) - self.started

    @property
    def ops_per_second(self) -> float:
        elapsed = self.elapsed_seconds
        return self.done / elapsed if elapsed > 0 else 0.0


@dataclass
class LoopResult:
    concurrency: int
    progress: LoopProgress
    latency: LatencyRecorder
    first_errors: dict[str, str]  # one example message per error label


async def run_loops(
    op: Operation,
    total_ops: int,
    concurrency: int,
    *,
    clock: Any,
    on_progress: ProgressCallback | None = None,
    progress_interval: float = 1.0,
) -> LoopResult:
    if total_ops < 0 or concurrency < 1:
        raise ValueError("total_ops must be >= 0 and concurrency >= 1")
    progress = LoopProgress(total_ops)
    latency = LatencyRecorder()
    first_errors: dict[str, str] = {}
    next_index = 0

    async def loop() -> None:
        nonlocal next_index
        while next_index < total_ops:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                outcome = await op(i)
            except Exception as e:  # every failure is data here; the run goes on
                label = error_label(e)
                progress.errors[label] += 1
                first_errors.setdefault(label, str(e))
            else:
                latency.record_seconds(time.perf_counter() - started)
                if outcome == NOT_FOUND:
                    progress.not_found += 1
                else:
                    progress.ok += 1
            progress.done += 1

    ticker = None
    if on_progress is not None:
        ticker = LoopingCall(on_progress, progress)
        ticker.clock = clock
        ticker.start(progress_interval, now=False)
    try:
        loops = [Deferred.fromCoroutine(loop()) for _ in range(min(concurrency, max(total_ops, 1)))]
        await gatherResults(loops, consumeErrors=True)
    finally:
        progress.finished = time.perf_counter()
        if ticker is not None and ticker.running:
            ticker.stop()
    return LoopResult(concurrency, progress, latency, first_errors)
