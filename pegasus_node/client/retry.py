"""Deadlines, backoff, and which failures may be retried.

Every operation has one deadline; attempts, configuration refreshes and backoff sleeps all live inside it.
Idempotent operations (reads, put, remove, multi_put, multi_remove) are retried on any transient failure,
and one attempt gets at most half of the operation's timeout (at least 1 s), so that a replica that hangs
cannot use up the whole deadline: the retry asks the meta server again and may find a new primary.
Non-idempotent ones (incr, check_and_set) only when the request certainly did not execute: the replica
said it is not the primary or does not host the partition, it was too busy to take the request, or the
connection could not even be made.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc import NotSentError

# The replica's answer (or the lost connection, or its silence) says our configuration may be stale: ask
# the meta server.
REFRESH_CONFIG_ERRORS = frozenset(
    {
        ErrorCode.ERR_INVALID_STATE,
        ErrorCode.ERR_OBJECT_NOT_FOUND,
        ErrorCode.ERR_NETWORK_FAILURE,
        ErrorCode.ERR_TIMEOUT,
    }
)

# Worth another attempt for an idempotent operation.
TRANSIENT_ERRORS = REFRESH_CONFIG_ERRORS | frozenset(
    {
        ErrorCode.ERR_BUSY,
        ErrorCode.ERR_NOT_ENOUGH_MEMBER,
        ErrorCode.ERR_TIMEOUT,
        ErrorCode.ERR_SHUTTING_DOWN,
    }
)

# The replica refused the request before executing it.
NOT_EXECUTED_ERRORS = frozenset(
    {ErrorCode.ERR_INVALID_STATE, ErrorCode.ERR_OBJECT_NOT_FOUND, ErrorCode.ERR_BUSY}
)

INITIAL_BACKOFF_SECONDS = 0.01
# After a failover the client sees the new primary at its next retry, so the cap bounds what the client adds
# to the outage: 0.5 s here gave 1.44-1.95 s of write unavailability with the tuned lease, 0.2 s 1.67-1.84 s
# (BENCHMARKS.md). Refreshes of one table's configuration are shared by the operations waiting on them
# (partition_cache.py), so a lower cap costs the meta server little.
MAX_BACKOFF_SECONDS = 0.2
MIN_ATTEMPT_SECONDS = 1.0
ATTEMPT_TIMEOUT_FLOOR_SECONDS = 0.001  # an attempt whose deadline is (nearly) past still gets this long


class Deadline:
    """An absolute point on the reactor's clock."""

    __slots__ = ("_clock", "timeout_seconds", "expires_at")  # one per operation: slots make it cheaper

    def __init__(self, clock: Any, timeout_seconds: float) -> None:
        self._clock = clock
        self.timeout_seconds = timeout_seconds
        self.expires_at = clock.seconds() + timeout_seconds

    def remaining(self) -> float:
        return self.expires_at - self._clock.seconds()

    def expired(self) -> bool:
        return self.remaining() <= 0


class Backoff:
    """Exponential backoff with jitter: 10 ms doubling, capped, never sleeping past the deadline."""

    def __init__(self, initial: float = INITIAL_BACKOFF_SECONDS, cap: float = MAX_BACKOFF_SECONDS) -> None:
        self._next = initial
        self._cap = cap

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        # Jitter spreads the retries of many clients that failed together.
        return delay * random.uniform(0.5, 1.0)

    def sleep(self, clock: Any, deadline: Deadline) -> Deferred:
        return sleep(clock, min(self.next_delay(), max(0.0, deadline.remaining())))


def attempt_timeout_seconds(deadline: Deadline, remaining: float, idempotent: bool) -> float:
    """How long one attempt may wait for its reply, ``remaining``: ``deadline.remaining()`` as the caller just
    read it (it reads the clock once per attempt). A non-idempotent attempt is never retried after a timeout,
    so it gets all the time that remains. Never less than 1 ms. (Comparisons, not min/max: they are
    measurably cheaper, and this runs for every operation.)"""
    if idempotent:
        cap = deadline.timeout_seconds / 2
        if cap < MIN_ATTEMPT_SECONDS:
            cap = MIN_ATTEMPT_SECONDS
        if remaining > cap:
            remaining = cap
    return remaining if remaining > ATTEMPT_TIMEOUT_FLOOR_SECONDS else ATTEMPT_TIMEOUT_FLOOR_SECONDS


def sleep(clock: Any, seconds: float) -> Deferred:
    return deferLater(clock, seconds, lambda: None)


def never_sent(error: PegasusError) -> bool:
    """True when the request was certainly never written to a server (RpcClientPool raised NotSentError: the
    connect failed, the address was in backoff, the deadline passed while it waited to connect)."""
    return isinstance(error, NotSentError)


def may_retry(error: PegasusError, *, idempotent: bool) -> bool:
    if idempotent:
        return error.code in TRANSIENT_ERRORS
    return error.code in NOT_EXECUTED_ERRORS or never_sent(error)
