"""Send one table's requests to the right replica: routing, retries, configuration refresh, backup requests and
follower reads."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError as DeferredTimeoutError, ensureDeferred
from twisted.python.failure import Failure

from pegasus_node.client.backup_request import race_with_backup
from pegasus_node.client.errors import AmbiguousResultError, PegasusTimeoutError, TableNotFoundError
from pegasus_node.client.partition_cache import PartitionConfigCache, PartitionInfo, TableConfig
from pegasus_node.client.retry import (
    REFRESH_CONFIG_ERRORS,
    TRANSIENT_ERRORS,
    Backoff,
    Deadline,
    attempt_timeout_seconds,
    may_retry,
)
from pegasus_node.errors import ErrorCode, PegasusError
from pegasus_node.twisted_rpc.deadline_wheel import DeadlineWheel


@dataclass
class InvokerStats:
    attempts: int = 0
    retries: int = 0
    backup_requests: int = 0
    follower_reads: int = 0  # reads sent to a secondary as follower reads


class PartitionInvoker:
    def __init__(
        self,
        *,
        pool: Any,
        clock: Any,
        cache: PartitionConfigCache,
        backup_delay_seconds: float = 0.0,
        follower_read: bool = False,
        check_open: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self.check_open = check_open  # raises ClientClosedError once the client is closed
        self._clock = clock
        self.cache = cache
        self.backup_delay_seconds = backup_delay_seconds
        # Backup delays are timed on a wheel of ticks a quarter of the delay long (at most 1 ms): a reactor timer
        # per read cost more than the read.
        self._backup_timers = (DeadlineWheel(clock, tick=min(0.001, backup_delay_seconds / 4))
                               if backup_delay_seconds > 0 else None)
        self.follower_read = follower_read
        self.stats = InvokerStats()

    async def call(
        self,
        method: str,
        body: dict,
        *,
        deadline: Deadline,
        hash_key: bytes | None = None,
        partition: int | None = None,
        read: bool,
        idempotent: bool,
        after_first_attempt: tuple[PegasusError, int | None] | None = None,
    ) -> Any:
        """Send ``body`` (plus its ``gpid``) to the primary of the partition of ``hash_key`` (or ``partition``).

        Retries until the deadline as :mod:`pegasus_node.client.retry` allows; reads may also go to a
        secondary as a backup request, or first to a secondary as a follower read (retries go to the primary).
        Raises the replica's error, :class:`PegasusTimeoutError`, :class:`AmbiguousResultError` or
        :class:`TableNotFoundError`. ``after_first_attempt``: the retriable error of a first attempt that
        ``start`` made, and the configuration version it found stale.
        """
        operation = f"{method} on table {self.cache.table_name!r}"
        backoff = Backoff()
        last_error: BaseException | None = None
        stale_version: int | None = None  # the configuration version that an attempt found out of date
        first = True
        follower = after_first_attempt is None  # only an operation's first attempt may be a follower read
        if after_first_attempt is not None:
            last_error, stale_version = after_first_attempt
            first = False
            await backoff.sleep(self._clock, deadline)
        while True:
            self.check_open()  # a closed client stops retrying at once
            if deadline.expired():
                raise PegasusTimeoutError(
                    f"{operation} did not succeed within {deadline.timeout_seconds:g}s", last_error
                )
            if not first:
                self.stats.retries += 1
            first = False
            # Refresh after the backoff sleep, not before it, so that the retry sees the newest configuration.
            if stale_version is not None:
                await self._refresh(stale_version, deadline)
                stale_version = None
            config = self.cache.config  # nearly always there: no Deferred to wait for on the hot path
            if config is None:
                try:
                    config = await self._bounded(self.cache.get(), deadline)
                except TableNotFoundError:
                    raise
                except (PegasusError, DeferredTimeoutError) as e:
                    last_error = e
                    await backoff.sleep(self._clock, deadline)
                    continue
            part = self._route(config, hash_key, partition)
            if not part.primary:
                last_error = PegasusError(
                    ErrorCode.ERR_INVALID_STATE, f"partition {config.app_id}.{part.index} has no primary"
                )
                stale_version = config.version
                await backoff.sleep(self._clock, deadline)
                continue
            try:
                return await self._attempt(config, part, method, body, deadline, deadline.remaining(), read,
                                           idempotent, follower)
            except PegasusError as e:
                last_error = e
                follower = False
                stale_version = self._judge_failure(e, operation, config, idempotent=idempotent)
                await backoff.sleep(self._clock, deadline)

    def start(
        self,
        method: str,
        body: dict,
        *,
        deadline: Deadline,
        hash_key: bytes,
        read: bool,
        idempotent: bool,
        on_reply: Callable[[Any], Any] | None = None,
    ) -> Deferred:
        """``call`` as a Deferred, with no coroutine in the common case (the configuration is cached and the
        first attempt succeeds): a coroutine per operation cost the client more CPU than the RPC itself.
        Anything else goes on in ``call``'s retry loop. The Deferred fires with ``on_reply(reply)`` (given one):
        the same as adding it as a callback, one step fewer in the Deferred chain of every operation.

        The caller has just checked that the client is open (``Table._start`` does, before anything else):
        checking again here would be the same check a few instructions later, on every operation.
        """
        config = self.cache.config
        if config is not None:
            remaining = deadline.remaining()  # one clock reading for the expiry check and the attempt's timeout
            if remaining > 0:
                part = config.partition_of(hash_key)
                if part.primary:
                    d = self._attempt(config, part, method, body, deadline, remaining, read, idempotent, True)
                    retry_args = (method, body, deadline, hash_key, config, read, idempotent, on_reply)
                    if on_reply is None:
                        return d.addErrback(self._retry_first_attempt, *retry_args)
                    # Side by side: on_reply does not see a failure, and the retry's Deferred applies it itself.
                    return d.addCallbacks(on_reply, self._retry_first_attempt, errbackArgs=retry_args)
        d = ensureDeferred(self.call(method, body, deadline=deadline, hash_key=hash_key, read=read,
                                     idempotent=idempotent))
        return d if on_reply is None else d.addCallback(on_reply)

    def _attempt(self, config: TableConfig, part: PartitionInfo, method: str, body: dict, deadline: Deadline,
                 remaining: float, read: bool, idempotent: bool, follower: bool) -> Deferred:
        """One try at the partition's primary (raced with a backup request, for a read), or at a secondary for
        a read that may be a ``follower`` read; ``remaining``: the deadline's remaining seconds, just read."""
        body["gpid"] = [config.app_id, part.index]
        self.stats.attempts += 1
        attempt_timeout = attempt_timeout_seconds(deadline, remaining, idempotent)
        if read and follower and self.follower_read and part.secondaries:
            self.stats.follower_reads += 1
            secondary = random.choice(part.secondaries)
            return self._pool.call(secondary, method, dict(body, follower_read=True), attempt_timeout)
        if read and self.backup_delay_seconds > 0 and part.secondaries:
            return self._race_with_backup(part, method, body, deadline, attempt_timeout)
        return self._pool.call(part.primary, method, body, attempt_timeout)

    def _retry_first_attempt(self, failure: Failure, method: str, body: dict, deadline: Deadline,
                             hash_key: bytes | None, config: TableConfig, read: bool, idempotent: bool,
                             on_reply: Callable[[Any], Any] | None) -> Any:
        error = failure.value
        if not isinstance(error, PegasusError):
            return failure
        operation = f"{method} on table {self.cache.table_name!r}"
        stale_version = self._judge_failure(error, operation, config, idempotent=idempotent)
        d = ensureDeferred(self.call(method, body, deadline=deadline, hash_key=hash_key, read=read,
                                     idempotent=idempotent, after_first_attempt=(error, stale_version)))
        return d if on_reply is None else d.addCallback(on_reply)

    @staticmethod
    def _judge_failure(error: PegasusError, operation: str, config: TableConfig, *, idempotent: bool) -> int | None:
        """Raise ``error`` (or AmbiguousResultError) when no retry may follow; else the configuration version
        to refresh past before the retry (None: keep it)."""
        if not may_retry(error, idempotent=idempotent):
            if not idempotent and error.code in TRANSIENT_ERRORS:
                raise AmbiguousResultError(operation, error) from error
            raise error
        return config.version if error.code in REFRESH_CONFIG_ERRORS else None

    @staticmethod
    def _route(config: TableConfig, hash_key: bytes | None, partition: int | None) -> PartitionInfo:
        if hash_key is not None:
            return config.partition_of(hash_key)
        assert partition is not None
        if partition >= config.partition_count:
            raise PegasusError(
                ErrorCode.ERR_INCONSISTENT_STATE,
                f"table {config.name!r} now has {config.partition_count} partitions; "
                f"partition {partition} no longer exists",
            )
        return config.partitions[partition]

    def _race_with_backup(
        self, part: PartitionInfo, method: str, body: dict, deadline: Deadline, attempt_timeout: float
    ) -> Deferred:
        """A read sent to the primary and, if it has not answered within the backup delay, to a secondary."""

        def to_primary() -> Deferred:
            return self._pool.call(part.primary, method, body, attempt_timeout)

        def to_secondary() -> Deferred | None:
            remaining = deadline.remaining()
            if remaining <= 0:
                return None
            self.stats.backup_requests += 1
            secondary = random.choice(part.secondaries)
            return self._pool.call(secondary, method, dict(body, backup_request=True), remaining)

        return race_with_backup(self._clock, to_primary, to_secondary, self.backup_delay_seconds, self._backup_timers)

    async def _refresh(self, stale_version: int, deadline: Deadline) -> None:
        """Ask for a configuration newer than ``stale_version`` (coalesced), waiting no longer than the deadline.

        A meta server that cannot answer is not fatal here: the retry goes on with what we have.
        """
        try:
            await self._bounded(self.cache.refresh(stale_version=stale_version), deadline)
        except TableNotFoundError:
            raise
        except (PegasusError, DeferredTimeoutError):
            pass

    async def _bounded(self, d: Deferred, deadline: Deadline) -> Any:
        if d.called:
            return await d
        remaining = deadline.remaining()
        if remaining <= 0:
            d.addErrback(lambda _: None)
            d.cancel()
            raise DeferredTimeoutError("deadline passed")
        d.addTimeout(remaining, self._clock)
        return await d
