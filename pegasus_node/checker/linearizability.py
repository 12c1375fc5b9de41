"""Linearizability checking of a whole history: validation, partitioning (one key at a time for a
key-value store), a search per partition (see search.py) under an overall time limit, and a verdict with
a short explanation when the history is not linearizable.
"""

from __future__ import annotations

import enum
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from pegasus_node.checker.history import HistoryError, Operation
from pegasus_node.checker.models import Model
from pegasus_node.checker.search import Failure, TimedOut, search

_PREFIX_SHOWN = 3


class Verdict(enum.Enum):
    OK = "linearizable"
    ILLEGAL = "not linearizable"
    UNKNOWN = "unknown (timed out)"


@dataclass(frozen=True)
class CheckResult:
    verdict: Verdict
    explanation: str
    partitions: int = 0
    elapsed: float = 0.0
    # set only for ILLEGAL: which partition failed, and where the search got furthest in it
    partition: str | None = None
    prefix: tuple[Operation, ...] = field(default=(), repr=False)
    failed_op: Operation | None = None
    state_after_prefix: Any = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


def check(history: Sequence[Operation], model: Model, timeout: float | None = None) -> CheckResult:
    """Check ``history`` against ``model``. ``timeout`` (seconds for the whole history; None: no limit) turns
    a search that takes too long into Verdict.UNKNOWN. Raises HistoryError for a malformed history."""
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    ops = _relevant_operations(history, model)
    partitions = model.partition(ops)
    # cheap partitions first, so that a timeout is spent on the hard ones only
    partitions = sorted((p for p in partitions if p), key=len)
    for done, part in enumerate(partitions):
        try:
            failure = search(model, part, deadline)
        except TimedOut:
            elapsed = time.monotonic() - started
            return CheckResult(
                Verdict.UNKNOWN,
                f"timed out after {elapsed:.1f}s while checking {model.partition_label(part)} "
                f"({len(part)} operations); {done} of {len(partitions)} partitions were linearizable",
                partitions=len(partitions),
                elapsed=elapsed,
            )
        if failure is not None:
            label = model.partition_label(part)
            return CheckResult(
                Verdict.ILLEGAL,
                _explain(model, label, len(part), failure),
                partitions=len(partitions),
                elapsed=time.monotonic() - started,
                partition=label,
                prefix=failure.prefix,
                failed_op=failure.failed_op,
                state_after_prefix=failure.state,
            )
    return CheckResult(
        Verdict.OK,
        f"linearizable ({len(ops)} operations in {len(partitions)} partitions)",
        partitions=len(partitions),
        elapsed=time.monotonic() - started,
    )


def _relevant_operations(history: Sequence[Operation], model: Model) -> list[Operation]:
    """Validates the history and drops reads whose outcome nobody saw: they neither change the state nor
    constrain it, so they can only slow the search down."""
    kept = []
    for index, op in enumerate(history):
        if not isinstance(op, Operation):
            raise HistoryError(f"history entry {index} is a {type(op).__name__}, not an Operation")
        if not _is_time(op.call_time):
            raise HistoryError(f"history entry {index} has call time {op.call_time!r}, not a number")
        if op.return_time is not None:
            if not _is_time(op.return_time):
                raise HistoryError(f"history entry {index} has return time {op.return_time!r}, not a number")
            if op.return_time < op.call_time:
                raise HistoryError(
                    f"history entry {index} returns at {op.return_time} before its call at {op.call_time}"
                )
        problem = model.input_error(op.input)
        if problem is not None:
            raise HistoryError(f"history entry {index}: {problem}")
        if not op.returned and model.is_read_only(op.input):
            continue
        kept.append(op)
    return kept


def _is_time(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _explain(model: Model, label: str, total: int, failure: Failure) -> str:
    prefix = failure.prefix
    shown = "; ".join(model.describe_operation(op) for op in prefix[-_PREFIX_SHOWN:])
    if len(prefix) > _PREFIX_SHOWN:
        shown = "...; " + shown
    ending = f", ending with [{shown}]" if prefix else ""
    op = failure.failed_op
    returned = op.return_time if op.returned else "never"
    return (
        f"{label} is not linearizable: the longest linearizable prefix holds {len(prefix)} of {total} "
        f"operations{ending}, leaving the state {model.describe_state(failure.state)}; after it, "
        f"{model.describe_operation(op)} (client {op.client_id!r}, called at {op.call_time}, returned at "
        f"{returned}) cannot be placed before its return"
    )


__all__ = ["CheckResult", "Verdict", "check"]
