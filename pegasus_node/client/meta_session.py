"""Calls to the meta server group: try each meta server in turn until the leader answers.

A meta server that is not the leader answers ``ERR_INVALID_STATE``; one that is down fails to connect or
times out. The session remembers which one answered last and starts there next time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pegasus_node.client.errors import AmbiguousResultError, PegasusTimeoutError
from pegasus_node.client.retry import Backoff, Deadline, never_sent
from pegasus_node.client.validation import parse_meta_list, timeout_arg
from pegasus_node.errors import ErrorCode, PegasusError

# The next meta server may be the leader.
_TRY_NEXT_META = frozenset(
    {
        ErrorCode.ERR_INVALID_STATE,
        ErrorCode.ERR_NETWORK_FAILURE,
        ErrorCode.ERR_TIMEOUT,
        ErrorCode.ERR_BUSY,
        ErrorCode.ERR_SHUTTING_DOWN,
    }
)
# ... and the one we asked certainly did nothing.
_META_NOT_EXECUTED = frozenset({ErrorCode.ERR_INVALID_STATE, ErrorCode.ERR_BUSY})

# With several meta servers, one that hangs must not eat the whole deadline.
_MIN_META_ATTEMPT_SECONDS = 1.0


class MetaSession:
    def __init__(
        self,
        meta_list: str | list[str],
        *,
        pool: Any,
        clock: Any,
        timeout: float,
        check_open: Callable[[], None] = lambda: None,
    ) -> None:
        self.addresses = parse_meta_list(meta_list)
        self._check_open = check_open
        self.timeout = timeout_arg(timeout, 5.0)
        self._pool = pool
        self._clock = clock
        self._leader = 0

    @property
    def leader_hint(self) -> str:
        """The meta server that answered last (or the first one)."""
        return self.addresses[self._leader]

    async def call(
        self, method: str, body: dict, *, timeout: float | None = None, idempotent: bool = True
    ) -> Any:
        """Send to the leader, failing over across meta servers until the deadline.

        ``idempotent=False`` (create, drop, recall, setting the level) moves on only when the meta server
        we asked certainly did nothing; an ambiguous failure raises :class:`AmbiguousResultError`.
        """
        deadline = Deadline(self._clock, timeout_arg(timeout, self.timeout))
        backoff = Backoff()
        last_error: PegasusError | None = None
        count = len(self.addresses)
        while True:
            start = self._leader
            for i in range(count):
                self._check_open()
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise PegasusTimeoutError(
                        f"{method}: no leader among meta servers {','.join(self.addresses)} answered "
                        f"within {deadline.timeout_seconds:g}s",
                        last_error,
                    )
                index = (start + i) % count
                untried = count - i
                attempt_timeout = remaining
                if untried > 1:
                    attempt_timeout = min(remaining, max(_MIN_META_ATTEMPT_SECONDS, remaining / untried))
                try:
                    reply = await self._pool.call(self.addresses[index], method, body, attempt_timeout)
                except PegasusError as e:
                    if e.code not in _TRY_NEXT_META:
                        raise
                    if not idempotent and e.code not in _META_NOT_EXECUTED and not never_sent(e):
                        raise AmbiguousResultError(f"{method} on {self.addresses[index]}", e) from e
                    last_error = e
                    continue
                self._leader = index
                return reply
            await backoff.sleep(self._clock, deadline)
