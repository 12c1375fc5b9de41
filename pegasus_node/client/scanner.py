"""Scanners: batched, stateless range reads over ``rrdb.scan``.

A hash-key scanner walks one range of storage keys (one hash key's sort-key range) in one partition. An
unordered scanner walks whole partitions, one after the other. Each batch asks for the keys after the
last one returned, so a scanner survives a failover: the next batch simply goes to the new primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from pegasus_node.base.keys import encode_key, hash_key_prefix, prefix_successor
from pegasus_node.client.errors import InvalidArgumentError
from pegasus_node.client.invoker import PartitionInvoker
from pegasus_node.client.retry import Deadline
from pegasus_node.errors import ErrorCode, PegasusError

Record = tuple[bytes, bytes, bytes]  # (hash_key, sort_key, value)


@dataclass(frozen=True)
class ScanRange:
    """A range of storage keys in one partition: routed by ``hash_key``, or by ``partition`` if it is None."""

    start_key: bytes
    stop_key: bytes  # b"": to the end of the partition
    start_inclusive: bool
    stop_inclusive: bool
    hash_key: bytes | None = None
    partition: int | None = None


def hash_key_range(
    hash_key: bytes,
    start_sort_key: bytes,
    stop_sort_key: bytes,
    start_inclusive: bool,
    stop_inclusive: bool,
) -> ScanRange:
    """The storage-key range of ``hash_key``'s sort keys in [start, stop); an empty stop: to the last one."""
    start_key = encode_key(hash_key, start_sort_key)
    if stop_sort_key:
        return ScanRange(start_key, encode_key(hash_key, stop_sort_key), start_inclusive, stop_inclusive, hash_key)
    stop_key = prefix_successor(hash_key_prefix(hash_key)) or b""
    return ScanRange(start_key, stop_key, start_inclusive, False, hash_key)


def partition_range(partition: int) -> ScanRange:
    return ScanRange(b"", b"", True, False, partition=partition)


def split_partitions(partition_count: int, max_split_count: int) -> list[list[int]]:
    """Deal partitions 0..n-1 into at most ``max_split_count`` contiguous groups of near-equal size."""
    groups = min(partition_count, max_split_count)
    size, extra = divmod(partition_count, groups)
    result, start = [], 0
    for g in range(groups):
        end = start + size + (1 if g < extra else 0)
        result.append(list(range(start, end)))
        start = end
    return result


class Scanner:
    """Batches of ``(hash_key, sort_key, value)`` in key order within each range.

    Call :meth:`next_batch` until it fires with an empty list. One batch at a time.
    """

    def __init__(
        self,
        invoker: PartitionInvoker,
        ranges: list[ScanRange],
        *,
        clock: Any,
        batch_size: int,
        no_value: bool,
        timeout: float,
    ) -> None:
        self._invoker = invoker
        self._ranges = ranges
        self._clock = clock
        self.batch_size = batch_size
        self.no_value = no_value
        self.timeout = timeout
        self._index = 0
        self._cursor: bytes | None = None  # the last key returned in the current range
        self._busy = False

    @property
    def exhausted(self) -> bool:
        """True once every range has been read to its end."""
        return self._index >= len(self._ranges)

    @property
    def partitions(self) -> list[int]:
        """The partitions a full-table scanner walks (empty for a hash-key scanner)."""
        return [r.partition for r in self._ranges if r.partition is not None]

    def next_batch(self) -> Deferred:
        """Fire with the next non-empty batch, or ``[]`` when the scan is done."""
        return ensureDeferred(self._next_batch())

    async def _next_batch(self) -> list[Record]:
        if self._busy:
            raise InvalidArgumentError("next_batch() called while the previous batch is still being read")
        self._busy = True
        try:
            deadline = Deadline(self._clock, self.timeout)
            while not self.exhausted:
                batch = await self._read_batch(self._ranges[self._index], deadline)
                if batch:
                    return batch
            return []
        finally:
            self._busy = False

    async def _read_batch(self, scan_range: ScanRange, deadline: Deadline) -> list[Record]:
        cursor = self._cursor
        body = {
            "start_key": scan_range.start_key if cursor is None else cursor,
            "stop_key": scan_range.stop_key,
            "start_inclusive": scan_range.start_inclusive if cursor is None else False,
            "stop_inclusive": scan_range.stop_inclusive,
            "batch_size": self.batch_size,
            "no_value": self.no_value,
        }
        reply = await self._invoker.call(
            "rrdb.scan",
            body,
            deadline=deadline,
            hash_key=scan_range.hash_key,
            partition=scan_range.partition,
            read=True,
            idempotent=True,
        )
        try:
            records = [(bytes(hk), bytes(sk), bytes(v or b"")) for hk, sk, v in reply["kvs"]]
            next_start = reply.get("next_start_key")
        except (KeyError, TypeError, ValueError) as e:
            raise PegasusError(ErrorCode.ERR_INVALID_DATA, f"rrdb.scan: malformed reply ({e!r})") from None
        if next_start is None:
            self._index += 1
            self._cursor = None
        elif cursor is not None and bytes(next_start) <= cursor:
            # The server must make progress; a cursor that does not move would loop forever.
            raise PegasusError(ErrorCode.ERR_INVALID_DATA, "rrdb.scan: next_start_key did not advance")
        else:
            self._cursor = bytes(next_start)
        return records
