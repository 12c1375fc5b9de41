"""The one loop runner behind every workload: C concurrent loops share a budget of N operations.

An operation is ``op(i) -> Deferred`` for ``i`` in ``0..N-1``. It fires with None (ok) or ``"not_found"`` (ok,
but the key was absent), or fails: a ``PegasusError`` is counted under its code's name, a
:class:`BenchFailure` under its label (a wrong value, say), anything else under its type name. Latencies of
successful operations go into an HDR histogram.

A run whose operations all fail for ``give_up_after`` seconds stops with :class:`BenchStalled`: against a
cluster that went away, each loop would otherwise wait one timeout per operation for hours.
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


class BenchStalled(Exception):
    """No operation succeeded for ``give_up_after`` seconds, and some failed: the run stopped."""


def stall_limit(timeout_seconds: float) -> float:
    """How long a run may go without a success: three operation timeouts (a failover's few seconds of errors
    pass), and at least 10 s."""
    return max(10.0, 3 * timeout_seconds)


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
    give_up_after: float | None = None,
) -> LoopResult:
    if total_ops < 0 or concurrency < 1:
        raise ValueError("total_ops must be >= 0 and concurrency >= 1")
    progress = LoopProgress(total_ops)
    latency = LatencyRecorder()
    first_errors: dict[str, str] = {}
    next_index = 0
    last_success = time.perf_counter()
    stalled = False

    def stalling() -> bool:
        nonlocal stalled
        if give_up_after is not None and progress.errors and time.perf_counter() - last_success > give_up_after:
            stalled = True
        return stalled

    async def loop() -> None:
        nonlocal next_index, last_success
        while next_index < total_ops and not stalling():
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
                last_success = time.perf_counter()
                latency.record_seconds(last_success - started)
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
    if stalled:
        label, count = progress.errors.most_common(1)[0]
        example = first_errors[label] if first_errors[label].startswith(label) else f"{label}: {first_errors[label]}"
        raise BenchStalled(f"no operation succeeded for {give_up_after:g} s, so the run stopped after "
                           f"{progress.done} of {total_ops} operations ({progress.error_count} errors, {count} of them "
                           f"{label}; the first: {example}). Is the cluster up? `pegasus-shell -m META -e nodes` "
                           "shows its servers")
    return LoopResult(concurrency, progress, latency, first_errors)
