"""Histories of client operations, as the linearizability checker consumes them.

An operation is one client request: who sent it, when it was called, when (if ever) it returned, what it
asked for (input) and what it was told (output). Times are any comparable numbers on one clock; only their
order matters.

Two kinds of uncertainty are expressed here:
- ``return_time=None``: the client never saw an answer. The operation may take effect at any point after its
  call, or never.
- ``output=UNKNOWN``: the client saw an answer that does not say what happened (a timeout). The checker treats
  such an operation as never returned, whatever ``return_time`` says, because a server may apply a timed-out
  write after the client gave up. Reads with an unknown outcome constrain nothing and are dropped.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable


class HistoryError(ValueError):
    """A history (or a history file) is malformed; the message says where and why."""


class _Unknown:
    """Singleton marker for "the outcome of this operation is unknown" (e.g. it timed out)."""

    _instance: "_Unknown | None" = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        # pickling must give back the singleton, since the checker compares with `is`
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True, slots=True)
class Operation:
    client_id: Hashable
    call_time: float
    return_time: float | None
    input: Any
    output: Any

    @property
    def returned(self) -> bool:
        return self.return_time is not None and self.output is not UNKNOWN


class Recorder:
    """Builds a history while a test runs: ``token = rec.invoke(client, input)`` when a request is sent, then
    ``rec.complete(token, output)`` or ``rec.unknown(token)`` (timed out). Requests never completed stay open
    (they may take effect later or never). ``clock`` defaults to ``time.monotonic``; a simulator passes its
    virtual clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ids = itertools.count()
        self._open: dict[int, tuple[Hashable, float, Any]] = {}
        self._done: list[tuple[int, Operation]] = []

    def invoke(self, client_id: Hashable, input: Any) -> int:
        token = next(self._ids)
        self._open[token] = (client_id, self._clock(), input)
        return token

    def complete(self, token: int, output: Any) -> None:
        client_id, call_time, input = self._pop(token)
        self._done.append((token, Operation(client_id, call_time, self._clock(), input, output)))

    def unknown(self, token: int) -> None:
        client_id, call_time, input = self._pop(token)
        self._done.append((token, Operation(client_id, call_time, None, input, UNKNOWN)))

    def history(self) -> list[Operation]:
        """Every operation so far, in call order; still-open ones have no return time and an unknown output."""
        ops = list(self._done)
        ops.extend((t, Operation(c, ct, None, i, UNKNOWN)) for t, (c, ct, i) in self._open.items())
        ops.sort(key=lambda pair: pair[0])
        return [op for _, op in ops]

    def _pop(self, token: int) -> tuple[Hashable, float, Any]:
        try:
            return self._open.pop(token)
        except KeyError:
            raise HistoryError(f"operation token {token} is not open (never invoked or already completed)") from None
