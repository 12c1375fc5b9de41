"""A table handle: the data operations, each returning a Deferred.

Keys and values are bytes; str is accepted and encoded as UTF-8. Every method validates its arguments
before any I/O (a bad argument fails the returned Deferred with a :class:`PegasusClientError` at once) and
takes an optional keyword ``timeout`` (seconds) overriding the table's default for that one call.

Naming: ``delete`` and ``multi_delete`` are the canonical names (``del`` is a Python keyword); ``remove``
(the Java client's name) and ``multi_del`` (the Pegasus shell's) are aliases of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail

from pegasus_node.client.deferreds import returns_deferred
from pegasus_node.client.errors import InvalidArgumentError
from pegasus_node.client.invoker import InvokerStats, PartitionInvoker
from pegasus_node.client.results import CheckAndSetResult, CheckType
from pegasus_node.client.retry import Deadline
from pegasus_node.client.scanner import Record, Scanner, hash_key_range, partition_range, split_partitions
from pegasus_node.client.validation import (
    INT64_MAX,
    INT64_MIN,
    bool_arg,
    hash_key_arg,
    int_arg,
    kvs_arg,
    sort_key_arg,
    sort_keys_arg,
    timeout_arg,
    ttl_arg,
    value_arg,
)
from pegasus_node.errors import ErrorCode, PegasusError

# As the Pegasus Java client's multiGet defaults.
DEFAULT_MULTI_GET_MAX_KV_COUNT = 100
DEFAULT_MULTI_GET_MAX_KV_SIZE = 1_000_000
DEFAULT_SCAN_BATCH_SIZE = 1000
DEFAULT_SCAN_MAX_COUNT = 10_000


def _malformed(method: str, error: Exception) -> PegasusError:
    return PegasusError(ErrorCode.ERR_INVALID_DATA, f"{method}: malformed reply ({error!r})")


def _nothing(_reply: Any) -> None:
    return None


def _value_of_get(reply: Any) -> bytes | None:
    try:
        value = reply["value"]
    except (KeyError, TypeError) as e:
        raise _malformed("rrdb.get", e) from None
    return None if value is None else bytes(value)


class Table:
    """Obtained from ``Client.open_table``. Holds no connection of its own; cheap to keep around."""

    def __init__(
        self,
        *,
        name: str,
        invoker: PartitionInvoker,
        clock: Any,
        timeout: float,
        max_value_bytes: int,
    ) -> None:
        self.name = name
        self._invoker = invoker
        self._clock = clock
        self.timeout = timeout
        self.max_value_bytes = max_value_bytes

    # -- introspection ---------------------------------------------------------------------------------

    @property
    def app_id(self) -> int:
        return self._config().app_id

    @property
    def partition_count(self) -> int:
        return self._config().partition_count

    @property
    def backup_request_delay_ms(self) -> int:
        return round(self._invoker.backup_delay_seconds * 1000)

    @property
    def stats(self) -> InvokerStats:
        """Counters of attempts, retries and backup requests sent (shared by handles of this table)."""
        return self._invoker.stats

    def _config(self) -> Any:
        config = self._invoker.cache.config
        assert config is not None, "open_table fetched the configuration"
        return config

    # -- plumbing --------------------------------------------------------------------------------------

    def _start(
        self,
        method: str,
        hash_key: bytes,
        body: dict,
        timeout: float | None,
        *,
        read: bool,
        idempotent: bool = True,
        on_reply: Callable[[Any], Any] | None = None,
    ) -> Deferred:
        """Send the operation; the Deferred fires with ``on_reply(reply)`` (the reply, without one)."""
        invoker = self._invoker
        invoker.check_open()  # the one check of this operation: PartitionInvoker.start counts on it
        deadline = Deadline(self._clock, self.timeout if timeout is None else timeout_arg(timeout, self.timeout))
        body["hash_key"] = hash_key
        return invoker.start(method, body, deadline=deadline, hash_key=hash_key, read=read, idempotent=idempotent,
                             on_reply=on_reply)

    async def _call(
        self, method: str, hash_key: bytes, body: dict, timeout: float | None, *, read: bool, idempotent: bool = True
    ) -> Any:
        return await self._start(method, hash_key, body, timeout, read=read, idempotent=idempotent)

    # -- single records --------------------------------------------------------------------------------

    # set and get, the hot paths, build their Deferreds directly (PartitionInvoker.start): no coroutine.

    def set(
        self, hash_key: Any, sort_key: Any, value: Any, ttl_seconds: int = 0, *, timeout: float | None = None
    ) -> Deferred:
        """Write one record; ``ttl_seconds`` 0 means no expiry. Fires with None."""
        try:
            hk, sk = hash_key_arg(hash_key), sort_key_arg(sort_key)
            body = {"sort_key": sk, "value": value_arg(value, self.max_value_bytes),
                    "ttl_seconds": ttl_arg(ttl_seconds)}
            return self._start("rrdb.put", hk, body, timeout, read=False, on_reply=_nothing)
        except Exception:
            return fail()

    def get(self, hash_key: Any, sort_key: Any, *, timeout: float | None = None) -> Deferred:
        """The value, or None when the record does not exist (or has expired)."""
        try:
            body = {"sort_key": sort_key_arg(sort_key)}
            return self._start("rrdb.get", hash_key_arg(hash_key), body, timeout, read=True, on_reply=_value_of_get)
        except Exception:
            return fail()

    def duplicate(self, ops: list[dict], *, timeout: float | None = None) -> Deferred:
        """Apply writes that another cluster's duplication ships (storage ops carrying their source timetags:
        duplication/duplicator.py), all of one partition of this table, in order. For duplicators, not
        applications. Fires with None."""
        try:
            return self._start("rrdb.duplicate", hash_key_arg(ops[0]["hk"]), {"ops": ops}, timeout, read=False,
                                on_reply=_nothing)
        except Exception:
            return fail()

    @returns_deferred
    async def delete(self, hash_key: Any, sort_key: Any, *, timeout: float | None = None) -> None:
        """Remove one record (no error if it does not exist)."""
        body = {"sort_key": sort_key_arg(sort_key)}
        await self._call("rrdb.remove", hash_key_arg(hash_key), body, timeout, read=False)

    remove = delete

    @returns_deferred
    async def exist(self, hash_key: Any, sort_key: Any, *, timeout: float | None = None) -> bool:
        body = {"sort_key": sort_key_arg(sort_key)}
        reply = await self._call("rrdb.exist", hash_key_arg(hash_key), body, timeout, read=True)
        try:
            return bool(reply["exists"])
        except (KeyError, TypeError) as e:
            raise _malformed("rrdb.exist", e) from None

    @returns_deferred
    async def ttl(self, hash_key: Any, sort_key: Any, *, timeout: float | None = None) -> int | None:
        """Seconds left to live; -1 when the record never expires; None when it does not exist."""
        body = {"sort_key": sort_key_arg(sort_key)}
        reply = await self._call("rrdb.ttl", hash_key_arg(hash_key), body, timeout, read=True)
        try:
            return int(reply["ttl_seconds"]) if reply["exists"] else None
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed("rrdb.ttl", e) from None

    @returns_deferred
    async def incr(
        self,
        hash_key: Any,
        sort_key: Any,
        increment: int = 1,
        ttl_seconds: int = 0,
        *,
        timeout: float | None = None,
    ) -> int:
        """Add ``increment`` to the int64 stored as decimal text (absent: 0) and return the new value.

        ``ttl_seconds``: 0 keeps the record's TTL, -1 clears it, > 0 sets it. Not idempotent: it is retried
        only when it certainly did not run, otherwise :class:`AmbiguousResultError` is raised.
        """
        body = {
            "sort_key": sort_key_arg(sort_key),
            "increment": int_arg("increment", increment, minimum=INT64_MIN, maximum=INT64_MAX),
            "ttl_seconds": ttl_arg(ttl_seconds, allow_clear=True),
        }
        reply = await self._call("rrdb.incr", hash_key_arg(hash_key), body, timeout, read=False, idempotent=False)
        try:
            return int(reply["value"])
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed("rrdb.incr", e) from None

    @returns_deferred
    async def check_and_set(
        self,
        hash_key: Any,
        check_sort_key: Any,
        check_type: CheckType | int,
        check_operand: Any,
        set_sort_key: Any,
        set_value: Any,
        *,
        ttl_seconds: int = 0,
        return_check_value: bool = False,
        timeout: float | None = None,
    ) -> CheckAndSetResult:
        """Atomically: if the record at ``check_sort_key`` passes the check, set ``set_sort_key``.

        Not idempotent: retried only when it certainly did not run (see :meth:`incr`).
        """
        try:
            ct = CheckType(int_arg("check_type", check_type))
        except ValueError:
            raise InvalidArgumentError(f"check_type {check_type!r} is not a CheckType") from None
        body = {
            "check_sort_key": sort_key_arg(check_sort_key, "check sort key"),
            "check_type": int(ct),
            "check_operand": value_arg(check_operand, self.max_value_bytes, "check operand"),
            "set_sort_key": sort_key_arg(set_sort_key, "set sort key"),
            "set_value": value_arg(set_value, self.max_value_bytes, "set value"),
            "ttl_seconds": ttl_arg(ttl_seconds),
            "return_check_value": bool_arg("return_check_value", return_check_value),
        }
        hk = hash_key_arg(hash_key)
        try:
            reply = await self._call("rrdb.check_and_set", hk, body, timeout, read=False, idempotent=False)
        except PegasusError as e:
            if e.code == ErrorCode.ERR_TRY_AGAIN:  # Pegasus's way of saying "the check did not pass"
                return CheckAndSetResult(set_succeed=False)
            raise
        try:
            check_value = reply.get("check_value")
            return CheckAndSetResult(
                set_succeed=bool(reply["set_succeed"]),
                check_value_returned=return_check_value,
                check_value_exist=bool(reply.get("check_value_exist", False)),
                check_value=None if check_value is None else bytes(check_value),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise _malformed("rrdb.check_and_set", e) from None

    # -- many sort keys of one hash key ----------------------------------------------------------------

    @returns_deferred
    async def multi_set(
        self, hash_key: Any, kvs: Any, ttl_seconds: int = 0, *, timeout: float | None = None
    ) -> None:
        """Write several sort keys of one hash key atomically; ``kvs``: a dict or a list of pairs."""
        pairs = kvs_arg(kvs, self.max_value_bytes)
        body = {"kvs": [[sk, v] for sk, v in pairs], "ttl_seconds": ttl_arg(ttl_seconds)}
        await self._call("rrdb.multi_put", hash_key_arg(hash_key), body, timeout, read=False)

    @returns_deferred
    async def multi_get(
        self,
        hash_key: Any,
        sort_keys: Any = None,
        *,
        start_sort_key: Any = b"",
        stop_sort_key: Any = b"",
        start_inclusive: bool = True,
        stop_inclusive: bool = False,
        max_kv_count: int | None = None,
        max_kv_size: int | None = None,
        no_value: bool = False,
        timeout: float | None = None,
    ) -> tuple[dict[bytes, bytes], bool]:
        """Read several sort keys of one hash key: ``(values, complete)``.

        With ``sort_keys`` (a non-empty list), exactly those keys are read and absent ones are left out.
        Without, the sort-key range [``start_sort_key``, ``stop_sort_key``) is read (an empty stop: to the
        end), at most ``max_kv_count`` records (default 100) and ``max_kv_size`` bytes (default 1,000,000),
        as the Java client does. ``values`` is a dict ``{sort_key: value}`` in sort-key order (values are
        ``b""`` with ``no_value``); ``complete`` is False when a limit cut the result short.
        """
        body: dict[str, Any] = {"no_value": bool_arg("no_value", no_value)}
        if sort_keys is not None:
            body["sort_keys"] = sort_keys_arg(sort_keys)
            if max_kv_count is not None:
                body["max_kv_count"] = int_arg("max_kv_count", max_kv_count, minimum=1)
            if max_kv_size is not None:
                body["max_kv_size"] = int_arg("max_kv_size", max_kv_size, minimum=1)
        else:
            body.update(
                start_sort_key=sort_key_arg(start_sort_key, "start sort key"),
                stop_sort_key=sort_key_arg(stop_sort_key, "stop sort key"),
                start_inclusive=bool_arg("start_inclusive", start_inclusive),
                stop_inclusive=bool_arg("stop_inclusive", stop_inclusive),
                max_kv_count=int_arg(
                    "max_kv_count", DEFAULT_MULTI_GET_MAX_KV_COUNT if max_kv_count is None else max_kv_count, minimum=1
                ),
                max_kv_size=int_arg(
                    "max_kv_size", DEFAULT_MULTI_GET_MAX_KV_SIZE if max_kv_size is None else max_kv_size, minimum=1
                ),
            )
        reply = await self._call("rrdb.multi_get", hash_key_arg(hash_key), body, timeout, read=True)
        try:
            values = {bytes(sk): bytes(v or b"") for sk, v in reply["kvs"]}
            return values, bool(reply["complete"])
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed("rrdb.multi_get", e) from None

    @returns_deferred
    async def multi_delete(self, hash_key: Any, sort_keys: Any, *, timeout: float | None = None) -> int:
        """Remove several sort keys of one hash key; returns how many the server removed."""
        body = {"sort_keys": sort_keys_arg(sort_keys)}
        reply = await self._call("rrdb.multi_remove", hash_key_arg(hash_key), body, timeout, read=False)
        try:
            return int(reply["count"])
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed("rrdb.multi_remove", e) from None

    multi_del = multi_delete

    @returns_deferred
    async def sortkey_count(self, hash_key: Any, *, timeout: float | None = None) -> int:
        reply = await self._call("rrdb.sortkey_count", hash_key_arg(hash_key), {}, timeout, read=True)
        try:
            return int(reply["count"])
        except (KeyError, TypeError, ValueError) as e:
            raise _malformed("rrdb.sortkey_count", e) from None

    # -- scans -----------------------------------------------------------------------------------------

    def get_scanner(
        self,
        hash_key: Any,
        start_sort_key: Any = b"",
        stop_sort_key: Any = b"",
        *,
        batch_size: int = DEFAULT_SCAN_BATCH_SIZE,
        start_inclusive: bool = True,
        stop_inclusive: bool = False,
        no_value: bool = False,
        timeout: float | None = None,
    ) -> Scanner:
        """A scanner over one hash key's sort keys in [start, stop) (an empty stop: to the last one).

        Raises :class:`PegasusClientError` at once for bad arguments; sends nothing until ``next_batch``.
        """
        self._invoker.check_open()
        scan_range = hash_key_range(
            hash_key_arg(hash_key),
            sort_key_arg(start_sort_key, "start sort key"),
            sort_key_arg(stop_sort_key, "stop sort key"),
            bool_arg("start_inclusive", start_inclusive),
            bool_arg("stop_inclusive", stop_inclusive),
        )
        return self._scanner([scan_range], batch_size, no_value, timeout)

    def get_unordered_scanners(
        self,
        max_split_count: int,
        *,
        batch_size: int = DEFAULT_SCAN_BATCH_SIZE,
        no_value: bool = False,
        timeout: float | None = None,
    ) -> list[Scanner]:
        """Scanners that together walk the whole table: min(max_split_count, partitions) of them, each over
        a contiguous group of partitions; records come in key order within a partition only."""
        self._invoker.check_open()
        groups = split_partitions(self.partition_count, int_arg("max_split_count", max_split_count, minimum=1))
        return [self._scanner([partition_range(p) for p in g], batch_size, no_value, timeout) for g in groups]

    def _scanner(self, ranges: list, batch_size: int, no_value: bool, timeout: float | None) -> Scanner:
        return Scanner(
            self._invoker,
            ranges,
            clock=self._clock,
            batch_size=int_arg("batch_size", batch_size, minimum=1),
            no_value=bool_arg("no_value", no_value),
            timeout=timeout_arg(timeout, self.timeout),
        )

    @returns_deferred
    async def hash_scan(
        self,
        hash_key: Any,
        start_sort_key: Any = b"",
        stop_sort_key: Any = b"",
        *,
        max_count: int = DEFAULT_SCAN_MAX_COUNT,
        batch_size: int = DEFAULT_SCAN_BATCH_SIZE,
        start_inclusive: bool = True,
        stop_inclusive: bool = False,
        no_value: bool = False,
        timeout: float | None = None,
    ) -> tuple[list[Record], bool]:
        """Collect a hash-key scan: ``([(hash_key, sort_key, value)], complete)``, at most ``max_count``
        records; ``complete`` is False when more were left. ``timeout`` applies to each batch."""
        int_arg("max_count", max_count, minimum=1)
        scanner = self.get_scanner(
            hash_key,
            start_sort_key,
            stop_sort_key,
            batch_size=batch_size,
            start_inclusive=start_inclusive,
            stop_inclusive=stop_inclusive,
            no_value=no_value,
            timeout=timeout,
        )
        return await _collect([scanner], max_count)

    @returns_deferred
    async def full_scan(
        self,
        *,
        max_count: int = DEFAULT_SCAN_MAX_COUNT,
        batch_size: int = DEFAULT_SCAN_BATCH_SIZE,
        no_value: bool = False,
        timeout: float | None = None,
    ) -> tuple[list[Record], bool]:
        """Collect the whole table, partition by partition: ``(records, complete)`` as :meth:`hash_scan`."""
        int_arg("max_count", max_count, minimum=1)
        scanners = self.get_unordered_scanners(1, batch_size=batch_size, no_value=no_value, timeout=timeout)
        return await _collect(scanners, max_count)


async def _collect(scanners: list[Scanner], max_count: int) -> tuple[list[Record], bool]:
    records: list[Record] = []
    for scanner in scanners:
        while len(records) < max_count:
            batch = await scanner.next_batch()
            if not batch:
                break
            records.extend(batch)
    complete = all(s.exhausted for s in scanners) and len(records) <= max_count
    return records[:max_count], complete
