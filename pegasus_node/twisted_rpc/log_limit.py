"""Log lines that a flood of bad messages cannot multiply.

A peer can send thousands of one-way messages a second, and a one-way message has no reply to carry its
error back, so each error is logged; ``RateLimitedLog`` writes at most one line per key per ``interval``
and tells, on the next line it writes for that key, how many it left out. Keys must come from a bounded set
(an error kind, a registered method name), never from what a peer sent, or the table of keys would grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

DEFAULT_INTERVAL_SECONDS = 10.0


class RateLimitedLog:
    def __init__(self, log: Logger, interval: float = DEFAULT_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self.interval = interval
        self._clock = clock
        self._last: dict[Hashable, list] = {}  # key -> [time of the last line written, lines left out since]

    def _admit(self, key: Hashable) -> int | None:
        """None if a line of ``key`` was written within ``interval``; else how many were left out since it."""
        now = self._clock()
        state = self._last.get(key)
        if state is not None and now - state[0] < self.interval:
            state[1] += 1
            return None
        self._last[key] = [now, 0]
        return state[1] if state is not None else 0

    @staticmethod
    def _note_left_out(fmt: str, fields: dict, left_out: int) -> str:
        if not left_out:
            return fmt
        fields["log_left_out"] = left_out
        return fmt + " ({log_left_out} more like this since the last such line were not logged)"

    def emit(self, level: LogLevel, key: Hashable, fmt: str, **fields: Any) -> bool:
        """Write ``fmt`` with ``fields`` unless a line of ``key`` was written within ``interval``; returns
        whether it was written."""
        left_out = self._admit(key)
        if left_out is None:
            return False
        self._log.emit(level, self._note_left_out(fmt, fields, left_out), **fields)
        return True

    def info(self, key: Hashable, fmt: str, **fields: Any) -> bool:
        return self.emit(LogLevel.info, key, fmt, **fields)

    def warn(self, key: Hashable, fmt: str, **fields: Any) -> bool:
        return self.emit(LogLevel.warn, key, fmt, **fields)

    def failure(self, key: Hashable, fmt: str, failure: Failure | None = None, **fields: Any) -> bool:
        """An error with a traceback: of ``failure``, or by default of the exception being handled (captured
        only when the line is written: a traceback is not cheap)."""
        left_out = self._admit(key)
        if left_out is None:
            return False
        self._log.failure(self._note_left_out(fmt, fields, left_out), failure=failure or Failure(), **fields)
        return True
