"""Backup requests (seed 000): if the primary has not answered a read after a delay, send the same read to
one secondary, take the first successful reply, and cancel the other request.

Every read of a table with backup requests arms a timer, and nearly every one is cancelled (the primary
answers first). A reactor timer each (callLater + cancel) cost the client a third of its reads per second;
the invoker passes a ``DeadlineWheel`` instead, one timer per tick for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from pegasus_node.twisted_rpc.deadline_wheel import DeadlineWheel


def race_with_backup(
    clock: Any,
    first: Callable[[], Deferred],
    backup: Callable[[], Deferred | None],
    delay_seconds: float,
    timers: DeadlineWheel | None = None,
) -> Deferred:
    """Fire with the first success among ``first()`` and, after ``delay_seconds``, ``backup()``.
    ``timers``: a wheel on ``clock`` to time the backup with (it may send it up to one tick late); without
    one, a reactor timer.

    If the first request fails before the delay, that failure is returned at once (no backup is sent:
    the caller's retry logic knows better). Once both are in flight, a failure of one waits for the
    other; if both fail, the first request's failure wins. ``backup()`` may return None (no secondary).
    Cancelling the returned Deferred cancels whatever is still in flight.
    """
    return _Race(clock, first, backup, delay_seconds, timers).result


class _Race:
    def __init__(
        self,
        clock: Any,
        first: Callable[[], Deferred],
        backup: Callable[[], Deferred | None],
        delay_seconds: float,
        timers: DeadlineWheel | None,
    ) -> None:
        self.result: Deferred = Deferred(canceller=lambda _: self._stop())
        self._backup = backup
        self._in_flight: list[Deferred] = []
        self._first_failure: Failure | None = None
        self._done = False
        self._backup_due = True  # until the backup is sent, or no longer wanted
        first_request = first()
        if timers is None:
            self._timer = clock.callLater(delay_seconds, self.expire)
            self._bucket = None
        else:
            self._timer = None
            self._bucket = timers.add(self, clock.seconds() + delay_seconds)
        self._track(first_request, is_first=True)

    def _track(self, d: Deferred, *, is_first: bool) -> None:
        self._in_flight.append(d)
        d.addCallbacks(self._succeeded, self._failed, callbackArgs=(d,), errbackArgs=(d, is_first))

    def expire(self) -> None:
        """The delay is over: send the backup request."""
        self._cancel_timer()
        if self._done:
            return
        d = self._backup()
        if d is not None:
            self._track(d, is_first=False)

    def _succeeded(self, value: Any, d: Deferred) -> None:
        self._in_flight.remove(d)
        if self._done:
            return
        self._stop()
        self.result.callback(value)

    def _failed(self, failure: Failure, d: Deferred, is_first: bool) -> None:
        self._in_flight.remove(d)
        if self._done:
            return None  # the loser we cancelled, or a late failure: nobody is waiting for it
        if is_first:
            self._first_failure = failure
            if self._backup_due:  # failed before the delay: no backup
                self._stop()
                self.result.errback(failure)
                return None
        if not self._in_flight:
            self._stop()
            self.result.errback(self._first_failure or failure)
        return None

    def _stop(self) -> None:
        self._done = True
        self._cancel_timer()
        for d in list(self._in_flight):
            d.cancel()

    def _cancel_timer(self) -> None:
        if self._backup_due:
            self._backup_due = False
            if self._timer is not None:
                if self._timer.active():
                    self._timer.cancel()
            else:
                self._bucket.pop(self, None)
